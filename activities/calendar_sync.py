"""A connection's sync (docs/calendars.md#import): the calendar's changes since the last
cursor become busy time, an event of ours removed by hand is recorded on its booking, and
the push channel is opened or renewed. Sync activities: the providers' clients block, so
they run on the worker's thread pool and hand their database steps to its loop.

A refused credential is an answer, not an error: the connection turns `reauth_required`
and the workflow waits for the next request. A throttled provider is retried by Temporal
after the provider's own delay.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession
from temporalio import activity
from temporalio.client import Client

from activities import metrics
from activities.calendar import request_export
from activities.calendar_access import CalendarAccess
from activities.calendar_clients import (
    CalendarClient,
    CalendarError,
    CalendarRefused,
    CalendarThrottled,
    Changes,
    Channel,
    CredentialRefused,
    retry_later,
)
from activities.worker_loop import WorkerLoop
from contract import ConnectionInput, ConnectionStatus
from db import calendar_connections as connections
from db import calendar_events, external_busy
from db.models import CalendarConnection
from db.sessions import Sessions

# The import window starts a day back (a booking today must see this morning's events)
# and ends `max_advance_days` ahead plus a margin. The cursor of a window stays in use
# until its end comes within a day of the horizon: then a full listing moves it on, so
# events that never change enter it too (about once a day).
_BEHIND, _MARGIN = timedelta(days=1), timedelta(days=2)
_CHANNEL_DAYS = timedelta(days=7)
_RENEW_WITHIN = timedelta(days=1)


@dataclass(frozen=True)
class SyncOutcome:
    """What the connection's workflow needs: its status, when to sync unprompted, and
    whether the connection is gone (deleted: the workflow winds down)."""

    status: str
    next_sync_seconds: int
    gone: bool = False
    error: str | None = None


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime
    horizon: datetime  # a cursor whose window ends before this is renewed


class CalendarSyncActivities:
    def __init__(
        self,
        sessions: Sessions,
        loop: WorkerLoop,
        access: CalendarAccess,
        temporal: Client,
        delivery_queue: str,
    ) -> None:
        """`temporal` and `delivery_queue`: where exports that waited on a refused
        credential are asked again once it works."""
        self._sessions = sessions
        self._loop = loop
        self._access = access
        self._temporal = temporal
        self._delivery_queue = delivery_queue

    @activity.defn(name="sync_calendar")
    @metrics.counts_calendar_sync
    def sync(self, request: ConnectionInput) -> SyncOutcome:
        row = self._loop.run(self._load(request.connection_id))
        if row is None or row.status == ConnectionStatus.DISABLED:
            return SyncOutcome(ConnectionStatus.DISABLED, 0, gone=True)
        window = self._loop.run(self._window(row))
        fresh = row.window_end is not None and row.window_end >= window.horizon
        try:
            with closing(self._access.client(row)) as client:
                changes = client.changes(
                    row.sync_cursor if fresh else None, window.start, window.end
                )
                was = self._loop.run(self._store(row, changes, window))
                pushed = self._keep_channel(client, row)
        except CredentialRefused as refused:
            self._loop.run(self._refused(row.id, str(refused)))
            return SyncOutcome(ConnectionStatus.REAUTH_REQUIRED, self._access.poll_seconds(False))
        except CalendarThrottled as busy:
            self._loop.run(self._error(row.id, str(busy)))
            raise retry_later([busy]) from None
        except CalendarRefused as refused:
            self._loop.run(self._error(row.id, str(refused)))
            return SyncOutcome(row.status, self._access.poll_seconds(False), error=str(refused))
        if row.last_synced_at is None and row.export_events:  # its first sync
            self._loop.run(self._ask_exports(row, calendar_events.upcoming_of))
        elif was == ConnectionStatus.REAUTH_REQUIRED:  # it works again
            self._loop.run(self._ask_exports(row, calendar_events.waiting_on))
        return SyncOutcome(ConnectionStatus.ACTIVE, self._access.poll_seconds(pushed))

    @activity.defn(name="disconnect_calendar")
    def disconnect(self, request: ConnectionInput) -> None:
        """The connection was deleted: stop its pushes (best effort: a channel lapses on
        its own within days) and remove its row, with its busy time."""
        row = self._loop.run(self._load(request.connection_id))
        if row is None:
            return
        if row.channel:
            try:
                with closing(self._access.client(row)) as client:
                    client.unwatch(_channel(row, ""))
            except CalendarError as failed:
                activity.logger.info("connection %s: channel left to lapse (%s)", row.id, failed)
        self._loop.run(self._remove(row.id))

    # ---- the push channel -----------------------------------------------------------

    def _keep_channel(self, client: CalendarClient, row: CalendarConnection) -> bool:
        """Open or renew the push channel when this deployment has a public address;
        returns whether pushes arrive. A token is fresh for each new channel and only its
        digest is stored (the API compares)."""
        address = self._access.push_address(row.provider)
        now = datetime.now(UTC)
        if address is None:
            if row.channel:
                client.unwatch(_channel(row, ""))
                self._loop.run(self._save_channel(row.id, None, ""))
            return False
        expires = now + _CHANNEL_DAYS
        token = secrets.token_urlsafe(32)
        digest = connections.channel_token_digest(token)
        if not row.channel:
            opened = client.watch(address, str(uuid.uuid4()), token, expires)
        elif datetime.fromisoformat(row.channel["expires_at"]) - now < _RENEW_WITHIN:
            opened = client.renew(_channel(row, token), address, expires)
            if opened.id == row.channel["id"]:  # extended in place: the old token stands
                digest = row.channel["token_digest"]
        else:
            return True
        self._loop.run(self._save_channel(row.id, opened, digest))
        return True

    # ---- database steps, on the worker's loop ---------------------------------------

    async def _load(self, connection_id: str) -> CalendarConnection | None:
        async with self._sessions.autocommit() as db:
            return await db.get(CalendarConnection, uuid.UUID(connection_id))

    async def _window(self, row: CalendarConnection) -> _Window:
        async with self._sessions.autocommit() as db:
            days = await connections.horizon_days(db, row.tenant_id)
        now = datetime.now(UTC)
        horizon = now + timedelta(days=days)
        return _Window(now - _BEHIND, horizon + _MARGIN, horizon + timedelta(days=1))

    async def _store(self, row: CalendarConnection, changes: Changes, window: _Window) -> str:
        """Busy time and the cursor in one transaction; returns the status the connection
        had (read under its lock, so a refusal recorded meanwhile is not lost). Events of
        ours someone removed are recorded after, in a transaction of their own, as they
        lock bookings, which must not wait behind the resource lock taken here."""
        marked = {e.id: e.holdfast_booking for e in changes.events}
        async with self._sessions.transaction() as db:
            ours = await calendar_events.showing_resource(db, row, marked)
            busy = [
                external_busy.Busy(e.id, e.start, e.end)
                for e in changes.events
                if row.import_busy
                and e.busy
                and e.id not in ours
                and e.start
                and e.end
                and e.start < e.end
            ]
            taken = {b.external_id for b in busy}
            gone = [e.id for e in changes.events if e.id not in taken]
            await external_busy.apply(db, connections.target(row), busy, gone, full=changes.full)
            was = await connections.record_synced(db, row.id, changes.cursor, window.end)
            await db.commit()
        removed = [e.id for e in changes.events if e.removed]
        if removed:
            async with self._sessions.transaction() as db:
                await calendar_events.deleted_by_hand(db, row, removed)
                await db.commit()
        return was

    async def _ask_exports(
        self,
        row: CalendarConnection,
        which: Callable[[AsyncSession, CalendarConnection], Awaitable[list[str]]],
    ) -> None:
        """Hand bookings to their export workflows: on a first sync, the resource's
        upcoming ones (booked before the calendar was connected); once a refused
        credential works again, those whose export waited on it."""
        async with self._sessions.autocommit() as db:
            bookings = await which(db, row)
        for booking_id in bookings:
            await request_export(self._temporal, self._delivery_queue, booking_id)

    async def _refused(self, connection_id: uuid.UUID, error: str) -> None:
        async with self._sessions.transaction() as db:
            await connections.record_refused(db, connection_id, error)
            await db.commit()

    async def _error(self, connection_id: uuid.UUID, error: str) -> None:
        async with self._sessions.autocommit() as db:
            await connections.record_error(db, connection_id, error)

    async def _save_channel(
        self, connection_id: uuid.UUID, channel: Channel | None, digest: str
    ) -> None:
        saved = None
        if channel is not None:
            saved = {
                "id": channel.id,
                "resource_id": channel.resource_id,
                "expires_at": channel.expires_at.isoformat(),
                "token_digest": digest,
            }
        async with self._sessions.autocommit() as db:
            await connections.save_channel(db, connection_id, saved)

    async def _remove(self, connection_id: uuid.UUID) -> None:
        async with self._sessions.transaction() as db:
            await connections.remove(db, connection_id)
            await db.commit()


def _channel(row: CalendarConnection, token: str) -> Channel:
    assert row.channel is not None
    return Channel(
        row.channel["id"],
        row.channel["resource_id"],
        token,
        datetime.fromisoformat(row.channel["expires_at"]),
    )
