"""Google Calendar through its own client libraries: google-auth signs in as a service
account (impersonating a user when the domain delegates to it), google-api-python-client
calls Calendar v3 over httplib2.

Instances are made per activity call, on many threads at once, so making one is cheap:
the discovery document is read once per process, the credentials (and with them the
access token) are shared between instances of the same key, and only the httplib2
connection, which is not thread-safe, is each instance's own.

Every request is made once (`num_retries=0`): the library's own retries sleep on the
thread and ignore Retry-After, where Temporal's retries of the activity wait properly.
What Google answers becomes CredentialRefused, CalendarThrottled or CalendarRefused
(`calendar_clients.py`), worded without the key, the token or the event's content."""

from __future__ import annotations

import base64
import functools
import hashlib
import http.client
import json
import logging
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import google_auth_httplib2  # type: ignore[import-untyped, unused-ignore]
import httplib2  # type: ignore[import-untyped, unused-ignore]
from google.auth.exceptions import RefreshError, TransportError
from google.oauth2 import service_account
from googleapiclient.discovery import build_from_document
from googleapiclient.discovery_cache import get_static_doc
from googleapiclient.errors import HttpError

from activities.calendar_clients import (
    HOLDFAST_PROPERTY,
    CalendarRefused,
    CalendarThrottled,
    Changes,
    Channel,
    CredentialRefused,
    EventContent,
    ExternalEvent,
    Written,
)

log = logging.getLogger("holdfast.calendar")

SCOPE = "https://www.googleapis.com/auth/calendar"
PAGE_SIZE = 2500  # the most events.list returns at once
RATE_LIMITS = frozenset({"rateLimitExceeded", "userRateLimitExceeded", "quotaExceeded"})
_CREDENTIALS_KEPT = 1024

_credentials: OrderedDict[str, service_account.Credentials] = OrderedDict()
_credentials_lock = threading.Lock()


def event_id(key: str, generation: int) -> str:
    """The Google event id for a key: 32 base32hex characters of its SHA-256, then the
    generation in decimal (digits are base32hex too), so one key always names the same
    event and a new generation a new one."""
    digest = hashlib.sha256(key.encode()).digest()[:20]
    return base64.b32hexencode(digest).decode().lower() + str(generation)


@functools.cache
def _discovery_document() -> str:
    """Calendar v3's discovery document as the library ships it, read once. Each service
    parses its own copy: the library writes into the parsed document as it goes."""
    document: str | None = get_static_doc("calendar", "v3")
    if document is None:
        raise RuntimeError("google-api-python-client ships no calendar v3 document")
    return document


def _shared_credentials(key: Mapping[str, Any], subject: str | None) -> service_account.Credentials:
    """One credentials object per key and subject in this process, so that an access
    token fetched by one instance serves the others until it expires. Keyed by a digest
    (no key material kept in the clear as a key), the least recently used dropped."""
    identity = [key.get("client_email"), key.get("private_key_id"), subject, key.get("token_uri")]
    digest = hashlib.sha256(json.dumps(identity).encode()).hexdigest()
    with _credentials_lock:
        if digest in _credentials:
            _credentials.move_to_end(digest)
            return _credentials[digest]
    try:
        made = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            key, scopes=[SCOPE], subject=subject
        )
    except (ValueError, KeyError, TypeError):
        raise CredentialRefused("the Google service-account key is malformed") from None
    with _credentials_lock:
        kept = _credentials.setdefault(digest, made)
        while len(_credentials) > _CREDENTIALS_KEPT:
            _credentials.popitem(last=False)
        return kept


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        raise ValueError("a calendar time needs its offset")
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _instant(text: str, zone: ZoneInfo) -> datetime:
    """An RFC 3339 time in UTC (one without an offset read in `zone`)."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=zone)).astimezone(UTC)


def _when(value: Mapping[str, str], zone: ZoneInfo) -> datetime:
    """An event's start or end in UTC: a `date` (all day) is midnight in the calendar's
    zone, a `dateTime` carries its offset."""
    if "date" in value:
        day = date.fromisoformat(value["date"])
        return datetime(day.year, day.month, day.day, tzinfo=zone).astimezone(UTC)
    return _instant(value["dateTime"], zone)


def _declined(item: Mapping[str, Any]) -> bool:
    """The calendar's owner said no: Google keeps the event there, free/busy ignores it."""
    return any(
        a.get("self") and a.get("responseStatus") == "declined" for a in item.get("attendees", [])
    )


