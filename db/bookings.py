"""The booking transactions. Each is idempotent, so the activity that runs it may retry.

The exclusion constraint on allocations is the only arbiter of who gets a slot: a claim
or a reschedule that would overlap a live allocation of the same seat fails as a whole
(seats: db/seats.py).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, Uuid, bindparam, func, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, TSTZRANGE, Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from contract import (
    LIVE_ALLOCATION_STATUSES,
    LIVE_STATUSES,
    AllocationStatus,
    BookingRequest,
    BookingStatus,
    EventType,
    Notice,
    workflow_id_for,
)
from db.history import add_event, booking_snapshot, event_id, webhook_body, webhook_data
from db.models import Allocation, Booking, BookingEvent
from db.notifications import notification_rows
from db.seats import SEATS, seat_offset, session_of
from db.sessions import Sessions

HELD, CONFIRMED = AllocationStatus.HELD, AllocationStatus.CONFIRMED


class SlotUnavailable(Exception):
    """Some resource is already taken for the span."""


class ExternallyBusy(SlotUnavailable):
    """A resource's own calendar is busy for the span."""


class _Full(SlotUnavailable):
    """Some resource had no free seat in the statement's snapshot (lapsed holds may be
    what takes it)."""


class _Raced(SlotUnavailable):
    """Another claim took the seat this one chose, between its snapshot and its insert."""


# A claim that loses a seat to a racer tries again with the seats left: each loss means
# a racer took a seat, so a resource of capacity `c` (at most 1,000) is decided within
# `c` tries.
RACES = 1001


class HoldLost(Exception):
    """The hold lapsed and its allocation was released before the booking was confirmed."""


class NotLive(Exception):
    """The booking is final (cancelled, expired, ...): it can no longer move."""


def _is_overlap(exc: IntegrityError) -> bool:
    """An overlap on a seat, or a seat beyond capacity (a capacity lowered meanwhile)."""
    text = str(exc.orig)
    return "ex_allocations_no_overlap" in text or "allocations_within_capacity" in text


async def _release_lapsed_holds(
    db: AsyncSession, resource_ids: list[uuid.UUID], span: Range[datetime], now: datetime
) -> None:
    """Free holds that expired on these resources over this span, and expire their
    bookings, so an expired hold never blocks a claim even if no worker released it.

    Their bookings are locked first, as confirm and finish lock a booking before its
    allocations: the same order everywhere, so a sweep never deadlocks with them."""
    lapsed_hold = (
        Allocation.resource_id.in_(resource_ids),
        Allocation.status == HELD,
        Allocation.hold_expires_at <= now,
        Allocation.span.overlaps(span),
    )
    holders = select(Allocation.booking_id).where(*lapsed_hold)
    bookings = (
        await db.scalars(select(Booking).where(Booking.id.in_(holders)).with_for_update())
    ).all()
    if not bookings:
        return
    await db.execute(
        update(Allocation).where(*lapsed_hold).values(status=AllocationStatus.RELEASED)
    )
    for booking in bookings:
        if booking.status != BookingStatus.PENDING_PAYMENT:
            continue
        booking.status, booking.payment_client_secret = BookingStatus.EXPIRED, None
        booking.updated_at = func.now()
        await add_event(
            db,
            booking,
            "expired",
            EventType.BOOKING_EXPIRED,
            "system",
            {"reason": "hold lapsed; released by another claim"},
        )
    await db.flush()


# Busy time imported from a resource's own calendar refuses a claim (or a move) as surely
# as another booking does, in the statement that takes the slot, not only in the
# availability query that offered it (docs/calendars.md#claims). The resource rows are
# locked FOR SHARE and busy is read from their `calendar_busy`: a sync rewrites that
# column in its own transaction, so a claim racing a sync waits for it and, in READ
# COMMITTED, re-reads the row as the sync left it. A sync that starts second waits for
# the claim instead; claims never wait for each other.
_LOCK_RESOURCES = """
        SELECT id, capacity, calendar_busy && CAST(:span AS tstzrange) AS busy
        FROM resources WHERE id = ANY(CAST(:resource_ids AS uuid[]))
        FOR SHARE"""


