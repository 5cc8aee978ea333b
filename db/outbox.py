"""Notices to customers and webhook subscribers, written to the outbox once per
deterministic id (booking, kind, key, channel): writing one again adds nothing."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import EventType, Notice
from db.models import OutboxMessage

_OUTBOX = uuid.UUID("0b1d7c2e-7f7e-4b8e-9a55-2f51c3f6d0a4")
# The kinds worth a text message; every kind goes to email and webhooks.
SMS_KINDS = ("confirmed", "reminder", "cancelled")


def outbox_id(notice: Notice, channel: str) -> uuid.UUID:
    return uuid.uuid5(_OUTBOX, f"{notice.booking_id}:{notice.kind}:{notice.key}:{channel}")


def _channels(notice: Notice) -> dict[str, dict[str, Any]]:
    customer = notice.booking.get("customer", {})
    event = EventType(f"booking.{notice.kind}")  # the vocabulary of contract.py
    channels: dict[str, dict[str, Any]] = {"webhook": {"type": event.value, "data": notice.booking}}
    message = {"template": notice.kind, "booking": notice.booking}
    if customer.get("email"):
        channels["email"] = {"to": customer["email"], **message}
    if customer.get("phone") and notice.kind in SMS_KINDS:
        channels["sms"] = {"to": customer["phone"], **message}
    return channels


def outbox_rows(notice: Notice) -> list[dict[str, Any]]:
    """The notice's messages, one per channel, as outbox rows in JSON (without their
    tenant and booking, which the notice names)."""
    return [
        {
            "id": str(outbox_id(notice, channel)),
            "channel": channel,
            "kind": notice.kind,
            "payload": payload,
        }
        for channel, payload in _channels(notice).items()
    ]


async def write_notice(db: AsyncSession, notice: Notice) -> None:
    """Adds the notice's messages to the caller's transaction."""
    owner = {"tenant_id": uuid.UUID(notice.tenant_id), "booking_id": uuid.UUID(notice.booking_id)}
    await db.execute(
        insert(OutboxMessage)
        .values([{**row, **owner, "id": uuid.UUID(row["id"])} for row in outbox_rows(notice)])
        .on_conflict_do_nothing(index_elements=["id"])
    )
