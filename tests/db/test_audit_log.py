"""The audit log as the database keeps it (db/migrations/versions/0011_audit_log.py,
db/audit.py, docs/security.md#audit-log): the trigger logs every change whoever makes it,
the application role can only read its tenant's entries, and `verify` finds any edit,
deletion or unsigned write. Tampering is done as the tables' owner, over psycopg, as
someone with database access would."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import errors
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine

from api.context import AppContext
from connections import libpq_url
from db import audit
from db.audit import AuditEntry
from db.models import Booking, CalendarConnection, Resource
from db.tenancy import Tenancy
from settings import Settings
from tests.support.api import service, staff
from tests.support.clients import tenant_of
from tests.support.db import AUDIT_KEY, insert_booking, insert_connection

NINE = datetime.fromisoformat("2027-03-01T09:00:00+00:00")


@pytest.fixture(scope="module")
async def owner(settings: Settings) -> AsyncIterator[AsyncEngine]:
    """The tables' owner, who reads every row whatever row-level security says."""
    engine = create_async_engine(settings.async_database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def tenant(api: httpx.AsyncClient) -> uuid.UUID:
    return uuid.UUID(tenant_of(api))


async def log_of(owner: AsyncEngine, tenant: uuid.UUID) -> list[AuditEntry]:
    async with owner.connect() as conn:
        return [e async for e in audit.entries(conn, tenant)]


async def verify(owner: AsyncEngine, tenant: uuid.UUID) -> audit.VerifyResult:
    async with owner.connect() as conn:
        return await audit.verify(conn, tenant, AUDIT_KEY)


async def as_owner(database_url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    """One statement in a psql-like session of the owner: no actor, no HMAC pads."""
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall() if cur.description else []


def app_role(settings: Settings) -> str:
    return libpq_url(settings.app_database_url)


async def test_a_tenants_first_entries_record_its_creation_by_the_operator(
    owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    entries = await log_of(owner, tenant)
    assert [(e.seq, e.action, e.object_type, e.actor) for e in entries] == [
        (1, "insert", "tenants", "operator"),
        (2, "insert", "api_keys", "operator"),
    ]
    assert entries[0].object_id == str(tenant)
    assert entries[0].prev_hash == audit.GENESIS and entries[1].prev_hash == entries[0].hash


async def test_a_tenants_chain_verifies_clean(
    api: httpx.AsyncClient, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    ada = await staff(api)
    await api.patch(f"/v1/resources/{ada['id']}", json={"name": "Dr Ada L."})
    await service(api)
    result = await verify(owner, tenant)
    assert result == audit.VerifyResult(True, len(await log_of(owner, tenant)))
    assert result.checked == 5


async def test_entries_name_changed_columns_and_never_hold_their_values(
    db: AsyncSession, api: httpx.AsyncClient, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    ada, svc = await staff(api), await service(api)
    booking = await insert_booking(db, [ada["id"]], svc["id"], NINE, NINE + timedelta(hours=1))
    await db.execute(
        update(Booking)
        .where(Booking.id == booking)
        .values(customer={"name": "Grace Hopper", "email": "grace@example.com"})
    )
    await db.commit()
    entry = (await log_of(owner, tenant))[-1]
    assert (entry.object_type, entry.object_id, entry.changed) == (
        "bookings",
        str(booking),
        ["customer"],
    )
    assert entry.before_digest and entry.after_digest and entry.before_digest != entry.after_digest
    assert "grace" not in entry.model_dump_json().lower()


async def test_a_delete_is_logged_with_the_digest_of_the_row_it_removed(
    api: httpx.AsyncClient, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    ada = await staff(api)
    off = await api.post(
        f"/v1/resources/{ada['id']}/time-off",
        json={"start": "2027-03-01T09:00:00Z", "end": "2027-03-02T09:00:00Z"},
    )
    added = (await log_of(owner, tenant))[-1]
    deleted = await api.delete(f"/v1/resources/{ada['id']}/time-off/{off.json()['id']}")
    assert deleted.status_code == 204
    entry = (await log_of(owner, tenant))[-1]
    assert (entry.action, entry.object_type, entry.object_id) == (
        "delete",
        "time_off",
        added.object_id,
    )
    assert entry.before_digest == added.after_digest and entry.after_digest is None
    assert "reason" in entry.changed and "span" in entry.changed


@pytest.mark.parametrize(
    "bookkeeping",
    [
        "UPDATE resources SET calendar_busy = '{[2027-03-01 09:00Z, 2027-03-01 10:00Z)}',"
        " updated_at = now() WHERE tenant_id = :tenant",
        "UPDATE calendar_connections SET sync_cursor = 'next', window_end = now(),"
        " last_synced_at = now(), last_error = 'throttled', channel_id = 'ch-1',"
        ' channel = \'{"id": "ch-1"}\', updated_at = now() WHERE tenant_id = :tenant',
        'UPDATE bookings SET side_effects = \'{"notify": "done"}\', updated_at = now()'
        " WHERE tenant_id = :tenant",
    ],
    ids=["resource-calendar-busy", "calendar-connection-sync", "booking-side-effects"],
)
async def test_an_update_of_only_ignored_columns_writes_no_entry(
    bookkeeping: str,
    db: AsyncSession,
    api: httpx.AsyncClient,
    owner: AsyncEngine,
    tenant: uuid.UUID,
) -> None:
    ada, svc = await staff(api), await service(api)
    await insert_booking(db, [ada["id"]], svc["id"], NINE, NINE + timedelta(hours=1))
    await insert_connection(db, ada["id"])
    before = await log_of(owner, tenant)
    result = await db.execute(text(bookkeeping), {"tenant": tenant})
    await db.commit()
    assert result.rowcount == 1  # type: ignore[attr-defined]
    assert await log_of(owner, tenant) == before


async def test_the_app_role_may_not_write_audit_events_or_heads(
    settings: Settings, tenant: uuid.UUID
) -> None:
    async with await psycopg.AsyncConnection.connect(app_role(settings), autocommit=True) as conn:
        await conn.execute("SELECT set_config('holdfast.tenant_id', %s, false)", (str(tenant),))
        for statement in (
            "UPDATE audit_events SET actor = 'forged'",
            "DELETE FROM audit_events",
            "INSERT INTO audit_events (tenant_id, seq, actor, action, object_type, changed,"
            " prev_hash, hash) SELECT tenant_id, 99, 'forged', 'insert', 'tenants', '{}', '', ''"
            " FROM audit_events LIMIT 1",
            "UPDATE audit_heads SET seq = 0",
        ):
            with pytest.raises(errors.InsufficientPrivilege, match="permission denied"):
                await conn.execute(statement)


async def test_the_app_role_sees_no_audit_events_without_a_tenant(
    settings: Settings, tenant: uuid.UUID
) -> None:
    async with await psycopg.AsyncConnection.connect(app_role(settings), autocommit=True) as conn:
        cur = await conn.execute("SELECT count(*) FROM audit_events")
        assert await cur.fetchone() == (0,)
        await conn.execute("SELECT set_config('holdfast.tenant_id', %s, false)", (str(tenant),))
        cur = await conn.execute("SELECT DISTINCT tenant_id FROM audit_events")
        assert await cur.fetchall() == [(tenant,)]


async def test_an_owner_editing_an_entry_breaks_verify_at_that_entry(
    database_url: str, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    ((edited,),) = await as_owner(
        database_url,
        "UPDATE audit_events SET actor = 'key:someone-else' WHERE tenant_id = %s AND seq = 1"
        " RETURNING id",
        tenant,
    )
    result = await verify(owner, tenant)
    assert (result.ok, result.broken_id, result.broken_seq) == (False, edited, 1)
    assert result.reason is not None and result.reason.startswith(audit.HASH_MISMATCH)


async def test_an_owner_rehashing_an_edited_entry_breaks_verify_at_its_signature(
    database_url: str, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    """The hashes are SHA-256 anyone can recompute; the signature needs AUDIT_KEY."""
    (entry,) = [e for e in await log_of(owner, tenant) if e.seq == 1]
    forged = entry.model_copy(update={"actor": "key:someone-else"})
    await as_owner(
        database_url,
        "UPDATE audit_events SET actor = %s, hash = %s WHERE id = %s",
        forged.actor,
        audit.entry_hash(forged),
        entry.id,
    )
    result = await verify(owner, tenant)
    assert (result.broken_id, result.reason) == (
        entry.id,
        audit.BAD_HMAC + " (not signed with the audit key)",
    )


async def test_deleting_an_entry_breaks_verify_at_the_entry_after_it(
    api: httpx.AsyncClient, database_url: str, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    await staff(api)
    after = (await log_of(owner, tenant))[2]
    await as_owner(
        database_url, "DELETE FROM audit_events WHERE tenant_id = %s AND seq = 2", tenant
    )
    result = await verify(owner, tenant)
    assert (result.ok, result.checked, result.broken_id, result.broken_seq) == (
        False,
        1,
        after.id,
        3,
    )
    assert result.reason is not None and result.reason.startswith(audit.SEQ_GAP)


async def test_deleting_the_newest_entry_breaks_verify_at_the_head(
    database_url: str, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    await as_owner(
        database_url, "DELETE FROM audit_events WHERE tenant_id = %s AND seq = 2", tenant
    )
    result = await verify(owner, tenant)
    assert (result.ok, result.checked, result.broken_id, result.broken_seq) == (False, 1, None, 2)
    assert result.reason is not None and result.reason.startswith(audit.HEAD_MISMATCH)


async def test_an_owners_raw_edit_of_a_booking_is_logged_unsigned_and_flagged(
    db: AsyncSession,
    api: httpx.AsyncClient,
    database_url: str,
    owner: AsyncEngine,
    tenant: uuid.UUID,
) -> None:
    ada, svc = await staff(api), await service(api)
    booking = await insert_booking(db, [ada["id"]], svc["id"], NINE, NINE + timedelta(hours=1))
    await as_owner(database_url, "UPDATE bookings SET status = 'cancelled' WHERE id = %s", booking)
    entry = (await log_of(owner, tenant))[-1]
    assert (entry.object_id, entry.changed) == (str(booking), ["status"])
    assert entry.actor.startswith("db:")  # the role: the session named no one
    assert entry.hmac is None and entry.before_digest is None and entry.after_digest is None
    result = await verify(owner, tenant)
    assert (result.broken_id, result.broken_seq) == (entry.id, entry.seq)
    assert result.reason is not None and result.reason.startswith(audit.MISSING_HMAC)


async def test_rewriting_a_bookings_customer_through_the_app_role_verifies_clean(
    app: FastAPI, db: AsyncSession, api: httpx.AsyncClient, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    """An erasure rewrites personal fields: a new entry, while the entries before it,
    holding digests and no values, stand as they were."""
    ada, svc = await staff(api), await service(api)
    booking = await insert_booking(db, [ada["id"]], svc["id"], NINE, NINE + timedelta(hours=1))
    before = await log_of(owner, tenant)
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(Tenancy(tenant, "erasure-test")) as session:
        await session.execute(
            update(Booking)
            .where(Booking.id == booking)
            .values(customer={"name": "Erased", "email": "x@erased.invalid"})
        )
        await session.commit()
    after = await log_of(owner, tenant)
    assert after[: len(before)] == before
    assert [(e.actor, e.changed) for e in after[len(before) :]] == [("erasure-test", ["customer"])]
    assert await verify(owner, tenant) == audit.VerifyResult(True, len(after))


async def test_concurrent_commits_of_one_tenant_chain_without_gaps(
    app: FastAPI, api: httpx.AsyncClient, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    resources = [await staff(api, name=f"Dr {i}") for i in range(8)]
    start = len(await log_of(owner, tenant))
    ctx: AppContext = app.state.ctx

    async def rename(resource_id: str, name: str) -> None:
        async with ctx.sessions(Tenancy(tenant, "concurrent-test")) as session:
            # Each holds its row lock while the others commit: the head is taken last.
            await session.execute(
                update(Resource).where(Resource.id == uuid.UUID(resource_id)).values(name=name)
            )
            await asyncio.sleep(0.01)
            await session.commit()

    await asyncio.gather(*(rename(r["id"], f"Dr {i}'") for i, r in enumerate(resources)))
    entries = await log_of(owner, tenant)
    assert [e.seq for e in entries] == list(range(1, start + len(resources) + 1))
    assert (await verify(owner, tenant)).ok


async def test_a_sync_that_changes_a_connections_status_is_logged(
    db: AsyncSession, api: httpx.AsyncClient, owner: AsyncEngine, tenant: uuid.UUID
) -> None:
    ada = await staff(api)
    connection = await insert_connection(db, ada["id"])
    await db.execute(
        update(CalendarConnection)
        .where(CalendarConnection.id == connection.id)
        .values(status="active", sync_cursor="next", last_synced_at=NINE)
    )
    await db.commit()
    entry = (await log_of(owner, tenant))[-1]
    assert (entry.object_type, entry.changed) == ("calendar_connections", ["status"])
