"""A webhook delivery's attempts and what they do to its endpoint: a 2xx delivers it and
clears the endpoint's failing streak; a failure starts or extends the streak, and a
streak of 3 days disables the endpoint, announced by email to the tenant's contact
(docs/webhooks.md#retries)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import ENDPOINT_DISABLED, Channel, DeliveryStatus, EndpointStatus
from db.models import (
    Notification,
    Tenant,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from db.notifications import notification_id

FAILING_FOR = timedelta(days=3)

log = logging.getLogger("holdfast.webhooks")


@dataclass(frozen=True)
class Target:
    """What one attempt sends, and where."""

    url: str
    secrets: list[str]  # the current secret first, then one still valid after a rotation
    event_id: str
    body: dict[str, Any]


async def load_target(db: AsyncSession, delivery_id: uuid.UUID, now: datetime) -> Target | None:
    """None when the endpoint is gone or disabled: the delivery stops."""
    found = (
        await db.execute(
            select(WebhookEndpoint, WebhookEvent)
            .join(WebhookDelivery, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
            .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id == delivery_id)
        )
    ).first()
    if found is None or found[0].status != EndpointStatus.ENABLED:
        return None
    endpoint, event = found
    secrets = [endpoint.secret]
    if endpoint.previous_secret and (endpoint.previous_secret_until or now) > now:
        secrets.append(endpoint.previous_secret)
    return Target(endpoint.url, secrets, str(event.id), event.payload)


async def record_attempt(
    db: AsyncSession,
    delivery_id: uuid.UUID,
    *,
    status_code: int | None,
    latency_ms: int,
    error: str | None,
    delivered: bool,
) -> None:
    delivery = await db.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        return
    db.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            status_code=status_code,
            latency_ms=latency_ms,
            error=error[:1000] if error else None,
        )
    )
    delivery.attempts += 1
    delivery.last_status_code, delivery.last_error = status_code, error
    delivery.updated_at = func.now()
    if delivered:
        delivery.status, delivery.delivered_at = DeliveryStatus.DELIVERED, func.now()
    endpoint = await db.get(WebhookEndpoint, delivery.endpoint_id, with_for_update=True)
    if endpoint is not None:
        await _streak(db, endpoint, failed=not delivered)


async def _streak(db: AsyncSession, endpoint: WebhookEndpoint, *, failed: bool) -> None:
    now = await db.scalar(select(func.now()))
    assert now is not None
    if not failed:
        endpoint.failing_since = None
        return
    endpoint.failing_since = endpoint.failing_since or now
    if endpoint.status == EndpointStatus.ENABLED and now - endpoint.failing_since >= FAILING_FOR:
        await _disable(db, endpoint, now)


async def _disable(db: AsyncSession, endpoint: WebhookEndpoint, now: datetime) -> None:
    """Disable, and tell the tenant's contact (once per streak: the message id is the
    endpoint's and the streak's)."""
    endpoint.status, endpoint.disabled_at, endpoint.updated_at = EndpointStatus.DISABLED, now, now
    contact = await db.scalar(select(Tenant.contact_email).where(Tenant.id == endpoint.tenant_id))
    if not contact:
        log.warning("webhook endpoint %s disabled; its tenant has no contact_email", endpoint.id)
        return
    since = endpoint.failing_since or now
    message = notification_id(
        str(endpoint.id), ENDPOINT_DISABLED, since.isoformat(), Channel.EMAIL.value
    )
    await db.execute(
        insert(Notification)
        .values(
            id=message,
            tenant_id=endpoint.tenant_id,
            booking_id=None,
            channel=Channel.EMAIL,
            kind=ENDPOINT_DISABLED,
            recipient=contact,
            payload={
                "endpoint_id": str(endpoint.id),
                "url": endpoint.url,
                "failing_since": since.isoformat(),
            },
        )
        .on_conflict_do_nothing(index_elements=["id"])
    )


async def finish(db: AsyncSession, delivery_id: uuid.UUID, why: str) -> None:
    """The delivery will not be tried again: its retries ran out, or its endpoint is
    gone or disabled. A delivered one stays delivered."""
    await db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == DeliveryStatus.PENDING)
        .values(status=DeliveryStatus.FAILED, last_error=why, updated_at=func.now())
    )
