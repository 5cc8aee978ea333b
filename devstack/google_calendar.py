"""The local Google Calendar stand-in: Google's OAuth token endpoint and the parts of
Calendar v3 Holdfast calls, in memory, answering as Google does so that the real client
libraries (google-auth, google-api-python-client) cannot tell.

- `POST /token`: the service-account grant (a JWT signed with the account's key). The
  signature is checked against the public half of a key this stand-in issued; a revoked
  or unknown account is refused with `invalid_grant`, a subject (domain-wide delegation)
  for an account without delegation with `unauthorized_client`. Access tokens last an
  hour; one whose account was revoked since stops working at once.
- `/calendar/v3/`: events list (with `syncToken`, `pageToken`, `maxResults`, `timeMin`,
  `timeMax`, `showDeleted`), insert (a client-chosen `id` is honoured; an id taken, even
  by a deleted event, is a 409), get, patch, update, delete (a deleted one is a 410),
  watch, `channels/stop` and `freeBusy`. `primary` is the calendar of the token's
  subject, or of the account itself. Calendars have no access lists: any valid token
  reaches any calendar. Events do not recur.
- Each change takes the calendar's next sequence number; a sync token is that number at
  the end of a listing, and an incremental listing returns what changed after it (deleted
  events as `{"status": "cancelled"}`). `expire_sync_tokens` makes every earlier token a
  410 `fullSyncRequired`, as Google does when a token grows old.
- A watch channel receives a `sync` message when opened and an `exists` message on every
  change, through `deliver(url, headers)` (an HTTP POST unless replaced).
- Faults for tests: `fail` answers the next calendar requests with an error, `stall`
  holds them (the request still takes effect afterwards, as when an answer is lost).

Errors have Google's shape: `{"error": {"code", "message", "errors": [{"domain",
"reason", "message"}], "status"}}`.

`python -m devstack.google_calendar --host 127.0.0.1 --port 8427 --key-file
.data/google-service-account.json` also writes a service-account key the stand-in knows
(kept across runs), to connect a calendar with while offline."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import copy
import hashlib
import http
import itertools
import json
import logging
import re
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.secrets import write_private

log = logging.getLogger("holdfast.google")

API_ROOT = "/calendar/v3/"
SCOPE = "https://www.googleapis.com/auth/calendar"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_SECONDS = 3600
CHANNEL_SECONDS = 7 * 86400  # the longest a Calendar channel lives
PAGE_DEFAULT, PAGE_MAX = 250, 2500
DEMO_EMAIL = "holdfast-demo@holdfast-local.iam.gserviceaccount.com"
# Google refuses these beside a syncToken: the token already says what to list.
NOT_WITH_SYNC = ("timeMin", "timeMax", "q", "orderBy", "iCalUID", "updatedMin")
# What a client may set on an event; the rest (ids, times of change, etag) is Google's.
WRITABLE = (
    "summary", "description", "location", "start", "end", "transparency", "visibility",
    "status", "extendedProperties", "attendees", "colorId", "reminders",
)  # fmt: skip
_EVENT_ID = re.compile(r"[0-9a-v]{5,1024}")
_CHANNEL_ID = re.compile(r"[A-Za-z0-9_+/=-]{1,64}")
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}
_FAULTS = {  # status: (reason, message) as Google words them
    403: ("rateLimitExceeded", "Rate Limit Exceeded"),
    429: ("rateLimitExceeded", "Rate Limit Exceeded"),
    500: ("backendError", "Backend Error"),
    503: ("backendError", "The service is currently unavailable."),
}

Deliver = Callable[[str, dict[str, str]], Coroutine[Any, Any, None]]


class GoogleError(Exception):
    """An API refusal, answered in Google's JSON shape."""

    def __init__(
        self, status: int, reason: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message
        self.headers = dict(headers or {})

    def response(self) -> web.Response:
        body = {
            "error": {
                "code": self.status,
                "message": self.message,
                "errors": [{"domain": "global", "reason": self.reason, "message": self.message}],
                "status": _STATUS.get(self.status, http.HTTPStatus(self.status).name),
            }
        }
        return web.json_response(body, status=self.status, headers=self.headers)


class TokenRefused(Exception):
    """A refused grant, answered in OAuth's shape (`error`, `error_description`)."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


def _unauthenticated() -> GoogleError:
    return GoogleError(
        401,
        "authError",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
        {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"'},
    )


@dataclass
class Account:
    email: str
    keys: dict[str, rsa.RSAPublicKey]  # by private_key_id
    delegation: bool
    revoked: bool = False


@dataclass(frozen=True)
class Grant:
    email: str
    subject: str | None
    scopes: frozenset[str]
    expires: float  # time.monotonic()


@dataclass
class Calendar:
    id: str
    time_zone: str
    resource_id: str
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # event id: its last change
    sequence: int = 0
    epoch: int = 0  # of its sync tokens: expiring them moves it on


@dataclass
class WatchChannel:
    id: str
    resource_id: str
    calendar_id: str
    token: str | None
    address: str
    expiration_ms: int
    messages: int = 0

    def live(self) -> bool:
        return self.expiration_ms > time.time() * 1000


@dataclass(frozen=True)
class Fault:
    """What the next calendar request meets: a wait, then an error unless `status` is
    None."""

    status: int | None
    reason: str = ""
    retry_after: float | None = None
    stall: float = 0.0


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _now() -> str:
    return rfc3339(datetime.now(UTC))


def _encode(state: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def _decode(token: str) -> dict[str, Any] | None:
    try:
        state = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (binascii.Error, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise GoogleError(400, "invalid", f"Invalid time zone definition: {name}") from None


def _instant(text: str, what: str) -> datetime:
    """An RFC 3339 timestamp with its offset, as Google requires for timeMin and the like."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise GoogleError(400, "badRequest", f"Bad Request: {what} is not an RFC 3339 timestamp")
    return moment


def _when(value: Any, what: str, zone: ZoneInfo) -> datetime:
    """An event's start or end as an instant: `date` is midnight in the calendar's zone, a
    `dateTime` without an offset is read in its `timeZone`."""
    if not isinstance(value, dict) or not (value.get("dateTime") or value.get("date")):
        raise GoogleError(400, "required", f"Missing {what} time.")
    try:
        if value.get("date"):
            day = date.fromisoformat(str(value["date"]))
            return datetime(day.year, day.month, day.day, tzinfo=zone)
        moment = datetime.fromisoformat(str(value["dateTime"]))
    except ValueError:
        raise GoogleError(400, "invalid", f"Invalid {what} time.") from None
    if moment.tzinfo is not None:
        return moment
    if not value.get("timeZone"):
        raise GoogleError(400, "required", f"Missing time zone definition for {what} time.")
    return moment.replace(tzinfo=_zone(str(value["timeZone"])))


def span(event: Mapping[str, Any], time_zone: str) -> tuple[datetime, datetime]:
    zone = ZoneInfo(time_zone)
    start, end = _when(event.get("start"), "start", zone), _when(event.get("end"), "end", zone)
    if end <= start:
        raise GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")
    return start, end


def busy(event: Mapping[str, Any]) -> bool:
    """Whether the event blocks its calendar's time, as free/busy counts it: confirmed or
    tentative, opaque, and not declined by the calendar's owner."""
    if event["status"] == "cancelled" or event.get("transparency") == "transparent":
        return False
    attendees = event.get("attendees", [])
    return not any(a.get("self") and a.get("responseStatus") == "declined" for a in attendees)


def new_key(token_uri: str, email: str) -> dict[str, Any]:
    """A service-account key as the Cloud console downloads it, with a freshly generated
    RSA key and `token_uri` pointing at a stand-in."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": email.partition("@")[2].split(".")[0] or "holdfast-local",
        "private_key_id": secrets.token_hex(20),
        "private_key": pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**21)),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/" + quote(email),
        "universe_domain": "googleapis.com",
    }


def demo_key(path: Path, token_uri: str) -> dict[str, Any]:
    """The key `make run` connects calendars with: the one kept at `path` (its token_uri
    brought up to date), else a new one, saved readable by the owner only."""
    if path.exists():
        key: dict[str, Any] = json.loads(path.read_text())
        if key["token_uri"] == token_uri:
            return key
        key["token_uri"] = token_uri
    else:
        key = new_key(token_uri, DEMO_EMAIL)
    write_private(path, json.dumps(key, indent=2))
    return key


async def post_push(url: str, headers: dict[str, str]) -> None:
    """Google's delivery: an empty POST. A receiver that fails is logged, not retried."""
    try:
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.post(url, headers=headers) as answer,
        ):
            if answer.status >= 300:
                log.warning("push to %s answered HTTP %d", url, answer.status)
    except (aiohttp.ClientError, TimeoutError) as failed:
        log.warning("push to %s failed: %r", url, failed)


