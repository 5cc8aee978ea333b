"""The audit log (docs/security.md#audit-log): the key its entries are signed with, reading
a tenant's entries, and verifying its chain.

The database's trigger (db/migrations/versions/0011_audit_log.py) writes every entry;
this module never does. It signs with HMAC pads each application connection brings as
startup options, so the key itself never reaches the database, and an entry written by a
session without them (the owner's psql) stays unsigned. `verify` recomputes every hash
and signature here, in Python, from the stored columns alone: trusting SQL to check
what SQL wrote would let whoever can change the function change the verdict too.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from db.models import AuditEvent, AuditHead
from settings import Settings

# The tables whose changes the log records (its entries' `object_type`).
ObjectType = Literal[
    "tenants",
    "api_keys",
    "locations",
    "resources",
    "time_off",
    "services",
    "bookings",
    "webhook_endpoints",
    "calendar_connections",
    "calendar_feeds",
]
Action = Literal["insert", "update", "delete"]
# The first entry's `prev_hash`: a chain starts from nothing.
GENESIS = "0" * 64
_BLOCK = 64  # SHA-256's block size: the HMAC pads are this long

Connection = AsyncConnection | AsyncSession


def mac_key(audit_key: str) -> bytes:
    """The HMAC key proper: SHA-256 of AUDIT_KEY, so any length of key gives the same
    32 bytes on both sides (the database only ever sees its pads)."""
    return hashlib.sha256(audit_key.encode()).digest()


def pads(audit_key: str) -> tuple[bytes, bytes]:
    """HMAC-SHA256's inner and outer pads of the key: with them, `sha256()` alone computes
    the HMAC in SQL (no pgcrypto), and the same as `hmac.new(mac_key(key), m, sha256)`."""
    key = mac_key(audit_key).ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in key), bytes(b ^ 0x5C for b in key)


def connection_options(settings: Settings) -> str:
    """libpq startup options for the application role's connections: times in UTC, and
    the pads that let the audit trigger sign entries. The API and the worker refuse to
    start without AUDIT_KEY: the trigger would still write every entry, but unsigned, and
    `holdfast audit verify` would report each one as broken."""
    audit_key = settings.audit_key.get_secret_value()
    if not audit_key:
        raise RuntimeError("AUDIT_KEY is not set")
    ipad, opad = pads(audit_key)
    return (
        f"-c timezone=UTC -c holdfast.audit_ipad={ipad.hex()} -c holdfast.audit_opad={opad.hex()}"
    )


def sign(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


class AuditEntry(BaseModel):
    """One entry as stored, and as the API and the export show it: every column, so a
    SIEM can check the chain's links and keep its own copy of the head."""

    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    seq: int = Field(description="Position in the tenant's log: 1, 2, 3... without gaps.")
    at: datetime
    actor: str = Field(
        description="Who: `key:<api key id>`, `operator`, `stripe:<event id>`, "
        "`workflow:<id>/<step>`, `calendar-push`..., or `db:<role>` for a session that "
        "named no one."
    )
    action: Action
    object_type: ObjectType
    object_id: str | None
    changed: list[str] = Field(description="Names of the columns that changed; never values.")
    before_digest: str | None = Field(description="Keyed digest of the row before (hex).")
    after_digest: str | None = Field(description="Keyed digest of the row after (hex).")
    prev_hash: str
    hash: str
    hmac: str | None = Field(description="Signature of `hash`; null: written without the key.")


def content(entry: AuditEntry) -> str:
    """What an entry's hash covers, as the trigger spells it: each field as
    `<length>:<value>` (NULL as empty), so no two fields run into each other."""
    at = entry.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
    fields = (
        str(entry.tenant_id),
        str(entry.seq),
        at,
        entry.actor,
        entry.action,
        entry.object_type,
        entry.object_id,
        ",".join(entry.changed),
        entry.before_digest,
        entry.after_digest,
    )
    return "".join(f"{len(f or '')}:{f or ''}" for f in fields)


def entry_hash(entry: AuditEntry) -> str:
    return hashlib.sha256((entry.prev_hash + content(entry)).encode()).hexdigest()


