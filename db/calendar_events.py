"""A booking's events on connected calendars (docs/calendars.md#export): which calendars
should show it, what each shows now, and an event someone deleted by hand."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import BookingStatus, ConnectionStatus, EventType, ExportStatus
from db.history import add_event
from db.models import Booking, CalendarConnection, CalendarEvent, Service


@dataclass(frozen=True)
class Shown:
    """The booking as an event."""

    booking_id: str
    summary: str
    description: str
    start: datetime
    end: datetime

    @property
    def fingerprint(self) -> str:
        shown = (
            f"{self.summary}\n{self.description}\n{self.start.isoformat()}\n{self.end.isoformat()}"
        )
        return hashlib.sha256(shown.encode()).hexdigest()


@dataclass(frozen=True)
class ExportPlan:
    """`show` is None when the booking should be on no calendar (final, or being undone).
    `wanted` holds one connection per distinct calendar of its resources; `rows` what
    was exported before, per connection (a calendar it left is in `rows` only)."""

    show: Shown | None
    wanted: list[CalendarConnection]
    rows: dict[uuid.UUID, CalendarEvent]
    connections: dict[uuid.UUID, CalendarConnection]


async def plan(db: AsyncSession, booking_id: str, *, remove: bool) -> ExportPlan | None:
    bid = uuid.UUID(booking_id)
    booking = await db.get(Booking, bid)
    if booking is None:
        return None
    service = await db.get(Service, booking.service_id)
    rows = {
        r.connection_id: r
        for r in await db.scalars(select(CalendarEvent).where(CalendarEvent.booking_id == bid))
    }
    connections = {
        c.id: c
        for c in await db.scalars(
            select(CalendarConnection)
            .where(
                (CalendarConnection.resource_id.in_(booking.resource_ids))
                | (CalendarConnection.id.in_(list(rows)))
            )
            .order_by(CalendarConnection.created_at, CalendarConnection.id)
        )
    }
    showing = not remove and booking.status == BookingStatus.CONFIRMED
    wanted: dict[tuple[str, str], CalendarConnection] = {}
    for c in connections.values():
        if (
            showing
            and c.resource_id in booking.resource_ids
            and c.export_events
            and c.status != ConnectionStatus.DISABLED
        ):
            wanted.setdefault((c.provider, c.calendar_id), c)
    show = None
    if showing:
        name = (booking.customer or {}).get("name") or ""
        title = service.name if service else "Booking"
        show = Shown(
            booking_id,
            f"{title} — {name}" if name else title,
            f"Booked through Holdfast (booking {booking_id}).",
            booking.start_at,
            booking.end_at,
        )
    return ExportPlan(show, list(wanted.values()), rows, connections)


async def mark(
    db: AsyncSession,
    booking_id: str,
    connection: CalendarConnection,
    status: ExportStatus,
    **values: Any,
) -> None:
    """Record what one calendar shows of the booking now (the caller commits)."""
    row = {"status": status, "updated_at": func.now(), **values}
    await db.execute(
        insert(CalendarEvent)
        .values(
            booking_id=uuid.UUID(booking_id),
            connection_id=connection.id,
            tenant_id=connection.tenant_id,
            **row,
        )
        .on_conflict_do_update(index_elements=["booking_id", "connection_id"], set_=row)
    )


async def showing_resource(
    db: AsyncSession, connection: CalendarConnection, marked: dict[str, str | None]
) -> set[str]:
    """Of these events (id → the booking its Holdfast marker names, if any), those that
    show a booking of this connection's resource: Holdfast's own, never its busy time.
    An event of another booking (another resource sharing the calendar, another tenant or
    deployment writing to it) is busy time like any other. An event is known by its
    marker, or by the id an export wrote it under on this calendar."""
    if not marked:
        return set()
    written = await db.execute(
        select(CalendarEvent.external_id, CalendarEvent.booking_id)
        .join(CalendarConnection, CalendarConnection.id == CalendarEvent.connection_id)
        .where(
            CalendarConnection.provider == connection.provider,
            CalendarConnection.calendar_id == connection.calendar_id,
            CalendarEvent.external_id.in_(list(marked)),
        )
    )
    booking_of = {i: _uuid(b) for i, b in marked.items()}
    booking_of.update({i: b for i, b in written.all() if i})
    named = {b for b in booking_of.values() if b is not None}
    if not named:
        return set()
    holding = set(
        await db.scalars(
            select(Booking.id).where(
                Booking.id.in_(named),
                Booking.tenant_id == connection.tenant_id,
                Booking.resource_ids.contains([connection.resource_id]),
            )
        )
    )
    return {i for i, b in booking_of.items() if b in holding}


def _uuid(text: str | None) -> uuid.UUID | None:
    """A marker's booking id; another system's marker may be anything."""
    try:
        return uuid.UUID(text) if text else None
    except ValueError:
        return None


async def deleted_by_hand(
    db: AsyncSession, connection: CalendarConnection, external_ids: list[str]
) -> int:
    """Events of live bookings that someone removed in their calendar: each is recorded
    in its booking's history (and so sent as a webhook). An event Holdfast is deleting or
    moving is `pending` first, so its own deletes never count. Returns how many."""
    rows = (
        await db.scalars(
            select(CalendarEvent).where(
                CalendarEvent.connection_id == connection.id,
                CalendarEvent.external_id.in_(external_ids),
                CalendarEvent.status == ExportStatus.WRITTEN,
            )
        )
    ).all()
    counted = 0
    for row in rows:
        booking = await db.get(Booking, row.booking_id, with_for_update=True)
        if booking is None or booking.status != BookingStatus.CONFIRMED:
            continue
        # Only if the row still shows that event: an export may have written another
        # since it was read (a move, a new generation), or be deleting it (pending).
        still = await db.execute(
            update(CalendarEvent)
            .where(
                CalendarEvent.booking_id == row.booking_id,
                CalendarEvent.connection_id == connection.id,
                CalendarEvent.status == ExportStatus.WRITTEN,
                CalendarEvent.external_id == row.external_id,
            )
            .values(status=ExportStatus.DELETED_BY_HAND, updated_at=func.now())
            .returning(CalendarEvent.generation)
        )
        generation = still.scalar()
        if generation is None:
            continue
        await add_event(
            db,
            booking,
            f"calendar_deleted:{connection.id}:{generation}",
            EventType.CALENDAR_EVENT_DELETED,
            "calendar",
            {
                "connection_id": str(connection.id),
                "provider": connection.provider,
                "calendar_id": connection.calendar_id,
            },
        )
        counted += 1
    return counted


async def of_bookings(
    db: AsyncSession, booking_ids: list[uuid.UUID]
) -> dict[uuid.UUID, list[dict[str, Any]]]:
    """What the bookings' views show: each calendar and how far its export got."""
    found = await db.execute(
        select(CalendarEvent, CalendarConnection)
        .join(CalendarConnection, CalendarConnection.id == CalendarEvent.connection_id)
        .where(CalendarEvent.booking_id.in_(booking_ids))
        .order_by(CalendarConnection.created_at)
    )
    shown: dict[uuid.UUID, list[dict[str, Any]]] = {}
    for e, c in found.all():
        shown.setdefault(e.booking_id, []).append(
            {
                "connection_id": c.id,
                "provider": c.provider,
                "calendar_id": c.calendar_id,
                "status": e.status,
                "last_error": e.last_error,
            }
        )
    return shown


async def waiting_on(db: AsyncSession, connection: CalendarConnection) -> list[str]:
    """Bookings whose export to this calendar is still pending (its credential was
    refused): asked again once it works."""
    found = await db.scalars(
        select(CalendarEvent.booking_id).where(
            CalendarEvent.connection_id == connection.id,
            CalendarEvent.status == ExportStatus.PENDING,
        )
    )
    return [str(b) for b in found]


# How many upcoming bookings a newly connected calendar is given at once.
BACKFILL = 2000


async def upcoming_of(db: AsyncSession, connection: CalendarConnection) -> list[str]:
    """The resource's confirmed bookings still to come, soonest first: a calendar
    connected after they were booked shows them too."""
    found = await db.scalars(
        select(Booking.id)
        .where(
            Booking.tenant_id == connection.tenant_id,
            Booking.resource_ids.contains([connection.resource_id]),
            Booking.status == BookingStatus.CONFIRMED,
            Booking.end_at > func.now(),
        )
        .order_by(Booking.start_at)
        .limit(BACKFILL)
    )
    return [str(b) for b in found]