class GoogleStandin:
    """The stand-in's state: accounts and their tokens, calendars, channels, faults. The
    handlers and the test helpers change it on the event loop, one at a time."""

    def __init__(self, deliver: Deliver = post_push) -> None:
        self.deliver = deliver
        self.accounts: dict[str, Account] = {}
        self.grants: dict[str, Grant] = {}
        self.calendars: dict[str, Calendar] = {}
        self.channels: dict[str, WatchChannel] = {}
        self.faults: deque[Fault] = deque()
        # Google may answer fewer events a page than maxResults asks for: tests lower
        # this to see pages follow one another without making thousands of events.
        self.page_max = PAGE_MAX
        self._pushes: set[asyncio.Task[None]] = set()
        self._emails = itertools.count(1)

    # Accounts and tokens

    def register(self, key: Mapping[str, Any], *, delegation: bool = True) -> None:
        """Knows `key` from now on (one more key of its account, if the account exists)."""
        loaded = serialization.load_pem_private_key(
            key["private_key"].encode(),
            password=None,
            unsafe_skip_rsa_key_validation=True,  # (a key of ours: checking it is slow)
        )
        if not isinstance(loaded, rsa.RSAPrivateKey):
            raise ValueError("a service-account key is an RSA key")
        email = key["client_email"]
        account = self.accounts.setdefault(email, Account(email, {}, delegation))
        account.keys[key["private_key_id"]] = loaded.public_key()

    def issue_key(
        self, token_uri: str, email: str | None = None, *, delegation: bool = True
    ) -> dict[str, Any]:
        """A new key for `email` (default: a new account), as downloaded from Google."""
        email = email or f"holdfast-{next(self._emails)}@holdfast-tests.iam.gserviceaccount.com"
        key = new_key(token_uri, email)
        self.register(key, delegation=delegation)
        return key

    def revoke(self, email: str) -> None:
        """The account's keys are deleted: no new tokens, and those issued stop working."""
        self.accounts[email].revoked = True

    def grant(self, assertion: str, token_path: str) -> str:
        """An access token for a signed service-account assertion, or TokenRefused."""
        account, claims = self._verified(assertion, token_path)
        scopes = frozenset(str(claims.get("scope", "")).split())
        if not scopes:
            raise TokenRefused(400, "invalid_scope", "Invalid OAuth scope or ID token audience.")
        subject = claims.get("sub")
        if subject and not account.delegation:
            raise TokenRefused(
                401,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or "
                "client not authorized for any of the scopes requested.",
            )
        token = "ya29." + secrets.token_urlsafe(48)
        self.grants[token] = Grant(account.email, subject, scopes, time.monotonic() + TOKEN_SECONDS)
        return token

    def _verified(self, assertion: str, token_path: str) -> tuple[Account, dict[str, Any]]:
        """The account whose key signed the assertion, and the assertion's claims, checked
        as Google checks them (the audience by its path: google-auth names Google's own
        token endpoint there, whatever the key's token_uri)."""
        try:
            kid = jwt.get_unverified_header(assertion).get("kid")
            claims = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.InvalidTokenError:
            raise TokenRefused(400, "invalid_grant", "Invalid JWT: malformed assertion") from None
        account = self.accounts.get(str(claims.get("iss")))
        if account is None:
            raise TokenRefused(400, "invalid_grant", "Invalid grant: account not found")
        public = account.keys.get(str(kid))
        if account.revoked or public is None:
            raise TokenRefused(400, "invalid_grant", "Invalid JWT Signature.")
        try:
            jwt.decode(
                assertion,
                public,
                algorithms=["RS256"],
                leeway=30,
                options={"require": ["iat", "exp", "aud"], "verify_aud": False},
            )
        except jwt.InvalidSignatureError:
            raise TokenRefused(400, "invalid_grant", "Invalid JWT Signature.") from None
        except jwt.InvalidTokenError:
            raise TokenRefused(
                400,
                "invalid_grant",
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a "
                "reasonable timeframe. Check your iat and exp values in the JWT claim.",
            ) from None
        if urlparse(str(claims["aud"])).path != token_path:
            raise TokenRefused(400, "invalid_grant", "Invalid JWT: Failed audience check.")
        return account, claims

    def authorize(self, authorization: str) -> Grant:
        scheme, _, token = authorization.partition(" ")
        grant = self.grants.get(token) if scheme.lower() == "bearer" else None
        if grant is None or grant.expires < time.monotonic():
            raise _unauthenticated()
        if self.accounts[grant.email].revoked:
            raise _unauthenticated()
        if not any(s == SCOPE or s.startswith(SCOPE + ".") for s in grant.scopes):
            raise GoogleError(
                403, "insufficientPermissions", "Request had insufficient authentication scopes."
            )
        return grant

    # Faults

    def fail(
        self, times: int, status: int, retry_after: float | None = None, reason: str | None = None
    ) -> None:
        """The next `times` calendar requests are answered with `status` (and Retry-After)."""
        default = _FAULTS.get(status, ("backendError", ""))[0]
        self.faults.extend([Fault(status, reason or default, retry_after)] * times)

    def stall(self, times: int, seconds: float) -> None:
        """The next `times` calendar requests wait `seconds` first, then go on as asked."""
        self.faults.extend([Fault(None, stall=seconds)] * times)

    # Calendars and events

    def add_calendar(self, calendar_id: str, time_zone: str = "UTC") -> Calendar:
        _zone(time_zone)
        resource_id = hashlib.sha256(calendar_id.encode()).hexdigest()[:27]
        return self.calendars.setdefault(calendar_id, Calendar(calendar_id, time_zone, resource_id))

    def calendar(self, calendar_id: str, grant: Grant | None = None) -> Calendar:
        if calendar_id == "primary" and grant is not None:
            return self.add_calendar(grant.subject or grant.email)
        if calendar_id not in self.calendars:
            raise GoogleError(404, "notFound", "Not Found")
        return self.calendars[calendar_id]

    def event(self, calendar: Calendar, event_id: str) -> dict[str, Any]:
        if event_id not in calendar.events:
            raise GoogleError(404, "notFound", "Not Found")
        return calendar.events[event_id]

    def create(
        self, calendar: Calendar, fields: Mapping[str, Any], event_id: str | None, author: str
    ) -> dict[str, Any]:
        """A new event from the writable `fields`, under `event_id` or one of Google's."""
        event_id = event_id or base64.b32hexencode(secrets.token_bytes(15)).decode().lower()
        if not _EVENT_ID.fullmatch(event_id):
            raise GoogleError(400, "invalid", "Invalid resource id value.")
        if event_id in calendar.events:
            raise GoogleError(409, "duplicate", "The requested identifier already exists.")
        now = _now()
        event: dict[str, Any] = {
            "kind": "calendar#event",
            "id": event_id,
            "htmlLink": f"https://www.google.com/calendar/event?eid={event_id}",
            "created": now,
            "creator": {"email": author},
            "organizer": {"email": calendar.id, "self": True},
            "iCalUID": f"{event_id}@google.com",
            "sequence": 0,
            "reminders": {"useDefault": True},
            "eventType": "default",
        }
        return self.replace(calendar, event, fields)

    def replace(
        self, calendar: Calendar, event: dict[str, Any], fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`event` with its writable fields set to `fields` (an update), saved."""
        changed = {k: v for k, v in event.items() if k not in WRITABLE}
        changed.update({k: copy.deepcopy(fields[k]) for k in WRITABLE if k in fields})
        changed.setdefault("status", "confirmed")
        return self._save(calendar, changed)

    def patch(
        self, calendar: Calendar, event: dict[str, Any], fields: Mapping[str, Any]
    ) -> dict[str, Any]:
        """`event` with `fields` merged in (objects merged, null removes), saved. A start or
        an end is replaced whole: a `dateTime` merged beside a `date` would be neither."""
        changed = copy.deepcopy(event)
        for name in WRITABLE:
            if name in fields and name in ("start", "end"):
                changed[name] = copy.deepcopy(fields[name])
            elif name in fields:
                _merge(changed, name, fields[name])
        return self._save(calendar, changed)

    def delete(self, calendar: Calendar, event_id: str) -> None:
        event = self.event(calendar, event_id)
        if event["status"] == "cancelled":
            raise GoogleError(410, "deleted", "Resource has been deleted")
        self._save(calendar, {**event, "status": "cancelled"})

    def _save(self, calendar: Calendar, event: dict[str, Any]) -> dict[str, Any]:
        if event["status"] not in ("confirmed", "tentative", "cancelled"):
            raise GoogleError(400, "invalid", "Invalid value for: status")
        if event.get("transparency", "opaque") not in ("opaque", "transparent"):
            raise GoogleError(400, "invalid", "Invalid value for: transparency")
        span(event, calendar.time_zone)
        calendar.sequence += 1
        event["etag"] = f'"{time.time_ns() // 1000}{calendar.sequence}"'
        event["updated"] = _now()
        calendar.events[event["id"]] = event
        calendar.changed[event["id"]] = calendar.sequence
        self._notify(calendar)
        return copy.deepcopy(event)

    # Listing

    def listing(self, calendar: Calendar, query: Mapping[str, str]) -> dict[str, Any]:
        """One page of events.list, as Google answers it."""
        limit = min(_page_size(query.get("maxResults")), self.page_max)
        wanted = self._selection(calendar, query)
        as_of, after = calendar.sequence, 0
        if "pageToken" in query:
            as_of, after = _page_position(query["pageToken"], calendar)
        chosen = sorted(
            (i for i, seq in calendar.changed.items() if after < seq <= as_of and wanted(i)),
            key=calendar.changed.__getitem__,
        )
        page = {
            "kind": "calendar#events",
            "etag": f'"{calendar.sequence}"',
            "summary": calendar.id,
            "updated": _now(),
            "timeZone": calendar.time_zone,
            "accessRole": "owner",
            "defaultReminders": [],
            "items": [_listed(calendar.events[i]) for i in chosen[:limit]],
        }
        if len(chosen) > limit:
            last = calendar.changed[chosen[limit - 1]]
            page["nextPageToken"] = _encode({"c": calendar.id, "q": as_of, "a": last})
        else:
            page["nextSyncToken"] = _encode({"c": calendar.id, "e": calendar.epoch, "q": as_of})
        return page

    def _selection(self, calendar: Calendar, query: Mapping[str, str]) -> Callable[[str], bool]:
        """Which events a listing asks for: those changed since its sync token (deleted ones
        too), else those overlapping [timeMin, timeMax) (deleted ones if showDeleted)."""
        if "syncToken" in query:
            if any(name in query for name in NOT_WITH_SYNC):
                raise GoogleError(400, "invalid", "Sync token cannot be used with other filters.")
            since = _sync_position(query["syncToken"], calendar)
            return lambda event_id: calendar.changed[event_id] > since
        low = _instant(query["timeMin"], "timeMin") if "timeMin" in query else None
        high = _instant(query["timeMax"], "timeMax") if "timeMax" in query else None
        if low is not None and high is not None and high <= low:
            raise GoogleError(400, "timeRangeEmpty", "The specified time range is empty.")
        deleted = query.get("showDeleted") == "true"

        def wanted(event_id: str) -> bool:
            event = calendar.events[event_id]
            if event["status"] == "cancelled" and not deleted:
                return False
            start, end = span(event, calendar.time_zone)
            return (low is None or end > low) and (high is None or start < high)

        return wanted

    def expire_sync_tokens(self, calendar_id: str) -> None:
        self.calendars[calendar_id].epoch += 1

    def free_busy(
        self, calendar_id: str, grant: Grant, low: datetime, high: datetime
    ) -> dict[str, Any]:
        """freeBusy's answer for one calendar: busy intervals clipped to [low, high) and
        merged where they touch, or the calendar's error."""
        try:
            calendar = self.calendar(calendar_id, grant)
        except GoogleError as refused:
            return {"errors": [{"domain": "global", "reason": refused.reason}], "busy": []}
        spans = sorted(span(e, calendar.time_zone) for e in calendar.events.values() if busy(e))
        merged: list[list[datetime]] = []
        for start, end in spans:
            start, end = max(start, low), min(end, high)
            if start >= end:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        return {"busy": [{"start": rfc3339(s), "end": rfc3339(e)} for s, e in merged]}

    # Channels

    def watch(self, calendar: Calendar, body: Mapping[str, Any]) -> WatchChannel:
        channel_id, address = str(body.get("id", "")), str(body.get("address", ""))
        if not _CHANNEL_ID.fullmatch(channel_id):
            raise GoogleError(400, "invalid", "Invalid channel id.")
        if body.get("type") not in ("web_hook", "webhook"):
            raise GoogleError(400, "invalid", "Invalid value for: type")
        if urlparse(address).scheme not in ("http", "https"):
            message = f"Unauthorized WebHook callback channel: {address}"
            raise GoogleError(400, "push.webhookUrlUnauthorized", message)
        if channel_id in self.channels and self.channels[channel_id].live():
            raise GoogleError(400, "channelIdNotUnique", f"Channel id {channel_id} not unique")
        longest = int(time.time() * 1000) + CHANNEL_SECONDS * 1000
        try:
            asked = int(body.get("expiration") or longest)
        except ValueError:
            raise GoogleError(400, "invalid", "Invalid value for: expiration") from None
        token = body.get("token")
        channel = WatchChannel(
            channel_id,
            calendar.resource_id,
            calendar.id,
            None if token is None else str(token),
            address,
            min(asked, longest),
        )
        self.channels[channel_id] = channel
        self._push(channel, "sync")
        return channel

    def stop(self, channel_id: str, resource_id: str) -> None:
        channel = self.channels.get(channel_id)
        if channel is None or channel.resource_id != resource_id or not channel.live():
            raise GoogleError(404, "notFound", f"Channel '{channel_id}' not found for project")
        del self.channels[channel_id]

    def live_channels(self, calendar_id: str) -> Iterator[WatchChannel]:
        return (c for c in self.channels.values() if c.calendar_id == calendar_id and c.live())

    def _notify(self, calendar: Calendar) -> None:
        for channel in list(self.live_channels(calendar.id)):
            self._push(channel, "exists")

    def _push(self, channel: WatchChannel, state: str) -> None:
        """Hands Google's push headers to `deliver` in a task of its own, as Google pushes
        apart from the change that caused it."""
        channel.messages += 1
        expiration = datetime.fromtimestamp(channel.expiration_ms / 1000, UTC)
        headers = {
            "X-Goog-Channel-ID": channel.id,
            "X-Goog-Channel-Expiration": format_datetime(expiration, usegmt=True),
            "X-Goog-Resource-ID": channel.resource_id,
            "X-Goog-Resource-URI": "https://www.googleapis.com/calendar/v3/calendars/"
            f"{quote(channel.calendar_id)}/events?alt=json",
            "X-Goog-Resource-State": state,
            "X-Goog-Message-Number": str(channel.messages),
        }
        if channel.token is not None:
            headers["X-Goog-Channel-Token"] = channel.token
        task = asyncio.get_running_loop().create_task(self.deliver(channel.address, headers))
        self._pushes.add(task)
        task.add_done_callback(self._pushes.discard)

    async def close(self, app: web.Application | None = None) -> None:
        """Drops the pushes still on their way."""
        for task in list(self._pushes):
            task.cancel()
        await asyncio.gather(*self._pushes, return_exceptions=True)


STANDIN = web.AppKey("google_standin", GoogleStandin)


def _merge(target: dict[str, Any], name: str, value: Any) -> None:
    """Patch semantics: null removes, objects merge, anything else replaces."""
    if value is None:
        target.pop(name, None)
    elif isinstance(value, dict) and isinstance(target.get(name), dict):
        for inner, given in value.items():
            _merge(target[name], inner, given)
    else:
        target[name] = copy.deepcopy(value)


def _listed(event: dict[str, Any]) -> dict[str, Any]:
    """An event as a listing shows it: a deleted one as little more than its id."""
    if event["status"] == "cancelled":
        return {k: event[k] for k in ("kind", "etag", "id", "status", "updated")}
    return copy.deepcopy(event)


def _page_size(given: str | None) -> int:
    try:
        size = int(given) if given is not None else PAGE_DEFAULT
    except ValueError:
        size = 0
    if size < 1:
        raise GoogleError(400, "invalid", f"Invalid value '{given}'. Values must be at least 1")
    return size


def _sync_position(token: str, calendar: Calendar) -> int:
    state = _decode(token)
    if (
        state is None
        or state.get("c") != calendar.id
        or state.get("e") != calendar.epoch
        or not isinstance(state.get("q"), int)
        or not 0 <= state["q"] <= calendar.sequence
    ):
        raise GoogleError(
            410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required."
        )
    position: int = state["q"]
    return position


def _page_position(token: str, calendar: Calendar) -> tuple[int, int]:
    """(the sequence the listing's first page saw, the last one its pages returned)."""
    state = _decode(token)
    if state is None or state.get("c") != calendar.id or not {"q", "a"} <= state.keys():
        raise GoogleError(400, "invalid", "Invalid page token.")
    return int(state["q"]), int(state["a"])


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise GoogleError(400, "parseError", "Parse Error")
    return body


def _standin(request: web.Request) -> GoogleStandin:
    return request.app[STANDIN]


GRANT = web.RequestKey("grant", Grant)


def _calendar(request: web.Request) -> Calendar:
    return _standin(request).calendar(request.match_info["calendar_id"], request[GRANT])


@web.middleware
async def google_api(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every calendar request: a fault queued for it, then the Bearer token, then the
    handler; a GoogleError anywhere becomes Google's error JSON."""
    if not request.path.startswith(API_ROOT):
        return await handler(request)
    standin = _standin(request)
    try:
        fault = standin.faults.popleft() if standin.faults else None
        if fault is not None:
            await request.read()  # (taken before the client gives up, to act on later)
            await asyncio.sleep(fault.stall)
            if fault.status is not None:
                delay = fault.retry_after
                headers = {} if delay is None else {"Retry-After": f"{delay:g}"}
                phrase = http.HTTPStatus(fault.status).phrase
                message = _FAULTS.get(fault.status, ("", phrase))[1]
                raise GoogleError(fault.status, fault.reason, message, headers)
        request[GRANT] = standin.authorize(request.headers.get("Authorization", ""))
        return await handler(request)
    except GoogleError as refused:
        return refused.response()


async def token(request: web.Request) -> web.Response:
    form = await request.post()
    if form.get("grant_type") != JWT_BEARER:
        body = {"error": "unsupported_grant_type", "error_description": "Invalid grant_type"}
        return web.json_response(body, status=400)
    try:
        access_token = _standin(request).grant(str(form.get("assertion", "")), request.path)
    except TokenRefused as refused:
        body = {"error": refused.error, "error_description": refused.description}
        return web.json_response(body, status=refused.status)
    granted = {"access_token": access_token, "expires_in": TOKEN_SECONDS, "token_type": "Bearer"}
    return web.json_response(granted)


async def list_events(request: web.Request) -> web.Response:
    return web.json_response(_standin(request).listing(_calendar(request), request.query))


async def insert_event(request: web.Request) -> web.Response:
    body = await _json_body(request)
    event_id = str(body["id"]) if body.get("id") else None
    author = request[GRANT].subject or request[GRANT].email
    event = _standin(request).create(_calendar(request), body, event_id, author)
    return web.json_response(event)


async def get_event(request: web.Request) -> web.Response:
    event = _standin(request).event(_calendar(request), request.match_info["event_id"])
    return web.json_response(event)


async def patch_event(request: web.Request) -> web.Response:
    standin, calendar = _standin(request), _calendar(request)
    event = standin.event(calendar, request.match_info["event_id"])
    return web.json_response(standin.patch(calendar, event, await _json_body(request)))


async def update_event(request: web.Request) -> web.Response:
    standin, calendar = _standin(request), _calendar(request)
    event = standin.event(calendar, request.match_info["event_id"])
    return web.json_response(standin.replace(calendar, event, await _json_body(request)))


async def delete_event(request: web.Request) -> web.Response:
    _standin(request).delete(_calendar(request), request.match_info["event_id"])
    return web.Response(status=204)


async def watch_events(request: web.Request) -> web.Response:
    calendar = _calendar(request)
    channel = _standin(request).watch(calendar, await _json_body(request))
    answer = {
        "kind": "api#channel",
        "id": channel.id,
        "resourceId": channel.resource_id,
        "resourceUri": f"{request.url.origin()}{API_ROOT}calendars/{quote(calendar.id)}"
        "/events?alt=json",
        "expiration": str(channel.expiration_ms),
    }
    if channel.token is not None:
        answer["token"] = channel.token
    return web.json_response(answer)


async def stop_channel(request: web.Request) -> web.Response:
    body = await _json_body(request)
    _standin(request).stop(str(body.get("id", "")), str(body.get("resourceId", "")))
    return web.Response(status=204)


async def free_busy(request: web.Request) -> web.Response:
    body = await _json_body(request)
    if "timeMin" not in body or "timeMax" not in body:
        raise GoogleError(400, "required", "Missing timeMin or timeMax.")
    low, high = _instant(body["timeMin"], "timeMin"), _instant(body["timeMax"], "timeMax")
    standin, grant = _standin(request), request[GRANT]
    calendars = {}
    for item in body.get("items", []):
        calendar_id = str(item.get("id", ""))
        calendars[calendar_id] = standin.free_busy(calendar_id, grant, low, high)
    answer: dict[str, Any] = {
        "kind": "calendar#freeBusy",
        "timeMin": rfc3339(low),
        "timeMax": rfc3339(high),
        "calendars": calendars,
    }
    return web.json_response(answer)


async def _not_found(request: web.Request) -> web.Response:
    raise GoogleError(404, "notFound", "Not Found")


def build_app(deliver: Deliver | None = None) -> web.Application:
    """The stand-in, empty; `app[STANDIN]` is its state (accounts, calendars, faults).
    Pushes go through `deliver` (default: `post_push`)."""
    app = web.Application(middlewares=[google_api])
    app[STANDIN] = standin = GoogleStandin(deliver or post_push)
    app.on_cleanup.append(standin.close)
    app.router.add_post("/token", token)
    calendars = f"{API_ROOT}calendars/{{calendar_id}}"
    app.router.add_post(f"{calendars}/events/watch", watch_events)
    app.router.add_get(f"{calendars}/events", list_events)
    app.router.add_post(f"{calendars}/events", insert_event)
    app.router.add_get(f"{calendars}/events/{{event_id}}", get_event)
    app.router.add_patch(f"{calendars}/events/{{event_id}}", patch_event)
    app.router.add_put(f"{calendars}/events/{{event_id}}", update_event)
    app.router.add_delete(f"{calendars}/events/{{event_id}}", delete_event)
    app.router.add_post(f"{API_ROOT}channels/stop", stop_channel)
    app.router.add_post(f"{API_ROOT}freeBusy", free_busy)
    app.router.add_route("*", API_ROOT + "{tail:.*}", _not_found)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8427)
    parser.add_argument("--key-file", type=Path, default=Path(".data/google-service-account.json"))
    parser.add_argument("--calendar", default="demo@holdfast.test", help="the demo calendar")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s google %(levelname)s %(message)s")
    base = f"http://{args.host}:{args.port}"
    app = build_app()
    key = demo_key(args.key_file, f"{base}/token")
    app[STANDIN].register(key)
    app[STANDIN].add_calendar(args.calendar)
    log.info(
        "Google Calendar stand-in on %s%s; service account %s (key in %s), calendar %s",
        base,
        API_ROOT,
        key["client_email"],
        args.key_file,
        args.calendar,
    )
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
