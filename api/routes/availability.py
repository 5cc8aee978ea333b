"""`POST /v1/availability/query`: free slots for a service, each with a signed offer."""

import time
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Ctx, Db, TenantId
from api.errors import invalid
from api.lookup import owned_or_404
from api.slots import bookable, check_pinned, find_service, offer_slots
from api.types import Instant, JsonInt, TimeZoneName
from db.models import Booking
from scheduling.tokens import AllocationGrant

router = APIRouter(prefix="/v1/availability", tags=["availability"])


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
    limit: JsonInt = Field(default=1000, ge=1, le=5000)

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


async def _check_references(db: AsyncSession, tenant: uuid.UUID, body: AvailabilityQuery) -> None:
    await check_pinned(db, tenant, body.resource_ids)
    if body.ignore_booking_id:
        await owned_or_404(
            db, Booking, tenant, body.ignore_booking_id, "booking", {"field": "ignore_booking_id"}
        )


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
