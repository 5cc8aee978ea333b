"""Row-level security (docs/security.md#row-level-security): raw SQL as the application
role sees no tenant's rows until a transaction names its tenant, then only that tenant's;
it cannot write another tenant's rows, read the rate-limit buckets, or escape the policy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from psycopg import sql

from connections import libpq_url
from settings import APP_ROLE, Settings
from tests.support.api import staff
from tests.support.clients import new_tenant_client, tenant_of


@pytest.fixture
async def app_role(
    settings: Settings,
) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    """A plain connection as the application role, as the API and the worker connect."""
    async with await psycopg.AsyncConnection.connect(libpq_url(settings.app_database_url)) as conn:
        yield conn


@pytest.fixture
async def owner(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[tuple[object, ...]]]:
    async with await psycopg.AsyncConnection.connect(libpq_url(database_url)) as conn:
        yield conn


async def _tenant_tables(owner: psycopg.AsyncConnection[tuple[object, ...]]) -> list[str]:
    """Every table with row-level security on, as the migrations left them."""
    rows = await (
        await owner.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND relrowsecurity"
            " AND relnamespace = current_schema()::regnamespace ORDER BY relname"
        )
    ).fetchall()
    return [str(r[0]) for r in rows]


async def _count(conn: psycopg.AsyncConnection[tuple[object, ...]], table: str) -> int:
    row = await (
        await conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table)))
    ).fetchone()
    assert row is not None
    return int(str(row[0]))


async def _set_tenant(conn: psycopg.AsyncConnection[tuple[object, ...]], tenant: str) -> None:
    await conn.execute("SELECT set_config('holdfast.tenant_id', %s, true)", (tenant,))


async def _populate(api: httpx.AsyncClient) -> None:
    location = await api.post("/v1/locations", json={"name": "Mitte", "timezone": "Europe/Berlin"})
    assert location.status_code == 201, location.text
    await staff(api, name="Room 1")


async def test_every_table_with_tenant_data_has_row_level_security(
    owner: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    rows = await (
        await owner.execute(
            "SELECT table_name FROM information_schema.columns WHERE column_name = 'tenant_id'"
            " AND table_schema = current_schema()"
        )
    ).fetchall()
    assert {str(r[0]) for r in rows} <= set(await _tenant_tables(owner))


async def test_without_a_tenant_set_the_app_role_sees_no_rows_of_any_tenant_table(
    api: httpx.AsyncClient,
    owner: psycopg.AsyncConnection[tuple[object, ...]],
    app_role: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    await _populate(api)
    tables = await _tenant_tables(owner)
    assert {"tenants", "api_keys", "resources", "bookings"} <= set(tables)
    for table in tables:
        if table == "audit_heads":
            continue  # not the application role's to read at all
        assert await _count(owner, table) >= 0
        assert await _count(app_role, table) == 0, table


async def test_with_tenant_b_set_the_app_role_sees_only_b_rows(
    app: FastAPI,
    api: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    app_role: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    await _populate(api)
    async with await new_tenant_client(app, operator, "Tenant B") as other:
        await _populate(other)
        b = tenant_of(other)
    async with app_role.transaction():
        await _set_tenant(app_role, b)
        for table in ("tenants", "locations", "resources", "api_keys"):
            rows = await (
                await app_role.execute(
                    sql.SQL("SELECT {} FROM {}").format(
                        sql.Identifier("id" if table == "tenants" else "tenant_id"),
                        sql.Identifier(table),
                    )
                )
            ).fetchall()
            assert rows and {str(r[0]) for r in rows} == {b}, table


async def test_a_tenant_cannot_write_a_row_for_another_tenant(
    api: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    app: FastAPI,
    app_role: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    async with await new_tenant_client(app, operator, "Tenant B") as other:
        b = tenant_of(other)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        async with app_role.transaction():
            await _set_tenant(app_role, tenant_of(api))
            await app_role.execute(
                "INSERT INTO locations (id, tenant_id, name, timezone)"
                " VALUES (gen_random_uuid(), %s, 'x', 'UTC')",
                (b,),
            )


async def test_another_tenants_rows_cannot_be_changed_or_deleted(
    api: httpx.AsyncClient,
    operator: httpx.AsyncClient,
    app: FastAPI,
    owner: psycopg.AsyncConnection[tuple[object, ...]],
    app_role: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    await _populate(api)
    async with await new_tenant_client(app, operator, "Tenant B") as other:
        b = tenant_of(other)
    async with app_role.transaction():
        await _set_tenant(app_role, b)
        changed = await app_role.execute("UPDATE resources SET name = 'taken over'")
        deleted = await app_role.execute("DELETE FROM locations")
    assert changed.rowcount == 0 and deleted.rowcount == 0
    row = await (
        await owner.execute(
            "SELECT count(*) FROM resources WHERE tenant_id = %s AND name = 'Room 1'",
            (tenant_of(api),),
        )
    ).fetchone()
    assert row is not None and row[0] == 1


async def test_the_app_role_owns_nothing_and_cannot_bypass_row_level_security(
    owner: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    role = await (
        await owner.execute(
            "SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles"
            " WHERE rolname = %s",
            (APP_ROLE,),
        )
    ).fetchone()
    assert role == (False, False, False, False)
    owned = await (
        await owner.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner"
            " WHERE r.rolname = %s",
            (APP_ROLE,),
        )
    ).fetchone()
    assert owned == (0,)


async def test_the_app_role_cannot_change_the_schema_or_turn_security_off(
    app_role: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    for statement in (
        "ALTER TABLE bookings DISABLE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON bookings",
        "CREATE TABLE stolen (id int)",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            async with app_role.transaction():
                await app_role.execute(statement)


async def test_the_app_role_cannot_read_the_rate_limit_buckets(
    app_role: psycopg.AsyncConnection[tuple[object, ...]],
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        await app_role.execute("SELECT * FROM rate_limits")
