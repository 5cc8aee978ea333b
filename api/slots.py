"""Free slots of a service, as the API offers and books them: the pure engine
(scheduling/) fed from the database, by the rules of docs/api.md#availability-rules."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import ApiError, invalid, not_found, slot_unavailable
from db.availability import load_schedules
from db.models import Resource, Service
from db.repository import missing_owned, owned
from db.services import service_rules
from scheduling.engine import (
    FreeSlot,
    ResourceSchedule,
    ServiceRules,
    SlotQuery,
    find_slots,
    unusable_pins,
)


async def find_service(db: AsyncSession, tenant: uuid.UUID, id_or_code: str) -> Service:
    """By id or by code, as the contract lets clients name a service either way."""
    try:
        condition = Service.id == uuid.UUID(id_or_code)
    except ValueError:
        condition = Service.code == id_or_code
    found = await db.scalar(owned(Service, tenant).where(condition))
    if found is None:
        raise not_found("service")
    return found


@dataclass(frozen=True)
class SlotSearch:
    """What the engine needs for one search, loaded from the database: plain values, so
    a long search can run in another process (api/availability_page.py)."""

    rules: ServiceRules
    resources: list[ResourceSchedule]
    query: SlotQuery

    def run(self) -> list[FreeSlot]:
        return find_slots(self.rules, self.resources, self.query)


async def slot_search(
    db: AsyncSession,
    tenant: uuid.UUID,
    service: Service,
    lo: datetime,
    hi: datetime,
    *,
    pinned: frozenset[str] = frozenset(),
    ignore_booking_id: uuid.UUID | None = None,
    limit: int | None = None,
) -> SlotSearch:
    """The search for free slots of a service starting in `[lo, hi)`
    (docs/api.md#availability-rules)."""
    rules = service_rules(service)
    now = time.time()
    margin = timedelta(seconds=rules.duration + rules.buffer_before + rules.buffer_after)
    resources = await load_schedules(
        db,
        tenant,
        {r.kind for r in rules.requirements},
        lo - margin,
        hi + margin,
        datetime.fromtimestamp(now, UTC),
        ignore_booking_id,
    )
    unusable = unusable_pins(rules, resources, pinned)
    if unusable:
        raise invalid(
            "resource_not_usable",
            "a pinned resource cannot serve this service",
            {"resource_ids": sorted(unusable)},
        )
    query = SlotQuery(
        int(lo.timestamp()),
        int(-(-hi.timestamp() // 1)),
        int(now),
        pinned=pinned,
        limit=limit,
    )
    return SlotSearch(rules, resources, query)


async def check_pinned(db: AsyncSession, tenant: uuid.UUID, resource_ids: list[uuid.UUID]) -> None:
    """Pinned resources must be the tenant's own: another tenant's is 404, as an unknown
    one is (docs/api.md#authentication)."""
    missing = await missing_owned(db, Resource, tenant, resource_ids)
    if missing:
        raise not_found("resource", {"field": "resource_ids", "id": str(missing[0])})


async def slot_at(
    db: AsyncSession,
    tenant: uuid.UUID,
    service: Service,
    start: datetime,
    pinned: frozenset[str],
    ignore_booking_id: uuid.UUID | None = None,
) -> FreeSlot:
    """The slot starting exactly at `start`, or 409 slot_unavailable."""
    search = await slot_search(
        db,
        tenant,
        service,
        start,
        start + timedelta(seconds=1),
        pinned=pinned,
        ignore_booking_id=ignore_booking_id,
        limit=1,
    )
    found = search.run()
    if not found or found[0].start != int(start.timestamp()) or not found[0].bookable:
        raise slot_unavailable()
    return found[0]


def check_query_days(max_days: int, lo: datetime, hi: datetime) -> None:
    """A range of starts (a query, a stream, a waitlist entry) spans at most
    MAX_QUERY_DAYS, or `422 range_too_long`."""
    if hi - lo > timedelta(days=max_days):
        raise invalid("range_too_long", f"query at most {max_days} days at a time")


def bookable(service: Service) -> Service:
    if not service.active:
        raise ApiError(409, "service_inactive", "this service is not bookable")
    return service
