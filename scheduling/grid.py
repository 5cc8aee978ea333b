"""The slot grid: starts every `interval` of elapsed time from local midnight, day by day."""

from __future__ import annotations

from datetime import timedelta

from scheduling.clock import local_date, local_instant


def grid_starts(tz_name: str, interval: int, lo: int, hi: int) -> list[int]:
    """Grid instants in `[lo, hi)`; the count restarts at each local midnight.

    Counting elapsed time (not wall time) means a 23- or 25-hour DST day simply has one
    hour fewer or more of starts: none vanish, none repeat.
    """
    out: list[int] = []
    day = local_date(tz_name, lo)
    while True:
        midnight = local_instant(tz_name, day.toordinal(), 0)
        if midnight >= hi:
            return out
        next_midnight = local_instant(tz_name, day.toordinal() + 1, 0)
        first = (
            midnight if midnight >= lo else midnight + -(-(lo - midnight) // interval) * interval
        )
        out.extend(range(first, min(next_midnight, hi), interval))
        day += timedelta(days=1)
