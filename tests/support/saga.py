"""Building blocks for booking-saga tests: a catalogue made through the API, a booking
request as the API would build it, and database reads of the outcome."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select

from contract import BookingRequest, ServiceTerms, Slot
from db.models import Allocation, Booking, Notification, WebhookEvent
from db.sessions import SessionFactory
from tests.support.api import open_all_day, service


@dataclass
class Clinic:
    tenant_id: str
    service: dict[str, Any]
    staff_id: str
    room_id: str

    def terms(self) -> ServiceTerms:
        svc, price = self.service, self.service["price"]
        return ServiceTerms(
            service_id=svc["id"],
            code=svc["code"],
            name=svc["name"],
            buffer_before_minutes=svc["buffer_before_minutes"],
            buffer_after_minutes=svc["buffer_after_minutes"],
            price_amount=price["amount"] if price else None,
            currency=price["currency"] if price else None,
            hold_seconds=svc["hold_seconds"],
            free_until_hours_before=svc["cancellation"]["free_until_hours_before"],
            late_refund_percent=svc["cancellation"]["late_refund_percent"],
            reminders_minutes_before=svc["reminders_minutes_before"],
            retry_declined_payment=svc["retry_declined_payment"],
        )

    def request(self, start: datetime, minutes: int = 60) -> BookingRequest:
        return BookingRequest(
            booking_id=str(uuid.uuid4()),
            tenant_id=self.tenant_id,
            terms=self.terms(),
            slot=Slot(start, start + timedelta(minutes=minutes), [self.staff_id, self.room_id]),
            customer={"name": "Grace", "email": "grace@example.test", "phone": "+4915100000"},
            metadata={"ref": "t-1"},
            idempotency_key=str(uuid.uuid4()),
        )


async def make_clinic(api: httpx.AsyncClient, tenant_id: str, **service_fields: Any) -> Clinic:
    ada, r1 = await open_all_day(api)
    svc = await service(api, **service_fields)
    return Clinic(tenant_id, svc, ada["id"], r1["id"])


async def booking_row(sessions: SessionFactory, booking_id: str) -> Booking:
    async with sessions() as db:
        row = await db.get(Booking, uuid.UUID(booking_id))
        assert row is not None
        return row


async def allocation_statuses(sessions: SessionFactory, booking_id: str) -> list[str]:
    async with sessions() as db:
        return list(
            (
                await db.scalars(
                    select(Allocation.status)
                    .where(Allocation.booking_id == uuid.UUID(booking_id))
                    .order_by(Allocation.id)
                )
            ).all()
        )


async def message_kinds(
    sessions: SessionFactory, booking_id: str, channel: str = "email"
) -> list[str]:
    """The kind of each of the booking's messages on `channel`, oldest first."""
    async with sessions() as db:
        return list(
            (
                await db.scalars(
                    select(Notification.kind)
                    .where(
                        Notification.booking_id == uuid.UUID(booking_id),
                        Notification.channel == channel,
                    )
                    .order_by(Notification.created_at, Notification.id)
                )
            ).all()
        )


async def webhook_types(sessions: SessionFactory, booking_id: str) -> list[str]:
    """The type of each of the booking's webhook events, oldest first."""
    async with sessions() as db:
        return list(
            (
                await db.scalars(
                    select(WebhookEvent.type)
                    .where(WebhookEvent.booking_id == uuid.UUID(booking_id))
                    .order_by(WebhookEvent.created_at, WebhookEvent.id)
                )
            ).all()
        )
