"""The local Microsoft stand-in: Entra ID's token service and the part of Microsoft Graph
an Outlook calendar client uses, in memory, over HTTPS with a certificate of its own (msal
takes only https authorities). What it answers is shaped as Entra ID and Graph answer, so
msal and requests cannot tell; `MicrosoftCalendar` is pointed at it with
`authority_host`, `graph_base` and `ca_file`.

Entra ID: `GET /{tenant}/v2.0/.well-known/openid-configuration` (the only request msal
makes before a token when instance discovery is off) and `POST /{tenant}/oauth2/v2.0/token`
for the client credentials grant of the apps registered here. An unknown app is AADSTS700016
(400 unauthorized_client); a wrong secret, or the secret of an app whose secret was revoked,
AADSTS7000215 (401 invalid_client).

Graph, under `/v1.0`, with a Bearer token it issued (tokens of a revoked app are refused
at once, where Graph would honour them until they expire): a user's calendarView delta
(skip and delta tokens, `Prefer: odata.maxpagesize`, 410 once a test expired the user's
delta state), events (create, with a repeated transactionId answered by the event it made;
a `$filter` on a single-value extended property; read, update, delete) and subscriptions
to a user's events, whose notification URL must echo Graph's validation token within 10 s.
Every change to a user's events, whoever made it, is pushed to the live subscriptions.
Times are always answered in UTC. Users are not scoped to tenants: any app registered here
may reach any mailbox. Subscriptions may push to http:// addresses, unlike Graph's.

Pushes and validation requests go through `deliver` (an aiohttp POST by default; tests
route them in-process), and the next Graph requests can be made to fail or to answer
late (`Graph.fail`, `Graph.stall`).

`python -m devstack.microsoft_graph --host 127.0.0.1 --port 8428 --dir .data/microsoft`
writes `cert.pem` (trust it as `ca_file`), `key.pem`, and `app.json`: the credential of a
demo app (kept across runs) with the addresses to use and a demo user's mailbox."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import re
import secrets
import ssl
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from http import HTTPStatus
from ipaddress import ip_address
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.secrets import write_private

log = logging.getLogger("holdfast.microsoft")

VERSION = "v1.0"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"
TOKEN_SECONDS = 3599
LONGEST_SUBSCRIPTION = timedelta(minutes=10080)
# Past an hour, Graph wants a lifecycleNotificationUrl for event subscriptions.
LIFECYCLE_REQUIRED_AFTER = timedelta(hours=1)
VALIDATION_SECONDS = 10.0
NOTIFICATION_SECONDS = 3.0  # Graph counts a push unanswered after 3 s as failed
DEFAULT_PAGE = 10
SHOW_AS = frozenset({"free", "tentative", "busy", "oof", "workingElsewhere", "unknown"})
CHANGE_TYPES = frozenset({"created", "updated", "deleted"})
LIFECYCLE_EVENTS = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
_WRITABLE = frozenset(
    {
        "subject",
        "body",
        "start",
        "end",
        "showAs",
        "isAllDay",
        "transactionId",
        "singleValueExtendedProperties",
    }
)
_PROPERTY_FILTER = re.compile(
    r"singleValueExtendedProperties/any\((\w+):\s*\1/id eq '((?:[^']|'')*)'"
    r" and \1/value eq '((?:[^']|'')*)'\)",
    re.IGNORECASE,
)
_EVENTS_RESOURCE = re.compile(r"/?users/([^/]+)/events", re.IGNORECASE)
_MAX_PAGE = re.compile(r"odata\.maxpagesize=(\d+)")

# deliver(url, JSON body or None for a validation request, query parameters) -> (status, text)
Deliver = Callable[[str, Any | None, dict[str, str]], Awaitable[tuple[int, str]]]


class GraphError(Exception):
    """An answer in Graph's error shape, raised from anywhere under a Graph handler."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message

    def answer(self, headers: dict[str, str] | None = None) -> web.Response:
        inner = {"date": _now().strftime("%Y-%m-%dT%H:%M:%S"), "request-id": str(uuid.uuid4())}
        body = {"error": {"code": self.code, "message": self.message, "innerError": inner}}
        if self.status == 401:
            headers = (headers or {}) | {"WWW-Authenticate": 'Bearer realm=""'}
        return web.json_response(body, status=self.status, headers=headers)


@dataclass
class App:
    tenant_id: str
    client_id: str
    secret: str
    revoked: bool = False


@dataclass(frozen=True)
class Grant:
    app: App
    expires_at: datetime


