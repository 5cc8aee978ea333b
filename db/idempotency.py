"""Idempotency-Key records: the first request reserves the key (and a booking id); its
response is stored and replayed to every repeat of the same request."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Boolean, literal_column, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from db.ids import new_id
from db.models import IdempotencyRecord


@dataclass(frozen=True)
class Reservation:
    booking_id: uuid.UUID
    request_hash: str
    response_status: int | None
    response_body: dict[str, Any] | None
    fresh: bool  # this request created the record


async def reserve(
    db: AsyncSession, tenant_id: uuid.UUID, key: str, request_hash: str
) -> Reservation:
    """The key's record, created now if it is new. The caller commits it (with the reads
    that follow, saving a round trip); until then a concurrent repeat waits on the key,
    then sees the record and joins the same booking."""
    # One round trip either way: a no-op update on conflict makes RETURNING yield the
    # existing row, untouched.
    stmt = insert(IdempotencyRecord).values(
        tenant_id=tenant_id, key=key, request_hash=request_hash, booking_id=new_id()
    )
    inserted = literal_column("xmax = 0", Boolean)  # xmax is 0 on a row just inserted
    row, fresh = (
        await db.execute(
            stmt.on_conflict_do_update(
                index_elements=["tenant_id", "key"], set_={"key": stmt.excluded.key}
            ).returning(IdempotencyRecord, inserted)
        )
    ).one()
    assert row.booking_id is not None
    return Reservation(
        row.booking_id, row.request_hash, row.response_status, row.response_body, fresh
    )


async def store_response(
    db: AsyncSession, tenant_id: uuid.UUID, key: str, status: int, body: dict[str, Any]
) -> None:
    await db.execute(
        update(IdempotencyRecord)
        .where(
            IdempotencyRecord.tenant_id == tenant_id,
            IdempotencyRecord.key == key,
            IdempotencyRecord.response_status.is_(None),
        )
        .values(response_status=status, response_body=body)
    )
    await db.commit()
