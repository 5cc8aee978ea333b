"""`holdfast tenants create` and `holdfast keys create|revoke` (cli/tenants.py): the
operator's routes, from a terminal; the keys they print work, and a revoked one stops."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI

from settings import Settings
from tests.support.cli import holdfast
from tests.support.clients import client_for


async def test_a_tenant_made_from_the_terminal_has_a_working_key(
    tmp_path: Path, settings: Settings, app: FastAPI
) -> None:
    code, out, err = await holdfast(tmp_path, settings, "tenants", "create", "Terminal clinic")
    assert code == 0, err
    made = json.loads(out)
    assert made["name"] == "Terminal clinic" and made["api_key"].startswith("hf_sk_")
    async with client_for(app, made["api_key"]) as client:
        own = await client.get(f"/v1/tenants/{made['id']}")
    assert own.status_code == 200 and own.json()["name"] == "Terminal clinic"


async def test_a_publishable_key_is_issued_with_its_origins_and_revoked(
    tmp_path: Path, settings: Settings, app: FastAPI
) -> None:
    _, out, _ = await holdfast(tmp_path, settings, "tenants", "create", "Keys clinic")
    tenant = json.loads(out)["id"]
    code, out, err = await holdfast(
        tmp_path,
        settings,
        "keys",
        "create",
        "--tenant",
        tenant,
        "--name",
        "page",
        "--kind",
        "publishable",
        "--origin",
        "https://book.example.com",
    )
    assert code == 0, err
    key = json.loads(out)
    assert key["api_key"].startswith("hf_pk_") and key["kind"] == "publishable"
    async with client_for(app, key["api_key"]) as browser:
        browser.headers["Origin"] = "https://evil.example"
        assert (await browser.post("/v1/availability/query", json={})).status_code == 403
        code, _, err = await holdfast(tmp_path, settings, "keys", "revoke", key["id"])
        assert code == 0, err
        assert (await browser.post("/v1/availability/query", json={})).status_code == 401


async def test_origins_on_a_secret_key_cannot_run(tmp_path: Path, settings: Settings) -> None:
    code, out, err = await holdfast(
        tmp_path,
        settings,
        "keys",
        "create",
        "--tenant",
        "01a2326f-8237-7278-8df8-fa9d1a02bbb1",
        "--name",
        "x",
        "--origin",
        "https://a.example",
    )
    assert (code, out) == (2, "") and "publishable" in err


async def test_revoking_an_unknown_key_cannot_run(tmp_path: Path, settings: Settings) -> None:
    code, _, err = await holdfast(
        tmp_path, settings, "keys", "revoke", "01a2326f-8237-7278-8df8-fa9d1a02bbb1"
    )
    assert code == 2 and "no live key" in err


async def test_without_the_app_roles_password_it_cannot_run(
    tmp_path: Path, settings: Settings
) -> None:
    code, _, err = await holdfast(
        tmp_path, settings, "tenants", "create", "x", APP_DATABASE_PASSWORD=""
    )
    assert code == 2 and "APP_DATABASE_PASSWORD" in err
