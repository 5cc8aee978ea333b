"""The benchmark clinic: 100 resources (50 staff, 40 rooms, 10 devices), ~2,000 bookings'
allocations over one week, a staff + room service. Seeded, so every run sees the same."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

TZ = "Europe/Berlin"
WEEK_HOURS = {
    **{d: [["08:00", "12:30"], ["13:00", "18:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
    "sat": [["09:00", "13:00"]],
}


@dataclass
class BenchResource:
    name: str
    kind: str
    tags: list[str]
    # Allocations (already widened by buffers) as epoch-second spans.
    busy: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class Dataset:
    week_start: datetime
    week_end: datetime
    resources: list[BenchResource]

    @property
    def allocation_count(self) -> int:
        return sum(len(r.busy) for r in self.resources)


def next_monday(today: date) -> datetime:
    monday = today + timedelta(days=7 - today.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=ZoneInfo(TZ))


def build(today: date | None = None, seed: int = 7) -> Dataset:
    rng = random.Random(seed)
    start = next_monday(today or datetime.now(UTC).date())
    end = start + timedelta(days=7)
    resources = (
        [BenchResource(f"Staff {i:02d}", "staff", ["clinician"]) for i in range(50)]
        + [BenchResource(f"Room {i:02d}", "room", ["treatment"]) for i in range(40)]
        + [BenchResource(f"Device {i:02d}", "asset", ["device"]) for i in range(10)]
    )
    # ~2,000 allocations: each of the 90 staff and rooms gets ~22 over the week's days.
    for res in resources[:90]:
        for day in range(6):
            cursor = int((start + timedelta(days=day, hours=8)).timestamp())
            for _ in range(4 if day < 5 else 2):
                cursor += rng.choice((0, 15, 30, 45, 60)) * 60
                length = rng.choice((30, 45, 60, 85)) * 60
                res.busy.append((cursor, cursor + length))
                cursor += length
    return Dataset(start, end, resources)
