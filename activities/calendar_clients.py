"""What Holdfast asks of an external calendar, whichever provider holds it
(docs/calendars.md): the changes since the last sync, an event written once under a
deterministic key, a push channel. `google_calendar.py` and `microsoft_calendar.py` answer
it through the providers' own client libraries; both are synchronous and run in the
worker's thread pool, never on its event loop.

A client never retries by itself (the Google client's `num_retries` is 0): it raises
`CalendarThrottled` with the provider's delay and Temporal retries the activity.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from temporalio.exceptions import ApplicationError

# The marker on every event Holdfast writes: a private extended property on Google (its
# value the booking id), a single-value extended property on Graph (the booking id and the
# event's key, which a lookup before a second create searches; Graph's delta answers omit
# it, so there the booking comes from the transactionId). An event that carries it is
# never imported back as busy time.
HOLDFAST_PROPERTY = "holdfastBookingId"


class CalendarError(Exception):
    """Base of what a calendar client raises; the message names no secret."""


class CredentialRefused(CalendarError):
    """The provider refused the credential itself (invalid_grant, 401, a revoked key, a
    403 that is not a rate limit): retrying cannot help until someone fixes it."""


class CalendarThrottled(CalendarError):
    """Worth retrying: 429, a rate-limit 403, 5xx, a timeout or a refused connection.
    `retry_after` is the provider's delay in seconds when it gave one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_later(throttled: list[CalendarThrottled]) -> ApplicationError:
    """The activity's failure while providers throttle: Temporal retries it after the
    longest delay they asked for, or on its own backoff when none gave one."""
    delays = [t.retry_after for t in throttled if t.retry_after]
    return ApplicationError(
        f"calendar provider throttled: {throttled[0]}",
        type="CalendarThrottled",
        next_retry_delay=timedelta(seconds=max(delays)) if delays else None,
    )


class CalendarRefused(CalendarError):
    """Any other refusal (404 calendar, 400 bad request): lasting, but about this
    request or calendar, not the credential."""


@dataclass(frozen=True)
class ExternalEvent:
    """One event as a change feed reports it. `removed` events (deleted, cancelled,
    `@removed`) carry no times. `busy` is False for transparent / free events, and for
    removed ones. `holdfast_booking` is our marker's value when the event carries it."""

    id: str
    start: datetime | None
    end: datetime | None
    busy: bool
    removed: bool = False
    holdfast_booking: str | None = None


@dataclass(frozen=True)
class Changes:
    """What changed since `cursor`. `full` means the listing is complete for the window
    (first sync, or the provider expired the cursor with 410): whatever is stored and
    not in it is gone. `cursor` is the next sync token / delta link."""

    events: list[ExternalEvent]
    cursor: str
    full: bool


@dataclass(frozen=True)
class EventContent:
    """A booking as an event. `key` is deterministic per booking, calendar and
    generation: Google derives the event id from it, Graph the transactionId."""

    booking_id: str
    key: str
    summary: str
    description: str
    start: datetime
    end: datetime


@dataclass(frozen=True)
class Written:
    """Where an event now lives: the provider's id, and the generation used (Google moves
    to the next one when the id was taken by an event deleted earlier)."""

    external_id: str
    generation: int


@dataclass(frozen=True)
class Channel:
    """A push subscription: Google's watch channel (`id`, `resource_id`) or a Graph
    subscription (`id`; `resource_id` empty). `token` is what each push must carry
    (X-Goog-Channel-Token / clientState)."""

    id: str
    resource_id: str
    token: str
    expires_at: datetime


class CalendarClient(Protocol):
    """One calendar, with its credential already decrypted. Every call may raise
    CredentialRefused, CalendarThrottled or CalendarRefused."""

    def changes(self, cursor: str | None, start: datetime, end: datetime) -> Changes:
        """All changes since `cursor` (None: everything in `[start, end)`; an incremental
        answer may hold events outside the window too). An expired cursor (410) is
        answered with a full listing of the window, `full=True`."""
        ...

    def put_event(self, content: EventContent, external_id: str | None, generation: int) -> Written:
        """Create the event, or update it when it exists (by `external_id`, or found by
        its key after a create whose answer was lost): never two events for one key."""
        ...

    def delete_event(self, external_id: str) -> None:
        """Delete it; an event already gone counts as deleted."""
        ...

    def watch(self, address: str, channel_id: str, token: str, expires_at: datetime) -> Channel:
        """Ask the provider to push to `address` on every change until `expires_at`
        (the provider may shorten it)."""
        ...

    def renew(self, channel: Channel, address: str, expires_at: datetime) -> Channel:
        """Extend a channel before it lapses (Graph: PATCH; Google: a new channel, the
        old one stopped)."""
        ...

    def unwatch(self, channel: Channel) -> None:
        """Stop pushes; a channel already gone counts as stopped."""
        ...

    def close(self) -> None:
        """Let go of its connections (a client serves one activity call)."""
        ...
