"""Rate limits per API key, shared by every API process (docs/security.md#rate-limits):
each authenticated request takes a token from its key's bucket (db/rate_limits.py); an
empty bucket answers `429 rate_limited` with `Retry-After`. Every answer to a key says
where it stands (`RateLimit-Limit`, `-Remaining`, `-Reset`). A key that is refused (unknown
or revoked) takes a token from its client address's bucket instead, so guessing keys is
slow."""

from __future__ import annotations

from fastapi import Request
from starlette.types import Scope

from api.context import context
from api.errors import ApiError
from api.middleware import Headers, ResponseHeaders
from db.rate_limits import Decision, LiveKey, take, take_for_key
from db.tenancy import FUNCTIONS_ONLY
from db.tenants import hash_key

_STATE = "rate_limit"


def _enforce(request: Request, decision: Decision, refusal: str) -> None:
    """Remember the decision for the answer's headers; an empty bucket is a 429."""
    setattr(request.state, _STATE, decision)
    if not decision.allowed:
        raise ApiError(429, "rate_limited", f"{refusal}; retry later", headers=decision.headers())


async def live_key(request: Request, key: str) -> LiveKey | None:
    """The key, None if it is unknown or revoked; raises 429 once the key has used its
    minute's worth of requests. One statement for both (db/rate_limits.py)."""
    ctx = context(request)
    async with ctx.autocommit(FUNCTIONS_ONLY) as db:
        found = await take_for_key(
            db,
            hash_key(key),
            ctx.settings.rate_limit_per_minute,
            ctx.settings.publishable_rate_limit_per_minute,
        )
    if found is None:
        return None
    live, decision = found
    _enforce(request, decision, f"more than {decision.limit} requests a minute with this key")
    return live


async def throttle_refused_key(request: Request) -> None:
    """Called when a key is refused: past the client address's allowance, 429 instead of
    401, so a guesser learns nothing more for a while."""
    ctx = context(request)
    client = request.client.host if request.client else "unknown"
    async with ctx.autocommit(FUNCTIONS_ONLY) as db:
        decision = await take(db, f"addr:{client}", ctx.settings.refused_keys_per_minute)
    _enforce(request, decision, "too many refused keys from this address")


class RateLimitHeaders(ResponseHeaders):
    """The request's RateLimit headers on its answer."""

    def extra(self, scope: Scope, headers: Headers) -> Headers:
        decision = scope.get("state", {}).get(_STATE)
        if not isinstance(decision, Decision):
            return []
        names = {name.lower() for name, _ in headers}
        shown = ((k.lower().encode(), v.encode()) for k, v in decision.headers().items())
        return [h for h in shown if h[0] not in names]
