"""`POST /v1/availability/query`: free slots for a service, each with a signed offer; and
`GET /v1/availability/stream`: hear when they change (api/live_availability.py)."""

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import Receive, Scope, Send

from api.availability_page import (
    HEAVY_LIMIT,
    HEAVY_RANGE,
    AvailabilityOut,
    PageRequest,
    expiry,
    render,
)
from api.context import AppContext, tenancy
from api.deps import AnyKey, Ctx, Db
from api.errors import ApiError, invalid
from api.live_availability import Stream, TooManyStreams
from api.lookup import owned_or_404
from api.slots import bookable, check_pinned, check_query_days, find_service, slot_search
from api.types import Instant, JsonInt, TimeZoneName
from db.models import Booking, Resource
from db.services import service_rules

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
    check_query_days(ctx.settings.max_query_days, body.range_start, body.range_end)
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


# A comment line this often keeps proxies from closing a quiet stream, and finds a client
# that left without closing it.
HEARTBEAT_SECONDS = 15.0
STREAM_EVENT = "slots.changed"


def _check_range(ctx: AppContext, start: datetime, end: datetime) -> None:
    if end <= start:
        raise invalid("validation_error", "range_end must be after range_start")
    check_query_days(ctx.settings.max_query_days, start, end)


async def _stream_of(
    request: Request, ctx: AppContext, who: AnyKey, service: str, lo: datetime, hi: datetime
) -> Stream:
    """The stream's service and the resources it could use, read in a session of its
    own that ends before the stream begins: an open stream holds no connection."""
    assert who.tenant_id is not None
    async with ctx.sessions(tenancy(request)) as db:
        found = bookable(await find_service(db, who.tenant_id, service))
        rules = service_rules(found)
        kinds = frozenset(r.kind for r in rules.requirements)
        resources = await db.scalars(
            select(Resource.id).where(
                Resource.tenant_id == who.tenant_id, Resource.kind.in_(list(kinds))
            )
        )
        return Stream(
            tenant=who.tenant_id,
            key=who.key_id,
            service=found.id,
            kinds=kinds,
            resources=set(resources.all()),
            lo=int(lo.timestamp()),
            hi=int(-(-hi.timestamp() // 1)),
            reach_back=rules.duration + rules.buffer_after,
            reach_ahead=rules.buffer_before,
        )


def _event(stream: Stream, changed: tuple[int, int], number: int) -> str:
    data = {
        "service": str(stream.service),
        "range_start": datetime.fromtimestamp(changed[0], UTC).isoformat(),
        "range_end": datetime.fromtimestamp(changed[1], UTC).isoformat(),
    }
    return f"id: {number}\nevent: {STREAM_EVENT}\ndata: {json.dumps(data)}\n\n"


async def _events(stream: Stream) -> AsyncIterator[str]:
    yield "retry: 3000\n: listening\n\n"
    number = 0
    while True:
        changed = await stream.next_change(HEARTBEAT_SECONDS)
        if changed is None:
            yield ": heartbeat\n\n"
            continue
        number += 1
        yield _event(stream, changed, number)


class _EventStream(StreamingResponse):
    """Closes its stream in the feed however the response ends: the client gone, the
    server stopping, or before the first byte was sent."""

    def __init__(self, ctx: AppContext, stream: Stream) -> None:
        super().__init__(
            _events(stream),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._feed, self._stream = ctx.feed, stream

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._feed.close(self._stream)


@router.get(
    "/stream",
    summary="Hear when a service's slots change (Server-Sent Events)",
    description="Sends `slots.changed` with the span of starts that may have changed "
    "(`range_start`, `range_end`, within the stream's range) within a second of any "
    "booking, hold, cancellation, expiry, time off or hours change that touches the "
    "range; query availability for that span again. A comment line every 15 s keeps "
    "the stream open. At most `AVAILABILITY_STREAMS_PER_KEY` streams per key and API "
    "process (`429 too_many_streams`).",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}}},
)
async def stream(
    request: Request,
    who: AnyKey,
    ctx: Ctx,
    service: Annotated[str, Query(min_length=1, description="Service id or code.")],
    range_start: Annotated[Instant, Query(description="Earliest start of interest.")],
    range_end: Annotated[Instant, Query(description="Starts are before this instant.")],
) -> StreamingResponse:
    _check_range(ctx, range_start, range_end)
    found = await _stream_of(request, ctx, who, service, range_start, range_end)
    try:
        ctx.feed.open(found)
    except TooManyStreams:
        raise ApiError(
            429,
            "too_many_streams",
            "this key has as many availability streams open as it may",
            headers={"Retry-After": str(int(HEARTBEAT_SECONDS))},
        ) from None
    return _EventStream(ctx, found)
