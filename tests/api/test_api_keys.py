"""A tenant's API keys (docs/security.md#api-keys): issued with a secret key, shown once,
listed by prefix and last use, revoked at once in every API process."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from settings import Settings
from tests.support.api import assert_error
from tests.support.clients import client_for


async def _issue(api: httpx.AsyncClient, **body: object) -> dict[str, object]:
    response = await api.post("/v1/api-keys", json={"kind": "secret", "name": "server", **body})
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


async def test_a_secret_key_is_issued_once_and_works(app: FastAPI, api: httpx.AsyncClient) -> None:
    created = await _issue(api)
    key = str(created["api_key"])
    assert key.startswith("hf_sk_") and created["kind"] == "secret"
    assert key.startswith(str(created["prefix"])) and len(str(created["prefix"])) < 16
    async with client_for(app, key) as client:
        assert (await client.get("/v1/resources")).status_code == 200


async def test_a_publishable_key_starts_hf_pk_and_keeps_its_origins(
    api: httpx.AsyncClient,
) -> None:
    created = await _issue(
        api,
        kind="publishable",
        allowed_origins=["https://Book.Example.com/", "https://book.example.com"],
    )
    assert str(created["api_key"]).startswith("hf_pk_")
    assert created["allowed_origins"] == ["https://book.example.com"]


async def test_the_list_shows_prefixes_and_last_use_never_the_key(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    created = await _issue(api, name="unused yet")
    listed = (await api.get("/v1/api-keys")).json()["items"]
    mine = next(k for k in listed if k["id"] == created["id"])
    assert "api_key" not in mine and mine["last_used_at"] is None
    assert all(str(created["api_key"]) not in str(k) for k in listed)
    async with client_for(app, str(created["api_key"])) as client:
        await client.get("/v1/resources")
    mine = next(
        k for k in (await api.get("/v1/api-keys")).json()["items"] if k["id"] == created["id"]
    )
    assert mine["last_used_at"] is not None


async def test_another_tenants_keys_are_not_listed_or_revocable(
    api: httpx.AsyncClient, operator: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await _issue(api)
    other = await operator.post("/v1/tenants", json={"name": "Other"})
    async with client_for(app, other.json()["api_key"]) as stranger:
        assert created["id"] not in {
            k["id"] for k in (await stranger.get("/v1/api-keys")).json()["items"]
        }
        assert_error(await stranger.delete(f"/v1/api-keys/{created['id']}"), 404, "not_found")


async def test_origins_are_for_publishable_keys_only(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/api-keys",
        json={"kind": "secret", "name": "x", "allowed_origins": ["https://a.example"]},
    )
    assert_error(response, 422, "invalid_request")


@pytest.mark.parametrize(
    "origin",
    ["book.example.com", "https://a.example/path", "ftp://a.example", "https://u@a.example"],
)
async def test_an_origin_is_scheme_host_and_port_only(api: httpx.AsyncClient, origin: str) -> None:
    response = await api.post(
        "/v1/api-keys", json={"kind": "publishable", "name": "x", "allowed_origins": [origin]}
    )
    assert_error(response, 422, "validation_error")


async def test_an_unknown_kind_is_refused(api: httpx.AsyncClient) -> None:
    assert_error(
        await api.post("/v1/api-keys", json={"kind": "root", "name": "x"}), 422, "validation_error"
    )


async def test_a_publishable_key_cannot_manage_keys(app: FastAPI, api: httpx.AsyncClient) -> None:
    created = await _issue(api, kind="publishable")
    async with client_for(app, str(created["api_key"])) as browser:
        assert_error(await browser.get("/v1/api-keys"), 403, "forbidden")
        assert_error(
            await browser.post("/v1/api-keys", json={"kind": "secret", "name": "x"}),
            403,
            "forbidden",
        )


@pytest.fixture
async def processes(settings: Settings) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two API processes' apps on one database."""
    first, second = create_app(settings), create_app(settings)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        yield first, second


async def test_revoking_a_key_refuses_its_next_request_in_every_api_process(
    processes: tuple[FastAPI, FastAPI], api: httpx.AsyncClient
) -> None:
    created = await _issue(api)
    key = str(created["api_key"])
    first, second = processes
    async with client_for(first, key) as a, client_for(second, key) as b:
        assert (await a.get("/v1/resources")).status_code == 200
        assert (await b.get("/v1/resources")).status_code == 200
        assert (await api.delete(f"/v1/api-keys/{created['id']}")).status_code == 204
        assert_error(await a.get("/v1/resources"), 401, "unauthorized")
        assert_error(await b.get("/v1/resources"), 401, "unauthorized")
    assert created["id"] not in {k["id"] for k in (await api.get("/v1/api-keys")).json()["items"]}
    assert_error(await api.delete(f"/v1/api-keys/{created['id']}"), 404, "not_found")
