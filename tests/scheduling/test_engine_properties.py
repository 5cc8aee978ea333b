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


@st.composite
def calendars(draw: st.DrawFn, base: int) -> ResourceSchedule:
    weekly = {d: draw(day_blocks) for d in WEEKDAYS}
    busy = draw(
        st.lists(
            st.tuples(st.integers(-86400, 3 * 86400), st.integers(60, 6 * 3600)).map(
                lambda p: (base + p[0], base + p[0] + p[1])
            ),
            max_size=5,
        )
    )
    return ResourceSchedule(
        id=draw(st.uuids()).hex,
        kind=draw(st.sampled_from(["staff", "room"])),
        name=draw(st.sampled_from(["a", "b", "c"])),
        timezone=draw(st.sampled_from(ZONES)),
        hours=working_hours_from_json(weekly, []),
        tags=frozenset(draw(st.sets(st.sampled_from(["x", "y"])))),
        location_id=draw(st.sampled_from([None, None, "north", "south"])),
        busy=busy,
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
    )
    resources = draw(st.lists(calendars(base), min_size=1, max_size=4))
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
    fast = [s.start for s in find_slots(rules, resources, query)]
    slow = [s.start for s in naive_slots(rules, resources, query)]
    assert fast == slow
