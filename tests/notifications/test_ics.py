"""Calendar invitations (notifications/ics.py), read back with icalendar as a calendar
would read them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar, Component

from notifications.ics import invitation
from tests.notifications.samples import START, facts

ORGANIZER = "bookings@holdfast.example"


def _event(kind: str = "confirmed", **changes: object) -> tuple[Calendar, Component]:
    calendar = Calendar.from_ical(invitation(facts(kind=kind, **changes), ORGANIZER))
    (event,) = calendar.walk("VEVENT")
    return calendar, event


def test_the_calendar_names_holdfast_as_its_producer() -> None:
    calendar, _ = _event()
    assert str(calendar["PRODID"]) == "-//Holdfast//Booking//EN"
    assert str(calendar["VERSION"]) == "2.0"


def test_the_uid_is_the_bookings_for_every_message_about_it() -> None:
    uids = {
        str(_event(kind, version=version)[1]["UID"])
        for kind, version in [("confirmed", 2), ("rescheduled", 3), ("cancelled", 4)]
    }
    assert uids == {"b7e1c1de-8d2a-4a0e-9d55-6a1f2e3c4b5d@holdfast"}


def test_the_sequence_is_the_bookings_version() -> None:
    assert _event(version=7)[1]["SEQUENCE"] == 7


def test_a_confirmation_is_a_confirmed_request_with_utc_times() -> None:
    calendar, event = _event()
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(event["STATUS"]) == "CONFIRMED"
    assert event.decoded("DTSTART") == START
    assert event.decoded("DTSTART").utcoffset() == timedelta(0)
    assert event.decoded("DTEND") == START + timedelta(minutes=45)
    assert b"DTSTART:20270301T090000Z" in invitation(facts(), ORGANIZER)


def test_a_reschedule_is_a_request_at_the_new_time() -> None:
    moved = START + timedelta(days=1)
    calendar, event = _event("rescheduled", start=moved, end=moved + timedelta(hours=1))
    assert str(calendar["METHOD"]) == "REQUEST"
    assert event.decoded("DTSTART") == moved


def test_a_cancellation_is_method_cancel_and_status_cancelled() -> None:
    calendar, event = _event("cancelled")
    assert str(calendar["METHOD"]) == "CANCEL"
    assert str(event["STATUS"]) == "CANCELLED"


def test_dtstamp_is_when_the_notification_was_written() -> None:
    _, event = _event()
    assert event.decoded("DTSTAMP") == datetime(2027, 2, 20, 8, 30, tzinfo=UTC)


def test_the_event_is_the_service_with_the_tenant_and_resources_described() -> None:
    _, event = _event(locale="de")
    assert str(event["SUMMARY"]) == "Sports massage"
    description = str(event["DESCRIPTION"])
    assert "Riverside Physio" in description and "Mit: Dr Ada und Room 1" in description
    assert "b7e1c1de-8d2a-4a0e-9d55-6a1f2e3c4b5d" in description


def test_the_organizer_is_the_sender_and_the_attendee_the_customer() -> None:
    _, event = _event(customer_name="Müller, Anna")
    assert str(event["ORGANIZER"]) == f"mailto:{ORGANIZER}"
    assert event["ORGANIZER"].params["CN"] == "Riverside Physio"
    assert str(event["ATTENDEE"]) == "mailto:anna@example.org"
    assert event["ATTENDEE"].params["CN"] == "Müller, Anna"


def test_the_same_facts_give_the_same_invitation() -> None:
    assert invitation(facts(), ORGANIZER) == invitation(facts(), ORGANIZER)


@pytest.mark.parametrize("kind", ["held", "reminder", "expired", "failed", "no_show"])
def test_a_kind_without_an_invitation_is_refused(kind: str) -> None:
    with pytest.raises(ValueError, match="no calendar invitation"):
        invitation(facts(kind=kind), ORGANIZER)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        invitation(facts(written_at=datetime(2027, 2, 20, 8, 30)), ORGANIZER)
