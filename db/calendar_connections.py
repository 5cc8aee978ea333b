"""Calendar connections (docs/calendars.md#connections): their rows, what the API shows
of them, and the status changes a sync makes. The credential is sealed before it is
stored (db/encryption.py) and only the worker opens it."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import CONNECTION_BROKEN, ConnectionStatus
from db import external_busy
from db.history import webhook_body
from db.ids import new_id
from db.models import CalendarConnection, Service, WebhookEvent
from encryption import Keyring

_BROKEN = uuid.UUID("9b2f3c1e-58a4-4d0e-9d61-1f6a2b7c9e40")


def view(row: CalendarConnection) -> dict[str, Any]:
    """What the API and webhooks show: never the credential, the cursor or the channel."""
    return {
        "id": str(row.id),
        "resource_id": str(row.resource_id),
        "provider": row.provider,
        "calendar_id": row.calendar_id,
        "import_busy": row.import_busy,
        "export_events": row.export_events,
        "status": row.status,
        "last_synced_at": row.last_synced_at.isoformat() if row.last_synced_at else None,
        "last_error": row.last_error,
        "created_at": row.created_at.isoformat() if row.created_at else None,
    }


async def create(
    db: AsyncSession,
    keyring: Keyring,
    *,
    tenant_id: uuid.UUID,
    resource_id: uuid.UUID,
    provider: str,
    calendar_id: str,
    credentials: dict[str, Any],
    import_busy: bool,
    export_events: bool,
) -> CalendarConnection:
    """Insert (not committed): the caller starts its workflow, then commits."""
    id_ = new_id()
    row = CalendarConnection(
        id=id_,
        tenant_id=tenant_id,
        resource_id=resource_id,
        provider=provider,
        calendar_id=calendar_id,
        credentials=keyring.seal(credentials, str(id_)),
        import_busy=import_busy,
        export_events=export_events,
        status=ConnectionStatus.SYNCING,
    )
    db.add(row)
    await db.flush()
    await db.refresh(row)
    return row


async def of_resource(
    db: AsyncSession, tenant_id: uuid.UUID, resource_id: uuid.UUID
) -> list[CalendarConnection]:
    rows = await db.scalars(
        select(CalendarConnection)
        .where(
            CalendarConnection.tenant_id == tenant_id,
            CalendarConnection.resource_id == resource_id,
        )
        .order_by(CalendarConnection.created_at, CalendarConnection.id)
    )
    return list(rows)


async def find(
    db: AsyncSession, tenant_id: uuid.UUID, resource_id: uuid.UUID, connection_id: uuid.UUID
) -> CalendarConnection | None:
    return await db.scalar(
        select(CalendarConnection).where(
            CalendarConnection.id == connection_id,
            CalendarConnection.tenant_id == tenant_id,
            CalendarConnection.resource_id == resource_id,
        )
    )


async def by_channel(db: AsyncSession, channel_id: str) -> CalendarConnection | None:
    return await db.scalar(
        select(CalendarConnection).where(CalendarConnection.channel_id == channel_id)
    )


def channel_token_digest(token: str) -> str:
    """Push tokens are stored as digests: the API compares, nobody needs them back."""
    return hashlib.sha256(token.encode()).hexdigest()


async def disable(db: AsyncSession, row: CalendarConnection) -> None:
    """Deleted by the tenant: it stops blocking slots at once (its busy time goes in this
    transaction) and takes no more exports; its workflow then stops the push channel and
    removes the row (`remove`)."""
    row.status, row.updated_at = ConnectionStatus.DISABLED, func.now()
    await external_busy.clear(db, target(row))


async def remove(db: AsyncSession, connection_id: uuid.UUID) -> None:
    row = await db.get(CalendarConnection, connection_id)
    if row is None:
        return
    await external_busy.clear(db, target(row))
    await db.delete(row)


def target(row: CalendarConnection) -> external_busy.Target:
    """Where the connection's busy time goes."""
    return external_busy.Target(row.tenant_id, row.resource_id, row.id, row.provider)


async def horizon_days(db: AsyncSession, tenant_id: uuid.UUID) -> int:
    """How far ahead the tenant's services book: the import window."""
    days = await db.scalar(
        select(func.max(Service.max_advance_days)).where(
            Service.tenant_id == tenant_id, Service.active.is_(True)
        )
    )
    return int(days or 90)


async def record_synced(
    db: AsyncSession, connection_id: uuid.UUID, cursor: str, window_end: datetime
) -> str:
    """`active` with its new cursor; returns the status it had, read under its lock (a
    disabled connection stays so)."""
    row = await db.get(CalendarConnection, connection_id, with_for_update=True)
    if row is None:
        return ConnectionStatus.DISABLED
    was = row.status
    if was != ConnectionStatus.DISABLED:
        row.status, row.sync_cursor, row.window_end = ConnectionStatus.ACTIVE, cursor, window_end
        row.last_synced_at, row.last_error, row.updated_at = func.now(), None, func.now()
        await db.flush()
    return was


async def record_error(db: AsyncSession, connection_id: uuid.UUID, error: str) -> None:
    """A failure that may pass (the provider throttled, or refused one request): the
    status stands, the error shows."""
    await db.execute(
        update(CalendarConnection)
        .where(CalendarConnection.id == connection_id)
        .values(last_error=error, updated_at=func.now())
    )


async def record_refused(db: AsyncSession, connection_id: uuid.UUID, error: str) -> bool:
    """The provider refused the credential: `reauth_required`, announced once per break
    (a `calendar_connection.broken` webhook event). Returns whether it just broke."""
    row = await db.get(CalendarConnection, connection_id, with_for_update=True)
    if row is None or row.status == ConnectionStatus.DISABLED:
        return False
    if row.status == ConnectionStatus.REAUTH_REQUIRED:
        row.last_error = error
        return False
    row.status, row.last_error, row.updated_at = ConnectionStatus.REAUTH_REQUIRED, error, func.now()
    await db.flush()
    await db.refresh(row)
    broke_at = row.last_synced_at or row.created_at
    id_ = uuid.uuid5(_BROKEN, f"{row.id}:{broke_at.isoformat()}")
    body = webhook_body(CONNECTION_BROKEN, datetime.now(UTC), {"calendar_connection": view(row)})
    await db.execute(
        insert(WebhookEvent)
        .values(id=id_, tenant_id=row.tenant_id, type=CONNECTION_BROKEN, payload=body)
        .on_conflict_do_nothing(index_elements=["id"])
    )
    return True


async def save_channel(
    db: AsyncSession, connection_id: uuid.UUID, channel: dict[str, Any] | None
) -> None:
    await db.execute(
        update(CalendarConnection)
        .where(CalendarConnection.id == connection_id)
        .values(channel=channel, channel_id=channel["id"] if channel else None)
    )


async def channel_due(db: AsyncSession, connection_id: uuid.UUID) -> None:
    """The provider asks for the channel to be renewed now (Graph's
    `reauthorizationRequired`): it is made due, so the next sync renews it."""
    await db.execute(
        update(CalendarConnection)
        .where(CalendarConnection.id == connection_id, CalendarConnection.channel.is_not(None))
        .values(
            channel=CalendarConnection.channel.op("||")(
                func.jsonb_build_object("expires_at", datetime.now(UTC).isoformat())
            )
        )
    )
