"""Bearer-key authentication: the operator key, or a tenant's API key."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.context import context
from api.errors import ApiError
from api.rate_limits import tenant_of_key, throttle_refused_key

_bearer = HTTPBearer(auto_error=False, description="Operator key or a tenant API key.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message)


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


async def operator(request: Request, credentials: Credentials) -> None:
    if not is_operator(request, _key(credentials)):
        raise _unauthorized("this endpoint needs the operator key")


async def tenant_id(request: Request, credentials: Credentials) -> uuid.UUID:
    """The key's tenant; each call takes one request of the key's rate limit. Nothing is
    cached, so a revoked key is refused at once by every API process."""
    key = _key(credentials)
    found = await tenant_of_key(request, key)
    if found is None:
        await throttle_refused_key(request)
        raise _unauthorized("unknown or revoked API key")
    return found


@dataclass(frozen=True)
class Principal:
    """Who is calling: a tenant (its key), or the operator (tenant_id None: any tenant)."""

    tenant_id: uuid.UUID | None
    actor: str


async def principal(request: Request, credentials: Credentials) -> Principal:
    if is_operator(request, _key(credentials)):
        return Principal(None, "operator")
    return Principal(await tenant_id(request, credentials), "api")
