"""Google Calendar in tests: the local stand-in (devstack/google_calendar.py) in-process on
a free port, and what a test does to it by hand: keys, a person's edits, faults.

    async with google_calendar() as google:
        key = google.service_account()
        client = GoogleCalendar(key, "ana@example.com", subject=None,
                                api_base=google.api_base, timeout=5)
        google.add_event("ana@example.com", start, end)

The helpers run on the event loop, as the stand-in does (call them from async tests)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

from devstack.google_calendar import (
    API_ROOT,
    STANDIN,
    Calendar,
    Deliver,
    GoogleStandin,
    build_app,
    rfc3339,
)
from devstack.stand_in import serve


def _times(start: date, end: date, all_day: bool) -> dict[str, Any]:
    """Start and end fields: days for an all-day event, instants (with offsets) else."""
    if all_day:
        first, last = (d.date() if isinstance(d, datetime) else d for d in (start, end))
        return {"start": {"date": first.isoformat()}, "end": {"date": last.isoformat()}}
    if not isinstance(start, datetime) or not isinstance(end, datetime):
        raise TypeError("a timed event starts and ends at datetimes")
    return {"start": {"dateTime": rfc3339(start)}, "end": {"dateTime": rfc3339(end)}}


class GoogleCalendarStandin:
    """The running stand-in; `state` is its GoogleStandin, for what the helpers leave out."""

    def __init__(self, state: GoogleStandin, base: str) -> None:
        self.state = state
        self.base = base
        self.api_base = base + API_ROOT
        self.token_uri = base + "/token"

    @property
    def deliver(self) -> Deliver:
        """Where pushes go: `deliver(url, headers)`, an HTTP POST unless replaced."""
        return self.state.deliver

    @deliver.setter
    def deliver(self, deliver: Deliver) -> None:
        self.state.deliver = deliver

    def service_account(
        self, email: str | None = None, *, delegation: bool = True
    ) -> dict[str, Any]:
        """A new key JSON (of a new account unless `email` names one), its token_uri here.
        `delegation`: whether the account may impersonate users (a JWT `sub`)."""
        return self.state.issue_key(self.token_uri, email, delegation=delegation)

    def add_calendar(self, calendar_id: str, time_zone: str = "UTC") -> Calendar:
        return self.state.add_calendar(calendar_id, time_zone)

    def add_event(
        self,
        calendar_id: str,
        start: date,
        end: date,
        *,
        transparent: bool = False,
        all_day: bool = False,
        summary: str = "",
        declined: bool = False,
    ) -> str:
        """An event as a person adds it in Google Calendar (the calendar made if new, in
        UTC); returns its id. `declined`: the calendar's owner was invited and said no."""
        calendar = self.state.add_calendar(calendar_id)
        fields: dict[str, Any] = {"summary": summary, **_times(start, end, all_day)}
        if transparent:
            fields["transparency"] = "transparent"
        if declined:
            fields["attendees"] = [
                {"email": calendar_id, "self": True, "responseStatus": "declined"}
            ]
        event: dict[str, Any] = self.state.create(calendar, fields, None, calendar_id)
        return str(event["id"])

    def move_event(self, calendar_id: str, event_id: str, start: date, end: date) -> None:
        """The event dragged to [start, end) (days if it is an all-day event)."""
        calendar = self.state.calendar(calendar_id)
        event = self.state.event(calendar, event_id)
        self.state.patch(calendar, event, _times(start, end, "date" in event["start"]))

    def delete_event(self, calendar_id: str, event_id: str) -> None:
        self.state.delete(self.state.calendar(calendar_id), event_id)

    def events(self, calendar_id: str) -> list[dict[str, Any]]:
        """The calendar's events that are not deleted, oldest change first."""
        calendar = self.state.calendar(calendar_id)
        live = [e for e in calendar.events.values() if e["status"] != "cancelled"]
        return sorted(live, key=lambda e: calendar.changed[e["id"]])

    def fail(
        self, times: int, status: int, retry_after: float | None = None, reason: str | None = None
    ) -> None:
        """The next `times` calendar requests answer `status` (429, 500, 503, ...) with
        Google's `reason` for it (429 and 403: rateLimitExceeded) unless given."""
        self.state.fail(times, status, retry_after, reason)

    def stall(self, times: int, seconds: float) -> None:
        """The next `times` calendar requests wait `seconds`, then take effect."""
        self.state.stall(times, seconds)

    def revoke(self, client_email: str) -> None:
        self.state.revoke(client_email)

    def expire_sync_tokens(self, calendar_id: str) -> None:
        self.state.expire_sync_tokens(calendar_id)

    def channels(self, calendar_id: str) -> list[dict[str, Any]]:
        """The calendar's live watch channels."""
        return [
            {
                "id": c.id,
                "resourceId": c.resource_id,
                "token": c.token,
                "address": c.address,
                "expiration": c.expiration_ms,
            }
            for c in self.state.live_channels(calendar_id)
        ]


@asynccontextmanager
async def google_calendar(deliver: Deliver | None = None) -> AsyncIterator[GoogleCalendarStandin]:
    """The stand-in on 127.0.0.1 at a free port, until the block ends."""
    app = build_app(deliver)
    runner = await serve(app, port=0)
    host, port = runner.addresses[0][:2]
    try:
        yield GoogleCalendarStandin(app[STANDIN], f"http://{host}:{port}")
    finally:
        await runner.cleanup()
