"""A booking's messages to its customer, written once per deterministic id in the
transaction of what they tell (docs/notifications.md): the hand-off to delivery. Each row
is one email or one text message; the dispatcher starts its delivery workflow, which
records what became of it on the row.

Writing a notice again adds nothing, so the step that writes it may retry."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import MESSAGE_KINDS, SMS_KINDS, Channel, Notice, NotificationStatus
from db.history import event_id
from db.models import Booking, BookingEvent, Notification, Resource, Service, Tenant

# Kept from release 0.1.0's outbox, so a notice written then and again now is one message.
_MESSAGES = uuid.UUID("0b1d7c2e-7f7e-4b8e-9a55-2f51c3f6d0a4")


def notification_id(booking_id: str, kind: str, key: str, channel: str) -> uuid.UUID:
    return uuid.uuid5(_MESSAGES, f"{booking_id}:{kind}:{key}:{channel}")


def notification_rows(
    notice: Notice, version: int, previous: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """The notice's messages, one per channel its customer can be reached on, as rows in
    JSON (without tenant and booking, which the notice names). `version` is the
    booking's as the notice is written (an invitation's SEQUENCE); `previous` the slot a
    reschedule left."""
    customer = notice.booking.get("customer", {})
    recipients = {
        Channel.EMAIL: customer.get("email") if notice.kind in MESSAGE_KINDS else None,
        Channel.SMS: (
            customer.get("phone")
            if notice.kind in SMS_KINDS and customer.get("sms_opt_in") is True
            else None
        ),
    }
    payload = {"booking": notice.booking, "version": version, "previous": previous}
    if notice.kind == "reminder":  # keyed "<minutes before>:<version>"
        payload["reminder_minutes"] = int(notice.key.split(":")[0])
    return [
        {
            "id": str(notification_id(notice.booking_id, notice.kind, notice.key, channel)),
            "channel": channel.value,
            "kind": notice.kind,
            "recipient": to,
            "payload": payload,
        }
        for channel, to in recipients.items()
        if to
    ]


async def write_notice(db: AsyncSession, notice: Notice) -> None:
    """Adds the notice's messages to the caller's transaction, with the booking's version
    now and, for a reschedule, the slot it left (from its history entry)."""
    booking_id = uuid.UUID(notice.booking_id)
    version = await db.scalar(select(Booking.version).where(Booking.id == booking_id))
    previous = None
    if notice.kind == "rescheduled":
        data = await db.scalar(
            select(BookingEvent.data).where(
                BookingEvent.id == event_id(notice.booking_id, f"rescheduled:{notice.key}")
            )
        )
        previous = (data or {}).get("from")
    rows = notification_rows(notice, version or 1, previous)
    if not rows:
        return
    owner = {"tenant_id": uuid.UUID(notice.tenant_id), "booking_id": booking_id}
    await db.execute(
        insert(Notification)
        .values([{**row, **owner, "id": uuid.UUID(row["id"])} for row in rows])
        .on_conflict_do_nothing(index_elements=["id"])
    )


async def mark_sent(db: AsyncSession, notification_id_: uuid.UUID, provider_id: str) -> None:
    await db.execute(
        update(Notification)
        .where(Notification.id == notification_id_)
        .values(
            status=NotificationStatus.SENT,
            provider_id=provider_id,
            last_error=None,
            sent_at=func.now(),
            updated_at=func.now(),
        )
    )


async def mark_error(
    db: AsyncSession, notification_id_: uuid.UUID, error: str, *, final: bool
) -> None:
    """Record why an attempt failed; `final`: no more attempts will be made."""
    values: dict[str, Any] = {"last_error": error[:1000], "updated_at": func.now()}
    if final:
        values["status"] = NotificationStatus.FAILED
    await db.execute(
        update(Notification)
        .where(
            Notification.id == notification_id_,
            Notification.status == NotificationStatus.QUEUED,
        )
        .values(**values)
    )


@dataclass(frozen=True)
class Outgoing:
    """A queued message with what its text needs beyond its own payload."""

    notification: Notification
    tenant: Tenant
    booking: Booking | None
    service: Service | None
    resource_names: dict[str, str]


async def take_for_sending(db: AsyncSession, notification_id_: uuid.UUID) -> Outgoing | None:
    """Count an attempt on a queued message and gather its text's facts (None: gone, or
    already sent or failed, so nothing is to be sent). The caller commits."""
    row = await db.get(Notification, notification_id_, with_for_update=True)
    if row is None or row.status != NotificationStatus.QUEUED:
        return None
    row.attempts += 1
    row.updated_at = func.now()
    tenant = await db.get(Tenant, row.tenant_id)
    assert tenant is not None  # a tenant's rows go with it
    booking = await db.get(Booking, row.booking_id) if row.booking_id else None
    service = await db.get(Service, booking.service_id) if booking else None
    ids = [uuid.UUID(r) for r in row.payload.get("booking", {}).get("resource_ids", [])]
    names = (await db.execute(select(Resource.id, Resource.name).where(Resource.id.in_(ids)))).all()
    return Outgoing(row, tenant, booking, service, {str(i): n for i, n in names})
