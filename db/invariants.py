"""The database's half of the invariant check (invariants.py): each query finds the rows
that break one promise, for a session acting across tenants (or for one tenant).

`settled` is the moment before which a change must have finished: bookings in flight
(a claim being confirmed, a hold being released, a message being sent) are not broken,
only late, so each query looks only at rows last changed before it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from contract import (
    LIVE_ALLOCATION_STATUSES,
    LIVE_STATUSES,
    BookingStatus,
    DeliveryStatus,
    EventType,
    NotificationStatus,
)


@dataclass(frozen=True)
class Broken:
    """One row that breaks a promise: which promise, which object, and what is wrong."""

    rule: str
    subject: str
    detail: str


def _in(values: Sequence[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


_LIVE = _in(sorted(LIVE_ALLOCATION_STATUSES))
_FINAL = _in(sorted(set(BookingStatus) - LIVE_STATUSES))
_TENANT = "(CAST(:tenant AS uuid) IS NULL OR {t}.tenant_id = CAST(:tenant AS uuid))"

OVERLAPS = text(
    f"""
    SELECT a.resource_id, a.booking_id AS one, b.booking_id AS other
    FROM allocations a JOIN allocations b
      ON a.resource_id = b.resource_id AND a.seat = b.seat AND a.id < b.id
     AND a.span && b.span
     AND coalesce(a.group_session, a.id) <> coalesce(b.group_session, b.id)
    WHERE a.status IN {_LIVE} AND b.status IN {_LIVE} AND {_TENANT.format(t="a")}
    """
)
HOLDS_PAST_EXPIRY = text(
    f"""
    SELECT a.booking_id, a.resource_id, a.hold_expires_at FROM allocations a
    WHERE a.status = 'held' AND a.hold_expires_at < :lapsed AND {_TENANT.format(t="a")}
    """
)
FINAL_WITH_LIVE_ALLOCATIONS = text(
    f"""
    SELECT b.id, b.status, a.resource_id FROM bookings b
    JOIN allocations a ON a.booking_id = b.id
    WHERE b.status IN {_FINAL} AND a.status IN {_LIVE} AND b.updated_at < :settled
      AND {_TENANT.format(t="b")}
    """
)
PAID_BOOKINGS = text(
    f"""
    SELECT b.id, b.status, b.payment, b.side_effects, b.start_at, b.created_at,
        s.cancellation, s.updated_at AS service_updated_at,
        (SELECT min(e.at) FROM booking_events e
         WHERE e.booking_id = b.id AND e.type = '{EventType.BOOKING_CANCELLED}') AS cancelled_at
    FROM bookings b JOIN services s ON s.id = b.service_id
    WHERE b.payment IS NOT NULL AND b.updated_at < :settled
      AND b.status IN ('{BookingStatus.CONFIRMED}', '{BookingStatus.COMPLETED}',
                       '{BookingStatus.NO_SHOW}', '{BookingStatus.CANCELLED}')
      AND {_TENANT.format(t="b")}
    """
)
UNDELIVERED_NOTIFICATIONS = text(
    f"""
    SELECT n.id, n.booking_id, n.channel, n.attempts FROM notifications n
    WHERE n.status = '{NotificationStatus.QUEUED}' AND n.last_error IS NULL
      AND n.created_at < :settled AND {_TENANT.format(t="n")}
    """
)
UNDELIVERED_WEBHOOKS = text(
    f"""
    SELECT d.id, d.endpoint_id, d.attempts FROM webhook_deliveries d
    WHERE d.status = '{DeliveryStatus.PENDING}' AND d.last_error IS NULL
      AND d.last_status_code IS NULL AND d.created_at < :settled
      AND {_TENANT.format(t="d")}
    """
)
BOOKING_STATUSES = text(
    f"""
    SELECT b.id, b.status, b.workflow_id FROM bookings b
    WHERE b.updated_at < :settled AND {_TENANT.format(t="b")}
    ORDER BY b.id DESC LIMIT :limit
    """
)


async def _rows(
    db: AsyncSession, statement: Any, tenant: uuid.UUID | None, **params: object
) -> Sequence[Any]:
    return (await db.execute(statement, {"tenant": tenant, **params})).all()


async def overlapping_allocations(db: AsyncSession, tenant: uuid.UUID | None) -> list[Broken]:
    """Two live allocations of one seat of a resource that overlap, outside one group
    session (docs/capacity.md): the exclusion constraint makes this impossible, so one
    found means the constraint is gone or was bypassed."""
    return [
        Broken("no_double_booking", str(r.resource_id), f"bookings {r.one} and {r.other} overlap")
        for r in await _rows(db, OVERLAPS, tenant)
    ]


async def holds_past_expiry(
    db: AsyncSession, tenant: uuid.UUID | None, lapsed: datetime
) -> list[Broken]:
    """A hold still live after its expiry (less a grace): it blocks a slot nobody bought."""
    return [
        Broken(
            "holds_expire",
            str(r.booking_id),
            f"hold on resource {r.resource_id} expired at {r.hold_expires_at.isoformat()}",
        )
        for r in await _rows(db, HOLDS_PAST_EXPIRY, tenant, lapsed=lapsed)
    ]


async def final_with_live_allocations(
    db: AsyncSession, tenant: uuid.UUID | None, settled: datetime
) -> list[Broken]:
    """A booking that ended (cancelled, expired, failed, ...) but still holds a resource."""
    return [
        Broken("final_frees_resources", str(r.id), f"{r.status} but holds {r.resource_id}")
        for r in await _rows(db, FINAL_WITH_LIVE_ALLOCATIONS, tenant, settled=settled)
    ]


async def paid_bookings(
    db: AsyncSession, tenant: uuid.UUID | None, settled: datetime
) -> Sequence[Any]:
    """Settled bookings with a payment, for the money rules (invariants.py)."""
    return await _rows(db, PAID_BOOKINGS, tenant, settled=settled)


async def undelivered(
    db: AsyncSession, tenant: uuid.UUID | None, settled: datetime
) -> list[Broken]:
    """Messages and webhook deliveries neither delivered nor visibly failing: queued
    since before `settled` with no attempt's error recorded, so no one can see why."""
    found = [
        Broken(
            "messages_delivered_or_failed",
            str(r.id),
            f"{r.channel} for booking {r.booking_id} queued, {r.attempts} attempts, no error",
        )
        for r in await _rows(db, UNDELIVERED_NOTIFICATIONS, tenant, settled=settled)
    ]
    return found + [
        Broken(
            "webhooks_delivered_or_failed",
            str(r.id),
            f"delivery to endpoint {r.endpoint_id} pending, {r.attempts} attempts, no error",
        )
        for r in await _rows(db, UNDELIVERED_WEBHOOKS, tenant, settled=settled)
    ]


async def booking_statuses(
    db: AsyncSession, tenant: uuid.UUID | None, settled: datetime, limit: int
) -> Sequence[Any]:
    """The newest settled bookings' rows (id, status, workflow id), to compare with their
    workflows."""
    return await _rows(db, BOOKING_STATUSES, tenant, settled=settled, limit=limit)
