"""Properties of the engine on random calendars, checked from the rules and against the
minute-by-minute reference implementation."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduling.engine import (
    Requirement,
    ResourceSchedule,
    ServiceRules,
    SlotQuery,
    candidates,
    find_slots,
)
from scheduling.grid import grid_starts
from scheduling.hours import WEEKDAYS, working_hours_from_json
from scheduling.naive import naive_slots
from tests.support.engine import at

ZONES = ["UTC", "America/Chicago", "Europe/Berlin", "Australia/Lord_Howe"]
# Days around DST changes in the zones above, plus an ordinary one.
DAYS = [
    "2026-03-08",
    "2026-03-29",
    "2026-04-05",
    "2026-10-04",
    "2026-10-25",
    "2026-11-01",
    "2026-06-15",
]


def clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


day_blocks = st.lists(st.integers(0, 96), max_size=4, unique=True).map(
    lambda qs: [
        [clock(a * 15), clock(b * 15)] for a, b in zip(*[iter(sorted(qs))] * 2, strict=False)
    ]
)


def spans(base: int) -> st.SearchStrategy[tuple[int, int]]:
    return st.tuples(st.integers(-86400, 3 * 86400), st.integers(60, 6 * 3600)).map(
        lambda p: (base + p[0], base + p[0] + p[1])
    )


def sessions(base: int, rules: ServiceRules) -> st.SearchStrategy[tuple[int, int]]:
    """The service's own span at some start on its grid, as a group session has."""
    steps = 86400 // rules.interval
    return st.integers(0, 2 * steps).map(
        lambda k: (
            base + k * rules.interval - rules.buffer_before,
            base + k * rules.interval + rules.duration + rules.buffer_after,
        )
    )


@st.composite
def calendars(draw: st.DrawFn, base: int, rules: ServiceRules) -> ResourceSchedule:
    weekly = {d: draw(day_blocks) for d in WEEKDAYS}
    busy = draw(st.lists(spans(base), max_size=5))
    capacity = draw(st.sampled_from([1, 1, 2, 3]))
    seat_busy = draw(
        st.lists(
            st.tuples(st.integers(0, capacity - 1), st.one_of(spans(base), sessions(base, rules))),
            max_size=6 if capacity > 1 else 0,
        )
    )
    # Another choice's sessions (their ids match no slot here): the engine and the
    # reference must both keep off them; joining one's own is tested in test_seats.py.
    joinable = [
        (start, end, draw(st.uuids()).hex)
        for start, end in draw(st.lists(sessions(base, rules), max_size=3 if capacity == 1 else 0))
    ]
    return ResourceSchedule(
        id=draw(st.uuids()).hex,
        kind=draw(st.sampled_from(["staff", "room"])),
        name=draw(st.sampled_from(["a", "b", "c"])),
        timezone=draw(st.sampled_from(ZONES)),
        hours=working_hours_from_json(weekly, []),
        tags=frozenset(draw(st.sets(st.sampled_from(["x", "y"])))),
        location_id=draw(st.sampled_from([None, None, "north", "south"])),
        busy=busy,
        capacity=capacity,
        seat_busy=[(seat, start, end) for seat, (start, end) in seat_busy],
        joinable=joinable,
    )


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ServiceRules, list[ResourceSchedule], SlotQuery]:
    tz = draw(st.sampled_from(ZONES))
    base = at(f"{draw(st.sampled_from(DAYS))}T00:00", tz)
    reqs = draw(
        st.lists(
            st.builds(
                Requirement,
                kind=st.sampled_from(["staff", "room"]),
                tags_any=st.frozensets(st.sampled_from(["x", "y"]), max_size=1),
            ),
            min_size=1,
            max_size=2,
        )
    )
    rules = ServiceRules(
        timezone=tz,
        duration=draw(st.integers(3, 24)) * 300,
        interval=draw(st.integers(1, 12)) * 300,
        requirements=tuple(reqs),
        buffer_before=draw(st.integers(0, 6)) * 300,
        buffer_after=draw(st.integers(0, 6)) * 300,
        min_notice=draw(st.integers(0, 3)) * 3600,
        max_advance_days=draw(st.integers(1, 3)),
        seats=draw(st.integers(1, 2)),
    )
    resources = draw(st.lists(calendars(base, rules), min_size=1, max_size=4))
    now = base - draw(st.integers(-6, 24)) * 3600
    return rules, resources, SlotQuery(base, base + 2 * 86400, now)


