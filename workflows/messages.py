"""What crosses the workflow boundary: inputs, update arguments, state. Plain dataclasses,
serialised by the pydantic data converter (datetimes stay timezone-aware)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

LIVE_STATUSES = ("pending_payment", "confirmed")


def workflow_id_for(booking_id: str) -> str:
    """Workflow id of a booking (SPEC §4): one workflow per booking, found by its id."""
    return f"booking-{booking_id}"


@dataclass(frozen=True)
class ServiceTerms:
    """The service as it was when booked: later edits don't change a running booking."""

    service_id: str
    code: str
    name: str
    buffer_before_minutes: int
    buffer_after_minutes: int
    price_amount: int | None
    currency: str | None
    hold_seconds: int
    free_until_hours_before: int
    late_refund_percent: int
    reminders_minutes_before: list[int]
    retry_declined_payment: bool = False

    @property
    def priced(self) -> bool:
        return self.price_amount is not None


@dataclass(frozen=True)
class Slot:
    start: datetime
    end: datetime
    resource_ids: list[str]

    def widened(self, terms: ServiceTerms) -> tuple[datetime, datetime]:
        """The span the allocations occupy: the service time plus its buffers."""
        return (
            self.start - timedelta(minutes=terms.buffer_before_minutes),
            self.end + timedelta(minutes=terms.buffer_after_minutes),
        )


@dataclass(frozen=True)
class BookingRequest:
    """The workflow's input; the API builds it from a verified allocation token."""

    booking_id: str
    tenant_id: str
    terms: ServiceTerms
    slot: Slot
    customer: dict[str, Any]
    metadata: dict[str, Any]
    idempotency_key: str
    actor: str = "api"


@dataclass
class Payment:
    provider: str
    status: str
    amount: int
    currency: str
    intent_id: str | None = None
    client_secret: str | None = None
    captured_amount: int = 0
    refunded_amount: int = 0
    refunds: int = 0  # how many refunds were made: numbers the next one's idempotency key


@dataclass(frozen=True)
class PaymentEvent:
    """What the Stripe webhook tells a booking: `kind` is `authorized` (the card is held
    for capture), `failed` (declined) or `canceled` (the intent can no longer be paid)."""

    event_id: str
    kind: str
    intent_id: str
    message: str = ""


@dataclass
class BookingState:
    """What the `state` query returns and every update answers with."""

    booking_id: str
    status: str
    slot: Slot
    hold_expires_at: datetime | None = None
    payment: Payment | None = None
    side_effects: dict[str, str] = field(default_factory=dict)
    reminders_sent: list[int] = field(default_factory=list)
    version: int = 1
    error: str | None = None


@dataclass(frozen=True)
class CancelRequest:
    reason: str = ""
    actor: str = "api"


@dataclass(frozen=True)
class RescheduleRequest:
    slot: Slot
    actor: str = "api"


@dataclass(frozen=True)
class ActorRequest:
    """For updates that carry nothing but who asked (no-show, mark-paid)."""

    actor: str = "api"