# The booking, its allocations, its history entry, its webhook event and its messages in
# one statement, as the claim is on the path a caller waits on: atomic on its own, so it
# needs no transaction around it (one round trip). A retried claim, whose booking exists,
# inserts nothing.
_CLAIM = text(
    f"""
    WITH locked AS ({_LOCK_RESOURCES}
    ), busy AS (
        SELECT FROM locked WHERE busy
    ), {SEATS}, booking AS (
        INSERT INTO bookings (id, tenant_id, service_id, series_id, status, start_at,
                              end_at, hold_expires_at, resource_ids, customer, metadata,
                              idempotency_key, workflow_id)
        SELECT :id, :tenant_id, :service_id, :series_id, :status, :start_at,
               :end_at, :hold_expires_at, :resource_ids, :customer, :metadata,
               :idempotency_key, :workflow_id
        WHERE NOT EXISTS (SELECT FROM busy) AND NOT EXISTS (SELECT FROM short)
        ON CONFLICT (id) DO NOTHING
        RETURNING id, tenant_id, hold_expires_at
    ), allocations AS (
        INSERT INTO allocations (id, tenant_id, booking_id, resource_id, span, status,
                                 hold_expires_at, seat, group_session)
        SELECT gen_random_uuid(), booking.tenant_id, booking.id, wanted.resource_id,
               CAST(:span AS tstzrange), :allocation_status, booking.hold_expires_at,
               wanted.seat, wanted.group_session
        FROM booking, wanted
    ), event AS (
        INSERT INTO booking_events (id, tenant_id, booking_id, type, actor, data)
        SELECT CAST(:event_id AS uuid), booking.tenant_id, booking.id, :event_type,
               :actor, CAST(:event_data AS jsonb)
        FROM booking
        ON CONFLICT (id) DO NOTHING
    ), webhook AS (
        INSERT INTO webhook_events (id, tenant_id, booking_id, type, payload)
        SELECT CAST(:event_id AS uuid), booking.tenant_id, booking.id, :event_type,
               CAST(:webhook AS jsonb)
        FROM booking
        ON CONFLICT (id) DO NOTHING
    ), messages AS (
        INSERT INTO notifications (id, tenant_id, booking_id, channel, kind, recipient,
                                   payload)
        SELECT message.id, booking.tenant_id, booking.id, message.channel, message.kind,
               message.recipient, message.payload
        FROM booking,
             jsonb_to_recordset(CAST(:messages AS jsonb))
                 AS message (id uuid, channel text, kind text, recipient text, payload jsonb)
        ON CONFLICT (id) DO NOTHING
    )
    SELECT (SELECT count(*) FROM booking) AS inserted,
           EXISTS (SELECT FROM bookings WHERE id = :id) AS existed,
           EXISTS (SELECT FROM busy) AS busy,
           EXISTS (SELECT FROM short) AS full,
           (SELECT count(*) FROM locked) AS locked
    """
).bindparams(
    bindparam("hold_expires_at", type_=DateTime(timezone=True)),
    bindparam("span", type_=TSTZRANGE),
    bindparam("resource_ids", type_=ARRAY(Uuid)),
    bindparam("group_session", type_=Uuid),
    bindparam("series_id", type_=Uuid),
    bindparam("customer", type_=JSONB),
    bindparam("metadata", type_=JSONB),
    bindparam("event_data", type_=JSONB),
    bindparam("webhook", type_=JSONB),
    bindparam("messages", type_=JSONB),
)


@dataclass(frozen=True)
class Claim:
    """One booking's claim, ready to run: the statement's parameters, and what a sweep
    of lapsed holds in its way needs."""

    params: dict[str, Any]
    resources: list[uuid.UUID]
    span: Range[datetime]
    now: datetime

    @property
    def start(self) -> datetime:
        start: datetime = self.params["start_at"]
        return start