@dataclass
class Event:
    id: str
    start: datetime
    end: datetime
    created: datetime
    modified: datetime
    change_key: str
    subject: str = ""
    body: str = ""
    show_as: str = "busy"
    all_day: bool = False
    cancelled: bool = False
    transaction_id: str | None = None
    # lower-cased property id -> (the id as written, value)
    properties: dict[str, tuple[str, str]] = field(default_factory=dict)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        return self.start < end and self.end > start


@dataclass(frozen=True)
class SyncState:
    """What a delta token stands for: a window, seen up to change `seq`."""

    start: datetime
    end: datetime
    seq: int
    epoch: int


@dataclass(frozen=True)
class Page:
    """What a skip token stands for: the rest of a round, then its delta token."""

    items: list[dict[str, Any]]
    then: SyncState


@dataclass
class Mailbox:
    user: str
    events: dict[str, Event] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)  # event id -> seq of its last change
    seq: int = 0
    epoch: int = 0  # bumped when a test expires the delta state
    syncs: dict[str, SyncState] = field(default_factory=dict)
    pages: dict[str, Page] = field(default_factory=dict)

    def touch(self, event_id: str) -> None:
        self.seq += 1
        self.changed[event_id] = self.seq

    def state(self, start: datetime, end: datetime) -> SyncState:
        return SyncState(start, end, self.seq, self.epoch)

    def window(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        events = sorted(self.events.values(), key=lambda e: e.start)
        return [represent(e) for e in events if e.overlaps(start, end)]

    def since(self, state: SyncState) -> list[dict[str, Any]]:
        """Changes after `state.seq`: events now in the window in full, the others
        (deleted, or moved out of it) as `@removed`."""
        items = []
        for event_id, seq in sorted(self.changed.items(), key=lambda c: c[1]):
            if seq > state.seq:
                event = self.events.get(event_id)
                inside = event is not None and event.overlaps(state.start, state.end)
                items.append(represent(event) if event and inside else removed(event_id))
        return items


@dataclass
class Subscription:
    id: str
    app: App
    user: str
    resource: str
    change_types: frozenset[str]
    notification_url: str
    lifecycle_url: str | None
    expires_at: datetime
    client_state: str | None


@dataclass(frozen=True)
class Fault:
    status: int | None = None
    retry_after: float | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Push:
    """One notification sent, and the status it was answered with (0: none)."""

    url: str
    body: dict[str, Any]
    status: int


async def post(url: str, body: Any | None, params: dict[str, str]) -> tuple[int, str]:
    """How Graph calls a receiver: a JSON notification, or an empty text/plain POST
    carrying `validationToken` in the query."""
    if body is None:
        sent: dict[str, Any] = {
            "data": b"",
            "headers": {"Content-Type": "text/plain; charset=utf-8"},
        }
    else:
        sent = {"json": body}
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, params=params, **sent) as response,
    ):
        return response.status, await response.text()


