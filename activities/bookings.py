"""The saga's short database steps, run as local activities (one round trip each, no
task-queue hop). Domain failures become non-retryable ApplicationErrors by type, and so
does data the database refuses (activities/refusals.py): retrying cannot change its answer."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from temporalio import activity

from activities import metrics
from activities.refusals import refusals_are_final
from contract import (
    BookingRequest,
    BookingStatus,
    EventType,
    Failure,
    Notice,
    Payment,
    SeriesRequest,
    SkippedOccurrence,
    Slot,
    failure,
    series_workflow_id,
)
from db import bookings as store
from db import series as store_series
from db.sessions import Sessions


@dataclass(frozen=True)
class ClaimInput:
    request: BookingRequest
    hold_expires_at: datetime | None
    now: datetime
    # Written with the booking when it is confirmed at once (no payment to wait for); a
    # long hold writes its own (`held_notice`).
    notice: Notice | None = None


@dataclass(frozen=True)
class SeriesClaim:
    series: SeriesRequest
    claims: list[ClaimInput]  # one per occurrence the API found free


@dataclass(frozen=True)
class SeriesClaimed:
    booking_ids: list[str]
    skipped: list[SkippedOccurrence]  # taken meanwhile (skip_conflicts only)


@dataclass(frozen=True)
class HoldInput:
    booking_id: str
    until: datetime


@dataclass(frozen=True)
class ConfirmInput:
    booking_id: str
    actor: str  # who settled the payment (the operator, the tenant's app, stripe)


@dataclass(frozen=True)
class FinishInput:
    booking_id: str
    status: str
    release: bool
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
    seats: int = 1  # the service's seats_per_booking, as booked


@dataclass(frozen=True)
class PaymentRecord:
    booking_id: str
    payment: Payment
    event_key: str
    event: EventType


@dataclass(frozen=True)
class SeriesPaymentRecord:
    series_id: str
    payment: Payment


@dataclass(frozen=True)
class SideEffectOutcome:
    booking_id: str
    step: str
    outcome: str
    event_key: str


# A hold this long leaves the customer time to pay later, so they are told how and by
# when; a shorter one is a checkout the customer is in the middle of (docs/notifications.md).
HELD_NOTICE_MIN_SECONDS = 3600


def held_notice(claim: ClaimInput) -> Notice | None:
    """The held booking's notice, written with its claim, when its hold is long."""
    req = claim.request
    if claim.hold_expires_at is None or req.terms.hold_seconds < HELD_NOTICE_MIN_SECONDS:
        return None
    return Notice.of(req, req.slot, BookingStatus.PENDING_PAYMENT, None, "held")


def _claim_of(claim: ClaimInput) -> store.Claim:
    notice = claim.notice or held_notice(claim)
    return store.claim_for(claim.request, claim.hold_expires_at, claim.now, notice)


def _taken(span: str) -> Exception:
    return failure(Failure.SLOT_UNAVAILABLE, f"a resource is already taken for {span}")


class BookingStore:
    def __init__(self, sessions: Sessions) -> None:
        self._db = sessions

    @activity.defn(name="claim_booking")
    @metrics.counts_claim
    @refusals_are_final
    async def claim(self, claim: ClaimInput) -> bool:
        try:
            return await store.claim(self._db, _claim_of(claim))
        except store.SlotUnavailable:
            raise _taken("this slot") from None

    @activity.defn(name="claim_series")
    @refusals_are_final
    async def claim_series(self, claim: SeriesClaim) -> SeriesClaimed:
        """Every occurrence in one transaction with the series' row: all of them or none
        (all_or_nothing), or those that are free (skip_conflicts). The occurrences'
        own workflows then find their bookings claimed (a retried claim)."""
        series = claim.series
        try:
            booked, taken = await store_series.claim(
                self._db,
                store_series.SeriesRow(
                    id=series.series_id,
                    tenant_id=series.tenant_id,
                    service_id=series.service_id,
                    start=series.start,
                    rrule=series.rrule,
                    policy=series.policy,
                    skipped=[(s.start, s.reason) for s in series.skipped],
                    workflow_id=series_workflow_id(series.series_id),
                ),
                [_claim_of(one) for one in claim.claims],
            )
        except store.SlotUnavailable as exc:
            raise _taken(str(exc) or "an occurrence") from None
        return SeriesClaimed(
            booked, [SkippedOccurrence(start, Failure.SLOT_UNAVAILABLE) for start in taken]
        )

    @activity.defn(name="confirm_booking")
    @metrics.counts_confirm
    @refusals_are_final
    async def confirm(self, step: ConfirmInput) -> None:
        async with self._db.transaction() as db:
            try:
                await store.confirm(db, step.booking_id, actor=step.actor)
            except store.HoldLost as exc:
                raise failure(Failure.HOLD_LOST, str(exc)) from exc

    @activity.defn(name="finish_booking")
    @metrics.counts_finish
    @refusals_are_final
    async def finish(self, step: FinishInput) -> str | None:
        """Returns the status that stands: a booking already final keeps its own."""
        async with self._db.transaction() as db:
            return await store.finish(
                db,
                step.booking_id,
                step.status,
                release=step.release,
                actor=step.actor,
                data={"reason": step.reason} if step.reason else None,
            )

    @activity.defn(name="move_booking")
    @metrics.counts_move
    @refusals_are_final
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
                    seats=move.seats,
                )
            except store.SlotUnavailable:
                raise _taken("the new slot") from None
            except store.NotLive as exc:
                raise failure(Failure.INVALID_STATE, str(exc)) from exc

    @activity.defn(name="extend_hold")
    @refusals_are_final
    async def extend_hold(self, step: HoldInput) -> None:
        async with self._db.transaction() as db:
            try:
                await store.extend_hold(db, step.booking_id, step.until)
            except store.HoldLost as exc:
                raise failure(Failure.HOLD_LOST, str(exc)) from exc

    @activity.defn(name="save_payment")
    @refusals_are_final
    async def save_payment(self, record: PaymentRecord) -> None:
        async with self._db.transaction() as db:
            await store.save_payment(
                db, record.booking_id, asdict(record.payment), record.event_key, record.event
            )

    @activity.defn(name="save_series_payment")
    @refusals_are_final
    async def save_series_payment(self, record: SeriesPaymentRecord) -> None:
        await store_series.save_payment(self._db, record.series_id, asdict(record.payment))

    @activity.defn(name="record_side_effect")
    @refusals_are_final
    async def record_side_effect(self, outcome: SideEffectOutcome) -> None:
        async with self._db.transaction() as db:
            await store.record_side_effect(
                db, outcome.booking_id, outcome.step, outcome.outcome, outcome.event_key
            )
