"""Availability: every start at which a service's requirements can all be met at once.

Per resource, the set of feasible *start instants* is computed as intervals (working
spans shrunk by the duration, minus busy spans widened by duration and buffers), then
mapped onto the service grid as a bitmask. Requirements combine with integer OR/AND, so
only grid points that survive need a per-slot resource choice.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from scheduling.grid import grid_starts
from scheduling.hours import WorkingHours
from scheduling.intervals import Span, merge, overlap_seconds, subtract
from scheduling.matching import assign

DAY = 86_400


@dataclass(frozen=True, slots=True)
class Requirement:
    """One resource the service needs; empty filters match everything of the kind."""

    kind: str
    tags_any: frozenset[str] = frozenset()
    tags_all: frozenset[str] = frozenset()
    resource_ids: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ServiceRules:
    """A service's timing rules, all in seconds except `max_advance_days`."""

    timezone: str
    duration: int
    interval: int
    requirements: tuple[Requirement, ...]
    buffer_before: int = 0
    buffer_after: int = 0
    min_notice: int = 0
    max_advance_days: int = 365


@dataclass(frozen=True, slots=True)
class ResourceSchedule:
    """A resource and everything that blocks it (time off, external busy, other bookings'
    buffer-widened allocations, live holds) as merged or unmerged epoch spans."""

    id: str
    kind: str
    name: str
    timezone: str
    hours: WorkingHours
    tags: frozenset[str] = frozenset()
    location_id: str | None = None
    busy: Sequence[Span] = ()


@dataclass(frozen=True, slots=True)
class SlotQuery:
    range_start: int
    range_end: int
    now: int
    pinned: frozenset[str] = field(default_factory=frozenset)
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class FreeSlot:
    """A start the engine found free, with the resources it would use. What a booking
    then holds is its `Slot` (contract.py)."""

    start: int
    end: int
    resources: tuple[ResourceSchedule, ...]


def candidates(requirement: Requirement, resources: Sequence[ResourceSchedule]) -> list[int]:
    """Indices of the resources that could fill a requirement."""
    return [
        index
        for index, res in enumerate(resources)
        if res.kind == requirement.kind
        and (not requirement.tags_any or not requirement.tags_any.isdisjoint(res.tags))
        and requirement.tags_all <= res.tags
        and (not requirement.resource_ids or res.id in requirement.resource_ids)
    ]


def unusable_pins(
    rules: ServiceRules, resources: Sequence[ResourceSchedule], pinned: frozenset[str]
) -> set[str]:
    """Pinned resource ids that no requirement of the service could use."""
    usable = {resources[i].id for req in rules.requirements for i in candidates(req, resources)}
    return set(pinned) - usable


def bookable_window(rules: ServiceRules, query: SlotQuery) -> tuple[int, int]:
    """Starts must lie in the range, after the minimum notice and within max advance."""
    lo = max(query.range_start, query.now + rules.min_notice)
    hi = min(query.range_end, query.now + rules.max_advance_days * DAY + 1)
    return lo, hi


def requirement_options(
    rules: ServiceRules, resources: Sequence[ResourceSchedule], query: SlotQuery
) -> list[list[int]]:
    """Candidates per requirement, narrowed to the pinned ones where any apply."""
    options = []
    for req in rules.requirements:
        found = candidates(req, resources)
        pinned = [i for i in found if resources[i].id in query.pinned]
        options.append(pinned or found)
    return options


def feasible_starts(rules: ServiceRules, res: ResourceSchedule, lo: int, hi: int) -> list[Span]:
    """Start instants `s` (as spans) at which `res` can serve: `[s, s+duration)` inside one
    working span, `[s-before, s+duration+after)` clear of every busy span."""
    dur = rules.duration
    work = res.hours.spans(res.timezone, lo - rules.buffer_before, hi + dur + rules.buffer_after)
    open_starts = [(start, end - dur + 1) for start, end in work if end - dur >= start]
    blocked = merge(
        (start - dur - rules.buffer_after + 1, end + rules.buffer_before) for start, end in res.busy
    )
    return subtract(open_starts, blocked)


def _grid_mask(spans: list[Span], grid: list[int]) -> int:
    mask = 0
    for start, end in spans:
        first, stop = bisect_left(grid, start), bisect_left(grid, end)
        if stop > first:
            mask |= (1 << stop) - (1 << first)
    return mask


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def find_slots(
    rules: ServiceRules, resources: Sequence[ResourceSchedule], query: SlotQuery
) -> list[FreeSlot]:
    """Every bookable slot, sorted by start, one per start.

    Resources are preferred least-loaded first (busy seconds in the window, then name,
    then id), so the choice is deterministic and spreads work. Resources that have a
    location must share it within a slot; location-less resources go anywhere.
    """
    lo, hi = bookable_window(rules, query)
    if lo >= hi or not rules.requirements:
        return []
    grid = grid_starts(rules.timezone, rules.interval, lo, hi)
    options = requirement_options(rules, resources, query)
    if not grid or not all(options):
        return []

    used = sorted({i for opts in options for i in opts})
    window_end = grid[-1] + rules.duration
    load = {i: overlap_seconds(resources[i].busy, grid[0], window_end) for i in used}
    masks = {
        i: _grid_mask(feasible_starts(rules, resources[i], grid[0], window_end), grid) for i in used
    }
    for opts in options:
        opts.sort(key=lambda i: (load[i], resources[i].name, resources[i].id))

    groups = _location_groups(options, resources)
    group_masks = [_all_requirements_mask(group, masks) for group in groups]
    slots: list[FreeSlot] = []
    union = 0
    for mask in group_masks:
        union |= mask
    for bit in _bits(union):
        for group, mask in zip(groups, group_masks, strict=True):
            if not (mask >> bit) & 1:
                continue
            chosen = assign(group, lambda i: bool((masks[i] >> bit) & 1))  # noqa: B023
            if chosen is not None:
                start = grid[bit]
                slots.append(
                    FreeSlot(start, start + rules.duration, tuple(resources[i] for i in chosen))
                )
                break
        if query.limit is not None and len(slots) >= query.limit:
            break
    return slots


def _location_groups(
    options: list[list[int]], resources: Sequence[ResourceSchedule]
) -> list[list[list[int]]]:
    """Split options by location: one group per location (plus location-less resources)."""
    locations = sorted(
        {resources[i].location_id for opts in options for i in opts} - {None}, key=str
    )
    if not locations:
        return [options]
    return [
        [[i for i in opts if resources[i].location_id in (loc, None)] for opts in options]
        for loc in locations
    ]


def _all_requirements_mask(group: list[list[int]], masks: dict[int, int]) -> int:
    """Grid points where every requirement has at least one free candidate."""
    combined = -1
    for opts in group:
        either = 0
        for i in opts:
            either |= masks[i]
        combined &= either
    return combined if combined != -1 else 0
