"""The waitlist in the database (docs/waitlist.md): entries, and the offer transaction
that finds a free slot for an entry and holds it as a booking, in join order."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from contract import (
    BookingRequest,
    BookingStatus,
    Notice,
    Slot,
    WaitlistOffer,
    WaitlistStatus,
)
from db.availability import load_schedules
from db.bookings import SlotUnavailable, claim_for, claim_in
from db.models import Booking, Service, WaitlistEntry
from db.services import service_rules, terms_of
from db.sessions import Sessions
from scheduling.engine import FreeSlot, SlotQuery, find_slots

WAITING, OFFERED = WaitlistStatus.WAITING, WaitlistStatus.OFFERED


def offer_id(entry_id: uuid.UUID | str) -> str:
    """The booking an entry is offered: one per entry, so a retried offer finds it."""
    return str(uuid.uuid5(uuid.UUID(str(entry_id)), "offer"))


async def offer(sessions: Sessions, entry_id: uuid.UUID, now: datetime) -> BookingRequest | None:
    """Hold the first free slot of the entry's range for it, if it is the first in line
    for that slot, in one transaction: the booking (held for the service's
    `offer_minutes`, its `waitlist.offered` message and webhook written with it) and the
    entry, now `offered`. None when the entry is not waiting, nothing is free, or an
    earlier entry waits for the slot. A retry after the commit answers the same offer."""
    async with sessions.transaction() as db:
        entry = await db.get(WaitlistEntry, entry_id, with_for_update=True)
        if entry is None:
            return None
        service = await db.get(Service, entry.service_id)
        if service is None:
            return None
        if entry.status == OFFERED and entry.booking_id is not None:
            booking = await db.get(Booking, entry.booking_id)
            if booking is None:
                return None
            slot = Slot(booking.start_at, booking.end_at, [str(r) for r in booking.resource_ids])
            assert entry.offer_expires_at is not None
            return _request(entry, service, slot, entry.offer_expires_at)
        if entry.status != WAITING or not service.active:
            return None
        found = await _first_free(db, entry, service, now)
        if found is None or await _earlier_in_line(db, entry, found):
            return None
        hold = now + timedelta(minutes=service.offer_minutes)
        request = _request(entry, service, found, hold)
        notice = Notice.of(request, found, BookingStatus.PENDING_PAYMENT, None, "offered")
        try:
            await claim_in(db, claim_for(request, hold, now, notice))
        except SlotUnavailable:
            await db.rollback()
            return None
        entry.status, entry.booking_id = OFFERED, uuid.UUID(request.booking_id)
        entry.offer_expires_at, entry.updated_at = hold, func.now()
        await db.commit()
        return request


def _request(entry: WaitlistEntry, service: Service, slot: Slot, until: datetime) -> BookingRequest:
    return BookingRequest(
        booking_id=offer_id(entry.id),
        tenant_id=str(entry.tenant_id),
        terms=terms_of(service),
        slot=slot,
        customer=entry.customer,
        metadata={"waitlist_entry_id": str(entry.id)},
        idempotency_key=f"waitlist:{entry.id}",
        actor="waitlist",
        offer=WaitlistOffer(str(entry.id), until),
    )


async def _first_free(
    db: AsyncSession, entry: WaitlistEntry, service: Service, now: datetime
) -> Slot | None:
    """The entry's first bookable slot, as availability would offer it."""
    rules = service_rules(service)
    margin = timedelta(seconds=rules.duration + rules.buffer_before + rules.buffer_after)
    resources = await load_schedules(
        db,
        entry.tenant_id,
        {r.kind for r in rules.requirements},
        entry.range_start - margin,
        entry.range_end + margin,
        now,
    )
    query = SlotQuery(
        int(entry.range_start.timestamp()),
        int(entry.range_end.timestamp()),
        int(now.timestamp()),
        pinned=frozenset(str(r) for r in entry.resource_ids),
    )  # every start of the range: full group sessions are listed too, and passed over
    free: FreeSlot | None = next(
        (s for s in find_slots(rules, resources, query) if s.bookable), None
    )
    if free is None:
        return None
    return Slot(
        datetime.fromtimestamp(free.start, now.tzinfo),
        datetime.fromtimestamp(free.end, now.tzinfo),
        [r.id for r in free.resources],
    )


async def _earlier_in_line(db: AsyncSession, entry: WaitlistEntry, slot: Slot) -> bool:
    """Whether an entry that joined earlier waits for this slot (the same service, a
    range holding its start, pins it fits): it is that entry's to be offered first
    (join order). An earlier entry pinned to other resources does not hold it up."""
    start, resources = slot.start, [uuid.UUID(r) for r in slot.resource_ids]
    earlier = await db.scalar(
        select(WaitlistEntry.id)
        .where(
            WaitlistEntry.tenant_id == entry.tenant_id,
            WaitlistEntry.service_id == entry.service_id,
            WaitlistEntry.status == WAITING,
            WaitlistEntry.range_start <= start,
            WaitlistEntry.range_end > start,
            or_(
                func.cardinality(WaitlistEntry.resource_ids) == 0,
                WaitlistEntry.resource_ids.overlap(resources),
            ),
            or_(
                WaitlistEntry.created_at < entry.created_at,
                and_(WaitlistEntry.created_at == entry.created_at, WaitlistEntry.id < entry.id),
            ),
        )
        .limit(1)
    )
    return earlier is not None


async def end(sessions: Sessions, entry_id: uuid.UUID, status: str) -> str | None:
    """A waiting entry out of line (`left`, or `expired` once its range has passed);
    answers the status that stands (None: no entry)."""
    async with sessions.transaction() as db:
        entry = await db.get(WaitlistEntry, entry_id, with_for_update=True)
        if entry is None:
            return None
        if entry.status == WAITING:
            entry.status, entry.updated_at = status, func.now()
            await db.commit()
        return entry.status


async def waiting_for(
    db: AsyncSession, tenant_id: uuid.UUID | None, lo: datetime | None, hi: datetime | None
) -> list[tuple[uuid.UUID, str]]:
    """The waiting entries (of the tenant; of every tenant without one) whose range meets
    `[lo, hi)` (any, unbounded), in join order, with their workflow ids."""
    stmt = select(WaitlistEntry.id, WaitlistEntry.workflow_id).where(
        WaitlistEntry.status == WAITING
    )
    if tenant_id is not None:
        stmt = stmt.where(WaitlistEntry.tenant_id == tenant_id)
    if lo is not None and hi is not None:
        stmt = stmt.where(WaitlistEntry.range_start < hi, WaitlistEntry.range_end > lo)
    rows = await db.execute(stmt.order_by(WaitlistEntry.created_at, WaitlistEntry.id))
    return [(row.id, row.workflow_id) for row in rows]
