"""Fault: the Temporal server killed with SIGKILL mid-load and started again on its SQLite
file and port (docs/operations.md#fault-tests). Temporal is where every booking's
workflow lives: while it is away the API must say so (503, Retry-After), and once it is
back every booking must go on from where it was, none lost, none stuck."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from invariants import Report
from settings import Settings
from tests.support.faults import (
    FIRST_DAY,
    Answers,
    Shop,
    keep_booking,
    repeat_unanswered,
    settle_held,
    shop,
    temporal_server,
    until_answered,
    verdict,
)
from tests.support.live import live_app, served
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
QUEUE = "faults-temporal"
DOWN_SECONDS = 3  # after the kill, before the restart (which takes a few seconds more)


@dataclass
class Outage:
    app: FastAPI
    shop: Shop
    answers: Answers  # the customers' answers while the server went away and came back
    probe: httpx.Response  # a booking asked for while the server was down
    probe_seconds: float
    pay_probe: httpx.Response  # a held booking's payment, asked for while it was down
    read_probe: httpx.Response  # and the booking read meanwhile
    in_flight: dict[str, str]  # bookings made before the kill: id -> status then
    brief: str  # a hold that ran out while the server was down
    decided: Counter[int]  # the 503s, repeated with their keys afterwards
    resolved: dict[str, str]  # every booking's status once held ones were paid
    report: Report


@pytest.fixture(scope="module")
async def outage(
    settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Outage]:
    """One outage for the module's tests: bookings in flight (confirmed ones waiting on
    their reminders, priced ones held for payment, one hold about to run out), three
    customers booking, the server killed 1.5 s in and started again DOWN_SECONDS later."""
    roomy = settings.model_copy(update={"rate_limit_per_minute": 100_000})
    async with (
        temporal_server(tmp_path_factory.mktemp("temporal")) as (server, env),
        live_app(roomy, env, QUEUE) as app,
        served(app) as url,
        shop(url) as clinic,
    ):
        made = [
            await clinic.booked(code, day) for day, code in enumerate(["free"] * 2 + ["priced"] * 2)
        ]
        in_flight = {b["id"]: b["status"] for b in made}
        brief = (await clinic.booked("brief", 5))["id"]
        stop = asyncio.Event()
        traffic = asyncio.create_task(keep_booking(clinic, stop))
        await asyncio.sleep(1.5)
        server.kill()
        slot = (await clinic.slots("free", FIRST_DAY + timedelta(days=6)))[0]
        started = time.monotonic()
        probe = await clinic.book(slot["allocation_token"], key := "temporal-probe")
        probe_seconds = time.monotonic() - started
        held = next(b for b, status in in_flight.items() if status == "pending_payment")
        pay_probe = await clinic.http.post(f"/v1/bookings/{held}/mark-paid")
        read_probe = await clinic.http.get(f"/v1/bookings/{held}")
        await asyncio.sleep(DOWN_SECONDS)
        await server.start()
        await until_answered(clinic)
        await asyncio.sleep(1)  # a moment of traffic on the restarted server
        stop.set()
        answers = await traffic
        answers.unanswered.append((slot["allocation_token"], key))
        decided = await repeat_unanswered(clinic, answers)
        await eventually(lambda: clinic.status(brief), lambda s: s == "expired", seconds=30)
        answers.booked.update(in_flight)
        resolved = await settle_held(clinic, answers)
        report = await verdict(app, clinic.tenant_id)
        yield Outage(
            app,
            clinic,
            answers,
            probe,
            probe_seconds,
            pay_probe,
            read_probe,
            in_flight,
            brief,
            decided,
            resolved,
            report,
        )


def test_a_booking_asked_for_while_temporal_is_down_is_answered_503_with_retry_after(
    outage: Outage,
) -> None:
    assert outage.probe.status_code == 503, outage.probe.text
    assert outage.probe.json()["error"]["code"] == "workflow_unavailable"
    assert outage.probe.headers["Retry-After"]
    assert outage.probe_seconds < 10  # bounded (api/booking_gateway.py), not a hang


def test_a_change_asked_for_while_temporal_is_down_is_answered_503(outage: Outage) -> None:
    """A payment is an update its workflow must take: refused at once, made later."""
    assert outage.pay_probe.status_code == 503, outage.pay_probe.text
    assert outage.pay_probe.json()["error"]["code"] == "workflow_unavailable"
    assert outage.pay_probe.headers["Retry-After"]


def test_bookings_can_still_be_read_while_temporal_is_down(outage: Outage) -> None:
    """A read is the database's alone."""
    assert outage.read_probe.status_code == 200, outage.read_probe.text
    assert outage.read_probe.json()["status"] == "pending_payment"


def test_no_answer_during_the_outage_is_a_500(outage: Outage) -> None:
    answers = outage.answers
    assert answers.errors == [], answers.errors
    assert answers.statuses[503] >= 1 and answers.without_retry_after == 0, answers.statuses
    assert answers.statuses[201] >= 1, answers.statuses


def test_every_request_answered_503_is_decided_when_repeated_with_its_key(
    outage: Outage,
) -> None:
    """A 503 says "repeat with the same Idempotency-Key": after the restart that repeat
    gets a decided answer, the booking (which its workflow may have made already) or a
    409, never another 503 and never a second booking."""
    assert set(outage.decided) <= {201, 409}, outage.decided
    assert sum(outage.decided.values()) == len(outage.answers.unanswered)


def test_every_booking_answered_201_exists_after_the_restart(outage: Outage) -> None:
    assert set(outage.in_flight) <= set(outage.resolved)
    assert len(outage.resolved) == len(outage.answers.booked)
    lost = [b for b, status in outage.resolved.items() if status in ("failed", "cancelled")]
    assert lost == []


def test_held_bookings_resolve_after_the_restart(outage: Outage) -> None:
    """The held ones are paid once the server is back and confirm; the hold that ran
    out while it was down was released as the server came back."""
    assert set(outage.resolved.values()) == {"confirmed"}, Counter(outage.resolved.values())
    assert "pending_payment" in outage.in_flight.values()


def test_every_invariant_holds_after_the_restart(outage: Outage) -> None:
    assert outage.report.ok, outage.report.lines()
    assert outage.report.checked_bookings >= len(outage.resolved) + 1  # and the brief hold