@dataclass
class Graph:
    """All the stand-in's state; tests reach it as `app[GRAPH]`."""

    deliver: Deliver = post
    apps: dict[str, App] = field(default_factory=dict)
    tokens: dict[str, Grant] = field(default_factory=dict)
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    faults: deque[Fault] = field(default_factory=deque)
    pushed: deque[Push] = field(default_factory=lambda: deque(maxlen=1000))  # the latest
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    # -- apps and mailboxes ------------------------------------------------------------

    def register(
        self, tenant_id: str | None = None, client_id: str | None = None, secret: str | None = None
    ) -> App:
        app = App(
            tenant_id or str(uuid.uuid4()),
            client_id or str(uuid.uuid4()),
            secret or secrets.token_urlsafe(30),
        )
        self.apps[app.client_id] = app
        return app

    def revoke(self, client_id: str) -> None:
        """The app's secret is deleted: no new tokens, and its tokens refused."""
        self.apps[client_id].revoked = True

    def tenant_known(self, tenant_id: str) -> bool:
        return any(app.tenant_id == tenant_id for app in self.apps.values())

    def add_user(self, user: str) -> Mailbox:
        return self.mailboxes.setdefault(user.lower(), Mailbox(user))

    def mailbox(self, user: str) -> Mailbox:
        found = self.mailboxes.get(user.lower())
        if found is None:
            raise GraphError(404, "ErrorInvalidUser", f"The requested user '{user}' is invalid.")
        return found

    # -- events ------------------------------------------------------------------------

    def add_event(self, mailbox: Mailbox, fields: dict[str, Any]) -> Event:
        now = _now()
        event = Event(
            "AAMkA" + secrets.token_urlsafe(48),
            created=now,
            modified=now,
            change_key=secrets.token_urlsafe(12),
            **fields,
        )
        _check_times(event)
        mailbox.events[event.id] = event
        mailbox.touch(event.id)
        return event

    def update_event(self, mailbox: Mailbox, event_id: str, fields: dict[str, Any]) -> Event:
        current = event_of(mailbox, event_id)
        properties = current.properties | fields.pop("properties", {})
        event = replace(
            current,
            **fields,
            properties=properties,
            modified=_now(),
            change_key=secrets.token_urlsafe(12),
        )
        _check_times(event)
        mailbox.events[event_id] = event
        mailbox.touch(event_id)
        return event

    def delete_event(self, mailbox: Mailbox, event_id: str) -> None:
        event_of(mailbox, event_id)
        del mailbox.events[event_id]
        mailbox.touch(event_id)

    # -- faults ------------------------------------------------------------------------

    def fail(self, times: int, status: int, retry_after: float | None = None) -> None:
        """The next `times` Graph requests are answered `status`, and not carried out."""
        self.faults.extend(Fault(status, retry_after) for _ in range(times))

    def stall(self, times: int, seconds: float) -> None:
        """The next `times` Graph requests are carried out, then answered `seconds` late:
        a client that gave up never learns what was done."""
        self.faults.extend(Fault(delay=seconds) for _ in range(times))

    # -- subscriptions and pushes ------------------------------------------------------

    def live_subscriptions(self) -> list[Subscription]:
        """Graph deletes a subscription once it expires."""
        now = _now()
        for lapsed in [s.id for s in self.subscriptions.values() if s.expires_at <= now]:
            del self.subscriptions[lapsed]
        return list(self.subscriptions.values())

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Pushes after a Graph request go out after its answer, as Graph's do."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def push(self, url: str, body: dict[str, Any]) -> int:
        try:
            status, _ = await asyncio.wait_for(self.deliver(url, body, {}), NOTIFICATION_SECONDS)
        except Exception as error:  # whatever the receiver did, the push failed
            log.info("push to %s failed: %s", url, type(error).__name__)
            status = 0
        self.pushed.append(Push(url, body, status))
        return status

    async def notify(self, mailbox: Mailbox, event_id: str, change: str) -> None:
        """Each live subscription to the user's events that asked for `change` hears of it."""
        wanted = [
            s
            for s in self.live_subscriptions()
            if s.user == mailbox.user.lower() and change in s.change_types
        ]
        resource = f"Users/{mailbox.user}/Events/{event_id}"
        await asyncio.gather(
            *(
                self.push(s.notification_url, _notification(s, resource, event_id, change))
                for s in wanted
            )
        )

    async def lifecycle(self, subscription_id: str, event: str) -> int:
        """A lifecycle notification to the subscription's lifecycleNotificationUrl
        (`subscriptionRemoved` also removes it); the status it was answered with."""
        if event not in LIFECYCLE_EVENTS:
            raise ValueError(f"not a lifecycle event: {event}")
        subscription = self.subscriptions[subscription_id]
        if subscription.lifecycle_url is None:
            raise ValueError("the subscription has no lifecycleNotificationUrl")
        if event == "subscriptionRemoved":
            del self.subscriptions[subscription_id]
        body = {
            "value": [
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": _stamp(subscription.expires_at),
                    "tenantId": subscription.app.tenant_id,
                    "clientState": subscription.client_state,
                    "lifecycleEvent": event,
                }
            ]
        }
        return await self.push(subscription.lifecycle_url, body)

    async def validates(self, url: str) -> bool:
        """Graph's handshake: the URL must answer 200 with the token as text in 10 s."""
        token = (
            "Validation: Testing client application reachability for subscription"
            f" Request-Id: {uuid.uuid4()}"
        )
        try:
            status, text = await asyncio.wait_for(
                self.deliver(url, None, {"validationToken": token}), VALIDATION_SECONDS
            )
        except Exception as error:  # whatever the receiver did, it did not validate
            log.info("validation of %s failed: %s", url, type(error).__name__)
            return False
        return status == 200 and text == token