def claim_of(
    *,
    booking_id: str,
    tenant_id: str,
    service_id: str,
    service_code: str,
    start: datetime,
    end: datetime,
    widened: tuple[datetime, datetime],
    resource_ids: list[str],
    hold_expires_at: datetime | None,
    customer: dict[str, Any],
    metadata: dict[str, Any],
    idempotency_key: str,
    workflow_id: str,
    now: datetime,
    actor: str,
    notice: Notice | None = None,
    seats: int = 1,
    series_id: str | None = None,
    event: EventType | None = None,
) -> Claim:
    """The booking and its allocations (one per resource, `seats` on a resource of
    capacity > 1), with its webhook event and the messages of `notice` if given (a
    transactional outbox: they exist iff the booking does).

    A hold (`hold_expires_at` set) makes it `pending_payment` with held allocations;
    otherwise it is `confirmed` at once."""
    resources = [uuid.UUID(r) for r in resource_ids]
    span = Range(widened[0], widened[1], bounds="[)")
    held = hold_expires_at is not None
    event = event or (EventType.BOOKING_HELD if held else EventType.BOOKING_CONFIRMED)
    params = {
        "id": uuid.UUID(booking_id),
        "tenant_id": uuid.UUID(tenant_id),
        "service_id": uuid.UUID(service_id),
        "series_id": uuid.UUID(series_id) if series_id else None,
        "status": BookingStatus.PENDING_PAYMENT if held else BookingStatus.CONFIRMED,
        "allocation_status": HELD if held else CONFIRMED,
        "event_type": event,
        "start_at": start,
        "end_at": end,
        "hold_expires_at": hold_expires_at,
        "span": span,
        "resource_ids": resources,
        "seats": seats,
        "seat_offset": seat_offset(uuid.UUID(booking_id)),
        "group_session": session_of(service_id, widened, resource_ids),
        "customer": customer,
        "metadata": metadata,
        "idempotency_key": idempotency_key,
        "workflow_id": workflow_id,
        "event_id": event_id(booking_id, "claimed"),
        "actor": actor,
        "event_data": {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "resource_ids": resource_ids,
        },
        "messages": [] if notice is None else notification_rows(notice, version=1),
    }
    snapshot = booking_snapshot(
        {**params, "service_id": service_id, "version": 1, "payment": None}, service_code
    )
    params["webhook"] = webhook_body(event, now, webhook_data(event, snapshot, None))
    return Claim(params, resources, span, now)


def claim_for(
    req: BookingRequest, hold_expires_at: datetime | None, now: datetime, notice: Notice | None
) -> Claim:
    """The claim of a booking's request, as its workflow makes it (and a series or a
    waitlist offer makes it for the workflow)."""
    return claim_of(
        booking_id=req.booking_id,
        tenant_id=req.tenant_id,
        service_id=req.terms.service_id,
        service_code=req.terms.code,
        start=req.slot.start,
        end=req.slot.end,
        widened=req.slot.widened(req.terms),
        resource_ids=req.slot.resource_ids,
        hold_expires_at=hold_expires_at,
        customer=req.customer,
        metadata=req.metadata,
        idempotency_key=req.idempotency_key,
        workflow_id=workflow_id_for(req.booking_id),
        now=now,
        actor=req.actor,
        notice=notice,
        seats=req.terms.seats_per_booking,
        series_id=req.series_id,
        event=EventType.WAITLIST_OFFERED if req.offer is not None else None,
    )


async def claim(sessions: Sessions, one: Claim) -> bool:
    """Claim one booking. Returns False if it already exists (a retried claim); raises
    SlotUnavailable if any resource is taken."""
    swept = False
    for _ in range(RACES):
        try:
            if not swept:  # the usual claim: a single round trip
                async with sessions.autocommit() as db:
                    claimed = await _insert_claim(db, one.params)
                    await db.commit()
                    return claimed
            async with sessions.transaction() as db:
                await _release_lapsed_holds(db, one.resources, one.span, one.now)
                claimed = await _insert_claim(db, one.params)
                await db.commit()
                return claimed
        except _Raced:
            continue  # a racer took the seat chosen: choose again from the seats left
        except _Full:
            # Lapsed holds may be all that stands in the way (or stood, until someone
            # released them a moment ago): free any and claim again, in one transaction.
            if swept:
                raise SlotUnavailable from None
            swept = True
    raise SlotUnavailable


async def claim_in(db: AsyncSession, one: Claim) -> bool:
    """Claim one booking inside the transaction `db` is in (one of a series'), each try
    under a savepoint, so a refusal leaves the transaction's other claims standing."""
    swept = False
    for _ in range(RACES):
        try:
            async with db.begin_nested():
                if swept:
                    await _release_lapsed_holds(db, one.resources, one.span, one.now)
                return await _insert_claim(db, one.params)
        except _Raced:
            continue
        except _Full:
            if swept:
                raise SlotUnavailable from None
            swept = True
    raise SlotUnavailable


async def _insert_claim(db: AsyncSession, params: dict[str, Any]) -> bool:
    """The claim's statement (its caller commits): True if it inserted the booking."""
    try:
        outcome = (await db.execute(_CLAIM, params)).one()
    except IntegrityError as exc:
        if _is_overlap(exc):
            raise _Raced from exc
        raise
    if outcome.inserted:
        return True
    if outcome.existed:
        return False
    if outcome.busy:
        raise ExternallyBusy
    if outcome.full:
        raise _Full
    # A retried claim: its booking exists, committed before this statement or (an attempt
    # still running when this one started) while it waited on ON CONFLICT.
    return False


