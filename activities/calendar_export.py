"""Make a booking's calendar events match the booking (docs/calendars.md#export): one
event on each exporting calendar of its resources while it is confirmed, none once it is
final or being undone, and none on a calendar whose resource it left.

Idempotent end to end: each event's id (Google) or transactionId (Graph) derives from the
booking and the calendar, so a retry after the provider answered finds the event instead
of adding one; each calendar's outcome is recorded before the next is tried, so a retry
skips what already matches. One calendar failing does not stop the others: a refused
credential marks its connection, a throttled provider makes the whole step retry after
the provider's delay, a refused request marks that event failed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

from temporalio import activity

from activities.calendar_access import CalendarAccess
from activities.calendar_clients import (
    CalendarRefused,
    CalendarThrottled,
    CredentialRefused,
    EventContent,
    retry_later,
)
from activities.worker_loop import WorkerLoop
from contract import ConnectionStatus, ExportRequest, ExportStatus
from db import calendar_connections as connections
from db import calendar_events
from db.calendar_events import ExportPlan, Shown
from db.models import CalendarConnection, CalendarEvent
from db.sessions import Sessions

_REAUTH = "the calendar connection needs its credential renewed"


@dataclass
class _Outcome:
    throttled: list[CalendarThrottled]
    changed: int = 0


class CalendarExportActivities:
    def __init__(self, sessions: Sessions, loop: WorkerLoop, access: CalendarAccess) -> None:
        self._sessions = sessions
        self._loop = loop
        self._access = access

    @activity.defn(name="export_calendar_events")
    def export(self, request: ExportRequest) -> int:
        """Returns how many calendars changed; raises to be retried while a provider is
        throttled."""
        plan = self._loop.run(self._plan(request))
        if plan is None:
            return 0
        outcome = _Outcome([])
        wanted = {c.id for c in plan.wanted}
        calendars = {(c.provider, c.calendar_id) for c in plan.wanted}
        if plan.show is not None:
            for connection in plan.wanted:
                self._show(plan.show, connection, plan.rows.get(connection.id), outcome)
        for connection_id, row in plan.rows.items():
            left = plan.connections.get(connection_id)
            if connection_id in wanted or left is None:
                continue
            if (left.provider, left.calendar_id) in calendars:
                # The same calendar, now shown through another connection (its event
                # found under the same key): handed over, not deleted.
                self._mark(request.booking_id, left, ExportStatus.DELETED, last_error=None)
                continue
            self._remove(request.booking_id, left, row, outcome)
        if outcome.throttled:
            raise retry_later(outcome.throttled)
        return outcome.changed

    def _show(
        self,
        show: Shown,
        connection: CalendarConnection,
        row: CalendarEvent | None,
        outcome: _Outcome,
    ) -> None:
        settled = (ExportStatus.WRITTEN, ExportStatus.DELETED_BY_HAND, ExportStatus.FAILED)
        if row is not None and row.fingerprint == show.fingerprint and row.status in settled:
            return  # shows it already, or someone removed it and it has not changed since
        content = EventContent(
            show.booking_id,
            f"holdfast:{show.booking_id}:{connection.calendar_id}",
            show.summary,
            show.description,
            show.start,
            show.end,
        )

        def put() -> None:
            with closing(self._access.client(connection)) as client:
                written = client.put_event(
                    content,
                    row.external_id if row else None,
                    row.generation if row else 0,
                )
            self._mark(
                show.booking_id,
                connection,
                ExportStatus.WRITTEN,
                external_id=written.external_id,
                generation=written.generation,
                fingerprint=show.fingerprint,
                last_error=None,
            )

        self._call(show.booking_id, connection, put, outcome, fingerprint=show.fingerprint)

    def _remove(
        self, booking_id: str, connection: CalendarConnection, row: CalendarEvent, outcome: _Outcome
    ) -> None:
        if row.status in (ExportStatus.DELETED, ExportStatus.DELETED_BY_HAND):
            return
        external_id = row.external_id
        if external_id is None:  # never written: nothing to delete
            self._mark(booking_id, connection, ExportStatus.DELETED, last_error=None)
            return
        # Pending first: a sync that sees this delete must not take it for one by hand.
        self._mark(booking_id, connection, ExportStatus.PENDING)

        def delete() -> None:
            with closing(self._access.client(connection)) as client:
                client.delete_event(external_id)
            self._mark(booking_id, connection, ExportStatus.DELETED, last_error=None)

        self._call(booking_id, connection, delete, outcome)

    def _call(
        self,
        booking_id: str,
        connection: CalendarConnection,
        step: Callable[[], None],
        outcome: _Outcome,
        **pending: object,
    ) -> None:
        """Run one calendar's step; its failure is recorded on its event, not raised."""
        if connection.status == ConnectionStatus.REAUTH_REQUIRED:
            self._mark(booking_id, connection, ExportStatus.PENDING, last_error=_REAUTH)
            return
        try:
            step()
            outcome.changed += 1
            return
        except CredentialRefused as refused:
            self._loop.run(self._refused(connection, str(refused)))
            status, error = ExportStatus.PENDING, f"{_REAUTH}: {refused}"
        except CalendarThrottled as busy:
            outcome.throttled.append(busy)
            status, error = ExportStatus.PENDING, str(busy)
        except CalendarRefused as refused:
            status, error = ExportStatus.FAILED, str(refused)
        self._mark(booking_id, connection, status, last_error=error, **pending)

    def _mark(
        self,
        booking_id: str,
        connection: CalendarConnection,
        status: ExportStatus,
        **values: object,
    ) -> None:
        self._loop.run(self._save(booking_id, connection, status, values))

    # ---- database steps, on the worker's loop ---------------------------------------

    async def _plan(self, request: ExportRequest) -> ExportPlan | None:
        async with self._sessions.autocommit() as db:
            return await calendar_events.plan(db, request.booking_id, remove=request.remove)

    async def _save(
        self,
        booking_id: str,
        connection: CalendarConnection,
        status: ExportStatus,
        values: dict[str, object],
    ) -> None:
        async with self._sessions.autocommit() as db:
            await calendar_events.mark(db, booking_id, connection, status, **values)

    async def _refused(self, connection: CalendarConnection, error: str) -> None:
        async with self._sessions.transaction() as db:
            await connections.record_refused(db, connection.id, error)
            await db.commit()