GRAPH = web.AppKey("graph", Graph)
GRANT = web.RequestKey("grant", Grant)


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(instant: datetime) -> str:
    """Graph's timestamps: UTC, seven fractional digits, Z."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _local(instant: datetime) -> dict[str, str]:
    return {"dateTime": instant.strftime("%Y-%m-%dT%H:%M:%S.%f0"), "timeZone": "UTC"}


def represent(event: Event, with_properties: bool = False) -> dict[str, Any]:
    """An event as Graph answers it. Extended properties only come with `$expand`,
    which delta answers never have."""
    shown: dict[str, Any] = {
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": f'W/"{event.change_key}"',
        "id": event.id,
        "createdDateTime": _stamp(event.created),
        "lastModifiedDateTime": _stamp(event.modified),
        "changeKey": event.change_key,
        "transactionId": event.transaction_id,
        "subject": event.subject,
        "bodyPreview": event.body[:255],
        "body": {"contentType": "text", "content": event.body},
        "isAllDay": event.all_day,
        "isCancelled": event.cancelled,
        "showAs": event.show_as,
        "type": "singleInstance",
        "start": _local(event.start),
        "end": _local(event.end),
    }
    if with_properties:
        shown["singleValueExtendedProperties"] = [
            {"id": pid, "value": value} for pid, value in event.properties.values()
        ]
    return shown


def removed(event_id: str) -> dict[str, Any]:
    return {
        "@odata.type": "#microsoft.graph.event",
        "id": event_id,
        "@removed": {"reason": "deleted"},
    }


def event_of(mailbox: Mailbox, event_id: str) -> Event:
    found = mailbox.events.get(event_id)
    if found is None:
        raise GraphError(
            404, "ErrorItemNotFound", "The specified object was not found in the store."
        )
    return found


def _check_times(event: Event) -> None:
    if event.end < event.start:
        raise GraphError(400, "ErrorInvalidRequest", "The event's end is before its start.")
    midnights = event.start.time() == time(0) and event.end.time() == time(0)
    if event.all_day and (not midnights or event.end == event.start):
        raise GraphError(
            400,
            "ErrorInvalidRequest",
            "An all-day event's start and end must be midnights, at least a day apart.",
        )


def _notification(
    subscription: Subscription, resource: str, event_id: str, change: str
) -> dict[str, Any]:
    return {
        "value": [
            {
                "subscriptionId": subscription.id,
                "subscriptionExpirationDateTime": _stamp(subscription.expires_at),
                "changeType": change,
                "resource": resource,
                "resourceData": {
                    "@odata.type": "#Microsoft.Graph.Event",
                    "@odata.id": resource,
                    "id": event_id,
                },
                "clientState": subscription.client_state,
                "tenantId": subscription.app.tenant_id,
            }
        ]
    }


# -- Entra ID ------------------------------------------------------------------------------


def _origin(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def entra_error(
    request: web.Request, status: int, error: str, code: int, text: str
) -> web.Response:
    trace, correlation = uuid.uuid4(), uuid.uuid4()
    stamp = _now().strftime("%Y-%m-%d %H:%M:%SZ")
    body = {
        "error": error,
        "error_description": (
            f"AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation}"
            f" Timestamp: {stamp}"
        ),
        "error_codes": [code],
        "timestamp": stamp,
        "trace_id": str(trace),
        "correlation_id": str(correlation),
        "error_uri": f"{_origin(request)}/error?code={code}",
    }
    return web.json_response(body, status=status)


def _unknown_tenant(request: web.Request, tenant: str) -> web.Response:
    text = (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and"
        " are signing into the correct cloud."
    )
    return entra_error(request, 400, "invalid_tenant", 90002, text)


async def openid_configuration(request: web.Request) -> web.Response:
    tenant = request.match_info["tenant"]
    if not request.app[GRAPH].tenant_known(tenant):
        return _unknown_tenant(request, tenant)
    base = f"{_origin(request)}/{tenant}"
    return web.json_response(
        {
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "private_key_jwt",
                "client_secret_basic",
            ],
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{base}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "msgraph_host": "graph.microsoft.com",
        }
    )


async def signing_keys(request: web.Request) -> web.Response:
    """The advertised jwks_uri; this stand-in signs no id tokens."""
    return web.json_response({"keys": []})


async def token(request: web.Request) -> web.Response:
    graph, tenant = request.app[GRAPH], request.match_info["tenant"]
    form = {key: str(value) for key, value in (await request.post()).items()}
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    if not graph.tenant_known(tenant):
        return _unknown_tenant(request, tenant)
    if form.get("grant_type") != "client_credentials":
        text = f"The provided value for the 'grant_type' is not supported: {form.get('grant_type')}"
        return entra_error(request, 400, "unsupported_grant_type", 70003, text)
    app = graph.apps.get(client_id)
    if app is None or app.tenant_id != tenant:
        text = (
            f"Application with identifier '{client_id}' was not found in the directory '{tenant}'."
        )
        return entra_error(request, 400, "unauthorized_client", 700016, text)
    if not secret:
        text = "The request body must contain the following parameter: 'client_secret'."
        return entra_error(request, 401, "invalid_client", 7000218, text)
    if app.revoked or not secrets.compare_digest(secret, app.secret):
        text = (
            "Invalid client secret provided. Ensure the secret being sent in the request is the"
            f" client secret value, not the client secret ID, for a secret added to app"
            f" '{client_id}'."
        )
        return entra_error(request, 401, "invalid_client", 7000215, text)
    if form.get("scope") != GRAPH_SCOPE:
        text = (
            f"The provided value for scope {form.get('scope')} is not valid. Client credential"
            " flows must have a scope value with /.default suffixed to the resource identifier."
        )
        return entra_error(request, 400, "invalid_scope", 1002012, text)
    access = secrets.token_urlsafe(48)
    graph.tokens[access] = Grant(app, _now() + timedelta(seconds=TOKEN_SECONDS))
    return web.json_response(
        {
            "token_type": "Bearer",
            "expires_in": TOKEN_SECONDS,
            "ext_expires_in": TOKEN_SECONDS,
            "access_token": access,
        }
    )


# -- Graph: the gate -----------------------------------------------------------------------


def _grant(graph: Graph, request: web.Request) -> Grant:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not given:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
    grant = graph.tokens.get(given)
    if grant is None or grant.app.revoked:
        raise GraphError(401, "InvalidAuthenticationToken", "Access token validation failure.")
    if grant.expires_at <= _now():
        raise GraphError(
            401, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired."
        )
    return grant


def _fault_answer(fault: Fault) -> web.Response:
    status = fault.status or 500
    phrase = HTTPStatus(status).phrase
    headers = None if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
    return GraphError(status, phrase.replace(" ", ""), f"{phrase}.").answer(headers)


@web.middleware
async def graph_gate(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Under /v1.0: an injected fault first, then the token, then the handler; errors in
    Graph's shape."""
    if not request.path.startswith(f"/{VERSION}/"):
        return await handler(request)
    graph = request.app[GRAPH]
    fault = graph.faults.popleft() if graph.faults else Fault()
    if fault.status is not None:
        return _fault_answer(fault)
    try:
        request[GRANT] = _grant(graph, request)
        response = await handler(request)
    except GraphError as error:
        response = error.answer()
    if fault.delay:
        await asyncio.sleep(fault.delay)
    return response


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from None
    if not isinstance(body, dict):
        raise GraphError(400, "BadRequest", "Unable to read JSON request payload.")
    return body