# A moved booking's new allocations, seat by seat (db/seats.py); none when a resource has
# too few seats free.
_ALLOCATE = text(
    f"""
    WITH locked AS (
        SELECT id, capacity FROM resources WHERE id = ANY(CAST(:resource_ids AS uuid[]))
        FOR SHARE
    ), {SEATS}
    INSERT INTO allocations (id, tenant_id, booking_id, resource_id, span, status,
                             hold_expires_at, seat, group_session)
    SELECT gen_random_uuid(), :tenant_id, :booking_id, wanted.resource_id,
           CAST(:span AS tstzrange), :status, :hold_expires_at, wanted.seat,
           wanted.group_session
      FROM wanted WHERE NOT EXISTS (SELECT FROM short)
    """
).bindparams(
    bindparam("hold_expires_at", type_=DateTime(timezone=True)),
    bindparam("span", type_=TSTZRANGE),
    bindparam("resource_ids", type_=ARRAY(Uuid)),
    bindparam("group_session", type_=Uuid),
)


async def externally_busy(
    db: AsyncSession, resource_ids: list[uuid.UUID], span: Range[datetime]
) -> bool:
    """Whether any of the resources' calendars is busy over `span`; the rows stay locked
    FOR SHARE until the transaction ends, so no sync adds busy time under it."""
    found = await db.execute(
        text(_LOCK_RESOURCES).bindparams(
            bindparam("span", type_=TSTZRANGE), bindparam("resource_ids", type_=ARRAY(Uuid))
        ),
        {"resource_ids": resource_ids, "span": span},
    )
    return any(row.busy for row in found)


async def confirm(db: AsyncSession, booking_id: str, actor: str) -> None:
    """Held allocations become confirmed; fails with HoldLost if any was released."""
    bid = uuid.UUID(booking_id)
    booking = await db.get(Booking, bid, with_for_update=True)
    if booking is None:
        raise HoldLost(f"booking {booking_id} does not exist")
    # Released allocations are history (a reschedule leaves the old ones behind); the hold
    # stands if every current resource still has its live allocation.
    live = (
        await db.scalars(
            select(Allocation.resource_id)
            .where(Allocation.booking_id == bid, Allocation.status.in_(LIVE_ALLOCATION_STATUSES))
            .with_for_update()
        )
    ).all()
    if booking.status not in LIVE_STATUSES or set(live) != set(booking.resource_ids):
        await db.rollback()
        raise HoldLost(f"booking {booking_id} is {booking.status}; its hold was released")
    await db.execute(
        update(Allocation)
        .where(Allocation.booking_id == bid, Allocation.status == HELD)
        .values(status=CONFIRMED, hold_expires_at=None)
    )
    if booking.status == BookingStatus.PENDING_PAYMENT:
        booking.status, booking.hold_expires_at = BookingStatus.CONFIRMED, None
        booking.payment_client_secret = None  # paid: nobody needs it any more
        booking.updated_at = func.now()
        await add_event(db, booking, "confirmed", EventType.BOOKING_CONFIRMED, actor)
    await db.commit()


async def finish(
    db: AsyncSession,
    booking_id: str,
    status: str,
    *,
    release: bool,
    actor: str,
    data: dict[str, Any] | None = None,
) -> str | None:
    """Move a live booking to a final status (cancelled, expired, failed, completed,
    no_show), releasing the allocations where the resources are free again. A final status
    is never overwritten. Returns the status that stands (None: no such booking)."""
    bid = uuid.UUID(booking_id)
    booking = await db.get(Booking, bid, with_for_update=True)
    if booking is None:
        return None
    if booking.status not in LIVE_STATUSES and booking.status != status:
        await db.rollback()
        return booking.status
    if release:
        await db.execute(
            update(Allocation)
            .where(Allocation.booking_id == bid, Allocation.status.in_(LIVE_ALLOCATION_STATUSES))
            .values(status=AllocationStatus.RELEASED)
        )
    if booking.status != status:
        booking.status, booking.updated_at = status, func.now()
        booking.payment_client_secret = None
        event = EventType.entered(status)
        await add_event(db, booking, status, event, actor, data)
    await db.commit()
    return status


