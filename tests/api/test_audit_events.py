"""The audit log over HTTP (api/routes/audit_events.py, docs/security.md#audit-log): a
tenant's secret key reads its own entries, a page at a time or as NDJSON, and nobody
else's."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.support.api import assert_error, staff
from tests.support.clients import fresh_tenant, tenant_of


async def entries(client: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await client.get("/v1/audit-events", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    assert response.json()["next_cursor"] is None
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def key_id(client: httpx.AsyncClient) -> str:
    (key,) = (await client.get("/v1/api-keys")).json()["items"]
    return str(key["id"])


async def test_creating_and_patching_a_resource_lists_entries_by_its_key_with_the_changed_columns(
    api: httpx.AsyncClient,
) -> None:
    ada = await staff(api)
    patched = await api.patch(f"/v1/resources/{ada['id']}", json={"name": "Dr Ada L."})
    assert patched.status_code == 200
    created, renamed = await entries(api, object_type="resources", object_id=ada["id"])
    actor = f"key:{await key_id(api)}"
    assert (created["action"], created["actor"]) == ("insert", actor)
    assert {"name", "kind", "tags", "timezone", "weekly_hours"} <= set(created["changed"])
    assert "updated_at" not in created["changed"]  # bookkeeping is not logged
    assert (renamed["action"], renamed["actor"], renamed["changed"]) == ("update", actor, ["name"])
    assert renamed["prev_hash"] == created["hash"] and renamed["seq"] == created["seq"] + 1


async def test_an_entry_shows_every_column_and_no_values(api: httpx.AsyncClient) -> None:
    await staff(api, name="Dr Unmistakable")
    entry = (await entries(api))[-1]
    assert set(entry) == {
        "id",
        "tenant_id",
        "seq",
        "at",
        "actor",
        "action",
        "object_type",
        "object_id",
        "changed",
        "before_digest",
        "after_digest",
        "prev_hash",
        "hash",
        "hmac",
    }
    assert entry["tenant_id"] == tenant_of(api) and entry["hmac"]
    assert "Unmistakable" not in json.dumps(entry)


async def test_the_list_pages_oldest_first_with_a_cursor(api: httpx.AsyncClient) -> None:
    for i in range(3):
        await staff(api, name=f"Dr {i}")
    seen: list[int] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (await api.get("/v1/audit-events", params=params)).json()
        seen += [e["seq"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [1, 2, 3, 4, 5]


async def test_the_list_filters_by_object_type(api: httpx.AsyncClient) -> None:
    await staff(api)
    assert [e["object_type"] for e in await entries(api, object_type="api_keys")] == ["api_keys"]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"cursor": "not-a-cursor"}, "invalid_cursor"),
        ({"cursor": "WyJ4Il0"}, "invalid_cursor"),  # ["x"]: not a seq
        ({"object_type": "allocations"}, "validation_error"),  # not audited
    ],
)
async def test_a_malformed_query_is_refused(
    api: httpx.AsyncClient, params: dict[str, str], code: str
) -> None:
    response = await api.get("/v1/audit-events", params=params)
    assert_error(response, 400 if code == "invalid_cursor" else 422, code)


async def test_another_tenants_key_never_sees_a_tenants_entries(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    ada = await staff(api)
    async with fresh_tenant(app) as other:
        theirs = await entries(other)
        assert {e["tenant_id"] for e in theirs} == {tenant_of(other)}
        assert await entries(other, object_type="resources", object_id=ada["id"]) == []
        export = await other.get("/v1/audit-events/export")
        assert [json.loads(line) for line in export.text.splitlines()] == theirs


async def test_the_export_is_ndjson_matching_the_list(api: httpx.AsyncClient) -> None:
    ada = await staff(api)
    await api.patch(f"/v1/resources/{ada['id']}", json={"active": False})
    response = await api.get("/v1/audit-events/export")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.text.endswith("\n")
    assert [json.loads(line) for line in response.text.splitlines()] == await entries(api)


async def test_the_export_filters_and_resumes_after_a_seq(api: httpx.AsyncClient) -> None:
    ada = await staff(api)
    await api.patch(f"/v1/resources/{ada['id']}", json={"active": False})
    response = await api.get(
        "/v1/audit-events/export",
        params={"object_type": "resources", "object_id": ada["id"], "after_seq": 3},
    )
    (line,) = response.text.splitlines()
    assert (json.loads(line)["seq"], json.loads(line)["changed"]) == (4, ["active"])


async def test_a_publishable_key_may_not_read_the_audit_log(api: httpx.AsyncClient) -> None:
    made = await api.post("/v1/api-keys", json={"kind": "publishable", "name": "site"})
    publishable = {"Authorization": f"Bearer {made.json()['api_key']}"}
    for path in ("/v1/audit-events", "/v1/audit-events/export"):
        assert_error(await api.get(path, headers=publishable), 403, "forbidden")


async def test_the_operator_key_reads_no_tenants_audit_log(operator: httpx.AsyncClient) -> None:
    assert_error(await operator.get("/v1/audit-events"), 401, "unauthorized")
