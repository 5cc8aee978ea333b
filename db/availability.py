"""Load what the availability engine needs in two round trips: resources, then busy spans."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LIVE_ALLOCATIONS_SQL, Resource
from scheduling.engine import ResourceSchedule
from scheduling.hours import WorkingHours, working_hours_from_json
from scheduling.intervals import Span

# Everything that blocks a resource over a window: other bookings' live allocations (a
# hold counts only until it expires, whether or not a worker has released it yet), time
# off, and busy time imported from external calendars (a calendar's overlapping events
# merged first: fewer spans for the engine, and its least-loaded order counts an hour once).
# Ends are rounded outwards. One row per resource (arrays): a row costs more to read than
# its numbers. Spans that block the whole resource come apart from the allocations that
# take one seat of a resource with seats, or share a group session (docs/capacity.md),
# which come with their seat and session.
_BUSY = text(f"""
    SELECT resource_id,
           array_agg(s) FILTER (WHERE whole), array_agg(e) FILTER (WHERE whole),
           array_agg(s) FILTER (WHERE NOT whole), array_agg(e) FILTER (WHERE NOT whole),
           array_agg(seat) FILTER (WHERE NOT whole),
           array_agg(group_session) FILTER (WHERE NOT whole)
    FROM (
    SELECT resource_id, floor(extract(epoch FROM lower(span)))::bigint AS s,
           ceil(extract(epoch FROM upper(span)))::bigint AS e, seat, group_session,
           group_session IS NULL AND NOT resource_id = ANY(:seated) AS whole
      FROM allocations
     WHERE resource_id = ANY(:ids) AND span && tstzrange(:lo, :hi)
       AND status IN {LIVE_ALLOCATIONS_SQL}
       AND (status = 'confirmed' OR hold_expires_at > :now)
       AND booking_id IS DISTINCT FROM :ignore
    UNION ALL
    SELECT resource_id, floor(extract(epoch FROM lower(span)))::bigint,
           ceil(extract(epoch FROM upper(span)))::bigint, NULL, NULL, true
      FROM time_off WHERE resource_id = ANY(:ids) AND span && tstzrange(:lo, :hi)
    UNION ALL
    SELECT resource_id, floor(extract(epoch FROM lower(merged)))::bigint,
           ceil(extract(epoch FROM upper(merged)))::bigint, NULL, NULL, true
      FROM (SELECT resource_id, unnest(range_agg(span)) AS merged
              FROM external_busy
             WHERE resource_id = ANY(:ids) AND span && tstzrange(:lo, :hi)
             GROUP BY resource_id) AS imported
    ) AS busy GROUP BY resource_id
""").bindparams(
    bindparam("ids", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("seated", type_=ARRAY(UUID(as_uuid=True))),
    bindparam("ignore", type_=UUID(as_uuid=True)),
)


@dataclass
class _Busy:
    """One resource's busy time, as the engine takes it (scheduling/engine.py)."""

    whole: list[Span] = field(default_factory=list)
    seats: list[tuple[int, int, int]] = field(default_factory=list)
    joinable: list[tuple[int, int, str]] = field(default_factory=list)


def _busy(row: Any, seated: bool) -> _Busy:
    """A seated resource's allocations by seat; a group session's on a resource of
    capacity 1 with its id, for the engine to tell the session a booking would join."""
    busy = _Busy(list(zip(row[1] or (), row[2] or (), strict=True)))
    for start, end, seat, session in zip(
        row[3] or (), row[4] or (), row[5] or (), row[6] or (), strict=True
    ):
        if seated:
            busy.seats.append((seat, start, end))
        else:
            busy.joinable.append((start, end, str(session)))
    return busy


# Parsed working hours by (resource id, updated_at): the JSON only changes with the row.
_hours_cache: dict[tuple[uuid.UUID, datetime], WorkingHours] = {}


def _hours(row: Any) -> WorkingHours:
    key = (row.id, row.updated_at)
    found = _hours_cache.get(key)
    if found is None:
        if len(_hours_cache) > 50_000:
            _hours_cache.clear()
        found = _hours_cache[key] = working_hours_from_json(row.weekly_hours, row.date_overrides)
    return found


async def load_schedules(
    session: AsyncSession,
    tenant_id: uuid.UUID,
    kinds: Iterable[str],
    lo: datetime,
    hi: datetime,
    now: datetime,
    ignore_booking_id: uuid.UUID | None = None,
) -> list[ResourceSchedule]:
    """Active resources of the given kinds, each with its busy spans overlapping `[lo, hi)`
    (group sessions apart, as a booking of the same session may join them)."""
    rows = (
        await session.execute(
            select(
                Resource.id,
                Resource.kind,
                Resource.name,
                Resource.timezone,
                Resource.tags,
                Resource.location_id,
                Resource.weekly_hours,
                Resource.date_overrides,
                Resource.updated_at,
                Resource.capacity,
            ).where(
                Resource.tenant_id == tenant_id,
                Resource.active.is_(True),
                Resource.kind.in_(list(kinds)),
            )
        )
    ).all()
    if not rows:
        return []
    seated = {r.id for r in rows if r.capacity > 1}
    result = await session.execute(
        _BUSY,
        {
            "ids": [r.id for r in rows],
            "seated": list(seated),
            "lo": lo,
            "hi": hi,
            "now": now,
            "ignore": ignore_booking_id,
        },
    )
    busy = {row[0]: _busy(row, row[0] in seated) for row in result}
    free = _Busy()
    return [
        ResourceSchedule(
            id=str(r.id),
            kind=r.kind,
            name=r.name,
            timezone=r.timezone,
            hours=_hours(r),
            tags=frozenset(r.tags),
            location_id=r.location_id and str(r.location_id),
            busy=busy.get(r.id, free).whole,
            capacity=r.capacity,
            seat_busy=busy.get(r.id, free).seats,
            joinable=busy.get(r.id, free).joinable,
        )
        for r in rows
    ]
