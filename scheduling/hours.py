"""Working hours: a weekly pattern plus per-date overrides, in a resource's own timezone."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta

from scheduling.clock import local_date, local_instant
from scheduling.intervals import Span, merge

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")

# A day's opening hours as minutes past local midnight, e.g. ((540, 720), (780, 1020)).
DayHours = tuple[tuple[int, int], ...]


class HoursError(ValueError):
    """Malformed hours; the message names the offending value."""


def parse_clock(value: str) -> int:
    if not _HHMM.match(value):
        raise HoursError(f"{value!r} is not a time of day HH:MM (00:00 to 24:00)")
    hours, minutes = value.split(":")
    return int(hours) * 60 + int(minutes)


def parse_day(blocks: Sequence[Sequence[str]]) -> DayHours:
    """Parse `[["09:00","12:00"], ...]`: each block ordered, blocks sorted and disjoint."""
    parsed: list[tuple[int, int]] = []
    for block in blocks:
        if len(block) != 2:
            raise HoursError(f"{list(block)!r} must be a pair [start, end]")
        start, end = parse_clock(block[0]), parse_clock(block[1])
        if end <= start:
            raise HoursError(f"{list(block)!r} must end after it starts")
        if parsed and start < parsed[-1][1]:
            raise HoursError(f"{list(block)!r} overlaps or precedes the block before it")
        parsed.append((start, end))
    return tuple(parsed)


@dataclass(frozen=True, slots=True)
class WorkingHours:
    """Weekly pattern (index 0 = Monday) with dated overrides; a missing weekday is closed."""

    weekly: tuple[DayHours, ...] = ((),) * 7
    overrides: Mapping[date, DayHours] = field(default_factory=dict)

    def day(self, day: date) -> DayHours:
        found = self.overrides.get(day)
        return found if found is not None else self.weekly[day.weekday()]

    def spans(self, tz_name: str, lo: int, hi: int) -> list[Span]:
        """Merged working spans touching `[lo, hi)`, computed date by date in local time."""
        first = local_date(tz_name, lo) - timedelta(days=1)
        last = local_date(tz_name, hi)
        out: list[Span] = []
        day = first
        while day <= last:
            ordinal = day.toordinal()
            for start, end in self.day(day):
                out.append(
                    (local_instant(tz_name, ordinal, start), local_instant(tz_name, ordinal, end))
                )
            day += timedelta(days=1)
        return merge(out)


def working_hours_from_json(
    weekly: Mapping[str, Sequence[Sequence[str]]],
    overrides: Sequence[Mapping[str, object]],
) -> WorkingHours:
    """Build from the API/storage shape; raises HoursError with a precise message."""
    unknown = set(weekly) - set(WEEKDAYS)
    if unknown:
        raise HoursError(f"unknown weekday {sorted(unknown)[0]!r}; use {', '.join(WEEKDAYS)}")
    pattern = tuple(parse_day(weekly.get(name, ())) for name in WEEKDAYS)
    dated: dict[date, DayHours] = {}
    for item in overrides:
        day = item["date"]
        day = date.fromisoformat(day) if isinstance(day, str) else day
        if not isinstance(day, date):
            raise HoursError(f"override date {day!r} is not a date")
        if day in dated:
            raise HoursError(f"date {day.isoformat()} is overridden twice")
        hours = item.get("hours", [])
        if not isinstance(hours, list):
            raise HoursError("override hours must be a list of [start, end] pairs")
        dated[day] = parse_day(hours)
    return WorkingHours(weekly=pattern, overrides=dated)
