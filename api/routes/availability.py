"""`POST /v1/availability/query`: free slots for a service, each with a signed offer."""

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import TenantId
from api.booking_gateway import slot_unavailable
from api.context import AppContext, context, session
from api.errors import ApiError, invalid
from api.lookup import owned_or_404
from api.routes.services import find_service
from api.types import Instant, TimeZoneName
from db.availability import load_calendars
from db.models import Booking, Resource, Service
from scheduling.engine import (
    Requirement,
    ServiceRules,
    Slot,
    SlotQuery,
    find_slots,
    unusable_pins,
)
from scheduling.tokens import AllocationGrant

router = APIRouter(prefix="/v1/availability", tags=["availability"])
Db = Annotated[AsyncSession, Depends(session)]
Ctx = Annotated[AppContext, Depends(context)]


class AvailabilityQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, description="Service id or code.")
    range_start: Instant = Field(description="Earliest start (RFC 3339 with offset).")
    range_end: Instant = Field(description="Starts are before this instant.")
    timezone: TimeZoneName = Field(description="Zone in which slots are reported.")
    resource_ids: Annotated[list[uuid.UUID], Field(max_length=20)] = Field(
        default=[],
        description="Pin resources: each requirement that one of them can fill uses it.",
    )
    ignore_booking_id: uuid.UUID | None = Field(
        default=None, description="Treat this booking's own allocations as free."
    )
    limit: int = Field(default=1000, ge=1, le=5000)

    @model_validator(mode="after")
    def _ordered(self) -> "AvailabilityQuery":
        if self.range_end <= self.range_start:
            raise ValueError("range_end must be after range_start")
        return self


class SlotResource(BaseModel):
    id: uuid.UUID
    kind: Literal["staff", "room", "asset"]
    name: str


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    resources: list[SlotResource]
    allocation_token: str


class AvailabilityOut(BaseModel):
    timezone: str
    slots: list[SlotOut]


def service_rules(row: Service) -> ServiceRules:
    return ServiceRules(
        timezone=row.timezone,
        duration=row.duration_minutes * 60,
        interval=row.slot_interval_minutes * 60,
        requirements=tuple(
            Requirement(
                kind=r["kind"],
                tags_any=frozenset(r.get("tags_any", ())),
                tags_all=frozenset(r.get("tags_all", ())),
                resource_ids=frozenset(r.get("resource_ids", ())),
            )
            for r in row.requirements
        ),
        buffer_before=row.buffer_before_minutes * 60,
        buffer_after=row.buffer_after_minutes * 60,
        min_notice=row.min_notice_minutes * 60,
        max_advance_days=row.max_advance_days,
    )


async def _check_references(db: AsyncSession, tenant: uuid.UUID, body: AvailabilityQuery) -> None:
    for rid in body.resource_ids:
        await owned_or_404(
            db, Resource, tenant, rid, "resource", {"field": "resource_ids", "id": str(rid)}
        )
    if body.ignore_booking_id:
        await owned_or_404(
            db, Booking, tenant, body.ignore_booking_id, "booking", {"field": "ignore_booking_id"}
        )


async def offer_slots(
    db: AsyncSession,
    tenant: uuid.UUID,
    service: Service,
    lo: datetime,
    hi: datetime,
    *,
    pinned: frozenset[str] = frozenset(),
    ignore_booking_id: uuid.UUID | None = None,
    limit: int | None = None,
) -> list[Slot]:
    """Free slots of a service starting in `[lo, hi)`, by the rules of SPEC §3."""
    rules = service_rules(service)
    now = time.time()
    margin = timedelta(seconds=rules.duration + rules.buffer_before + rules.buffer_after)
    resources = await load_calendars(
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
    return find_slots(
        rules,
        resources,
        SlotQuery(
            int(lo.timestamp()),
            int(-(-hi.timestamp() // 1)),
            int(now),
            pinned=pinned,
            limit=limit,
        ),
    )


async def slot_at(
    db: AsyncSession,
    tenant: uuid.UUID,
    service: Service,
    start: datetime,
    pinned: frozenset[str],
    ignore_booking_id: uuid.UUID | None = None,
) -> Slot:
    """The slot starting exactly at `start`, or 409 slot_unavailable."""
    found = await offer_slots(
        db,
        tenant,
        service,
        start,
        start + timedelta(seconds=1),
        pinned=pinned,
        ignore_booking_id=ignore_booking_id,
        limit=1,
    )
    if not found or found[0].start != int(start.timestamp()):
        raise slot_unavailable
    return found[0]


def bookable(service: Service) -> Service:
    if not service.active:
        raise ApiError(409, "service_inactive", "this service is not bookable")
    return service


@router.post("/query", summary="Find free slots for a service")
async def query(body: AvailabilityQuery, tenant: TenantId, db: Db, ctx: Ctx) -> AvailabilityOut:
    if body.range_end - body.range_start > timedelta(days=ctx.settings.max_query_days):
        raise invalid(
            "range_too_long", f"query at most {ctx.settings.max_query_days} days at a time"
        )
    service = bookable(await find_service(db, tenant, body.service))
    await _check_references(db, tenant, body)
    slots = await offer_slots(
        db,
        tenant,
        service,
        body.range_start,
        body.range_end,
        pinned=frozenset(str(r) for r in body.resource_ids),
        ignore_booking_id=body.ignore_booking_id,
        limit=body.limit,
    )
    tz = ZoneInfo(body.timezone)
    expires = int(time.time()) + ctx.settings.allocation_token_ttl_seconds
    tenant_str, service_str = str(tenant), str(service.id)
    return AvailabilityOut(
        timezone=body.timezone,
        slots=[
            SlotOut(
                start=datetime.fromtimestamp(slot.start, tz),
                end=datetime.fromtimestamp(slot.end, tz),
                resources=[
                    SlotResource(id=uuid.UUID(r.id), kind=r.kind, name=r.name)
                    for r in slot.resources
                ],
                allocation_token=ctx.signer.issue(
                    AllocationGrant(
                        tenant_str,
                        service_str,
                        slot.start,
                        slot.end,
                        tuple(r.id for r in slot.resources),
                        expires,
                    )
                ),
            )
            for slot in slots
        ],
    )
