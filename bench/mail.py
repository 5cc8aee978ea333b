"""How long a customer waits for a confirmation: from the booking's POST to the moment
the SMTP server accepted its email (an in-process aiosmtpd), free and priced."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session

from devstack.mail import MailFolder

SMTP_PORT = 8767


class Arrivals(MailFolder):
    """Notes when each booking's email of each kind arrived (perf_counter)."""

    def __init__(self) -> None:
        super().__init__(None, keep=True)
        self.at: dict[tuple[str, str], float] = {}

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        answer = await super().handle_DATA(server, session, envelope)
        message: EmailMessage = self.received[-1].message
        self.at[(str(message["X-Holdfast-Booking"]), str(message["X-Holdfast-Kind"]))] = (
            time.perf_counter()
        )
        return answer

    async def wait(self, booking_id: str, kind: str, seconds: float = 30) -> float:
        deadline = time.perf_counter() + seconds
        while (booking_id, kind) not in self.at:
            if time.perf_counter() > deadline:
                raise SystemExit(f"no {kind} email for {booking_id} within {seconds:.0f} s")
            await asyncio.sleep(0.001)
        return self.at[(booking_id, kind)]


async def to_inbox(
    arrivals: Arrivals, calls: int, book: Callable[[], Awaitable[str]]
) -> tuple[float, float]:
    """(p50 ms, p95 ms) from the start of `book` (which answers the booking's id) to its
    confirmation email's acceptance, one booking at a time."""
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        booking_id = await book()
        samples.append((await arrivals.wait(booking_id, "confirmed") - started) * 1000)
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
