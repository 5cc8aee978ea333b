"""Token buckets in PostgreSQL (docs/security.md#rate-limits): every API process sees the
same bucket, and taking a token is one statement, so no two requests race for the last
one. A bucket holds up to a minute's worth of requests and refills continuously; a
refused request takes nothing, so waiting is all it takes to be let in again."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_REFILLED = (
    "LEAST(:capacity, b.tokens + EXTRACT(EPOCH FROM clock_timestamp() - b.refilled_at)"
    " * :per_second)"
)
_TAKE = text(
    f"""
    INSERT INTO rate_limits AS b (bucket, tokens, refilled_at, allowed)
    VALUES (:bucket, :capacity - 1, clock_timestamp(), true)
    ON CONFLICT (bucket) DO UPDATE SET
        tokens = CASE WHEN {_REFILLED} >= 1 THEN {_REFILLED} - 1 ELSE {_REFILLED} END,
        allowed = {_REFILLED} >= 1,
        refilled_at = clock_timestamp()
    RETURNING tokens, allowed
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
    per_second = per_minute / 60
    found = (
        await db.execute(
            _TAKE, {"bucket": bucket, "capacity": per_minute, "per_second": per_second}
        )
    ).one()
    tokens, allowed = float(found.tokens), bool(found.allowed)
    return Decision(
        allowed,
        per_minute,
        max(0, math.floor(tokens)),
        math.ceil((per_minute - tokens) / per_second),
        0 if allowed else max(1, math.ceil((1 - tokens) / per_second)),
    )
