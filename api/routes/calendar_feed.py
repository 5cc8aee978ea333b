"""A resource's read-only ICS feed (docs/calendars.md#ics-feed). The tenant issues (or
replaces) its token and may revoke it; the feed itself answers to the token alone, as
calendar apps subscribe to a plain URL."""

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from api.deps import CalendarFeedToken, Db, TenantId
from api.errors import ApiError, not_found
from api.lookup import owned_or_404
from db import calendar_feeds
from db.models import Resource
from notifications.ics import FeedEntry, feed

router = APIRouter(tags=["calendars"])

# How far back the feed reaches: calendar apps keep what they already have.
LOOKBACK = timedelta(days=30)


class FeedOut(BaseModel):
    url: str = Field(description="The feed's address, token included: shown only now.")
    token: str


@router.post(
    "/v1/resources/{resource_id}/calendar-feed",
    status_code=201,
    summary="Issue a resource's ICS feed token",
    description="Replaces any earlier token, which stops working at once.",
)
async def issue(resource_id: uuid.UUID, request: Request, tenant: TenantId, db: Db) -> FeedOut:
    await owned_or_404(db, Resource, tenant, resource_id, "resource")
    token = await calendar_feeds.issue(db, tenant, resource_id)
    await db.commit()
    url = request.url_for("calendar_ics", resource_id=resource_id).include_query_params(token=token)
    return FeedOut(url=str(url), token=token)


@router.delete(
    "/v1/resources/{resource_id}/calendar-feed",
    status_code=204,
    summary="Revoke a resource's ICS feed",
)
async def revoke(resource_id: uuid.UUID, tenant: TenantId, db: Db) -> Response:
    await owned_or_404(db, Resource, tenant, resource_id, "resource")
    if not await calendar_feeds.revoke(db, tenant, resource_id):
        raise not_found("calendar feed")
    await db.commit()
    return Response(status_code=204)


@router.get(
    "/v1/resources/{resource_id}/calendar.ics",
    summary="A resource's bookings as an ICS feed",
    response_class=Response,
    responses={200: {"content": {"text/calendar": {}}}},
)
async def calendar_ics(
    resource_id: uuid.UUID,
    _: CalendarFeedToken,
    db: Db,
    token: str = Query(min_length=1, max_length=200),
) -> Response:
    resource = await calendar_feeds.resource_of(db, resource_id, token)
    if resource is None:  # one answer for a wrong token and a missing feed
        raise ApiError(404, "not_found", "no such calendar feed")
    now = datetime.now(UTC)
    rows = await calendar_feeds.bookings(db, resource, now - LOOKBACK)
    entries = [
        FeedEntry(str(b.id), b.version, _summary(service, b.customer), b.start_at, b.end_at)
        for b, service in rows
    ]
    return Response(
        feed(resource.name, entries, now),
        media_type="text/calendar; charset=utf-8",
        headers={"Cache-Control": "private, max-age=60"},
    )


def _summary(service: str, customer: dict[str, object]) -> str:
    name = customer.get("name")
    return f"{service} — {name}" if isinstance(name, str) and name else service
