"""Webhook endpoints and their deliveries, as the API reads and changes them. Every query
names the tenant: another tenant's endpoint or delivery looks absent."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from contract import DeliveryStatus, EndpointStatus
from db.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from db.repository import apply_changes, get_owned, owned, save

# How long the secret before a rotation still signs, so receivers can roll over.
ROTATION_OVERLAP = timedelta(hours=24)


async def create_endpoint(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    *,
    url: str,
    events: Sequence[str],
    description: str,
    secret: str,
) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=url,
        events=[str(e) for e in events],
        description=description,
        secret=secret,
    )
    db.add(endpoint)
    return await save(db, endpoint)


async def get_endpoint(
    db: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID
) -> WebhookEndpoint | None:
    return await get_owned(db, WebhookEndpoint, tenant_id, endpoint_id)


def endpoints_of(tenant_id: uuid.UUID) -> Select[WebhookEndpoint]:
    """The tenant's endpoints, for a page by id (api/pagination.py)."""
    return owned(WebhookEndpoint, tenant_id)


async def update_endpoint(
    db: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, changes: Mapping[str, Any]
) -> WebhookEndpoint | None:
    """Apply `changes` (url, events, description, status). Enabling a disabled endpoint
    forgets its failures (`failing_since`, `disabled_at`), so its three days start afresh;
    disabling one records when."""
    endpoint = await get_endpoint(db, tenant_id, endpoint_id)
    if endpoint is None:
        return None
    values = dict(changes)
    status = values.get("status")
    if status is not None and status != endpoint.status:
        if status == EndpointStatus.ENABLED:
            values |= {"failing_since": None, "disabled_at": None}
        else:
            values["disabled_at"] = func.now()
    apply_changes(endpoint, values)
    return await save(db, endpoint)


async def delete_endpoint(db: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> bool:
    """Whether it existed. Its deliveries and their attempts go with it (ON DELETE CASCADE);
    a delivery workflow still running then finds nothing to send and stops."""
    gone = await db.scalar(
        delete(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id)
        .returning(WebhookEndpoint.id)
    )
    await db.commit()
    return gone is not None


async def rotate_secret(
    db: AsyncSession, tenant_id: uuid.UUID, endpoint_id: uuid.UUID, new_secret: str
) -> WebhookEndpoint | None:
    """`new_secret` signs from now on; the current one becomes the previous secret, which
    also signs for ROTATION_OVERLAP. One statement, so two rotations at once each keep
    the other's secret as previous rather than losing one. A rotation within the overlap
    ends the older secret at once: only two are ever valid."""
    rotated = await db.scalar(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id, WebhookEndpoint.id == endpoint_id)
        .values(
            previous_secret=WebhookEndpoint.secret,
            previous_secret_until=func.now() + ROTATION_OVERLAP,
            secret=new_secret,
            updated_at=func.now(),
        )
        .returning(WebhookEndpoint)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    await db.commit()
    return rotated


# A delivery's place in its endpoint's list, newest first: (created_at, id). Delivery
# ids are derived from the event and the endpoint, so they are not time-ordered.
DeliveryKey = tuple[datetime, uuid.UUID]


@dataclass(frozen=True)
class DeliveryView:
    """A delivery with its event's type and its attempts in the order they were made."""

    delivery: WebhookDelivery
    type: str
    attempts: list[WebhookAttempt]


async def list_deliveries(
    db: AsyncSession,
    tenant_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    limit: int,
    after: DeliveryKey | None = None,
) -> tuple[list[DeliveryView], DeliveryKey | None]:
    """One page of an endpoint's deliveries, newest first, and the key to continue after
    (None on the last page). Two queries: the deliveries with their event types, then
    all their attempts."""
    stmt = (
        select(WebhookDelivery, WebhookEvent.type)
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.tenant_id == tenant_id, WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if after is not None:
        stmt = stmt.where(tuple_(WebhookDelivery.created_at, WebhookDelivery.id) < tuple_(*after))
    rows = list((await db.execute(stmt)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    by_delivery: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d, _ in rows}
    if by_delivery:
        attempts = await db.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(list(by_delivery)))
            .order_by(WebhookAttempt.at, WebhookAttempt.id)
        )
        for attempt in attempts:
            by_delivery[attempt.delivery_id].append(attempt)
    views = [DeliveryView(d, t, by_delivery[d.id]) for d, t in rows]
    if not more:
        return views, None
    last = rows[-1][0]
    return views, (last.created_at, last.id)


async def get_delivery(
    db: AsyncSession, tenant_id: uuid.UUID, delivery_id: uuid.UUID
) -> WebhookDelivery | None:
    return await get_owned(db, WebhookDelivery, tenant_id, delivery_id)


async def reset_for_retry(
    db: AsyncSession, delivery_id: uuid.UUID, *, tenant_id: uuid.UUID | None = None
) -> bool:
    """Put a delivery back to `pending` for a manual retry, keeping its attempts and its
    count; committed, so the workflow signalled next reads it. Only the tenant's when
    `tenant_id` is given. Whether there was such a delivery."""
    stmt = update(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
    if tenant_id is not None:
        stmt = stmt.where(WebhookDelivery.tenant_id == tenant_id)
    reset = await db.scalar(
        stmt.values(status=DeliveryStatus.PENDING, updated_at=func.now())
        .returning(WebhookDelivery.id)
        .execution_options(synchronize_session=False)
    )
    await db.commit()
    return reset is not None


async def restore_status(db: AsyncSession, delivery_id: uuid.UUID, status: str) -> None:
    """Undo `reset_for_retry` when its retry could not start."""
    await db.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id)
        .values(status=status)
        .execution_options(synchronize_session=False)
    )
    await db.commit()
