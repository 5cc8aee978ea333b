"""Rate limits per API key, shared by every API process (docs/security.md#rate-limits):
each authenticated request takes a token from its key's bucket (db/rate_limits.py); an
empty bucket answers `429 rate_limited` with `Retry-After`. Every answer to a key says
where it stands (`RateLimit-Limit`, `-Remaining`, `-Reset`). A key that is refused (unknown
or revoked) takes a token from its client address's bucket instead, so guessing keys is
slow."""

from __future__ import annotations

import uuid

from fastapi import Request
from starlette.types import Message, Receive, Scope, Send

from api.context import context
from api.errors import ApiError
from api.middleware import HttpMiddleware
from db.rate_limits import Decision, take, take_for_key
from db.tenants import hash_key

_STATE = "rate_limit"


async def _take(request: Request, bucket: str, per_minute: int) -> Decision:
    async with context(request).autocommit() as db:
        decision = await take(db, bucket, per_minute)
    request.state.rate_limit = decision
    return decision


async def tenant_of_key(request: Request, key: str) -> uuid.UUID | None:
    """The key's tenant, None if it is unknown or revoked; raises 429 once the key has
    used its minute's worth of requests. One statement for both (db/rate_limits.py)."""
    ctx = context(request)
    per_minute = ctx.settings.rate_limit_per_minute
    async with ctx.autocommit() as db:
        found = await take_for_key(db, hash_key(key), per_minute)
    if found is None:
        return None
    tenant, decision = found
    request.state.rate_limit = decision
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            f"more than {per_minute} requests a minute with this key; retry later",
            headers=decision.headers(),
        )
    return tenant


async def throttle_refused_key(request: Request) -> None:
    """Called when a key is refused: past the client address's allowance, 429 instead of
    401, so a guesser learns nothing more for a while."""
    per_minute = context(request).settings.refused_keys_per_minute
    client = request.client.host if request.client else "unknown"
    decision = await _take(request, f"addr:{client}", per_minute)
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            "too many refused keys from this address; retry later",
            headers=decision.headers(),
        )


class RateLimitHeaders(HttpMiddleware):
    """Adds the request's RateLimit headers to its answer, whatever the route returned."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            decision = scope.get("state", {}).get(_STATE)
            if message["type"] == "http.response.start" and isinstance(decision, Decision):
                names = {name.lower() for name, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in decision.headers().items()
                    if k.lower().encode() not in names
                ]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)
