"""The Idempotency-Key of a create request (docs/api.md#idempotency-key): required, and
bound to the body it first came with."""

from __future__ import annotations

import hashlib
import json
import uuid

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import ApiError, invalid
from db.idempotency import Reservation, reserve


def _request_hash(body: BaseModel) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def reserve_key(
    db: AsyncSession, tenant: uuid.UUID, key: str | None, body: BaseModel
) -> Reservation:
    """The key's record (made now if new): `400` without a key, `422` if the key came
    with another body before."""
    if not key:
        raise ApiError(400, "idempotency_key_required", "send an Idempotency-Key header")
    hashed = _request_hash(body)
    found = await reserve(db, tenant, key, hashed)
    if found.request_hash != hashed:
        raise invalid(
            "idempotency_key_reused", "this Idempotency-Key was used with a different request"
        )
    return found