def _instant(text: Any, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(text))
    except ValueError:
        raise GraphError(
            400, "BadRequest", f"Cannot convert {text!r} to a date for {what}."
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _zoned(value: Any, what: str) -> datetime:
    """A `{dateTime, timeZone}`, in UTC."""
    if not isinstance(value, dict) or "dateTime" not in value:
        raise GraphError(400, "BadRequest", f"'{what}' must be a dateTimeTimeZone.")
    zone_name = str(value.get("timeZone") or "UTC")
    try:
        zone = UTC if zone_name == "UTC" else ZoneInfo(zone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise GraphError(
            400,
            "TimeZoneNotSupportedException",
            f"A valid TimeZone value must be specified. The following TimeZone value is not"
            f" supported: '{zone_name}'.",
        ) from None
    try:
        parsed = datetime.fromisoformat(str(value["dateTime"]))
    except ValueError:
        raise GraphError(400, "BadRequest", f"'{what}' has no valid dateTime.") from None
    return (parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)).astimezone(UTC)


def event_fields(body: dict[str, Any], creating: bool) -> dict[str, Any]:
    """A create or update body as Event fields; Graph refuses properties it does not know."""
    unknown = sorted(set(body) - _WRITABLE)
    if unknown:
        raise GraphError(
            400,
            "RequestBodyRead",
            f"The property '{unknown[0]}' does not exist on type 'microsoft.graph.event'.",
        )
    fields: dict[str, Any] = {}
    for edge in ("start", "end"):
        if edge in body:
            fields[edge] = _zoned(body[edge], edge)
        elif creating:
            raise GraphError(400, "ErrorInvalidRequest", f"The event needs a '{edge}'.")
    if "subject" in body:
        fields["subject"] = str(body["subject"] or "")
    if "body" in body:
        fields["body"] = str((body["body"] or {}).get("content") or "")
    if "showAs" in body:
        if body["showAs"] not in SHOW_AS:
            raise GraphError(400, "RequestBodyRead", f"Invalid showAs: {body['showAs']!r}.")
        fields["show_as"] = body["showAs"]
    if "isAllDay" in body:
        fields["all_day"] = bool(body["isAllDay"])
    if body.get("transactionId"):
        fields["transaction_id"] = str(body["transactionId"])
    if "singleValueExtendedProperties" in body:
        fields["properties"] = {
            str(p["id"]).lower(): (str(p["id"]), str(p["value"]))
            for p in body["singleValueExtendedProperties"]
        }
    return fields


def _mailbox(request: web.Request) -> Mailbox:
    return request.app[GRAPH].mailbox(request.match_info["user"])


# -- Graph: calendarView delta -------------------------------------------------------------


def _page_size(request: web.Request) -> int:
    found = _MAX_PAGE.search(request.headers.get("Prefer", ""))
    return max(1, int(found[1])) if found else DEFAULT_PAGE


def _gone() -> GraphError:
    return GraphError(410, "SyncStateNotFound", "The sync state was not found; restart the sync.")


def _round(request: web.Request, mailbox: Mailbox) -> tuple[list[dict[str, Any]], SyncState]:
    """What this request lists, and the state its delta token will stand for."""
    query = request.query
    if "$skiptoken" in query:
        page = mailbox.pages.get(query["$skiptoken"])
        if page is None or page.then.epoch != mailbox.epoch:
            raise _gone()
        return page.items, page.then
    if "$deltatoken" in query:
        state = mailbox.syncs.get(query["$deltatoken"])
        if state is None or state.epoch != mailbox.epoch:
            raise _gone()
        return mailbox.since(state), mailbox.state(state.start, state.end)
    if "startDateTime" not in query or "endDateTime" not in query:
        raise GraphError(
            400,
            "ErrorInvalidParameter",
            "This request requires a time window specified by the query string parameters"
            " StartDateTime and EndDateTime.",
        )
    start = _instant(query["startDateTime"], "startDateTime")
    end = _instant(query["endDateTime"], "endDateTime")
    return mailbox.window(start, end), mailbox.state(start, end)


async def calendar_view_delta(request: web.Request) -> web.Response:
    mailbox = _mailbox(request)
    items, then = _round(request, mailbox)
    size = _page_size(request)
    link = f"{_origin(request)}/{VERSION}/users/{mailbox.user}/calendarView/delta"
    body: dict[str, Any] = {
        "@odata.context": f"{_origin(request)}/{VERSION}/$metadata#Collection(event)",
        "value": items[:size],
    }
    token = secrets.token_urlsafe(32)
    if items[size:]:
        mailbox.pages[token] = Page(items[size:], then)
        body["@odata.nextLink"] = f"{link}?$skiptoken={token}"
    else:
        mailbox.syncs[token] = then
        body["@odata.deltaLink"] = f"{link}?$deltatoken={token}"
    applied = f'outlook.timezone="UTC", odata.maxpagesize={size}'
    return web.json_response(body, headers={"Preference-Applied": applied})


# -- Graph: events -------------------------------------------------------------------------


async def create_event(request: web.Request) -> web.Response:
    """A transactionId seen before answers the event it created, as Graph drops a
    repeated create."""
    graph, mailbox = request.app[GRAPH], _mailbox(request)
    fields = event_fields(await _json_body(request), creating=True)
    transaction = fields.get("transaction_id")
    existing = next(
        (e for e in mailbox.events.values() if transaction and e.transaction_id == transaction),
        None,
    )
    if existing is not None:
        return web.json_response(represent(existing), status=201)
    event = graph.add_event(mailbox, fields)
    graph.spawn(graph.notify(mailbox, event.id, "created"))
    return web.json_response(represent(event), status=201)


def _matches(event: Event, query: str) -> bool:
    found = _PROPERTY_FILTER.fullmatch(query.strip())
    if found is None:
        raise GraphError(400, "BadRequest", f"Invalid filter clause: {query}")
    pid, value = (found[n].replace("''", "'") for n in (2, 3))
    held = event.properties.get(pid.lower())
    return held is not None and held[1] == value


async def list_events(request: web.Request) -> web.Response:
    """All the user's events, or those with one extended property value (`$filter`)."""
    mailbox = _mailbox(request)
    query = request.query.get("$filter")
    events = sorted(mailbox.events.values(), key=lambda e: e.start)
    listed = [represent(e) for e in events if query is None or _matches(e, query)]
    context = f"{_origin(request)}/{VERSION}/$metadata#users('{mailbox.user}')/events"
    return web.json_response({"@odata.context": context, "value": listed})


async def get_event(request: web.Request) -> web.Response:
    return web.json_response(represent(event_of(_mailbox(request), request.match_info["id"])))


async def update_event(request: web.Request) -> web.Response:
    graph, mailbox = request.app[GRAPH], _mailbox(request)
    event_of(mailbox, request.match_info["id"])  # a 404 before any complaint about the body
    fields = event_fields(await _json_body(request), creating=False)
    event = graph.update_event(mailbox, request.match_info["id"], fields)
    graph.spawn(graph.notify(mailbox, event.id, "updated"))
    return web.json_response(represent(event))


async def delete_event(request: web.Request) -> web.Response:
    graph, mailbox, event_id = request.app[GRAPH], _mailbox(request), request.match_info["id"]
    graph.delete_event(mailbox, event_id)
    graph.spawn(graph.notify(mailbox, event_id, "deleted"))
    return web.Response(status=204)


# -- Graph: subscriptions ------------------------------------------------------------------


def subscription_json(subscription: Subscription) -> dict[str, Any]:
    return {
        "id": subscription.id,
        "resource": subscription.resource,
        "applicationId": subscription.app.client_id,
        "changeType": ",".join(sorted(subscription.change_types)),
        "clientState": subscription.client_state,
        "notificationUrl": subscription.notification_url,
        "lifecycleNotificationUrl": subscription.lifecycle_url,
        "expirationDateTime": _stamp(subscription.expires_at),
        "includeResourceData": False,
        "latestSupportedTlsVersion": "v1_2",
        "encryptionCertificate": None,
        "encryptionCertificateId": None,
        "notificationQueryOptions": None,
    }


def _expiry(body: dict[str, Any], lifecycle_url: str | None) -> datetime:
    expires_at = _instant(body.get("expirationDateTime"), "expirationDateTime")
    now = _now()
    if not now < expires_at <= now + LONGEST_SUBSCRIPTION:
        raise GraphError(
            400,
            "ExtensionError",
            "Subscription expiration can only be 10080 minutes in the future.",
        )
    if lifecycle_url is None and expires_at > now + LIFECYCLE_REQUIRED_AFTER:
        raise GraphError(
            400,
            "ValidationError",
            "lifecycleNotificationUrl is a required property for subscription creation on"
            " this resource when the expirationDateTime value is set to greater than 1 hour.",
        )
    return expires_at


def _change_types(body: dict[str, Any]) -> frozenset[str]:
    given = frozenset(str(body.get("changeType", "")).split(","))
    if not given or not given <= CHANGE_TYPES:
        raise GraphError(400, "ValidationError", f"Invalid changeType: {body.get('changeType')!r}.")
    return given


def _subscribed_user(graph: Graph, body: dict[str, Any]) -> Mailbox:
    found = _EVENTS_RESOURCE.fullmatch(str(body.get("resource", "")))
    if found is None:
        raise GraphError(400, "ValidationError", f"Unsupported resource: {body.get('resource')!r}.")
    return graph.mailbox(found[1])


async def create_subscription(request: web.Request) -> web.Response:
    graph, body = request.app[GRAPH], await _json_body(request)
    url, lifecycle_url = body.get("notificationUrl"), body.get("lifecycleNotificationUrl")
    if not url:
        raise GraphError(400, "ValidationError", "notificationUrl is required.")
    client_state = body.get("clientState")
    if client_state is not None and len(str(client_state)) > 128:
        raise GraphError(400, "ValidationError", "clientState may have at most 128 characters.")
    mailbox, change_types = _subscribed_user(graph, body), _change_types(body)
    expires_at = _expiry(body, lifecycle_url)
    for address in dict.fromkeys(u for u in (url, lifecycle_url) if u):
        if not await graph.validates(address):
            raise GraphError(
                400,
                "ValidationError",
                "Subscription validation request failed. Notification endpoint must respond"
                " with 200 OK to validation request.",
            )
    subscription = Subscription(
        str(uuid.uuid4()),
        request[GRANT].app,
        mailbox.user.lower(),
        str(body["resource"]),
        change_types,
        url,
        lifecycle_url,
        expires_at,
        client_state,
    )
    graph.subscriptions[subscription.id] = subscription
    log.info("subscription %s to %s's events pushes to %s", subscription.id, mailbox.user, url)
    return web.json_response(subscription_json(subscription), status=201)


def _own_subscription(request: web.Request) -> Subscription:
    graph, subscription_id = request.app[GRAPH], request.match_info["id"]
    live = {s.id: s for s in graph.live_subscriptions()}
    found = live.get(subscription_id)
    if found is None or found.app.client_id != request[GRANT].app.client_id:
        raise GraphError(404, "ResourceNotFound", f"The object '{subscription_id}' was not found.")
    return found


async def renew_subscription(request: web.Request) -> web.Response:
    subscription = _own_subscription(request)
    subscription.expires_at = _expiry(await _json_body(request), subscription.lifecycle_url)
    return web.json_response(subscription_json(subscription))


async def delete_subscription(request: web.Request) -> web.Response:
    del request.app[GRAPH].subscriptions[_own_subscription(request).id]
    return web.Response(status=204)


async def _no_such_segment(request: web.Request) -> web.Response:
    raise GraphError(400, "BadRequest", f"Resource not found for the segment '{request.path}'.")


# -- the app -------------------------------------------------------------------------------


async def _stop_pushes(app: web.Application) -> None:
    for task in list(app[GRAPH].tasks):
        task.cancel()


def build_app(deliver: Deliver | None = None) -> web.Application:
    """The stand-in, empty: register apps and users on `app[GRAPH]`."""
    app = web.Application(middlewares=[graph_gate])
    app[GRAPH] = Graph(deliver or post)
    users = f"/{VERSION}/users/{{user}}"
    app.router.add_get(f"{users}/calendarView/delta", calendar_view_delta)
    app.router.add_post(f"{users}/events", create_event)
    app.router.add_get(f"{users}/events", list_events)
    app.router.add_get(f"{users}/events/{{id}}", get_event)
    app.router.add_patch(f"{users}/events/{{id}}", update_event)
    app.router.add_delete(f"{users}/events/{{id}}", delete_event)
    app.router.add_post(f"/{VERSION}/subscriptions", create_subscription)
    app.router.add_patch(f"/{VERSION}/subscriptions/{{id}}", renew_subscription)
    app.router.add_delete(f"/{VERSION}/subscriptions/{{id}}", delete_subscription)
    app.router.add_route("*", f"/{VERSION}/{{tail:.*}}", _no_such_segment)
    app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", openid_configuration)
    app.router.add_get("/{tenant}/discovery/v2.0/keys", signing_keys)
    app.router.add_post("/{tenant}/oauth2/v2.0/token", token)
    app.on_cleanup.append(_stop_pushes)
    return app


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A new key and a certificate of its own for localhost, 127.0.0.1 and ::1, valid a
    year, as `cert.pem` and `key.pem` in `directory`: clients trust the certificate file
    itself (`ca_file`), so it is its own CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Holdfast Microsoft stand-in")])
    now = _now()
    names = [
        x509.DNSName("localhost"),
        x509.IPAddress(ip_address("127.0.0.1")),
        x509.IPAddress(ip_address("::1")),
    ]
    usage = x509.KeyUsage(
        digital_signature=True,
        key_cert_sign=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=365))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    pem_key = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private(key_path, pem_key.decode().strip())
    partial = directory / ".cert.pem.partial"  # (clients may be reading the old one)
    partial.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    os.replace(partial, cert_path)
    return cert_path, key_path


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


