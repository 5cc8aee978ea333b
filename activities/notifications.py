"""Customer notifications and outgoing webhook events, written to the outbox once per
deterministic id (booking, kind, key, channel): a retried activity adds nothing."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db.models import OutboxMessage

_OUTBOX = uuid.UUID("0b1d7c2e-7f7e-4b8e-9a55-2f51c3f6d0a4")


@dataclass(frozen=True)
class Notice:
    """`kind` is the event (confirmed, reminder, cancelled, ...); `key` tells repeats of a
    kind apart (the booking version, a reminder's offset)."""

    tenant_id: str
    booking_id: str
    kind: str
    key: str
    booking: dict[str, Any]


def outbox_id(notice: Notice, channel: str) -> uuid.UUID:
    return uuid.uuid5(_OUTBOX, f"{notice.booking_id}:{notice.kind}:{notice.key}:{channel}")


class NotificationActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> None:
        customer = notice.booking.get("customer", {})
        channels = {"webhook": {"type": f"booking.{notice.kind}", "data": notice.booking}}
        if customer.get("email"):
            channels["email"] = {
                "to": customer["email"],
                "template": notice.kind,
                "booking": notice.booking,
            }
        if customer.get("phone") and notice.kind in ("confirmed", "reminder", "cancelled"):
            channels["sms"] = {
                "to": customer["phone"],
                "template": notice.kind,
                "booking": notice.booking,
            }
        async with self._sessions() as db:
            for channel, payload in channels.items():
                await db.execute(
                    insert(OutboxMessage)
                    .values(
                        id=outbox_id(notice, channel),
                        tenant_id=uuid.UUID(notice.tenant_id),
                        booking_id=uuid.UUID(notice.booking_id),
                        channel=channel,
                        kind=notice.kind,
                        payload=payload,
                    )
                    .on_conflict_do_nothing(index_elements=["id"])
                )
            await db.commit()
