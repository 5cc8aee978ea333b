"""Token buckets in PostgreSQL (docs/security.md#rate-limits): every API process sees the
same bucket, and taking a token is one statement, so no two requests race for the last
one. A bucket holds up to a minute's worth of requests and refills continuously; a
refused request takes nothing, so waiting is all it takes to be let in again.

The buckets are not the application role's to read: two functions of the tables' owner
take a token (migration 0010), one of them resolving the API key in the same statement,
before any tenant is known. Nothing caches a key, so a revoked key is refused by the
very next request in every API process; the key's bucket's `refilled_at` is its last use.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_TAKE = text("SELECT tokens, allowed FROM holdfast_take_token(:bucket, :capacity)")
_TAKE_FOR_KEY = text(
    "SELECT * FROM holdfast_take_key_token(:key_hash, :secret_capacity, :publishable_capacity)"
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


@dataclass(frozen=True)
class LiveKey:
    """An API key that is neither unknown nor revoked."""

    id: uuid.UUID
    tenant_id: uuid.UUID
    kind: str  # ApiKeyKind
    allowed_origins: tuple[str, ...]


async def take(db: AsyncSession, bucket: str, per_minute: int) -> Decision:
    """One request's token from `bucket`, which holds `per_minute` at most."""
    found = (await db.execute(_TAKE, {"bucket": bucket, "capacity": per_minute})).one()
    return _decision(float(found.tokens), bool(found.allowed), per_minute)


async def take_for_key(
    db: AsyncSession, key_hash: str, secret_per_minute: int, publishable_per_minute: int
) -> tuple[LiveKey, Decision] | None:
    """The live key and one request's token from its bucket (which holds its kind's
    allowance); None for a key that is unknown or revoked."""
    found = (
        await db.execute(
            _TAKE_FOR_KEY,
            {
                "key_hash": key_hash,
                "secret_capacity": secret_per_minute,
                "publishable_capacity": publishable_per_minute,
            },
        )
    ).one_or_none()
    if found is None:
        return None
    key = LiveKey(found.key_id, found.key_tenant_id, found.key_kind, tuple(found.key_origins))
    return key, _decision(float(found.tokens), bool(found.allowed), found.key_per_minute)


def _decision(tokens: float, allowed: bool, per_minute: int) -> Decision:
    per_second = per_minute / 60
    return Decision(
        allowed,
        per_minute,
        max(0, math.floor(tokens)),
        math.ceil((per_minute - tokens) / per_second),
        0 if allowed else max(1, math.ceil((1 - tokens) / per_second)),
    )
