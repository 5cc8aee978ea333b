"""`holdfast audit verify` (cli/audit.py, docs/security.md#audit-log), run as an operator runs
it: the installed command, in a process of its own, configured by its environment alone."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import psycopg
import pytest

from connections import libpq_url
from settings import Settings
from tests.support.api import staff
from tests.support.cli import holdfast
from tests.support.clients import tenant_of


async def as_owner(database_url: str, sql: str, *params: object) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(
        libpq_url(database_url), autocommit=True
    ) as conn:
        cur = await conn.execute(sql, params)
        return await cur.fetchall() if cur.description else []


@pytest.fixture
async def tenant(api: httpx.AsyncClient) -> str:
    await staff(api)  # three entries: the tenant, its key, the resource
    return tenant_of(api)


async def test_verify_reports_a_sound_log_and_exits_0(
    tmp_path: Path, settings: Settings, tenant: str
) -> None:
    code, out, _ = await holdfast(tmp_path, settings, "audit", "verify", "--tenant", tenant)
    assert (code, out) == (0, "ok: 3 entries\n")


async def test_verify_names_an_entry_the_owner_edited_and_exits_1(
    tmp_path: Path, settings: Settings, database_url: str, tenant: str
) -> None:
    ((edited,),) = await as_owner(
        database_url,
        "UPDATE audit_events SET changed = '{name}' WHERE tenant_id = %s AND seq = 3 RETURNING id",
        uuid.UUID(tenant),
    )
    code, out, _ = await holdfast(tmp_path, settings, "audit", "verify", "--tenant", tenant)
    assert code == 1
    assert out.startswith(f"broken at entry {edited} (seq 3): hash mismatch")


async def test_verify_names_the_entry_after_one_the_owner_deleted(
    tmp_path: Path, settings: Settings, database_url: str, tenant: str
) -> None:
    ((after,),) = await as_owner(
        database_url, "SELECT id FROM audit_events WHERE tenant_id = %s AND seq = 3", tenant
    )
    await as_owner(
        database_url, "DELETE FROM audit_events WHERE tenant_id = %s AND seq = 2", tenant
    )
    code, out, _ = await holdfast(tmp_path, settings, "audit", "verify", "--tenant", tenant)
    assert code == 1
    assert out.startswith(f"broken at entry {after} (seq 3): seq gap")


async def test_verify_names_the_head_when_the_newest_entry_is_deleted(
    tmp_path: Path, settings: Settings, database_url: str, tenant: str
) -> None:
    await as_owner(
        database_url, "DELETE FROM audit_events WHERE tenant_id = %s AND seq = 3", tenant
    )
    code, out, _ = await holdfast(tmp_path, settings, "audit", "verify", "--tenant", tenant)
    assert code == 1
    assert out.startswith("broken at the head (seq 3): head mismatch")


async def test_verify_with_another_key_finds_the_first_entry_badly_signed(
    tmp_path: Path, settings: Settings, tenant: str
) -> None:
    code, out, _ = await holdfast(
        tmp_path, settings, "audit", "verify", "--tenant", tenant, AUDIT_KEY="another key"
    )
    assert code == 1
    assert "(seq 1): bad hmac" in out


async def test_verify_without_an_audit_key_exits_2(
    tmp_path: Path, settings: Settings, tenant: str
) -> None:
    code, out, err = await holdfast(
        tmp_path, settings, "audit", "verify", "--tenant", tenant, AUDIT_KEY=""
    )
    assert (code, out) == (2, "")
    assert "AUDIT_KEY" in err


@pytest.mark.parametrize(
    "args", [(), ("audit",), ("audit", "verify"), ("audit", "verify", "--tenant", "nobody")]
)
async def test_verify_with_bad_usage_exits_2(
    tmp_path: Path, settings: Settings, args: tuple[str, ...]
) -> None:
    code, out, err = await holdfast(tmp_path, settings, *args)
    assert code == 2
    assert "usage: holdfast" in (out + err).lower()
