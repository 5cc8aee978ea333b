"""An Outlook calendar through Microsoft Graph: the default calendar of one user of a
Microsoft 365 tenant, reached with an app registration's client secret (msal's client
credentials flow, application permission Calendars.ReadWrite).

Graph has no caller-chosen event ids, so "once per key" rests on two things we write into
every event: a `transactionId` derived from the key and generation (Graph drops a repeated
create carrying it) and a single-value extended property whose value names the booking
and the key, by which a create whose answer was lost is found again. Graph's calendarView
delta answers carry no extended properties, so the changes feed recognises our events by
their transactionId, which also names the booking.
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import msal
import requests
from msal.exceptions import MsalServiceError

from activities.calendar_clients import (
    HOLDFAST_PROPERTY,
    CalendarError,
    CalendarRefused,
    CalendarThrottled,
    Changes,
    Channel,
    CredentialRefused,
    EventContent,
    ExternalEvent,
    Written,
)

SCOPE = "https://graph.microsoft.com/.default"
# A named property in a property set of our own; the GUID never changes, or the events
# written under it could not be found again.
PROPERTY_ID = f"String {{8b0f5a51-3c56-4f4e-9a3e-6d1c2a7b9e40}} Name {HOLDFAST_PROPERTY}"
TRANSACTION_PREFIX = "holdfast."
_PREFER = 'outlook.timezone="UTC", odata.maxpagesize=100'
_FREE = frozenset({"free", "workingElsewhere"})
_CREDENTIAL_ERRORS = frozenset(
    {"invalid_client", "unauthorized_client", "invalid_grant", "invalid_tenant"}
)
_CHANGE_TYPES = "created,updated,deleted"
# Graph keeps an event subscription at most 10080 minutes; a few less allow for the skew
# between our clock and Graph's.
_LONGEST_SUBSCRIPTION = timedelta(minutes=10080 - 10)

_apps: dict[str, Any] = {}
_apps_lock = threading.Lock()


class _Session(requests.Session):
    """A session that trusts `ca_file` (or the system's CAs) and nothing from the
    environment: on this kind of machine REQUESTS_CA_BUNDLE would override `verify`, and
    proxy settings would send a local stand-in's traffic away. Every request carries our
    timeout, as requests has no session-wide one and msal passes none."""

    def __init__(self, ca_file: str | None, timeout: float) -> None:
        super().__init__()
        self.trust_env = False
        self.verify = ca_file or True
        self._timeout = timeout

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, **kwargs)


class _CursorExpired(Exception):
    """Graph answered 410 to a delta link: its sync state is gone."""


def _unreachable(what: str, error: requests.RequestException) -> CalendarError:
    """A failed exchange. A certificate we do not trust stays untrusted on a retry; a
    timeout or a dropped connection may pass."""
    if isinstance(error, requests.exceptions.SSLError):
        return CalendarRefused(f"TLS verification failed for {what}")
    return CalendarThrottled(f"no answer to {what} ({type(error).__name__})")


def _retry_after(response: requests.Response) -> float | None:
    """Graph's Retry-After, in seconds (the only form it sends)."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def _error_code(response: requests.Response) -> str:
    try:
        code = response.json()["error"]["code"]
    except (ValueError, KeyError, TypeError):
        return "no error code"
    return str(code)


def _refusal(response: requests.Response, what: str, writing: bool) -> CalendarError:
    """Graph's answer as one of our errors; it quotes Graph's error code only, never the
    request, which may carry a delta token. A 403 refuses the credential on a read; on a
    write only the write (an app that may read but not write), so a connection does not
    flip between a working read and a refused write."""
    status = response.status_code
    retry_after = _retry_after(response)
    message = f"Microsoft Graph answered HTTP {status} ({_error_code(response)}) to {what}"
    if status == 429 or status >= 500 or (status == 403 and retry_after is not None):
        return CalendarThrottled(message, retry_after)
    if status == 401 or (status == 403 and not writing):
        return CredentialRefused(message)
    return CalendarRefused(message)


def _graph_time(instant: datetime) -> dict[str, str]:
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    return {"dateTime": utc.isoformat(timespec="seconds"), "timeZone": "UTC"}


def _instant(value: dict[str, str]) -> datetime:
    """A `{dateTime, timeZone}` Graph answered in UTC, as we asked it to."""
    if value.get("timeZone") != "UTC":
        raise CalendarRefused(f"Microsoft Graph answered a time in {value.get('timeZone')!r}")
    parsed = datetime.fromisoformat(value["dateTime"])
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _booking_of(item: dict[str, Any]) -> str | None:
    transaction = item.get("transactionId") or ""
    if not transaction.startswith(TRANSACTION_PREFIX):
        return None
    return str(transaction).removeprefix(TRANSACTION_PREFIX).rpartition(".")[0]


def external_event(item: dict[str, Any]) -> ExternalEvent:
    """One item of a delta answer. A cancelled meeting stays in an attendee's calendar
    (isCancelled) but blocks nothing; all-day events span their midnights as answered."""
    booking = _booking_of(item)
    if "@removed" in item or item.get("isCancelled"):
        return ExternalEvent(item["id"], None, None, False, True, booking)
    busy = item.get("showAs") not in _FREE
    return ExternalEvent(
        item["id"], _instant(item["start"]), _instant(item["end"]), busy, False, booking
    )


def marker(content: EventContent) -> str:
    """Our extended property's value: the booking, and the key that finds the event."""
    return f"{content.booking_id}/{content.key}"


def transaction_id(content: EventContent, generation: int) -> str:
    digest = hashlib.sha256(f"{content.key}\0{generation}".encode()).hexdigest()[:32]
    return f"{TRANSACTION_PREFIX}{content.booking_id}.{digest}"


def _odata_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _event_body(content: EventContent) -> dict[str, Any]:
    return {
        "subject": content.summary,
        "body": {"contentType": "text", "content": content.description},
        "start": _graph_time(content.start),
        "end": _graph_time(content.end),
        "showAs": "busy",
        "singleValueExtendedProperties": [{"id": PROPERTY_ID, "value": marker(content)}],
    }


def _subscription_expiry(expires_at: datetime) -> str:
    latest = datetime.now(UTC) + _LONGEST_SUBSCRIPTION
    return min(expires_at, latest).astimezone(UTC).isoformat(timespec="seconds")


def _channel(answer: dict[str, Any], token: str) -> Channel:
    expires_at = datetime.fromisoformat(answer["expirationDateTime"]).astimezone(UTC)
    return Channel(id=answer["id"], resource_id="", token=token, expires_at=expires_at)


def _app_key(authority: str, client_id: str, secret: str, ca_file: str | None) -> str:
    return hashlib.sha256(
        "\0".join((authority, client_id, secret, ca_file or "")).encode()
    ).hexdigest()


class MicrosoftCalendar:
    """One user's default calendar. Construction sends nothing: the msal app (and with
    it the token cache) is shared by every instance for the same credential, and made on
    the first call that needs a token."""

    def __init__(
        self,
        credentials: dict[str, str],
        user: str,
        *,
        authority_host: str,
        graph_base: str,
        ca_file: str | None,
        timeout: float,
    ) -> None:
        self._client_id = credentials["client_id"]
        self._secret = credentials["client_secret"]
        self._authority = f"{authority_host.rstrip('/')}/{credentials['tenant_id']}"
        self._ca_file = ca_file
        self._timeout = timeout
        self._graph = graph_base.rstrip("/")
        self._user = user
        self._mailbox = f"{self._graph}/users/{quote(user, safe='@')}"
        self._session = _Session(ca_file, timeout)

    def close(self) -> None:
        self._session.close()

    # -- the token ---------------------------------------------------------------------

    def _app(self) -> Any:
        key = _app_key(self._authority, self._client_id, self._secret, self._ca_file)
        with _apps_lock:
            app = _apps.get(key)
        if app is not None:
            return app
        try:  # (outside the lock: this fetches the tenant's OpenID configuration)
            app = msal.ConfidentialClientApplication(
                self._client_id,
                client_credential=self._secret,
                authority=self._authority,
                instance_discovery=False,
                azure_region=False,
                http_client=_Session(self._ca_file, self._timeout),
            )
        except ValueError as error:  # tenant discovery answered 4xx (or no https authority)
            raise CredentialRefused("Entra ID knows no tenant at this authority") from error
        except requests.RequestException as error:
            raise _unreachable("Entra ID's tenant discovery", error) from error
        except MsalServiceError as error:  # 5xx
            raise CalendarThrottled("Entra ID's tenant discovery failed") from error
        with _apps_lock:
            return _apps.setdefault(key, app)

    def _token(self) -> str:
        app = self._app()
        try:
            result = app.acquire_token_for_client(scopes=[SCOPE])
        except requests.RequestException as error:
            raise _unreachable("Entra ID's token endpoint", error) from error
        except (MsalServiceError, ValueError) as error:  # 5xx, or an answer not JSON
            raise CalendarThrottled("Entra ID's token endpoint failed") from error
        if "access_token" in result:
            return str(result["access_token"])
        code = str(result.get("error"))
        if code in _CREDENTIAL_ERRORS:
            raise CredentialRefused(f"Entra ID refused the credential ({code})")
        if code in ("temporarily_unavailable", "server_error"):
            raise CalendarThrottled(f"Entra ID could not issue a token ({code})")
        raise CalendarRefused(f"Entra ID refused the token request ({code})")

    # -- one Graph request -------------------------------------------------------------

    def _call(
        self,
        method: str,
        url: str,
        what: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        passes: frozenset[int] = frozenset(),
    ) -> requests.Response:
        """The answer when it is 2xx or in `passes`; any other raises. A 401 is tried once
        more with a fresh token (a cached one may have been revoked or rolled over), so
        only a credential refused afresh marks the connection."""
        for fresh in (False, True):
            auth = {"Authorization": f"Bearer {self._token()}"}
            try:
                response = self._session.request(
                    method, url, json=json, params=params, headers=auth | (headers or {})
                )
            except requests.RequestException as error:
                raise _unreachable(what, error) from error
            if response.ok or response.status_code in passes:
                return response
            if response.status_code != 401 or fresh:
                break
            self._app().remove_tokens_for_client()  # a new token, not the cached one
        raise _refusal(response, what, writing=method != "GET")

    # -- the changes feed --------------------------------------------------------------

    def changes(self, cursor: str | None, start: datetime, end: datetime) -> Changes:
        """A cursor is a delta link. One that does not lead to our Graph (a base changed
        since) is treated as expired: the token must not go elsewhere."""
        if cursor is not None and cursor.startswith(self._graph + "/"):
            try:
                return self._sync(cursor, full=False)
            except _CursorExpired:
                pass  # Graph lost the sync state: list the whole window again
        window = {
            "startDateTime": start.astimezone(UTC).isoformat(timespec="seconds"),
            "endDateTime": end.astimezone(UTC).isoformat(timespec="seconds"),
        }
        first = f"{self._mailbox}/calendarView/delta"
        return self._sync(first, full=True, params=window)

    def _sync(self, url: str, *, full: bool, params: dict[str, str] | None = None) -> Changes:
        """Follows nextLinks to the deltaLink. A 410 half-way through a full listing means
        starting over, which a retry does."""
        events: list[ExternalEvent] = []
        while True:
            answer = self._call(
                "GET",
                url,
                "a delta query",
                params=params,
                headers={"Prefer": _PREFER},
                passes=frozenset({410}),
            )
            if answer.status_code == 410:
                if full:
                    raise CalendarThrottled("Microsoft Graph expired a listing in progress")
                raise _CursorExpired
            page = answer.json()
            events.extend(external_event(item) for item in page.get("value", []))
            if "@odata.deltaLink" in page:
                return Changes(events, page["@odata.deltaLink"], full)
            url, params = page["@odata.nextLink"], None

    # -- events ------------------------------------------------------------------------

    def put_event(self, content: EventContent, external_id: str | None, generation: int) -> Written:
        """Updates `external_id`; when it was deleted (404), writes the next generation.
        Before creating, it looks the key up: an earlier attempt may have created the
        event and lost the answer, under this generation or another."""
        if external_id is not None:
            if self._patch(external_id, content):
                return Written(external_id, generation)
            generation += 1
        found = self._find(content)
        if found is not None and self._patch(found, content):
            return Written(found, generation)
        return Written(self._create(content, generation), generation)

    def _event_url(self, event_id: str) -> str:
        return f"{self._mailbox}/events/{quote(event_id, safe='')}"

    def _patch(self, event_id: str, content: EventContent) -> bool:
        """False when the event is gone."""
        answer = self._call(
            "PATCH",
            self._event_url(event_id),
            "an event update",
            json=_event_body(content),
            passes=frozenset({404}),
        )
        return answer.status_code != 404

    def _find(self, content: EventContent) -> str | None:
        query = (
            f"singleValueExtendedProperties/Any(ep: ep/id eq {_odata_string(PROPERTY_ID)}"
            f" and ep/value eq {_odata_string(marker(content))})"
        )
        answer = self._call(
            "GET", f"{self._mailbox}/events", "an event lookup", params={"$filter": query}
        )
        found = answer.json().get("value", [])
        return str(found[0]["id"]) if found else None

    def _create(self, content: EventContent, generation: int) -> str:
        body = _event_body(content) | {"transactionId": transaction_id(content, generation)}
        answer = self._call("POST", f"{self._mailbox}/events", "an event create", json=body)
        return str(answer.json()["id"])

    def delete_event(self, external_id: str) -> None:
        self._call(
            "DELETE", self._event_url(external_id), "an event delete", passes=frozenset({404})
        )

    # -- push --------------------------------------------------------------------------

    def watch(self, address: str, channel_id: str, token: str, expires_at: datetime) -> Channel:
        """A Graph subscription to the user's events, pushing to `address` (which must
        echo Graph's validation token to be accepted). Graph names subscriptions itself:
        `channel_id` is not sent, the Channel's id is Graph's. Graph keeps it at most
        about seven days, so `expires_at` is capped."""
        body = {
            "changeType": _CHANGE_TYPES,
            "notificationUrl": address,
            "lifecycleNotificationUrl": address,
            "resource": f"/users/{self._user}/events",
            "expirationDateTime": _subscription_expiry(expires_at),
            "clientState": token,
        }
        answer = self._call("POST", f"{self._graph}/subscriptions", "a subscription", json=body)
        return _channel(answer.json(), token)

    def _subscription_url(self, channel: Channel) -> str:
        return f"{self._graph}/subscriptions/{quote(channel.id, safe='')}"

    def renew(self, channel: Channel, address: str, expires_at: datetime) -> Channel:
        """Extends the subscription; one Graph no longer has (it lapsed) is made anew."""
        answer = self._call(
            "PATCH",
            self._subscription_url(channel),
            "a subscription renewal",
            json={"expirationDateTime": _subscription_expiry(expires_at)},
            passes=frozenset({404}),
        )
        if answer.status_code == 404:
            return self.watch(address, channel.id, channel.token, expires_at)
        return _channel(answer.json(), channel.token)

    def unwatch(self, channel: Channel) -> None:
        self._call(
            "DELETE",
            self._subscription_url(channel),
            "a subscription delete",
            passes=frozenset({404}),
        )
