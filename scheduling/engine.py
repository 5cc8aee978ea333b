"""Availability: every start at which a service's requirements can all be met at once.

Per resource, the set of feasible *start instants* is computed as intervals (working
spans shrunk by the duration, minus busy spans widened by duration and buffers), then
mapped onto the service grid as a bitmask. Requirements combine with integer OR/AND, so
only grid points that survive need a per-slot resource choice.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from scheduling.grid import grid_starts
from scheduling.hours import WorkingHours
from scheduling.intervals import Span, overlap_seconds
from scheduling.matching import assign
from scheduling.seats import Usage, bits, joins_its_session, seats_left, usage

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
    seats: int = 1  # taken on each resource of capacity > 1 (scheduling/seats.py)
    service_id: str = ""  # names its group sessions (scheduling/seats.py)


@dataclass(frozen=True, slots=True)
class ResourceSchedule:
    """A resource and everything that blocks it (time off, external busy, other bookings'
    buffer-widened allocations, live holds) as merged or unmerged epoch spans.

    `busy` blocks every seat. With `capacity` > 1, allocations block one seat each
    (`seat_busy`: seat, start, end); with capacity 1, `joinable` are this service's group
    sessions, which a booking joining the session at its own start may share."""

    id: str
    kind: str
    name: str
    timezone: str
    hours: WorkingHours
    tags: frozenset[str] = frozenset()
    location_id: str | None = None
    busy: Sequence[Span] = ()
    capacity: int = 1
    seat_busy: Sequence[tuple[int, int, int]] = ()
    joinable: Sequence[tuple[int, int, str]] = ()  # start, end, group session id


@dataclass(frozen=True, slots=True)
class SlotQuery:
    range_start: int
    range_end: int
    now: int
    pinned: frozenset[str] = field(default_factory=frozenset)
    limit: int | None = None


@dataclass(frozen=True, slots=True)
class FreeSlot:
    """A start the engine found free, with the resources it would use, or a full group
    session there (not `bookable`). What a booking then holds is its `Slot`
    (contract.py)."""

    start: int
    end: int
    resources: tuple[ResourceSchedule, ...]
    seats_left: int = 1
    bookable: bool = True  # False: a full group session (scheduling/seats.py)


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
    usages = {i: usage(rules, resources[i], grid, window_end) for i in used}
    for opts in options:
        opts.sort(key=lambda i: (load[i], resources[i].name, resources[i].id))

    groups = _location_groups(options, resources)
    opened = {i: u.open for i, u in usages.items()}
    group_masks = [_all_requirements_mask(group, opened) for group in groups]
    slots: list[FreeSlot] = []
    union = 0
    for mask in group_masks:
        union |= mask
    for bit in bits(union):
        for group, mask in zip(groups, group_masks, strict=True):
            if not (mask >> bit) & 1:
                continue
            start = grid[bit]

            def sound(combo: tuple[int, ...] | None, at: int = start) -> tuple[int, ...] | None:
                return combo if combo and _sessions_hold(rules, resources, combo, at) else None

            chosen = _choose(group, usages, bit, sound) or _full_session(group, usages, bit, sound)
            if chosen is not None:
                left = seats_left([usages[i] for i in chosen], bit)
                slots.append(
                    FreeSlot(
                        start,
                        start + rules.duration,
                        tuple(resources[i] for i in chosen),
                        left,
                        bookable=left >= rules.seats or not any(usages[i].seated for i in chosen),
                    )
                )
                break
        if query.limit is not None and len(slots) >= query.limit:
            break
    return slots


Check = Callable[[tuple[int, ...] | None], tuple[int, ...] | None]


def _sessions_hold(
    rules: ServiceRules, resources: Sequence[ResourceSchedule], combo: tuple[int, ...], start: int
) -> bool:
    """A choice joins only its own group session on each resource of capacity 1 it
    shares (the same service, span and resources), never another."""
    chosen = [resources[i].id for i in combo]
    return all(
        joins_its_session(rules, resources[i], start, chosen)
        for i in combo
        if resources[i].capacity == 1 and resources[i].joinable
    )


def _full_session(
    group: list[list[int]], usages: dict[int, Usage], bit: int, sound: Check
) -> tuple[int, ...] | None:
    """Resources of a group session at `bit` that has too few seats left to book: listed
    all the same (with its `seats_left`), so a client can show it full and offer its
    waitlist. None when no group session could run there."""

    def opened(i: int) -> bool:
        return bool((usages[i].open >> bit) & 1)

    return _each_seated(group, usages, opened, sound)


def _choose(
    group: list[list[int]], usages: dict[int, Usage], bit: int, sound: Check
) -> tuple[int, ...] | None:
    """Resources for the start at `bit`: a group session (a seated resource among them)
    may join its sessions on resources of capacity 1; without one, each is taken alone.
    Tried in that order, then with each requirement in turn held to its seated options,
    so a start is found whenever some choice serves it."""

    def joined(i: int) -> bool:
        return bool((usages[i].joined >> bit) & 1)

    def alone(i: int) -> bool:
        return bool((usages[i].alone >> bit) & 1)

    chosen = assign(group, joined)
    if chosen is not None and all(alone(i) for i in chosen):
        return chosen
    if chosen is not None and any(usages[i].seated for i in chosen) and sound(chosen):
        return chosen
    chosen = assign(group, alone)
    if chosen is not None:
        return chosen
    return _each_seated(group, usages, joined, sound)


def _each_seated(
    group: list[list[int]], usages: dict[int, Usage], usable: Callable[[int], bool], check: Check
) -> tuple[int, ...] | None:
    """A choice with one requirement held to each of its seated resources in turn: the
    room whose session an instructor already teaches is found even when another room
    comes first."""
    for req, opts in enumerate(group):
        for i in opts:
            if usages[i].seated and (
                chosen := check(assign([*group[:req], [i], *group[req + 1 :]], usable))
            ):
                return chosen
    return None


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