def _external(item: Mapping[str, Any], zone: ZoneInfo) -> ExternalEvent:
    marker = item.get("extendedProperties", {}).get("private", {}).get(HOLDFAST_PROPERTY)
    if item.get("status") == "cancelled":
        return ExternalEvent(
            item["id"], None, None, busy=False, removed=True, holdfast_booking=marker
        )
    busy = item.get("transparency") != "transparent" and not _declined(item)
    start, end = _when(item["start"], zone), _when(item["end"], zone)
    return ExternalEvent(item["id"], start, end, busy=busy, holdfast_booking=marker)


def _event_body(content: EventContent) -> dict[str, Any]:
    return {
        "summary": content.summary,
        "description": content.description,
        "start": {"dateTime": _rfc3339(content.start)},
        "end": {"dateTime": _rfc3339(content.end)},
        "extendedProperties": {"private": {HOLDFAST_PROPERTY: content.booking_id}},
        "transparency": "opaque",
    }


def _reasons(refused: HttpError) -> set[str]:
    """The `reason`s of Google's error JSON (`error.errors[].reason`)."""
    try:
        errors = json.loads(refused.content)["error"]["errors"]
        return {str(e["reason"]) for e in errors if "reason" in e}
    except (ValueError, KeyError, TypeError):
        return set()


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Retry-After in seconds, given as seconds or as an HTTP date."""
    given = headers.get("retry-after")
    if not given:
        return None
    try:
        return max(0.0, float(given))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(given) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def _refusal(refused: HttpError, writing: bool) -> Exception:
    """A 403 that is not a rate limit refuses the credential on a read; on a write it
    refuses only the write (a calendar shared read-only), which must not flip the
    connection back and forth between a working read and a refused write."""
    status, reasons = refused.resp.status, _reasons(refused)
    what = f"Google Calendar answered HTTP {status}"
    if reasons:
        what += f" ({', '.join(sorted(reasons))})"
    if status == 401 or (status == 403 and not reasons & RATE_LIMITS and not writing):
        return CredentialRefused(what)
    if status == 403 and not reasons & RATE_LIMITS:
        return CalendarRefused(what)
    if status in (403, 408, 429) or status >= 500:
        return CalendarThrottled(what, _retry_after(refused.resp))
    return CalendarRefused(what)


# An OAuth error code (invalid_grant, ...): what of a token endpoint's answer is quoted.
_ERROR_CODE = re.compile(r"[a-z_]{1,40}")


def _token_refusal(refused: RefreshError) -> Exception:
    """A refused token request: for good (invalid_grant, unauthorized_client, 401) unless
    google-auth judged it retryable (5xx, 429, temporarily_unavailable)."""
    answer = refused.args[1] if len(refused.args) > 1 else None
    error = answer.get("error") if isinstance(answer, Mapping) else None
    if not (isinstance(error, str) and _ERROR_CODE.fullmatch(error)):  # the key's own
        error = None  # endpoint answered: quote no free text of it
    what = f"Google refused the service account a token ({error or 'no reason given'})"
    return CalendarThrottled(what) if refused.retryable else CredentialRefused(what)


@contextmanager
def _translated(*, writing: bool = False) -> Iterator[None]:
    """What the libraries raise, as CalendarError; the original is not chained, as its
    text names the request (and the token endpoint's answer)."""
    try:
        yield
    except HttpError as refused:
        raise _refusal(refused, writing) from None
    except RefreshError as refused:
        raise _token_refusal(refused) from None
    except (TransportError, httplib2.HttpLib2Error, http.client.HTTPException, OSError) as lost:
        raise CalendarThrottled(f"Google Calendar did not answer ({type(lost).__name__})") from None


class GoogleCalendar:
    """One Google calendar (`calendar_id`) as the service account `key` sees it, or as
    `subject` does when the account may impersonate the domain's users."""

    def __init__(
        self,
        key: dict[str, Any],
        calendar_id: str,
        *,
        subject: str | None,
        api_base: str,
        timeout: float,
    ) -> None:
        credentials = _shared_credentials(key, subject)
        # Direct, whatever proxy the environment names: httplib2 proxies only through
        # PySocks (not installed), and fails every request, a local stand-in's too, when
        # asked to without it.
        connection = httplib2.Http(timeout=timeout, proxy_info=None)
        self._connection = connection
        self._calendar_id = calendar_id
        self._service = build_from_document(
            json.loads(_discovery_document()),
            http=google_auth_httplib2.AuthorizedHttp(credentials, http=connection),
            client_options={"api_endpoint": api_base},
        )

    def close(self) -> None:
        self._connection.close()

    # The change feed

    def changes(self, cursor: str | None, start: datetime, end: datetime) -> Changes:
        with _translated():
            if cursor is not None:
                try:
                    events, following = self._listing(syncToken=cursor)
                    return Changes(events, following, full=False)
                except HttpError as refused:
                    if refused.resp.status != 410:  # 410: the token expired, list all again
                        raise
            events, following = self._listing(timeMin=_rfc3339(start), timeMax=_rfc3339(end))
            return Changes(events, following, full=True)

    def _listing(self, **narrowed: str) -> tuple[list[ExternalEvent], str]:
        """Every page of events.list: the events, and the last page's sync token. Recurring
        events come as their single instances; deleted ones are listed too."""
        events = self._service.events()
        request = events.list(
            calendarId=self._calendar_id,
            singleEvents=True,
            showDeleted=True,
            maxResults=PAGE_SIZE,
            **narrowed,
        )
        found: list[ExternalEvent] = []
        while True:
            page = request.execute(num_retries=0)
            zone = _zone(page.get("timeZone"))
            found.extend(_external(item, zone) for item in page.get("items", []))
            request = events.list_next(request, page)
            if request is None:
                break
        if not page.get("nextSyncToken"):
            raise CalendarRefused("Google Calendar's listing ended without a sync token")
        return found, str(page["nextSyncToken"])

    # Our events

    def put_event(self, content: EventContent, external_id: str | None, generation: int) -> Written:
        """Inserts the event under its deterministic id, so that a retry after a lost
        answer finds it (409) and patches it instead of adding one. An id taken by an event
        deleted earlier (Google keeps the id) moves on to the next generation. An
        `external_id` other than this generation's id is where the event was written
        before: it is patched while it lives."""
        body = _event_body(content)
        with _translated(writing=True):
            elsewhere = external_id if external_id != event_id(content.key, generation) else None
            if elsewhere is not None and self._live(elsewhere):
                self._patch(elsewhere, body)
                return Written(elsewhere, generation)
            return self._insert(content.key, generation, body)

    def _insert(self, key: str, generation: int, body: dict[str, Any]) -> Written:
        while True:
            wanted = event_id(key, generation)
            try:
                self._service.events().insert(
                    calendarId=self._calendar_id, body={**body, "id": wanted}
                ).execute(num_retries=0)
                return Written(wanted, generation)
            except HttpError as refused:
                if refused.resp.status != 409:  # 409: the id is taken
                    raise
            if self._live(wanted):
                self._patch(wanted, body)
                return Written(wanted, generation)
            generation += 1

    def _live(self, external_id: str) -> bool:
        """Whether the event exists and is not deleted."""
        try:
            found = (
                self._service.events()
                .get(calendarId=self._calendar_id, eventId=external_id)
                .execute(num_retries=0)
            )
        except HttpError as refused:
            if refused.resp.status in (404, 410):
                return False
            raise
        return bool(found.get("status") != "cancelled")

    def _patch(self, external_id: str, body: dict[str, Any]) -> None:
        self._service.events().patch(
            calendarId=self._calendar_id, eventId=external_id, body=body
        ).execute(num_retries=0)

    def delete_event(self, external_id: str) -> None:
        with _translated(writing=True):
            try:
                self._service.events().delete(
                    calendarId=self._calendar_id, eventId=external_id
                ).execute(num_retries=0)
            except HttpError as refused:
                if refused.resp.status not in (404, 410):  # gone already
                    raise

    # Push channels

    def watch(self, address: str, channel_id: str, token: str, expires_at: datetime) -> Channel:
        body = {
            "id": channel_id,
            "type": "web_hook",
            "address": address,
            "token": token,
            "expiration": _ms(expires_at),
        }
        with _translated():
            answer = (
                self._service.events()
                .watch(calendarId=self._calendar_id, body=body)
                .execute(num_retries=0)
            )
        expires = datetime.fromtimestamp(int(answer["expiration"]) / 1000, UTC)
        return Channel(answer["id"], answer["resourceId"], answer.get("token", token), expires)

    def renew(self, channel: Channel, address: str, expires_at: datetime) -> Channel:
        """Google cannot extend a channel: a new one opens, then the old one is stopped. A
        failure to stop it is let be: it lapses by itself soon, and meanwhile a change is
        pushed twice, which only syncs twice."""
        renewed = self.watch(address, str(uuid.uuid4()), channel.token, expires_at)
        try:
            self.unwatch(channel)
        except (CalendarThrottled, CalendarRefused) as failed:
            log.warning("channel %s not stopped, it lapses by itself: %s", channel.id, failed)
        return renewed

    def unwatch(self, channel: Channel) -> None:
        body = {"id": channel.id, "resourceId": channel.resource_id}
        with _translated():
            try:
                self._service.channels().stop(body=body).execute(num_retries=0)
            except HttpError as refused:
                if refused.resp.status != 404:  # stopped already, or lapsed
                    raise
