"""The calendar invitation sent with a confirmation, a reschedule and a cancellation
(iTIP, RFC 5546). Its UID is the booking's for the booking's whole life and its SEQUENCE is
the booking's version, so a calendar updates or removes the one event it already has
instead of adding another."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from icalendar import Calendar, Event, vCalAddress

from notifications.facts import MessageFacts
from notifications.locale import wording

PRODID = "-//Holdfast//Booking//EN"
# The kinds that carry an invitation, and its METHOD; compose_email attaches one exactly
# for these.
INVITATION_METHODS = {"confirmed": "REQUEST", "rescheduled": "REQUEST", "cancelled": "CANCEL"}


def invitation(facts: MessageFacts, organizer: str) -> bytes:
    """`organizer` is the address the email comes from, so a calendar that answers the
    invitation answers the sender. Raises ValueError for a kind without an invitation:
    a held or failed booking is not an event in anyone's calendar."""
    method = INVITATION_METHODS.get(facts.kind)
    if method is None:
        raise ValueError(f"a {facts.kind!r} message has no calendar invitation")
    words = wording(facts)
    details = dict(words.details)
    shown = (words.labels["with"], words.labels["reference"])
    description = [_line(facts.tenant_name)]
    description += [f"{label}: {details[label]}" for label in shown if label in details]

    event = Event()
    event.add("uid", f"{facts.booking_id}@holdfast")
    event.add("sequence", facts.version)
    event.add("dtstamp", _utc(facts.written_at))
    event.add("dtstart", _utc(facts.start))
    event.add("dtend", _utc(facts.end))
    event.add("summary", _line(facts.service_name))
    event.add("description", "\n".join(description))
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    event.add("transp", "TRANSPARENT" if method == "CANCEL" else "OPAQUE")
    event.add("organizer", _address(organizer, cn=_line(facts.tenant_name)))
    attendee = _address(facts.customer_email, cn=_line(facts.customer_name))
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    # The booking is already made: there is nothing for the customer to accept.
    attendee.params["PARTSTAT"] = "ACCEPTED"
    attendee.params["RSVP"] = "FALSE"
    event.add("attendee", attendee)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)
    calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data


def _address(email: str, *, cn: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    if cn:
        address.params["CN"] = cn
    return address


def _utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"a naive time ({at.isoformat()}) has no place in a calendar")
    return at.astimezone(UTC)


def _line(text: str) -> str:
    return " ".join(text.split())


@dataclass(frozen=True)
class FeedEntry:
    """One booking in a resource's feed: no customer contact details, only a name."""

    booking_id: str
    version: int
    summary: str
    start: datetime
    end: datetime


def feed(name: str, entries: list[FeedEntry], written_at: datetime) -> bytes:
    """A resource's read-only feed (a calendar app subscribes to it). Each event has the
    UID of the booking's invitations, so an app that has both shows one event."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("x-wr-calname", _line(name))
    for entry in entries:
        event = Event()
        event.add("uid", f"{entry.booking_id}@holdfast")
        event.add("sequence", entry.version)
        event.add("dtstamp", _utc(written_at))
        event.add("dtstart", _utc(entry.start))
        event.add("dtend", _utc(entry.end))
        event.add("summary", _line(entry.summary))
        event.add("status", "CONFIRMED")
        event.add("transp", "OPAQUE")
        calendar.add_component(event)
    data: bytes = calendar.to_ical()
    return data