property_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@property_settings
@given(scenarios())
def test_no_slot_overlaps_a_busy_span_of_a_resource_it_names(scenario: tuple) -> None:  # type: ignore[type-arg]
    rules, resources, query = scenario
    for slot in find_slots(rules, resources, query):
        lo, hi = slot.start - rules.buffer_before, slot.end + rules.buffer_after
        for res in slot.resources:
            assert all(end <= lo or start >= hi for start, end in res.busy)


@property_settings
@given(scenarios())
def test_every_slot_lies_inside_working_hours_of_each_resource(scenario: tuple) -> None:  # type: ignore[type-arg]
    rules, resources, query = scenario
    for slot in find_slots(rules, resources, query):
        for res in slot.resources:
            spans = res.hours.spans(res.timezone, slot.start, slot.end)
            assert any(a <= slot.start and slot.end <= b for a, b in spans)


@property_settings
@given(scenarios())
def test_slots_are_sorted_unique_on_the_grid_and_meet_each_requirement(scenario: tuple) -> None:  # type: ignore[type-arg]
    rules, resources, query = scenario
    slots = find_slots(rules, resources, query)
    found = [s.start for s in slots]
    assert found == sorted(set(found))
    grid = set(grid_starts(rules.timezone, rules.interval, query.range_start, query.range_end))
    for slot in slots:
        assert slot.start in grid and slot.start >= query.now + rules.min_notice
        assert len({r.id for r in slot.resources}) == len(rules.requirements)
        assert len({r.location_id for r in slot.resources} - {None}) <= 1
        for req, res in zip(rules.requirements, slot.resources, strict=True):
            assert resources.index(res) in candidates(req, resources)


@property_settings
@given(scenarios())
def test_engine_finds_exactly_the_starts_the_minute_by_minute_reference_finds(
    scenario: tuple,  # type: ignore[type-arg]
) -> None:
    rules, resources, query = scenario
    fast = [(s.start, s.bookable) for s in find_slots(rules, resources, query)]
    slow = [(s.start, s.bookable) for s in naive_slots(rules, resources, query)]
    assert fast == slow


def _free_seats(res: ResourceSchedule, lo: int, hi: int) -> int:
    taken = {seat for seat, start, end in res.seat_busy if start < hi and end > lo}
    return res.capacity - len(taken)


@property_settings
@given(scenarios())
def test_a_slot_counts_the_seats_left_on_its_fullest_seated_resource(scenario: tuple) -> None:  # type: ignore[type-arg]
    rules, resources, query = scenario
    for slot in find_slots(rules, resources, query):
        lo, hi = slot.start - rules.buffer_before, slot.end + rules.buffer_after
        free = [_free_seats(res, lo, hi) for res in slot.resources if res.capacity > 1]
        assert slot.seats_left == min(free, default=1)
        assert slot.bookable == all(n >= rules.seats for n in free)


@property_settings
@given(scenarios())
def test_a_slot_never_shares_a_session_it_is_not_part_of(scenario: tuple) -> None:  # type: ignore[type-arg]
    rules, resources, query = scenario
    for slot in find_slots(rules, resources, query):
        widened = (slot.start - rules.buffer_before, slot.end + rules.buffer_after)
        for res in slot.resources:
            assert all(end <= widened[0] or start >= widened[1] for start, end, _ in res.joinable)
