"""Busy time imported from a connected calendar (docs/calendars.md#import): one row per
event of a connection, and their union on the resource row (`calendar_busy`), which is
what claims check and what makes a claim racing a sync wait for it (db/bookings.py).

Every change rewrites the resource's union in the same transaction, with the resource row
locked first: the one lock a sync takes, and always in the same order."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, TIMESTAMP
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text


@dataclass(frozen=True)
class Busy:
    external_id: str
    start: datetime
    end: datetime


_LOCK = text("SELECT FROM resources WHERE id = :resource FOR NO KEY UPDATE")

_UPSERT = text(
    """
    INSERT INTO external_busy (id, tenant_id, resource_id, connection_id, source,
                               external_id, span, updated_at)
    SELECT gen_random_uuid(), :tenant, :resource, :connection, :source, e.id,
           tstzrange(e.start_at, e.end_at, '[)'), now()
    FROM unnest(CAST(:ids AS text[]), CAST(:starts AS timestamptz[]),
                CAST(:ends AS timestamptz[])) AS e (id, start_at, end_at)
    ON CONFLICT (connection_id, external_id)
    DO UPDATE SET span = excluded.span, updated_at = now()
    WHERE external_busy.span IS DISTINCT FROM excluded.span
    """
).bindparams(
    bindparam("ids", type_=ARRAY(Text)),
    bindparam("starts", type_=ARRAY(TIMESTAMP(timezone=True))),
    bindparam("ends", type_=ARRAY(TIMESTAMP(timezone=True))),
)

_REMOVE = text(
    "DELETE FROM external_busy WHERE connection_id = :connection AND external_id = ANY(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(Text)))

_REMOVE_ALL_BUT = text(
    "DELETE FROM external_busy WHERE connection_id = :connection AND external_id <> ALL(:ids)"
).bindparams(bindparam("ids", type_=ARRAY(Text)))

_MERGE = text(
    """
    UPDATE resources SET calendar_busy = coalesce(
        (SELECT range_agg(span) FROM external_busy WHERE resource_id = :resource),
        '{}')
    WHERE id = :resource
    """
)


@dataclass(frozen=True)
class Target:
    """Whose busy time: the connection's resource and tenant."""

    tenant_id: uuid.UUID
    resource_id: uuid.UUID
    connection_id: uuid.UUID
    source: str


async def apply(
    db: AsyncSession, target: Target, busy: list[Busy], gone: list[str], *, full: bool
) -> None:
    """Store `busy`, drop `gone`; a `full` listing also drops every event it lacks. The
    caller commits."""
    await db.execute(_LOCK, {"resource": target.resource_id})
    busy = list({b.external_id: b for b in busy}.values())  # a repeated event: its last
    ids = [b.external_id for b in busy]
    keys = {"connection": target.connection_id}
    if full:
        await db.execute(_REMOVE_ALL_BUT, {**keys, "ids": ids})
    elif gone:
        await db.execute(_REMOVE, {**keys, "ids": gone})
    if busy:
        await db.execute(
            _UPSERT,
            {
                **keys,
                "tenant": target.tenant_id,
                "resource": target.resource_id,
                "source": target.source,
                "ids": ids,
                "starts": [b.start for b in busy],
                "ends": [b.end for b in busy],
            },
        )
    await db.execute(_MERGE, {"resource": target.resource_id})


async def clear(db: AsyncSession, target: Target) -> None:
    """Forget all of a connection's busy time (it was deleted, or stopped importing)."""
    await apply(db, target, [], [], full=True)


async def merge(db: AsyncSession, resource_id: uuid.UUID) -> None:
    """Rewrite a resource's union after its rows changed some other way (a connection's
    rows cascading away)."""
    await db.execute(_LOCK, {"resource": resource_id})
    await db.execute(_MERGE, {"resource": resource_id})
