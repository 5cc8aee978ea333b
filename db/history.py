"""A booking's history: one entry per change, written in the change's own transaction
(docs/lifecycle.md#history). Each entry after the first adds 1 to the booking's
`version`, so the version orders a booking's changes; the changes receivers hear of also
become webhook events, carrying the booking as it is after the change
(docs/webhooks.md#events)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import WEBHOOK_EVENTS, EventType
from db.models import Booking, BookingEvent, Service, WebhookEvent

_EVENTS = uuid.UUID("3f0f6f3c-4f0e-4d59-9f54-6c2b1d8a7e21")


def event_id(booking_id: str, key: str) -> uuid.UUID:
    """Deterministic: the same step of the same booking records its event once."""
    return uuid.uuid5(_EVENTS, f"{booking_id}:{key}")


def booking_snapshot(booking: Booking | dict[str, Any], service_code: str) -> dict[str, Any]:
    """The booking as webhook receivers see it: no client secret, instants in UTC. From
    a row, or from the claim's own values (the row does not exist before its statement)."""
    row = booking if isinstance(booking, dict) else _columns(booking)
    return {
        "id": str(row["id"]),
        "status": row["status"],
        "version": row["version"],
        "service": {"id": str(row["service_id"]), "code": service_code},
        "start": _utc(row["start_at"]),
        "end": _utc(row["end_at"]),
        "hold_expires_at": _utc(row["hold_expires_at"]) if row["hold_expires_at"] else None,
        "resource_ids": [str(r) for r in row["resource_ids"]],
        "customer": row["customer"],
        "metadata": row["metadata"],
        "payment": row["payment"],
    }


def webhook_body(type_: str, at: datetime, data: dict[str, Any]) -> dict[str, Any]:
    """A Standard Webhooks body."""
    return {"type": type_, "timestamp": _utc(at), "data": data}


def webhook_data(
    type_: str, snapshot: dict[str, Any], event_data: dict[str, Any] | None
) -> dict[str, Any]:
    """What an event tells beside the booking: the slot a reschedule left, the refund of
    a cancellation, the payment of a payment event, the calendar an event left."""
    data: dict[str, Any] = {"booking": snapshot}
    extra = event_data or {}
    if type_ == EventType.BOOKING_RESCHEDULED and "from" in extra:
        data["previous"] = extra["from"]
    payment = snapshot["payment"]
    if type_ == EventType.BOOKING_CANCELLED and payment is not None:
        data["refund"] = {"amount": payment["refunded_amount"], "currency": payment["currency"]}
    if type_ in (EventType.PAYMENT_CAPTURED, EventType.PAYMENT_REFUNDED):
        data["payment"] = payment
    if type_ == EventType.CALENDAR_EVENT_DELETED:
        data["calendar"] = extra
    return data


async def add_event(
    db: AsyncSession,
    booking: Booking,
    key: str,
    type_: EventType,
    actor: str,
    data: dict[str, Any] | None = None,
    *,
    announce: bool = True,
) -> bool:
    """Record a change of `booking` (a row the caller holds locked, with the change made
    on it). A repeat of the same step (`key`) records nothing and returns False.
    `announce=False` keeps a webhook type out of the webhooks: Stripe's own report of a
    capture or refund the saga announces when it records it."""
    id_ = event_id(str(booking.id), key)
    recorded = await db.scalar(
        insert(BookingEvent)
        .values(
            id=id_,
            tenant_id=booking.tenant_id,
            booking_id=booking.id,
            type=type_,
            actor=actor,
            data=data or {},
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(BookingEvent.id)
    )
    if recorded is None:
        return False
    booking.version += 1
    if announce and type_ in WEBHOOK_EVENTS:
        code = await db.scalar(select(Service.code).where(Service.id == booking.service_id)) or ""
        body = webhook_body(
            type_, datetime.now(UTC), webhook_data(type_, booking_snapshot(booking, code), data)
        )
        await db.execute(
            insert(WebhookEvent)
            .values(
                id=id_,
                tenant_id=booking.tenant_id,
                booking_id=booking.id,
                type=type_,
                payload=body,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
    return True


def _columns(booking: Booking) -> dict[str, Any]:
    return {
        "id": booking.id,
        "status": booking.status,
        "version": booking.version,
        "service_id": booking.service_id,
        "start_at": booking.start_at,
        "end_at": booking.end_at,
        "hold_expires_at": booking.hold_expires_at,
        "resource_ids": booking.resource_ids,
        "customer": booking.customer,
        "metadata": booking.meta,
        "payment": booking.payment,
    }


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()
