"""Local wall-clock times to instants, cached: resources share zones, dates and hours."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 1440


@lru_cache(maxsize=1 << 16)
def local_instant(tz_name: str, day_ordinal: int, minute: int) -> int:
    """Epoch seconds of `minute` past local midnight (wall clock) on a date.

    Minute 1440 is the next midnight. A wall time skipped by a DST jump resolves with
    the offset in force before the jump (PEP 495 `fold=0`), so 02:30 on a spring-forward
    night is 03:30 daylight time.
    """
    day = date.fromordinal(day_ordinal) + timedelta(days=minute // MINUTES_PER_DAY)
    minute %= MINUTES_PER_DAY
    wall = datetime(
        day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=ZoneInfo(tz_name)
    )
    return int(wall.timestamp())


def local_date(tz_name: str, instant: int) -> date:
    return datetime.fromtimestamp(instant, ZoneInfo(tz_name)).date()
