"""Bearer-key authentication (docs/security.md#api-keys): the operator key, a tenant's
secret key, or a tenant's publishable key, which reaches only availability, booking, and
the bookings it made (with each one's access token). Each dependency also says what the
request's database sessions act for (api/context.act_as)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Header, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import act_as, context, tenancy
from api.errors import ApiError
from api.rate_limits import live_key, throttle_refused_key
from contract import BOOKING_TOKEN_HEADER, ApiKeyKind
from db.tenancy import Tenancy, across_tenants

_bearer = HTTPBearer(auto_error=False, description="Operator key or a tenant API key.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
# Where a publishable key's allowed origin is left for the answer's CORS (api/cors.py).
CORS_ORIGIN_STATE = "cors_origin"
_BOOKING_TOKEN = "hf_bt_"


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


def _publishable_refused() -> ApiError:
    return ApiError(
        403,
        "forbidden",
        "a publishable key may only read a service, query availability, book, and read, "
        "cancel or reschedule the bookings it made (with their access token); use a "
        "secret key",
    )


def _key(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise _unauthorized("send 'Authorization: Bearer <api key>'")
    return credentials.credentials


def is_operator(request: Request, key: str) -> bool:
    admin = context(request).settings.admin_api_key
    return admin is not None and hmac.compare_digest(
        key.encode(), admin.get_secret_value().encode()
    )


def bearer_is_operator(request: Request) -> bool:
    """For routes outside the dependency system's bearer scheme (metrics, the codec)."""
    bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return is_operator(request, bearer)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant (its key, of `kind`), or the operator (tenant_id None: any
    tenant). `actor` is a booking history's (docs/lifecycle.md#history): `api` or
    `operator`; the audit log names the key itself."""

    tenant_id: uuid.UUID | None
    actor: str
    kind: ApiKeyKind | None = None
    key_id: uuid.UUID | None = None

    @property
    def publishable(self) -> bool:
        return self.kind == ApiKeyKind.PUBLISHABLE


async def _caller(request: Request, credentials: HTTPAuthorizationCredentials | None) -> Principal:
    key = _key(credentials)
    if is_operator(request, key):
        act_as(request, across_tenants("operator"))
        return Principal(None, "operator")
    found = await live_key(request, key)
    if found is None:
        await throttle_refused_key(request)
        raise _unauthorized("unknown or revoked API key")
    kind = ApiKeyKind(found.kind)
    if kind == ApiKeyKind.PUBLISHABLE:
        _check_origin(request, found.allowed_origins)
    act_as(request, Tenancy(found.tenant_id, f"key:{found.id}"))  # the audit log's actor
    return Principal(found.tenant_id, "api", kind, found.id)


def _check_origin(request: Request, allowed: tuple[str, ...]) -> None:
    """A browser names the page's origin: it must be one the key allows. Without one the
    caller is an app, not a page, and CORS has nothing to say."""
    origin = request.headers.get("origin")
    if origin is None:
        return
    if origin not in allowed:
        raise ApiError(403, "origin_not_allowed", "this key may not be used from this origin")
    setattr(request.state, CORS_ORIGIN_STATE, origin)


async def operator(request: Request, credentials: Credentials) -> None:
    if not is_operator(request, _key(credentials)):
        raise _unauthorized("this endpoint needs the operator key")
    act_as(request, across_tenants("operator"))


async def principal(request: Request, credentials: Credentials) -> Principal:
    """The operator or a tenant's secret key."""
    who = await _caller(request, credentials)
    if who.publishable:
        raise _publishable_refused()
    return who


async def tenant_id(request: Request, credentials: Credentials) -> uuid.UUID:
    """The secret key's tenant; each call takes one request of the key's rate limit.
    Nothing is cached, so a revoked key is refused at once by every API process."""
    who = await _caller(request, credentials)
    if who.tenant_id is None:
        raise _unauthorized("this endpoint needs a tenant's API key")
    if who.publishable:
        raise _publishable_refused()
    return who.tenant_id


async def any_key_tenant(request: Request, credentials: Credentials) -> Principal:
    """A tenant's key of either kind: for what a booking page does (availability, book)."""
    who = await _caller(request, credentials)
    if who.tenant_id is None:
        raise _unauthorized("this endpoint needs a tenant's API key")
    return who


def booking_access_token(request: Request, booking_id: uuid.UUID) -> str:
    """The booking's access token: whoever made the booking holds it, and with it a
    publishable key reaches that booking and no other. An HMAC under TOKEN_SECRET, so
    nothing is stored and it cannot be guessed from the id."""
    secret = context(request).settings.token_secret.get_secret_value().encode()
    mac = hmac.new(secret, b"booking-access:" + booking_id.bytes, hashlib.sha256).digest()
    return _BOOKING_TOKEN + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


async def booking_caller(
    request: Request,
    booking_id: uuid.UUID,
    credentials: Credentials,
    access_token: Annotated[str | None, Query(max_length=100)] = None,
    booking_token: Annotated[str | None, Header(alias=BOOKING_TOKEN_HEADER, max_length=100)] = None,
) -> Principal:
    """The operator, a secret key, or a publishable key with this booking's access token
    (`?access_token=` or the X-Booking-Token header)."""
    who = await _caller(request, credentials)
    if not who.publishable:
        return who
    given = booking_token or access_token
    if given is None:
        raise ApiError(403, "forbidden", "a publishable key needs the booking's access token")
    if not hmac.compare_digest(given.encode(), booking_access_token(request, booking_id).encode()):
        raise ApiError(403, "forbidden", "this access token is not this booking's")
    return who


async def booking_reader(
    request: Request, who: Annotated[Principal, Depends(booking_caller)]
) -> Principal:
    """As `booking_caller`, but a tenant's key: reading bookings is not the operator's."""
    if who.tenant_id is None:
        raise _unauthorized("this endpoint needs a tenant's API key")
    return who


def actor(request: Request) -> str:
    """Who made this request, as the audit log names them: `key:<api key id>` or
    `operator`; declared after the route's key dependency, which sets it."""
    return tenancy(request).actor
