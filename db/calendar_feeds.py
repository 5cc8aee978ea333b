"""A resource's read-only ICS feed (docs/calendars.md#ics-feed), for staff without Google
or Outlook: one secret token per resource, stored as its SHA-256, replaced by a new one
or revoked at will."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import BookingStatus
from db.models import Booking, CalendarFeed, Resource, Service

TOKEN_PREFIX = "hf_cal_"
# What the feed shows: bookings that take place (or took place) at their time.
SHOWN = (BookingStatus.CONFIRMED, BookingStatus.COMPLETED)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(db: AsyncSession, tenant_id: uuid.UUID, resource_id: uuid.UUID) -> str:
    """A new token for the feed; any earlier one stops working. The caller commits."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    values = {"tenant_id": tenant_id, "resource_id": resource_id, "token_hash": _digest(token)}
    await db.execute(
        insert(CalendarFeed)
        .values(**values)
        .on_conflict_do_update(index_elements=["resource_id"], set_=values)
    )
    return token


async def revoke(db: AsyncSession, tenant_id: uuid.UUID, resource_id: uuid.UUID) -> bool:
    gone = await db.execute(
        delete(CalendarFeed)
        .where(CalendarFeed.tenant_id == tenant_id, CalendarFeed.resource_id == resource_id)
        .returning(CalendarFeed.resource_id)
    )
    return gone.first() is not None


async def resource_of(db: AsyncSession, resource_id: uuid.UUID, token: str) -> Resource | None:
    """The resource, if `token` is its feed's current token."""
    return await db.scalar(
        select(Resource)
        .join(CalendarFeed, CalendarFeed.resource_id == Resource.id)
        .where(Resource.id == resource_id, CalendarFeed.token_hash == _digest(token))
    )


async def bookings(
    db: AsyncSession, resource: Resource, since: datetime
) -> list[tuple[Booking, str]]:
    """The resource's bookings ending after `since`, each with its service's name."""
    found = await db.execute(
        select(Booking, Service.name)
        .join(Service, Service.id == Booking.service_id)
        .where(
            Booking.tenant_id == resource.tenant_id,
            Booking.resource_ids.contains([resource.id]),
            Booking.status.in_(SHOWN),
            Booking.end_at > since,
        )
        .order_by(Booking.start_at)
        .limit(5000)
    )
    return [(b, name) for b, name in found.all()]
