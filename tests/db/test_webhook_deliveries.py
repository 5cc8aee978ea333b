"""What an attempt does to its endpoint (docs/webhooks.md#retries): a success ends the
failing streak; three days of failures disable the endpoint and tell the tenant's
contact, once."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contract import ENDPOINT_DISABLED
from db.dispatch import delivery_id
from db.models import Notification, WebhookDelivery, WebhookEndpoint, WebhookEvent
from db.webhook_deliveries import record_attempt
from tests.support.clients import tenant_of


async def a_delivery(api: httpx.AsyncClient, db: AsyncSession) -> tuple[str, uuid.UUID]:
    """An endpoint of the tenant (with a contact address) and one delivery to it."""
    tenant = tenant_of(api)
    patched = await api.patch(f"/v1/tenants/{tenant}", json={"contact_email": "ops@clinic.test"})
    assert patched.status_code == 200, patched.text
    created = await api.post(
        "/v1/webhook-endpoints", json={"url": "https://93.184.215.14/h", "events": ["*"]}
    )
    assert created.status_code == 201, created.text
    endpoint: dict[str, Any] = created.json()
    event = uuid.uuid4()
    # Dispatched already: a dispatcher another test runs leaves them alone.
    db.add(
        WebhookEvent(
            id=event,
            tenant_id=uuid.UUID(tenant),
            type="booking.held",
            payload={},
            dispatched_at=func.now(),
        )
    )
    await db.flush()  # the models declare no relationships to order the inserts by
    delivery = delivery_id(event, uuid.UUID(endpoint["id"]))
    db.add(
        WebhookDelivery(
            id=delivery,
            tenant_id=uuid.UUID(tenant),
            endpoint_id=uuid.UUID(endpoint["id"]),
            event_id=event,
            dispatched_at=func.now(),
        )
    )
    await db.commit()
    return endpoint["id"], delivery


async def failing_for(db: AsyncSession, endpoint_id: str, age: timedelta) -> None:
    await db.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == uuid.UUID(endpoint_id))
        .values(failing_since=func.now() - age)
    )
    await db.commit()


async def attempt(db: AsyncSession, delivery: uuid.UUID, *, ok: bool) -> None:
    await record_attempt(
        db,
        delivery,
        status_code=200 if ok else 503,
        latency_ms=12,
        error=None if ok else "HTTP 503",
        delivered=ok,
    )
    await db.commit()


async def endpoint_row(db: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    row = await db.get(WebhookEndpoint, uuid.UUID(endpoint_id), populate_existing=True)
    assert row is not None
    return row


async def notices(db: AsyncSession, tenant: str) -> list[Notification]:
    return list(
        (
            await db.scalars(
                select(Notification).where(
                    Notification.tenant_id == uuid.UUID(tenant),
                    Notification.kind == ENDPOINT_DISABLED,
                )
            )
        ).all()
    )


async def test_a_failure_starts_the_streak_and_a_success_ends_it(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    endpoint, delivery = await a_delivery(api, db)
    await attempt(db, delivery, ok=False)
    assert (await endpoint_row(db, endpoint)).failing_since is not None
    await attempt(db, delivery, ok=True)
    row = await endpoint_row(db, endpoint)
    assert row.failing_since is None and row.status == "enabled"
    done = await db.get(WebhookDelivery, delivery, populate_existing=True)
    assert done is not None and (done.status, done.attempts) == ("delivered", 2)


async def test_three_days_of_failures_disable_the_endpoint_and_tell_the_contact_once(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    endpoint, delivery = await a_delivery(api, db)
    await failing_for(db, endpoint, timedelta(days=3, minutes=1))
    await attempt(db, delivery, ok=False)
    await attempt(db, delivery, ok=False)
    row = await endpoint_row(db, endpoint)
    assert row.status == "disabled" and row.disabled_at is not None
    [notice] = await notices(db, tenant_of(api))
    assert notice.recipient == "ops@clinic.test" and notice.channel == "email"
    assert notice.payload["url"] == "https://93.184.215.14/h"


async def test_failures_under_three_days_leave_the_endpoint_enabled(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    endpoint, delivery = await a_delivery(api, db)
    await failing_for(db, endpoint, timedelta(days=2, hours=23))
    await attempt(db, delivery, ok=False)
    assert (await endpoint_row(db, endpoint)).status == "enabled"
    assert await notices(db, tenant_of(api)) == []
