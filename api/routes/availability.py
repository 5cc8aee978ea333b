"""`POST /v1/availability/query`: free slots for a service, each with a signed offer."""

import uuid
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.availability_page import (
    HEAVY_LIMIT,
    HEAVY_RANGE,
    AvailabilityOut,
    PageRequest,
    expiry,
    render,
)
from api.deps import AnyKey, Ctx, Db
from api.errors import invalid
from api.lookup import owned_or_404
from api.slots import bookable, check_pinned, find_service, slot_search
from api.types import Instant, JsonInt, TimeZoneName
from db.models import Booking

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


async def _check_references(db: AsyncSession, tenant: uuid.UUID, body: AvailabilityQuery) -> None:
    await check_pinned(db, tenant, body.resource_ids)
    if body.ignore_booking_id:
        await owned_or_404(
            db, Booking, tenant, body.ignore_booking_id, "booking", {"field": "ignore_booking_id"}
        )


@router.post(
    "/query",
    summary="Find free slots for a service",
    description="At most `limit` slots; when more start in the range, `next_range_start` "
    "is where the next page begins (send it as `range_start`).",
    response_model=AvailabilityOut,
)
async def query(body: AvailabilityQuery, who: AnyKey, db: Db, ctx: Ctx) -> Response:
    assert who.tenant_id is not None
    tenant = who.tenant_id
    if body.range_end - body.range_start > timedelta(days=ctx.settings.max_query_days):
        raise invalid(
            "range_too_long", f"query at most {ctx.settings.max_query_days} days at a time"
        )
    service = bookable(await find_service(db, tenant, body.service))
    await _check_references(db, tenant, body)
    search = await slot_search(
        db,
        tenant,
        service,
        body.range_start,
        body.range_end,
        pinned=frozenset(str(r) for r in body.resource_ids),
        ignore_booking_id=body.ignore_booking_id,
        limit=body.limit + 1,
    )
    page = PageRequest(
        search,
        body.limit,
        body.timezone,
        str(tenant),
        str(service.id),
        expiry(ctx.settings.allocation_token_ttl_seconds),
    )
    heavy = body.range_end - body.range_start > HEAVY_RANGE or body.limit > HEAVY_LIMIT
    answer = await ctx.offload.render(page) if heavy else render(page, ctx.signer)
    return Response(answer, media_type="application/json")
