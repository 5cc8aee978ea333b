"""When a resource can serve, seat by seat (docs/capacity.md).

A resource of capacity 1 is taken whole: by a one-to-one booking alone, or by a group
session's attendees together (`joinable` spans are this service's sessions, which a
booking at exactly their start may join). A resource of capacity `c` is `c` seats, each
free or taken on its own, as the database allocates them; a booking needs
`rules.seats` of them free over its whole span.

The masks are over the service grid (bit `k` is the grid's `k`-th start), as the engine
combines them."""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import TYPE_CHECKING

from scheduling.intervals import Span, merge, subtract

if TYPE_CHECKING:
    from scheduling.engine import ResourceSchedule, ServiceRules


_GROUP_SESSIONS = uuid.UUID("6f1c2c1e-6d3f-4b8e-9a57-0c9a8f1f3b21")


def group_session_id(service_id: str, lo: int, hi: int, resource_ids: Iterable[str]) -> str:
    """A group session: one service over one buffer-widened span with one set of
    resources (the room and its instructor). Its attendees share its resources of
    capacity 1; the same instructor in another room at that time is another session,
    which the database refuses (migration 0012)."""
    key = f"{service_id}/{lo}/{hi}/{','.join(sorted(resource_ids))}"
    return str(uuid.uuid5(_GROUP_SESSIONS, key))


def joins_its_session(
    rules: ServiceRules, res: ResourceSchedule, start: int, chosen: Sequence[str]
) -> bool:
    """Whether `res` (capacity 1) is free at `start` for a booking with `chosen`
    resources, or taken only by that booking's own session."""
    lo, hi = start - rules.buffer_before, start + rules.duration + rules.buffer_after
    own = group_session_id(rules.service_id, lo, hi, chosen)
    return all(session == own for s, e, session in res.joinable if s < hi and e > lo)


def blocking(rules: ServiceRules, spans: Iterable[Span]) -> Iterator[Span]:
    """The starts each busy span rules out: those whose buffer-widened span overlaps it."""
    before, after, dur = rules.buffer_before, rules.buffer_after, rules.duration
    return ((start - dur - after + 1, end + before) for start, end in spans)


def joining(rules: ServiceRules, spans: Iterable[Span]) -> Iterator[Span]:
    """The starts a session's span rules out for a booking that may join it: every start
    `blocking` does but the session's own, when its span is this service's span there."""
    before, after, dur = rules.buffer_before, rules.buffer_after, rules.duration
    for start, end in spans:
        lo, hi, own = start - dur - after + 1, end + before, start + before
        if end - start != before + dur + after:
            yield lo, hi
            continue
        yield lo, own
        yield own + 1, hi


def feasible_starts(
    rules: ServiceRules, res: ResourceSchedule, lo: int, hi: int, also: Iterable[Span] = ()
) -> list[Span]:
    """Start instants `s` (as spans) at which `res` can serve: `[s, s+duration)` inside one
    working span, `[s-before, s+duration+after)` clear of every busy span, and of the
    starts `also` rules out."""
    dur = rules.duration
    work = res.hours.spans(res.timezone, lo - rules.buffer_before, hi + dur + rules.buffer_after)
    open_starts = [(start, end - dur + 1) for start, end in work if end - dur >= start]
    return subtract(open_starts, merge(chain(blocking(rules, res.busy), also)))


def grid_mask(spans: list[Span], grid: list[int]) -> int:
    mask = 0
    for start, end in spans:
        first, stop = bisect_left(grid, start), bisect_left(grid, end)
        if stop > first:
            mask |= (1 << stop) - (1 << first)
    return mask


def bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


@dataclass(slots=True)
class Usage:
    """Where on the grid one resource can serve.

    `alone`: a booking that shares it with nobody may take it. `joined`: a booking of a
    group session may (for capacity 1, also joining the session there; for seats, the
    same as `alone`). `open`: it would serve a group session, were enough seats free
    (a full session, listed with the seats it has left). `seat_masks` and `idle_seats`
    count free seats bit by bit."""

    alone: int
    joined: int
    open: int = 0
    capacity: int = 1
    idle_seats: int = 0
    common: int = 0
    seat_masks: list[int] = field(default_factory=list)

    @property
    def seated(self) -> bool:
        return self.capacity > 1

    def free_seats(self, bit: int) -> int:
        if not self.seated:
            return 1
        free = self.idle_seats * ((self.common >> bit) & 1)
        return free + sum((mask >> bit) & 1 for mask in self.seat_masks)


def usage(rules: ServiceRules, res: ResourceSchedule, grid: list[int], end: int) -> Usage:
    lo = grid[0]
    if res.capacity == 1:
        sessions = [(s, e) for s, e, _ in res.joinable]
        alone = grid_mask(feasible_starts(rules, res, lo, end, blocking(rules, sessions)), grid)
        if not sessions:
            return Usage(alone, alone, alone)
        joined = grid_mask(feasible_starts(rules, res, lo, end, joining(rules, sessions)), grid)
        return Usage(alone, joined, joined)
    by_seat: dict[int, list[Span]] = {}
    for seat, start, stop in res.seat_busy:
        by_seat.setdefault(seat, []).append((start, stop))
    common = grid_mask(feasible_starts(rules, res, lo, end), grid)
    seats = Usage(
        0,
        0,
        common,
        capacity=res.capacity,
        idle_seats=res.capacity - len([s for s in by_seat if s < res.capacity]),
        common=common,
        seat_masks=[
            grid_mask(feasible_starts(rules, res, lo, end, blocking(rules, spans)), grid)
            for seat, spans in by_seat.items()
            if seat < res.capacity
        ],
    )
    if seats.idle_seats >= rules.seats:
        enough = common
    else:
        enough = sum(1 << bit for bit in bits(common) if seats.free_seats(bit) >= rules.seats)
    seats.alone = seats.joined = enough
    return seats


def seats_left(usages: Sequence[Usage], bit: int) -> int:
    """The fewest free seats among a slot's seated resources (1 without any)."""
    return min((u.free_seats(bit) for u in usages if u.seated), default=1)