async def reschedule(
    db: AsyncSession,
    booking_id: str,
    *,
    start: datetime,
    end: datetime,
    widened: tuple[datetime, datetime],
    resource_ids: list[str],
    version: int,
    actor: str,
    now: datetime,
    seats: int = 1,
) -> None:
    """Swap the booking's allocations for new ones in one transaction: the old are
    released first, so the new span may overlap the old one (and its seats be taken
    again). `version` is the booking's
    version after the move (the workflow's count of moves, which keys the history entry);
    a retry that finds that entry does nothing."""
    bid = uuid.UUID(booking_id)
    booking = await db.get(Booking, bid, with_for_update=True)
    key = f"rescheduled:{version}"
    if booking is None or await db.get(BookingEvent, event_id(booking_id, key)) is not None:
        return
    if booking.status not in LIVE_STATUSES:
        await db.rollback()
        raise NotLive(f"a {booking.status} booking cannot move")
    span = Range(widened[0], widened[1], bounds="[)")
    if await externally_busy(db, [uuid.UUID(r) for r in resource_ids], span):
        await db.rollback()
        raise ExternallyBusy
    await _release_lapsed_holds(db, [uuid.UUID(r) for r in resource_ids], span, now)
    await db.execute(
        update(Allocation)
        .where(Allocation.booking_id == bid, Allocation.status.in_(LIVE_ALLOCATION_STATUSES))
        .values(status=AllocationStatus.RELEASED)
    )
    held = booking.status == BookingStatus.PENDING_PAYMENT
    status, hold = (HELD, booking.hold_expires_at) if held else (CONFIRMED, None)
    moved_from = {
        "start": booking.start_at.isoformat(),
        "end": booking.end_at.isoformat(),
        "resource_ids": [str(r) for r in booking.resource_ids],
    }
    try:
        placed = await db.execute(
            _ALLOCATE,
            {
                "tenant_id": booking.tenant_id,
                "booking_id": bid,
                "resource_ids": [uuid.UUID(r) for r in resource_ids],
                "span": span,
                "status": status,
                "hold_expires_at": hold,
                "seats": seats,
                "seat_offset": seat_offset(bid),
                "group_session": session_of(booking.service_id, widened, resource_ids),
            },
        )
        if not cast(CursorResult[Any], placed).rowcount:
            raise SlotUnavailable
        booking.start_at, booking.end_at = start, end
        booking.resource_ids = [uuid.UUID(r) for r in resource_ids]
        booking.updated_at = func.now()
        await db.flush()
        await add_event(
            db,
            booking,
            key,
            EventType.BOOKING_RESCHEDULED,
            actor,
            {
                "from": moved_from,
                "to": {
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "resource_ids": resource_ids,
                },
            },
        )
        await db.commit()
    except SlotUnavailable:
        await db.rollback()
        raise
    except IntegrityError as exc:
        await db.rollback()
        if _is_overlap(exc):
            raise SlotUnavailable from exc
        raise


async def save_payment(
    db: AsyncSession, booking_id: str, payment: dict[str, Any], event_key: str, event: EventType
) -> None:
    booking = await db.get(Booking, uuid.UUID(booking_id), with_for_update=True)
    if booking is None:
        return
    booking.payment, booking.updated_at = payment, func.now()
    await add_event(db, booking, event_key, event, "system", payment)
    await db.commit()


async def keep_client_secret(sessions: Sessions, booking_id: str, secret: str) -> None:
    """The card's client secret, for the paying customer's browser: kept on the booking
    only while it awaits payment (confirm and finish clear it)."""
    async with sessions.autocommit() as db:
        await db.execute(
            update(Booking)
            .where(
                Booking.id == uuid.UUID(booking_id),
                Booking.status == BookingStatus.PENDING_PAYMENT,
            )
            .values(payment_client_secret=secret)
        )


async def record_side_effect(
    db: AsyncSession, booking_id: str, step: str, outcome: str, event_key: str
) -> None:
    """Remember a side effect's outcome on the booking; a failure also enters the history."""
    booking = await db.get(Booking, uuid.UUID(booking_id), with_for_update=True)
    if booking is None:
        return
    booking.side_effects = {**booking.side_effects, step: outcome}
    if outcome != "done":
        await add_event(
            db,
            booking,
            event_key,
            EventType.SIDE_EFFECT_FAILED,
            "system",
            {"step": step, "outcome": outcome},
        )
    await db.commit()


async def extend_hold(db: AsyncSession, booking_id: str, until: datetime) -> None:
    """A held booking holds on until `until` (an accepted waitlist offer, now paying):
    the booking and its held allocations together."""
    bid = uuid.UUID(booking_id)
    booking = await db.get(Booking, bid, with_for_update=True)
    if booking is None or booking.status != BookingStatus.PENDING_PAYMENT:
        await db.rollback()
        raise HoldLost(f"booking {booking_id} is no longer held")
    booking.hold_expires_at, booking.updated_at = until, func.now()
    await db.execute(
        update(Allocation)
        .where(Allocation.booking_id == bid, Allocation.status == HELD)
        .values(hold_expires_at=until)
    )
    await db.commit()
