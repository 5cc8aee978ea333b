"""What the API shows of a booking: read from PostgreSQL, never from Temporal
(docs/api.md#the-booking-object)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import TenantOrOperator
from api.errors import not_found
from contract import BookingStatus
from db import calendar_events
from db.models import Booking, Notification, Resource, Service


class ResourceRef(BaseModel):
    id: uuid.UUID
    kind: str
    name: str


class PaymentOut(BaseModel):
    provider: str
    status: str
    intent_id: str | None
    client_secret: str | None = Field(
        description="For Stripe.js, only while the booking is pending_payment."
    )
    amount: int
    currency: str
    captured_amount: int
    refunded_amount: int


class CalendarEventOut(BaseModel):
    connection_id: uuid.UUID
    provider: str
    calendar_id: str
    status: str = Field(description="pending, written, deleted, deleted_by_hand or failed.")
    last_error: str | None


class BookingOut(BaseModel):
    id: uuid.UUID
    status: BookingStatus
    service: dict[str, str]
    start: datetime
    end: datetime
    resources: list[ResourceRef]
    hold_expires_at: datetime | None
    workflow_id: str
    payment: PaymentOut | None
    customer: dict[str, Any]
    metadata: dict[str, Any]
    side_effects: dict[str, str]
    calendar_events: list[CalendarEventOut] = Field(
        description="The booking's event on each connected calendar, and how far its "
        "export got (docs/calendars.md#export)."
    )
    version: int
    created_at: datetime
    updated_at: datetime
    access_token: str | None = Field(
        default=None,
        description="Only in the answer to creating it: with this token a publishable key "
        "reads, cancels or reschedules this booking (`?access_token=` or the "
        "X-Booking-Token header). Keep it with the customer.",
    )


class NotificationOut(BaseModel):
    """One message to the customer and what became of it (docs/notifications.md)."""

    id: uuid.UUID = Field(description="Deterministic; also the email's Message-ID.")
    channel: str
    kind: str
    recipient: str
    status: str = Field(description="queued, sent or failed.")
    attempts: int
    provider_id: str | None = Field(description="The provider's id once it accepted it.")
    last_error: str | None
    dispatched: bool = Field(description="Whether its delivery has started.")
    created_at: datetime
    sent_at: datetime | None


class Notifications(BaseModel):
    items: list[NotificationOut]


def notification_view(row: Notification) -> NotificationOut:
    return NotificationOut(
        id=row.id,
        channel=row.channel,
        kind=row.kind,
        recipient=row.recipient,
        status=row.status,
        attempts=row.attempts,
        provider_id=row.provider_id,
        last_error=row.last_error,
        dispatched=row.dispatched_at is not None,
        created_at=row.created_at,
        sent_at=row.sent_at,
    )


class HistoryItem(BaseModel):
    at: datetime
    type: str
    actor: str
    data: dict[str, Any]


class History(BaseModel):
    items: list[HistoryItem]


async def booking_views(
    db: AsyncSession,
    rows: list[Booking],
    known: dict[uuid.UUID, Service] | None = None,
    *,
    calendars: bool = True,
) -> list[BookingOut]:
    """Bookings with their resources, services and calendar events: at most three queries
    for the whole list (one less if the caller already holds the services, or asks for
    no calendar events: a booking just made has none yet, its export comes after)."""
    resource_ids = {r for row in rows for r in row.resource_ids}
    resources = {
        r.id: r
        for r in (await db.scalars(select(Resource).where(Resource.id.in_(resource_ids)))).all()
    }
    services = dict(known or {})
    missing = {row.service_id for row in rows} - set(services)
    if missing:
        found = await db.scalars(select(Service).where(Service.id.in_(missing)))
        services.update((s.id, s) for s in found.all())
    exported = await calendar_events.of_bookings(db, [row.id for row in rows]) if calendars else {}
    out = []
    for row in rows:
        service = services[row.service_id]
        tz = ZoneInfo(service.timezone)
        out.append(
            BookingOut(
                id=row.id,
                status=row.status,
                service={"id": str(service.id), "code": service.code},
                start=row.start_at.astimezone(tz),
                end=row.end_at.astimezone(tz),
                resources=[
                    ResourceRef(id=r, kind=resources[r].kind, name=resources[r].name)
                    for r in row.resource_ids
                    if r in resources
                ],
                hold_expires_at=row.hold_expires_at and row.hold_expires_at.astimezone(tz),
                workflow_id=row.workflow_id,
                payment=_payment(row),
                customer=row.customer,
                metadata=row.meta,
                side_effects=row.side_effects,
                calendar_events=[CalendarEventOut(**e) for e in exported.get(row.id, [])],
                version=row.version,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
        )
    return out


def _payment(row: Booking) -> PaymentOut | None:
    if not row.payment:
        return None
    pending = row.status == BookingStatus.PENDING_PAYMENT
    # (Merged, not passed twice: a row written before the secret had its own column may
    # still carry one in its JSON.)
    secret = row.payment_client_secret if pending else None
    return PaymentOut.model_validate({**row.payment, "client_secret": secret})


async def booking_view(db: AsyncSession, booking_id: uuid.UUID) -> BookingOut:
    row = await db.get(Booking, booking_id, populate_existing=True)
    assert row is not None
    return (await booking_views(db, [row]))[0]


async def owned_booking(
    db: AsyncSession, who: TenantOrOperator | uuid.UUID, booking_id: uuid.UUID
) -> Booking:
    tenant = who if isinstance(who, uuid.UUID) else who.tenant_id
    row = await db.get(Booking, booking_id)
    if row is None or (tenant is not None and row.tenant_id != tenant):
        raise not_found("booking")
    return row
