"""Token buckets in PostgreSQL (docs/security.md#rate-limits): every API process sees the
same bucket, and taking a token is one statement, so no two requests race for the last
one. A bucket holds up to a minute's worth of requests and refills continuously; a
refused request takes nothing, so waiting is all it takes to be let in again."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_REFILLED = (
    "LEAST(:capacity, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at)"
    " * :per_second)"
)


def _take_token(new_bucket: str) -> str:
    """An upsert that takes a token from a bucket, making it (`new_bucket`: the row of a
    bucket's first request) full less one if it is new."""
    return f"""
        INSERT INTO rate_limits AS b (bucket, tokens, refilled_at, allowed)
        {new_bucket}
        ON CONFLICT (bucket) DO UPDATE SET
            tokens = CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END,
            allowed = {_REFILLED} >= 1,
            refilled_at = clock_timestamp()
        RETURNING tokens, allowed"""


_TAKE = text(_take_token("VALUES (:bucket, :capacity - 1, clock_timestamp(), true)"))

# The key and its token in one statement: a revoked key is refused by the very next
# request in every API process (nothing caches it), and resolving the key costs no round
# trip of its own. The bucket's `refilled_at` is the key's last use.
_KEY_BUCKET = "SELECT 'key:' || key.id, :capacity - 1, clock_timestamp(), true FROM key"
_TAKE_FOR_KEY = text(
    f"""
    WITH key AS (
        SELECT id, tenant_id FROM api_keys WHERE key_hash = :key_hash AND revoked_at IS NULL
    ), taken AS ({_take_token(_KEY_BUCKET)}
    )
    SELECT key.tenant_id, taken.tokens, taken.allowed FROM key, taken
    """
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: int  # until the bucket is full again
    retry_after: int  # until the next request is let in (0 when allowed)

    def headers(self) -> dict[str, str]:
        """The IETF RateLimit headers, and Retry-After when refused."""
        shown = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        return shown if self.allowed else {**shown, "Retry-After": str(self.retry_after)}


async def take(db: AsyncSession, bucket: str, per_minute: int) -> Decision:
    """One request's token from `bucket`, which holds `per_minute` at most."""
    found = (
        await db.execute(
            _TAKE, {"bucket": bucket, "capacity": per_minute, "per_second": per_minute / 60}
        )
    ).one()
    return _decision(float(found.tokens), bool(found.allowed), per_minute)


async def take_for_key(
    db: AsyncSession, key_hash: str, per_minute: int
) -> tuple[uuid.UUID, Decision] | None:
    """The live key's tenant and one request's token from its bucket; None for a key
    that is unknown or revoked."""
    found = (
        await db.execute(
            _TAKE_FOR_KEY,
            {"key_hash": key_hash, "capacity": per_minute, "per_second": per_minute / 60},
        )
    ).one_or_none()
    if found is None:
        return None
    return found.tenant_id, _decision(float(found.tokens), bool(found.allowed), per_minute)


def _decision(tokens: float, allowed: bool, per_minute: int) -> Decision:
    per_second = per_minute / 60
    return Decision(
        allowed,
        per_minute,
        max(0, math.floor(tokens)),
        math.ceil((per_minute - tokens) / per_second),
        0 if allowed else max(1, math.ceil((1 - tokens) / per_second)),
    )
