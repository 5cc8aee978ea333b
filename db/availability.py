"""Load what the availability engine needs in two round trips: resources, then busy spans."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import LIVE_ALLOCATIONS_SQL, Resource
from scheduling.engine import ResourceSchedule
from scheduling.hours import WorkingHours, working_hours_from_json

# Everything that blocks a resource over a window: other bookings' live allocations (a
# hold counts only until it expires, whether or not a worker has released it yet), time
# off, and busy time imported from external calendars (a calendar's overlapping events
# merged first: fewer spans for the engine, and its least-loaded order counts an hour once).
# Ends are rounded outwards. One row per resource (two arrays): a row costs more to read
# than its numbers.
_BUSY = text(f"""
    SELECT resource_id, array_agg(s), array_agg(e) FROM (
    SELECT resource_id, floor(extract(epoch FROM lower(span)))::bigint AS s,
           ceil(extract(epoch FROM upper(span)))::bigint AS e
      FROM allocations
     WHERE resource_id = ANY(:ids) AND span && tstzrange(:lo, :hi)
       AND status IN {LIVE_ALLOCATIONS_SQL}
       AND (status = 'confirmed' OR hold_expires_at > :now)
       AND booking_id IS DISTINCT FROM :ignore
    UNION ALL
    SELECT resource_id, floor(extract(epoch FROM lower(span)))::bigint,
           ceil(extract(epoch FROM upper(span)))::bigint
      FROM time_off WHERE resource_id = ANY(:ids) AND span && tstzrange(:lo, :hi)
    UNION ALL
    SELECT resource_id, floor(extract(epoch FROM lower(merged)))::bigint,
           ceil(extract(epoch FROM upper(merged)))::bigint
      FROM (SELECT resource_id, unnest(range_agg(span)) AS merged
              FROM external_busy
             WHERE resource_id = ANY(:ids) AND span && tstzrange(:lo, :hi)
             GROUP BY resource_id) AS imported
    ) AS busy GROUP BY resource_id
""").bindparams(
    bindparam("ids", type_=ARRAY(UUID(as_uuid=True))), bindparam("ignore", type_=UUID(as_uuid=True))
)

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
    """Active resources of the given kinds, each with its busy spans overlapping `[lo, hi)`."""
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
            ).where(
                Resource.tenant_id == tenant_id,
                Resource.active.is_(True),
                Resource.kind.in_(list(kinds)),
            )
        )
    ).all()
    if not rows:
        return []
    result = await session.execute(
        _BUSY,
        {"ids": [r.id for r in rows], "lo": lo, "hi": hi, "now": now, "ignore": ignore_booking_id},
    )
    busy = {resource: list(zip(starts, ends, strict=True)) for resource, starts, ends in result}
    return [
        ResourceSchedule(
            id=str(r.id),
            kind=r.kind,
            name=r.name,
            timezone=r.timezone,
            hours=_hours(r),
            tags=frozenset(r.tags),
            location_id=r.location_id and str(r.location_id),
            busy=busy.get(r.id, ()),
        )
        for r in rows
    ]
