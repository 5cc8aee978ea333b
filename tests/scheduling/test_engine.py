"""The availability rules of docs/api.md, one behaviour per test, on the pure engine."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

from scheduling.engine import Requirement, ServiceRules, SlotQuery, find_slots, unusable_pins
from tests.support.engine import at, chosen, every_day, resource, starts

HOUR = 3600
NOW = at("2026-01-01T00:00")


def rules(
    duration: int = 60,
    interval: int = 60,
    *reqs: Requirement,
    tz: str = "UTC",
    before: int = 0,
    after: int = 0,
    notice: int = 0,
    advance: int = 365,
) -> ServiceRules:
    return ServiceRules(
        timezone=tz,
        duration=duration * 60,
        interval=interval * 60,
        requirements=reqs or (Requirement("staff"),),
        buffer_before=before * 60,
        buffer_after=after * 60,
        min_notice=notice * 60,
        max_advance_days=advance,
    )


def day_query(
    day: str,
    *,
    now: int = NOW,
    tz: str = "UTC",
    days: int = 1,
    pinned: frozenset[str] = frozenset(),
) -> SlotQuery:
    end = (date.fromisoformat(day) + timedelta(days=days)).isoformat()
    return SlotQuery(at(f"{day}T00:00", tz), at(f"{end}T00:00", tz), now, pinned=pinned)


def test_slots_fill_weekly_hours_on_the_interval_grid() -> None:
    slots = find_slots(rules(60, 60), [resource("ann")], day_query("2026-02-02"))
    assert starts(slots) == [f"2026-02-02T{h:02d}:00" for h in range(9, 17)]


def test_weekly_hours_differ_by_weekday_and_a_missing_day_is_closed() -> None:
    from scheduling.hours import working_hours_from_json

    hours = working_hours_from_json({"mon": [["09:00", "11:00"]], "tue": [["14:00", "16:00"]]}, [])
    slots = find_slots(rules(), [resource("ann", hours=hours)], day_query("2026-02-02", days=3))
    assert starts(slots) == [
        "2026-02-02T09:00",
        "2026-02-02T10:00",
        "2026-02-03T14:00",
        "2026-02-03T15:00",
    ]


def test_split_hours_keep_the_lunch_break_free() -> None:
    hours = every_day(("09:00", "12:00"), ("13:00", "15:00"))
    slots = find_slots(rules(90, 30), [resource("ann", hours=hours)], day_query("2026-02-02"))
    assert starts(slots) == [
        "2026-02-02T09:00",
        "2026-02-02T09:30",
        "2026-02-02T10:00",
        "2026-02-02T10:30",
        "2026-02-02T13:00",
        "2026-02-02T13:30",
    ]


def test_date_override_replaces_the_weekly_hours() -> None:
    hours = every_day(
        ("09:00", "17:00"), overrides=[{"date": "2026-12-24", "hours": [["09:00", "12:00"]]}]
    )
    slots = find_slots(rules(), [resource("ann", hours=hours)], day_query("2026-12-24"))
    assert starts(slots) == ["2026-12-24T09:00", "2026-12-24T10:00", "2026-12-24T11:00"]


def test_override_with_no_hours_closes_the_day() -> None:
    hours = every_day(("09:00", "17:00"), overrides=[{"date": "2026-12-25", "hours": []}])
    assert find_slots(rules(), [resource("ann", hours=hours)], day_query("2026-12-25")) == []


def test_time_off_blocks_the_slots_it_touches() -> None:
    off = (at("2026-02-02T11:30"), at("2026-02-02T13:00"))
    slots = find_slots(rules(), [resource("ann", busy=(off,))], day_query("2026-02-02"))
    assert starts(slots) == [
        "2026-02-02T09:00",
        "2026-02-02T10:00",
        "2026-02-02T13:00",
        "2026-02-02T14:00",
        "2026-02-02T15:00",
        "2026-02-02T16:00",
    ]


def test_buffers_on_both_sides_keep_clear_of_an_existing_booking() -> None:
    # Another 60-min booking 12:00-13:00 with 10/15-min buffers occupies 11:50-13:15.
    existing = (at("2026-02-02T11:50"), at("2026-02-02T13:15"))
    service = rules(60, 15, before=10, after=15)
    slots = find_slots(service, [resource("ann", busy=(existing,))], day_query("2026-02-02"))
    found = starts(slots)
    # Ours ends by 11:35 so its after-buffer ends by 11:50; ours starts at 13:30 or later
    # so its before-buffer starts at 13:20, after 13:15.
    assert "2026-02-02T10:30" in found and "2026-02-02T10:45" not in found
    assert "2026-02-02T13:15" not in found and "2026-02-02T13:30" in found


def test_buffers_may_reach_outside_working_hours() -> None:
    slots = find_slots(
        rules(60, 60, before=30, after=30), [resource("ann")], day_query("2026-02-02")
    )
    assert starts(slots)[0] == "2026-02-02T09:00" and starts(slots)[-1] == "2026-02-02T16:00"


def test_min_notice_hides_starts_too_soon() -> None:
    now = at("2026-02-02T10:20")
    slots = find_slots(rules(notice=60), [resource("ann")], day_query("2026-02-02", now=now))
    assert starts(slots)[0] == "2026-02-02T12:00"


def test_max_advance_hides_starts_too_far_ahead() -> None:
    now = at("2026-02-01T12:00")
    slots = find_slots(
        rules(advance=2), [resource("ann")], day_query("2026-02-02", days=3, now=now)
    )
    assert starts(slots)[-1] == "2026-02-03T12:00"


def test_slot_interval_sets_the_spacing_of_starts() -> None:
    slots = find_slots(
        rules(30, 20),
        [resource("ann", hours=every_day(("09:00", "10:30")))],
        day_query("2026-02-02"),
    )
    assert starts(slots) == [
        "2026-02-02T09:00",
        "2026-02-02T09:20",
        "2026-02-02T09:40",
        "2026-02-02T10:00",
    ]


def test_grid_counts_from_local_midnight_of_the_service_timezone() -> None:
    tz = "Asia/Kolkata"  # UTC+05:30: the grid follows local, not UTC, midnight.
    slots = find_slots(
        rules(60, 60, tz=tz), [resource("ann", tz=tz)], day_query("2026-02-02", tz=tz)
    )
    assert starts(slots, tz)[0] == "2026-02-02T09:00"


def test_two_requirements_that_one_resource_could_meet_use_two() -> None:
    two_staff = (Requirement("staff"), Requirement("staff"))
    one = find_slots(rules(60, 60, *two_staff), [resource("ann")], day_query("2026-02-02"))
    assert one == []
    both = find_slots(
        rules(60, 60, *two_staff), [resource("ann"), resource("bob")], day_query("2026-02-02")
    )
    assert len(both) == 8 and all(set(c) == {"ann", "bob"} for c in chosen(both))


def test_matching_moves_an_earlier_choice_to_satisfy_a_later_requirement() -> None:
    # Ann could do either requirement but only Ann has the "laser" tag; the generic
    # requirement must take Bob even though Ann comes first alphabetically.
    reqs = (Requirement("staff"), Requirement("staff", tags_all=frozenset({"laser"})))
    slots = find_slots(
        rules(60, 60, *reqs),
        [resource("ann", tags=("laser",)), resource("bob")],
        day_query("2026-02-02"),
    )
    assert chosen(slots)[0] == ("bob", "ann")


def test_tags_any_matches_a_resource_with_one_of_the_tags() -> None:
    req = Requirement("staff", tags_any=frozenset({"physio", "osteo"}))
    res = [resource("ann", tags=("osteo",)), resource("bob", tags=("dentist",))]
    slots = find_slots(rules(60, 60, req), res, day_query("2026-02-02"))
    assert {c for c in chosen(slots)} == {("ann",)}


def test_tags_all_needs_every_tag() -> None:
    req = Requirement("staff", tags_all=frozenset({"physio", "senior"}))
    res = [resource("ann", tags=("physio",)), resource("bob", tags=("physio", "senior"))]
    slots = find_slots(rules(60, 60, req), res, day_query("2026-02-02"))
    assert {c for c in chosen(slots)} == {("bob",)}


def test_resource_ids_restrict_a_requirement_to_named_resources() -> None:
    req = Requirement("room", resource_ids=frozenset({"r2"}))
    res = [resource("r1", "room"), resource("r2", "room")]
    slots = find_slots(rules(60, 60, req), res, day_query("2026-02-02"))
    assert {c for c in chosen(slots)} == {("r2",)}


def test_kind_must_match() -> None:
    slots = find_slots(
        rules(60, 60, Requirement("asset")), [resource("ann", "staff")], day_query("2026-02-02")
    )
    assert slots == []


def test_least_loaded_resource_is_preferred() -> None:
    busy = ((at("2026-02-02T16:00"), at("2026-02-02T17:00")),)
    res = [resource("ann", busy=busy), resource("bob")]
    slots = find_slots(rules(), res, day_query("2026-02-02"))
    assert chosen(slots)[0] == ("bob",)


def test_a_busy_resource_gives_way_to_a_free_one() -> None:
    busy = ((at("2026-02-02T09:00"), at("2026-02-02T10:00")),)
    res = [resource("ann"), resource("bob", busy=busy)]
    slots = find_slots(rules(), res, day_query("2026-02-02"))
    assert chosen(slots)[0] == ("ann",) and len(slots) == 8


def test_pinned_resource_narrows_only_its_requirement() -> None:
    reqs = (Requirement("staff"), Requirement("room"))
    res = [resource("ann"), resource("bob"), resource("r1", "room")]
    slots = find_slots(
        rules(60, 60, *reqs), res, day_query("2026-02-02", pinned=frozenset({"bob"}))
    )
    assert {c for c in chosen(slots)} == {("bob", "r1")}
    assert unusable_pins(rules(60, 60, *reqs), res, frozenset({"bob", "nope"})) == {"nope"}


def test_resources_with_locations_are_not_mixed_across_locations() -> None:
    reqs = (Requirement("staff"), Requirement("room"))
    res = [
        resource("ann", location="north"),
        resource("r1", "room", location="south"),
        resource("r2", "room", location="north", hours=every_day(("13:00", "17:00"))),
    ]
    slots = find_slots(rules(60, 60, *reqs), res, day_query("2026-02-02"))
    assert starts(slots)[0] == "2026-02-02T13:00"
    assert {c for c in chosen(slots)} == {("ann", "r2")}


def test_limit_caps_the_number_of_slots() -> None:
    query = day_query("2026-02-02")
    capped = SlotQuery(query.range_start, query.range_end, query.now, limit=3)
    assert len(find_slots(rules(), [resource("ann")], capped)) == 3


def test_dst_spring_forward_in_chicago_keeps_wall_clock_hours() -> None:
    tz = "America/Chicago"  # 2026-03-08 02:00 -> 03:00
    res = [resource("ann", tz=tz)]
    slots = find_slots(rules(60, 60, tz=tz), res, day_query("2026-03-07", tz=tz, days=3))
    by_day: dict[str, list[str]] = {}
    for s in starts(slots, tz):
        by_day.setdefault(s[:10], []).append(s[11:])
    expected = [f"{h:02d}:00" for h in range(9, 17)]
    assert by_day == {"2026-03-07": expected, "2026-03-08": expected, "2026-03-09": expected}
    assert slots[8].start - slots[7].start == 16 * HOUR  # 16:00 Sat to 09:00 Sun: 23h day


def test_dst_fall_back_in_berlin_keeps_wall_clock_hours() -> None:
    tz = "Europe/Berlin"  # 2026-10-25 03:00 -> 02:00
    res = [resource("ann", tz=tz)]
    slots = find_slots(rules(30, 30, tz=tz), res, day_query("2026-10-24", tz=tz, days=3))
    per_day = {
        d: sum(1 for s in starts(slots, tz) if s.startswith(d))
        for d in ("2026-10-24", "2026-10-25", "2026-10-26")
    }
    assert per_day == {"2026-10-24": 16, "2026-10-25": 16, "2026-10-26": 16}
    assert len({s.start for s in slots}) == len(slots)


def test_dst_night_grid_neither_skips_nor_doubles_starts() -> None:
    tz = "Europe/Berlin"
    res = [resource("ann", tz=tz, hours=every_day(("00:00", "24:00")))]
    back = find_slots(rules(60, 60, tz=tz), res, day_query("2026-10-25", tz=tz))
    forward = find_slots(rules(60, 60, tz=tz), res, day_query("2026-03-29", tz=tz))
    assert len(back) == 25 and len(forward) == 23
    for slots in (back, forward):
        gaps = {b.start - a.start for a, b in itertools.pairwise(slots)}
        assert gaps == {HOUR}


def test_resource_in_another_timezone_uses_its_own_wall_clock() -> None:
    # Service grid in New York; the practitioner works 09-17 Berlin time (03-11 in NY).
    res = [resource("ann", tz="Europe/Berlin")]
    slots = find_slots(
        rules(60, 60, tz="America/New_York"), res, day_query("2026-02-02", tz="America/New_York")
    )
    assert starts(slots, "America/New_York") == [f"2026-02-02T{h:02d}:00" for h in range(3, 11)]
