"""The dispatcher's queries (dispatch.py): webhook events fanned out to the endpoints
subscribed to them, and the messages and deliveries whose workflow has not started yet.
Rows are taken with SKIP LOCKED, so several workers dispatch side by side."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import any_, func, literal, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import DeliveryStatus, EndpointStatus, NotificationStatus
from db.models import Notification, WebhookDelivery, WebhookEndpoint, WebhookEvent

BATCH = 50
_DELIVERIES = uuid.UUID("5d0c4a51-2f0e-4c38-8a41-0f6f2f3f9b7e")


def delivery_id(event_id: uuid.UUID, endpoint_id: uuid.UUID) -> uuid.UUID:
    """An event goes to an endpoint once, however often it is fanned out."""
    return uuid.uuid5(_DELIVERIES, f"{event_id}:{endpoint_id}")


async def fan_out(db: AsyncSession) -> int:
    """Make a delivery of each new event for every enabled endpoint of its tenant that
    subscribes to its type; returns how many events were fanned out. The caller commits."""
    events = (
        await db.execute(
            select(WebhookEvent.id, WebhookEvent.tenant_id, WebhookEvent.type)
            .where(WebhookEvent.dispatched_at.is_(None))
            .order_by(WebhookEvent.created_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    ).all()
    for event_id, tenant_id, type_ in events:
        endpoints = await db.scalars(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.tenant_id == tenant_id,
                WebhookEndpoint.status == EndpointStatus.ENABLED,
                or_(
                    literal(type_) == any_(WebhookEndpoint.events),
                    literal("*") == any_(WebhookEndpoint.events),
                ),
            )
        )
        rows = [
            {
                "id": delivery_id(event_id, endpoint),
                "tenant_id": tenant_id,
                "endpoint_id": endpoint,
                "event_id": event_id,
            }
            for endpoint in endpoints
        ]
        if rows:
            await db.execute(
                insert(WebhookDelivery).values(rows).on_conflict_do_nothing(index_elements=["id"])
            )
    if events:
        await db.execute(
            update(WebhookEvent)
            .where(WebhookEvent.id.in_([e.id for e in events]))
            .values(dispatched_at=func.now())
        )
    return len(events)


@dataclass(frozen=True)
class Undispatched:
    """Work whose workflow has not started: messages (id, channel) and deliveries."""

    messages: list[tuple[uuid.UUID, str]]
    deliveries: list[uuid.UUID]

    def __bool__(self) -> bool:
        return bool(self.messages or self.deliveries)

    @property
    def full(self) -> bool:
        """Whether more may wait behind this batch."""
        return BATCH in (len(self.messages), len(self.deliveries))


async def take_undispatched(db: AsyncSession) -> Undispatched:
    """Lock a batch of work to start; `mark_dispatched` in the same transaction."""
    messages = (
        await db.execute(
            select(Notification.id, Notification.channel)
            .where(Notification.dispatched_at.is_(None))
            .order_by(Notification.created_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    ).all()
    deliveries = (
        await db.scalars(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.dispatched_at.is_(None))
            .order_by(WebhookDelivery.created_at)
            .limit(BATCH)
            .with_for_update(skip_locked=True)
        )
    ).all()
    return Undispatched([(m.id, m.channel) for m in messages], list(deliveries))


async def mark_dispatched(db: AsyncSession, work: Undispatched) -> None:
    if work.messages:
        await db.execute(
            update(Notification)
            .where(Notification.id.in_([m for m, _ in work.messages]))
            .values(dispatched_at=func.now())
        )
    if work.deliveries:
        await db.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(work.deliveries))
            .values(dispatched_at=func.now())
        )


@dataclass(frozen=True)
class Backlog:
    stuck_messages: dict[str, int]  # by channel
    stuck_deliveries: int
    undispatched: int


async def delivery_backlog(db: AsyncSession) -> Backlog:
    """What waits longer than it should: messages queued over 10 minutes, deliveries
    pending over 10 minutes, and anything not dispatched within a minute. Each count is
    served by a partial index."""
    stuck = text("now() - interval '10 minutes'")
    late = text("now() - interval '1 minute'")
    messages = (
        await db.execute(
            select(Notification.channel, func.count())
            .where(Notification.status == NotificationStatus.QUEUED)
            .where(Notification.created_at < stuck)
            .group_by(Notification.channel)
        )
    ).all()
    deliveries = await db.scalar(
        select(func.count())
        .select_from(WebhookDelivery)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.created_at < stuck)
    )
    undispatched = 0
    for model in (Notification, WebhookEvent, WebhookDelivery):
        undispatched += (
            await db.scalar(
                select(func.count())
                .select_from(model)
                .where(model.dispatched_at.is_(None), model.created_at < late)
            )
            or 0
        )
    return Backlog({c: n for c, n in messages}, deliveries or 0, undispatched)
