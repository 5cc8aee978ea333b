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
from scheduling.seats import joins_its_session


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
        slot = _bookable(rules, resources, options, start) or _full(
            rules, resources, options, start
        )
        if slot is not None:
            slots.append(slot)
        if query.limit is not None and len(slots) >= query.limit:
            break
    return slots


def _bookable(
    rules: ServiceRules,
    resources: Sequence[ResourceSchedule],
    options: list[list[int]],
    start: int,
) -> FreeSlot | None:
    """The first choice of resources that serves `start`: a group session (one seated
    resource or more) may join its sessions; without one, each resource is taken alone."""
    free = [
        [i for i in opts if _can_serve(rules, resources[i], start, joining=True)]
        for opts in options
    ]
    for combo in product(*free):
        chosen = [resources[i] for i in combo]
        group = any(res.capacity > 1 for res in chosen)
        if _distinct_in_one_place(combo, chosen) and (
            (group and _own_sessions(rules, chosen, start))
            or all(_can_serve(rules, res, start, joining=False) for res in chosen)
        ):
            return _slot(rules, chosen, start, bookable=True)
    return None


def _own_sessions(rules: ServiceRules, chosen: list[ResourceSchedule], start: int) -> bool:
    """Each shared resource of capacity 1 is taken only by this choice's own session."""
    ids = [r.id for r in chosen]
    return all(joins_its_session(rules, r, start, ids) for r in chosen if r.capacity == 1)


def _full(
    rules: ServiceRules,
    resources: Sequence[ResourceSchedule],
    options: list[list[int]],
    start: int,
) -> FreeSlot | None:
    """A group session at `start` that would run but has too few seats left."""
    open_ = [
        [i for i in opts if _can_serve(rules, resources[i], start, joining=True, seats=0)]
        for opts in options
    ]
    for combo in product(*open_):
        chosen = [resources[i] for i in combo]
        if (
            _distinct_in_one_place(combo, chosen)
            and any(res.capacity > 1 for res in chosen)
            and _own_sessions(rules, chosen, start)
        ):
            return _slot(rules, chosen, start, bookable=False)
    return None


def _distinct_in_one_place(combo: tuple[int, ...], chosen: list[ResourceSchedule]) -> bool:
    return len(set(combo)) == len(combo) and len({r.location_id for r in chosen} - {None}) <= 1


def _slot(
    rules: ServiceRules, chosen: list[ResourceSchedule], start: int, *, bookable: bool
) -> FreeSlot:
    left = min((_free_seats(rules, r, start) for r in chosen if r.capacity > 1), default=1)
    return FreeSlot(start, start + rules.duration, tuple(chosen), left, bookable)


def _on_grid(rules: ServiceRules, start: int) -> bool:
    midnight = local_instant(rules.timezone, local_date(rules.timezone, start).toordinal(), 0)
    return (start - midnight) % rules.interval == 0


def _can_serve(
    rules: ServiceRules,
    res: ResourceSchedule,
    start: int,
    *,
    joining: bool,
    seats: int | None = None,
) -> bool:
    """Inside working hours and clear of busy time; a seated resource with `seats` free
    (the service's by default), one of capacity 1 clear of sessions too, unless
    `joining` the one at `start`."""
    end = start + rules.duration
    inside = any(
        w_start <= start and end <= w_end
        for w_start, w_end in res.hours.spans(res.timezone, start, end)
    )
    widened = (start - rules.buffer_before, end + rules.buffer_after)
    if not inside or not _clear(widened, res.busy):
        return False
    if res.capacity > 1:
        return _free_seats(rules, res, start) >= (rules.seats if seats is None else seats)
    sessions = [(s, e) for s, e, _ in res.joinable if not (joining and (s, e) == widened)]
    return _clear(widened, sessions)


def _free_seats(rules: ServiceRules, res: ResourceSchedule, start: int) -> int:
    widened = (start - rules.buffer_before, start + rules.duration + rules.buffer_after)
    return sum(
        _clear(widened, [(s, e) for k, s, e in res.seat_busy if k == seat])
        for seat in range(res.capacity)
    )


def _clear(span: tuple[int, int], busy: Sequence[tuple[int, int]]) -> bool:
    return all(b_end <= span[0] or b_start >= span[1] for b_start, b_end in busy)
