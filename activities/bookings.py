"""The saga's short database steps, run as local activities (one round trip each, no
task-queue hop). Domain failures become non-retryable ApplicationErrors by type."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from temporalio import activity
from temporalio.exceptions import ApplicationError

from db import bookings as store
from db.outbox import Notice
from db.sessions import Sessions
from workflows.messages import BookingRequest, Payment, Slot, workflow_id_for

SLOT_UNAVAILABLE = "SlotUnavailable"
HOLD_LOST = "HoldLost"
INVALID_STATE = "InvalidState"


@dataclass(frozen=True)
class ClaimInput:
    request: BookingRequest
    hold_expires_at: datetime | None
    now: datetime
    # Written with the booking when it is confirmed at once (no payment to wait for).
    notice: Notice | None = None


@dataclass(frozen=True)
class ConfirmInput:
    booking_id: str
    actor: str  # who settled the payment (the operator, the tenant's app, stripe)


@dataclass(frozen=True)
class FinishInput:
    booking_id: str
    status: str
    release: bool
    event_key: str
    actor: str
    reason: str = ""


@dataclass(frozen=True)
class MoveInput:
    booking_id: str
    slot: Slot
    widened: tuple[datetime, datetime]
    version: int
    actor: str
    now: datetime


@dataclass(frozen=True)
class PaymentRecord:
    booking_id: str
    payment: Payment
    event_key: str
    actor: str


@dataclass(frozen=True)
class SideEffectOutcome:
    booking_id: str
    step: str
    outcome: str
    event_key: str


def _taken(span: str) -> ApplicationError:
    return ApplicationError(
        f"a resource is already taken for {span}", type=SLOT_UNAVAILABLE, non_retryable=True
    )


class BookingStore:
    def __init__(self, sessions: Sessions) -> None:
        self._db = sessions

    @activity.defn(name="claim_booking")
    async def claim(self, claim: ClaimInput) -> bool:
        req = claim.request
        try:
            return await store.claim(
                self._db,
                booking_id=req.booking_id,
                tenant_id=req.tenant_id,
                service_id=req.terms.service_id,
                start=req.slot.start,
                end=req.slot.end,
                widened=req.slot.widened(req.terms),
                resource_ids=req.slot.resource_ids,
                hold_expires_at=claim.hold_expires_at,
                customer=req.customer,
                metadata=req.metadata,
                idempotency_key=req.idempotency_key,
                workflow_id=workflow_id_for(req.booking_id),
                now=claim.now,
                actor=req.actor,
                notice=claim.notice,
            )
        except store.SlotUnavailable as exc:
            raise _taken("this slot") from exc

    @activity.defn(name="confirm_booking")
    async def confirm(self, step: ConfirmInput) -> None:
        async with self._db.transaction() as db:
            try:
                await store.confirm(db, step.booking_id, actor=step.actor)
            except store.HoldLost as exc:
                raise ApplicationError(str(exc), type=HOLD_LOST, non_retryable=True) from exc

    @activity.defn(name="finish_booking")
    async def finish(self, step: FinishInput) -> str | None:
        """Returns the status that stands: a booking already final keeps its own."""
        async with self._db.transaction() as db:
            return await store.finish(
                db,
                step.booking_id,
                step.status,
                release=step.release,
                event_key=step.event_key,
                actor=step.actor,
                data={"reason": step.reason} if step.reason else None,
            )

    @activity.defn(name="move_booking")
    async def move(self, move: MoveInput) -> None:
        async with self._db.transaction() as db:
            try:
                await store.reschedule(
                    db,
                    move.booking_id,
                    start=move.slot.start,
                    end=move.slot.end,
                    widened=move.widened,
                    resource_ids=move.slot.resource_ids,
                    version=move.version,
                    actor=move.actor,
                    now=move.now,
                )
            except store.SlotUnavailable as exc:
                raise _taken("the new slot") from exc
            except store.NotLive as exc:
                raise ApplicationError(str(exc), type=INVALID_STATE, non_retryable=True) from exc

    @activity.defn(name="save_payment")
    async def save_payment(self, record: PaymentRecord) -> None:
        async with self._db.transaction() as db:
            await store.save_payment(
                db, record.booking_id, asdict(record.payment), record.event_key, record.actor
            )

    @activity.defn(name="record_side_effect")
    async def record_side_effect(self, outcome: SideEffectOutcome) -> None:
        async with self._db.transaction() as db:
            await store.record_side_effect(
                db, outcome.booking_id, outcome.step, outcome.outcome, outcome.event_key
            )
