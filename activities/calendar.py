"""Calendar steps of the saga: write a booking's events into its resources' external
calendars, and delete them again. Event ids derive from the booking id, so a retry
rewrites the same event instead of adding one."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from temporalio import activity

from contract import Slot


@dataclass(frozen=True)
class CalendarCall:
    booking_id: str
    tenant_id: str
    title: str
    slot: Slot


class CalendarProvider(Protocol):
    """`connected` answers from our own records (which resources have a calendar linked):
    async, as it runs beside the claim on the path a caller waits on. The writes call the
    calendar services' sync clients, on the worker's thread pool."""

    async def connected(self, resource_ids: list[str]) -> bool: ...
    def upsert(self, call: CalendarCall) -> int: ...
    def delete(self, call: CalendarCall) -> int: ...


class NoCalendars:
    """The provider while no resource is connected to an external calendar: nothing to
    write, and it says so (0 events)."""

    async def connected(self, resource_ids: list[str]) -> bool:
        return False

    def upsert(self, call: CalendarCall) -> int:
        return 0

    def delete(self, call: CalendarCall) -> int:
        return 0


class CalendarActivities:
    def __init__(self, provider: CalendarProvider) -> None:
        self._provider = provider

    @activity.defn(name="calendars_connected")
    async def connected(self, resource_ids: list[str]) -> bool:
        """Whether any of these resources has a calendar: a booking without one skips the
        calendar steps."""
        return await self._provider.connected(resource_ids)

    @activity.defn(name="sync_calendar_events")
    def sync(self, call: CalendarCall) -> int:
        return self._provider.upsert(call)

    @activity.defn(name="delete_calendar_events")
    def delete(self, call: CalendarCall) -> int:
        return self._provider.delete(call)
