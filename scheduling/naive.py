"""Reference availability: test every minute, resource and busy span directly.

Slow on purpose and written from the rules, not from the engine's interval algebra: the
property tests use it as an oracle and `make bench` as the baseline the engine must beat.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import product

from scheduling.clock import local_date, local_instant
from scheduling.engine import (
    FreeSlot,
    ResourceSchedule,
    ServiceRules,
    SlotQuery,
    bookable_window,
    requirement_options,
)
from scheduling.intervals import overlap_seconds


def naive_slots(
    rules: ServiceRules, resources: Sequence[ResourceSchedule], query: SlotQuery
) -> list[FreeSlot]:
    lo, hi = bookable_window(rules, query)
    if not rules.requirements:
        return []
    options = requirement_options(rules, resources, query)
    load = {i: overlap_seconds(r.busy, lo, hi + rules.duration) for i, r in enumerate(resources)}
    for opts in options:
        opts.sort(key=lambda i: (load[i], resources[i].name, resources[i].id))
    slots: list[FreeSlot] = []
    minute = -(-lo // 60) * 60
    for start in range(minute, hi, 60):
        if not _on_grid(rules, start):
            continue
        free = [[i for i in opts if _can_serve(rules, resources[i], start)] for opts in options]
        for combo in product(*free):
            locations = {resources[i].location_id for i in combo} - {None}
            if len(set(combo)) == len(combo) and len(locations) <= 1:
                slots.append(
                    FreeSlot(start, start + rules.duration, tuple(resources[i] for i in combo))
                )
                break
        if query.limit is not None and len(slots) >= query.limit:
            break
    return slots


def _on_grid(rules: ServiceRules, start: int) -> bool:
    midnight = local_instant(rules.timezone, local_date(rules.timezone, start).toordinal(), 0)
    return (start - midnight) % rules.interval == 0


def _can_serve(rules: ServiceRules, res: ResourceSchedule, start: int) -> bool:
    end = start + rules.duration
    inside = any(
        w_start <= start and end <= w_end
        for w_start, w_end in res.hours.spans(res.timezone, start, end)
    )
    widened_start, widened_end = start - rules.buffer_before, end + rules.buffer_after
    clear = all(b_end <= widened_start or b_start >= widened_end for b_start, b_end in res.busy)
    return inside and clear
