"""The saga's calendar steps (docs/calendars.md#export): whether a booking has calendars
to write, and asking its calendar export workflow to make them match the booking. The
saga never waits on a provider: the export runs in a workflow of its own, outside the
booking's lock, retrying for as long as a provider needs.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import exists, select
from temporalio import activity
from temporalio.client import Client

from contract import (
    ConnectionStatus,
    ExportRequest,
    Slot,
    delivery_task_queue,
    export_workflow_id,
)
from db.models import CalendarConnection
from db.sessions import Sessions

EXPORT_WORKFLOW, EXPORT_SIGNAL = "CalendarExport", "changed"


@dataclass(frozen=True)
class CalendarCall:
    booking_id: str
    tenant_id: str
    title: str
    slot: Slot


class CalendarRequests(Protocol):
    """`connected` runs beside the claim, on the path a caller waits on; `request` hands
    the booking to its export workflow."""

    async def connected(self, resource_ids: list[str]) -> bool: ...
    async def request(self, call: CalendarCall, *, remove: bool) -> None: ...


class ExportRequests:
    """Connections from the database; requests by signal-with-start (which joins a
    running workflow), so one export workflow runs per booking at a time and a change
    reaching a running one makes it go again."""

    def __init__(self, sessions: Sessions, task_queue: str) -> None:
        self._sessions = sessions
        self._task_queue = delivery_task_queue(task_queue)

    async def connected(self, resource_ids: list[str]) -> bool:
        async with self._sessions.autocommit() as db:
            found = await db.scalar(
                select(
                    exists().where(
                        CalendarConnection.resource_id.in_([uuid.UUID(r) for r in resource_ids]),
                        CalendarConnection.export_events.is_(True),
                        CalendarConnection.status != ConnectionStatus.DISABLED,
                    )
                )
            )
        return bool(found)

    async def request(self, call: CalendarCall, *, remove: bool) -> None:
        await request_export(activity.client(), self._task_queue, call.booking_id, remove=remove)


async def request_export(
    client: Client, delivery_queue: str, booking_id: str, *, remove: bool = False
) -> None:
    """Signal-with-start the booking's export workflow (on the delivery queue)."""
    await client.start_workflow(
        EXPORT_WORKFLOW,
        booking_id,
        id=export_workflow_id(booking_id),
        task_queue=delivery_queue,
        start_signal=EXPORT_SIGNAL,
        start_signal_args=[ExportRequest(booking_id, remove)],
        static_summary=f"calendar events of booking {booking_id}",
    )


class CalendarActivities:
    def __init__(self, requests: CalendarRequests) -> None:
        self._requests = requests

    @activity.defn(name="calendars_connected")
    async def connected(self, resource_ids: list[str]) -> bool:
        """Whether any of these resources has a calendar to write: a booking without one
        skips the calendar steps."""
        return await self._requests.connected(resource_ids)

    @activity.defn(name="sync_calendar_events")
    async def sync(self, call: CalendarCall) -> None:
        """Show the booking as it is now on its calendars."""
        await self._requests.request(call, remove=False)

    @activity.defn(name="delete_calendar_events")
    async def delete(self, call: CalendarCall) -> None:
        """Take the booking off its calendars (cancelled, undone, no-show)."""
        await self._requests.request(call, remove=True)