def demo_app(graph: Graph, path: Path, base: str, user: str) -> dict[str, str]:
    """The demo app of `path` (made and written there the first time), registered, with
    `user`'s mailbox; returns what `path` holds: the credential and the addresses."""
    saved = json.loads(path.read_text()) if path.exists() else {}
    app = graph.register(saved.get("tenant_id"), saved.get("client_id"), saved.get("client_secret"))
    graph.add_user(user)
    described = {
        "tenant_id": app.tenant_id,
        "client_id": app.client_id,
        "client_secret": app.secret,
        "user": user,
        "authority_host": base,
        "graph_base": f"{base}/{VERSION}",
        "ca_file": str((path.parent / "cert.pem").resolve()),
    }
    write_private(path, json.dumps(described, indent=2))
    return described


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8428)
    parser.add_argument("--dir", type=Path, default=Path(".data/microsoft"))
    parser.add_argument("--user", default="demo@holdfast.test", help="the demo mailbox")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s microsoft %(levelname)s %(message)s"
    )
    args.dir.mkdir(parents=True, exist_ok=True)
    cert_path, key_path = self_signed_certificate(args.dir)
    app = build_app()
    base = f"https://{args.host}:{args.port}"
    demo = demo_app(app[GRAPH], args.dir / "app.json", base, args.user)
    log.info(
        "Entra ID and Graph stand-in on %s (trust %s), demo app %s in tenant %s, mailbox %s",
        base,
        cert_path,
        demo["client_id"],
        demo["tenant_id"],
        args.user,
    )
    web.run_app(
        app,
        host=args.host,
        port=args.port,
        ssl_context=server_context(cert_path, key_path),
        print=None,
        access_log=None,
    )


if __name__ == "__main__":
    main()
