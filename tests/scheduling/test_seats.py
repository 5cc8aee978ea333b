"""Seats and group sessions on the pure engine (docs/capacity.md): a resource of
capacity `c` serves `c` bookings at once, seat by seat; a resource of capacity 1 in a
group session is shared by the session's attendees and by nobody else."""

from __future__ import annotations

from dataclasses import replace

from scheduling.engine import Requirement, ResourceSchedule, ServiceRules, SlotQuery, find_slots
from scheduling.seats import group_session_id
from tests.support.engine import at, chosen, resource, starts

NINE, TEN, ELEVEN = at("2027-03-01T09:00"), at("2027-03-01T10:00"), at("2027-03-01T11:00")
DAY = SlotQuery(at("2027-03-01T00:00"), at("2027-03-02T00:00"), at("2027-01-01T00:00"))
CLASS = ServiceRules(
    timezone="UTC",
    duration=3600,
    interval=3600,
    requirements=(Requirement("room"), Requirement("staff")),
)
ONE_TO_ONE = replace(CLASS, requirements=(Requirement("staff"),))


def session(start: int, end: int, *resources: str) -> tuple[int, int, str]:
    """A group session of CLASS over `[start, end)` with these resources."""
    return start, end, group_session_id(CLASS.service_id, start, end, resources)


def studio(taken_seats: int, *, capacity: int = 3) -> ResourceSchedule:
    return resource(
        "studio",
        "room",
        capacity=capacity,
        seat_busy=tuple((seat, NINE, TEN) for seat in range(taken_seats)),
    )


def test_a_class_offers_its_seats_left_at_each_start() -> None:
    slots = find_slots(replace(CLASS, requirements=(Requirement("room"),)), [studio(2)], DAY)
    assert [(s.start, s.seats_left) for s in slots[:2]] == [(NINE, 1), (TEN, 3)]


def test_a_full_class_is_listed_with_no_seats_left_and_not_bookable() -> None:
    slots = find_slots(replace(CLASS, requirements=(Requirement("room"),)), [studio(3)], DAY)
    assert (slots[0].start, slots[0].seats_left, slots[0].bookable) == (NINE, 0, False)


def test_a_booking_of_two_seats_needs_two_free() -> None:
    pair = replace(CLASS, requirements=(Requirement("room"),), seats=2)
    slots = find_slots(pair, [studio(2)], DAY)
    assert [(s.start, s.bookable) for s in slots[:2]] == [(NINE, False), (TEN, True)]


def test_a_class_with_seats_is_preferred_to_a_full_one() -> None:
    full, empty = studio(3), replace(studio(0), id="annex", name="annex")
    slots = find_slots(replace(CLASS, requirements=(Requirement("room"),)), [full, empty], DAY)
    assert (chosen(slots)[0], slots[0].seats_left, slots[0].bookable) == (("annex",), 3, True)


def test_a_one_to_one_slot_taken_is_not_listed() -> None:
    ada = resource("ada", busy=((NINE, TEN),))
    assert NINE not in [s.start for s in find_slots(ONE_TO_ONE, [ada], DAY)]


def test_a_seat_taken_for_part_of_the_span_is_not_free() -> None:
    """Seats are whole, as the database allocates them: each taken for half the hour,
    neither serves the hour (docs/capacity.md#seats)."""
    half_past = at("2027-03-01T09:30")
    taken = ((0, NINE, half_past), (1, half_past, TEN))
    room = resource("studio", "room", capacity=2, seat_busy=taken)
    slots = find_slots(replace(CLASS, requirements=(Requirement("room"),)), [room], DAY)
    assert (slots[0].start, slots[0].seats_left, slots[0].bookable) == (NINE, 0, False)


def test_attendees_of_a_session_share_its_instructor() -> None:
    ada = resource("ada", joinable=(session(NINE, TEN, "studio", "ada"),))
    slots = find_slots(CLASS, [studio(1), ada], DAY)
    assert (slots[0].start, chosen(slots)[0], slots[0].seats_left) == (NINE, ("studio", "ada"), 2)


def test_a_session_blocks_its_instructor_at_every_other_start() -> None:
    half_hourly = replace(CLASS, interval=1800)
    ada = resource("ada", joinable=(session(NINE, TEN, "studio", "ada"),))
    found = starts(find_slots(half_hourly, [studio(1), ada], DAY))
    assert "2027-03-01T09:00" in found
    assert "2027-03-01T08:30" not in found and "2027-03-01T09:30" not in found


def test_a_one_to_one_booking_never_shares_a_session_instructor() -> None:
    ada = resource("ada", joinable=(session(NINE, TEN, "studio", "ada"),))
    assert NINE not in [s.start for s in find_slots(ONE_TO_ONE, [ada], DAY)]


def test_a_session_of_another_length_is_not_joined() -> None:
    ada = resource("ada", joinable=(session(NINE, ELEVEN, "studio", "ada"),))
    assert NINE not in [s.start for s in find_slots(CLASS, [studio(0), ada], DAY)]


def test_a_group_start_takes_a_free_instructor_when_the_session_one_is_busy() -> None:
    ada, bob = resource("ada", busy=((NINE, TEN),)), resource("bob")
    slots = find_slots(CLASS, [studio(0), ada, bob], DAY)
    assert (slots[0].start, chosen(slots)[0]) == (NINE, ("studio", "bob"))


def test_an_instructor_teaching_in_one_room_is_not_offered_in_another() -> None:
    """Her session is the annex's: the studio's class at nine cannot have her, and the
    annex's can (docs/capacity.md#group-sessions)."""
    annex = replace(studio(1), id="annex", name="annex")
    ada = resource("ada", joinable=(session(NINE, TEN, "annex", "ada"),))
    slots = find_slots(CLASS, [studio(0), annex, ada], DAY)
    assert (slots[0].start, chosen(slots)[0]) == (NINE, ("annex", "ada"))
    alone = find_slots(CLASS, [studio(0), ada], DAY)
    assert NINE not in [s.start for s in alone]