async def read_page(
    conn: Connection,
    tenant_id: uuid.UUID,
    *,
    limit: int,
    after_seq: int = 0,
    object_type: str | None = None,
    object_id: str | None = None,
) -> tuple[list[AuditEntry], int | None]:
    """Up to `limit` entries after `after_seq`, oldest first, and the seq to continue
    after (None on the last page). Always filtered by tenant: row-level security is the
    second wall, not the first."""
    stmt = select(AuditEvent.__table__).where(
        AuditEvent.tenant_id == tenant_id, AuditEvent.seq > after_seq
    )
    if object_type is not None:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if object_id is not None:
        stmt = stmt.where(AuditEvent.object_id == object_id)
    rows = (await conn.execute(stmt.order_by(AuditEvent.seq).limit(limit + 1))).all()
    entries = [AuditEntry.model_validate(dict(row._mapping)) for row in rows[:limit]]
    return entries, entries[-1].seq if len(rows) > limit else None


async def entries(
    conn: Connection,
    tenant_id: uuid.UUID,
    *,
    after_seq: int = 0,
    object_type: str | None = None,
    object_id: str | None = None,
    page_size: int = 1000,
) -> AsyncIterator[AuditEntry]:
    """Every entry after `after_seq`, oldest first, read a page at a time: a log of any
    length streams in bounded memory."""
    after: int | None = after_seq
    while after is not None:
        page, after = await read_page(
            conn,
            tenant_id,
            limit=page_size,
            after_seq=after,
            object_type=object_type,
            object_id=object_id,
        )
        for entry in page:
            yield entry


async def ndjson(source: AsyncIterator[AuditEntry]) -> AsyncIterator[bytes]:
    """One JSON object a line, as the list shows each entry: what SIEMs ingest."""
    async for entry in source:
        yield entry.model_dump_json().encode() + b"\n"


# Why verification stops, first broken entry first.
SEQ_GAP = "seq gap"
PREV_MISMATCH = "prev mismatch"
HASH_MISMATCH = "hash mismatch"
MISSING_HMAC = "missing hmac"
BAD_HMAC = "bad hmac"
HEAD_MISMATCH = "head mismatch"


@dataclass(frozen=True)
class VerifyResult:
    """`checked`: the entries found sound. When not `ok`: the first broken entry (its id
    None when what is missing is the log's end, by the head) and why."""

    ok: bool
    checked: int
    broken_id: uuid.UUID | None = None
    broken_seq: int | None = None
    reason: str | None = None


def _check(entry: AuditEntry, expected_seq: int, prev: str, key: bytes) -> str | None:
    if entry.seq != expected_seq:
        return f"{SEQ_GAP} (expected seq {expected_seq}: the entries before it were deleted)"
    if entry.prev_hash != prev:
        return f"{PREV_MISMATCH} (does not follow the entry before it)"
    if entry_hash(entry) != entry.hash:
        return f"{HASH_MISMATCH} (its content was changed)"
    if entry.hmac is None:
        return f"{MISSING_HMAC} (written by a session without the audit key)"
    if not hmac.compare_digest(sign(key, entry.hash), entry.hmac):
        return f"{BAD_HMAC} (not signed with the audit key)"
    return None


async def verify(conn: Connection, tenant_id: uuid.UUID, audit_key: str) -> VerifyResult:
    """Walk the tenant's chain from its first entry: each seq follows the last, links to
    its hash, hashes to what it says and is signed under `audit_key`; and the head names
    the last entry, so deleting the newest entries shows too. Read as the tables' owner,
    who sees every row whatever row-level security says."""
    key = mac_key(audit_key)
    checked, prev = 0, GENESIS
    async for entry in entries(conn, tenant_id):
        reason = _check(entry, checked + 1, prev, key)
        if reason is not None:
            return VerifyResult(False, checked, entry.id, entry.seq, reason)
        checked, prev = checked + 1, entry.hash
    head = (
        await conn.execute(
            select(AuditHead.seq, AuditHead.hash).where(AuditHead.tenant_id == tenant_id)
        )
    ).one_or_none()
    head_seq, head_hash = (head.seq, head.hash) if head is not None else (0, GENESIS)
    if (head_seq, head_hash) != (checked, prev):
        reason = (
            f"{HEAD_MISMATCH} (the head is at seq {head_seq}, the log ends at seq {checked}:"
            " its newest entries were deleted)"
            if head_seq > checked
            else f"{HEAD_MISMATCH} (the head is at seq {head_seq}, the log ends at seq {checked})"
        )
        return VerifyResult(False, checked, None, head_seq, reason)
    return VerifyResult(True, checked)
