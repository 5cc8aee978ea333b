"""Small builders so engine tests read as wall-clock statements."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from scheduling.engine import FreeSlot, ResourceSchedule
from scheduling.hours import WEEKDAYS, WorkingHours, working_hours_from_json


def at(local: str, tz: str = "UTC") -> int:
    """Epoch seconds of a wall-clock time, e.g. at("2026-03-09T09:00", "America/Chicago")."""
    return int(datetime.fromisoformat(local).replace(tzinfo=ZoneInfo(tz)).timestamp())


def wall(instant: int, tz: str = "UTC") -> str:
    return datetime.fromtimestamp(instant, ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M")


def every_day(
    *blocks: tuple[str, str], overrides: list[dict[str, object]] | None = None
) -> WorkingHours:
    return working_hours_from_json(
        {d: [list(b) for b in blocks] for d in WEEKDAYS}, overrides or []
    )


def resource(
    rid: str,
    kind: str = "staff",
    *,
    tz: str = "UTC",
    hours: WorkingHours | None = None,
    tags: tuple[str, ...] = (),
    busy: tuple[tuple[int, int], ...] = (),
    location: str | None = None,
    capacity: int = 1,
    seat_busy: tuple[tuple[int, int, int], ...] = (),
    joinable: tuple[tuple[int, int, str], ...] = (),
) -> ResourceSchedule:
    return ResourceSchedule(
        id=rid,
        kind=kind,
        name=rid,
        timezone=tz,
        hours=hours if hours is not None else every_day(("09:00", "17:00")),
        tags=frozenset(tags),
        location_id=location,
        busy=busy,
        capacity=capacity,
        seat_busy=seat_busy,
        joinable=joinable,
    )


def starts(slots: list[FreeSlot], tz: str = "UTC") -> list[str]:
    return [wall(s.start, tz) for s in slots]


def chosen(slots: list[FreeSlot]) -> list[tuple[str, ...]]:
    return [tuple(r.id for r in s.resources) for s in slots]
