"""Security headers on every answer, and the docs and metrics a deployment may close
(docs/security.md#headers)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from settings import Settings
from tests.support.api import assert_error
from tests.support.clients import ADMIN_KEY, client_for


def _guarded(answer: httpx.Response) -> None:
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]


async def test_a_json_answer_is_guarded_and_never_cached(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/resources")
    _guarded(answer)
    assert answer.headers["content-security-policy"].startswith("default-src 'none'")
    assert answer.headers["cache-control"] == "no-store"


async def test_an_answer_that_carries_a_secret_is_never_cached(
    operator: httpx.AsyncClient,
) -> None:
    made = await operator.post("/v1/tenants", json={"name": "Headers clinic"})
    assert made.status_code == 201 and "api_key" in made.json()
    assert made.headers["cache-control"] == "no-store"


async def test_an_error_is_guarded_too(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/resources/0190a2f4-6a2b-7c3d-8e4f-5a6b7c8d9e0f")
    assert answer.status_code == 404
    _guarded(answer)


async def test_the_docs_page_may_run_its_scripts_but_not_be_framed(
    api: httpx.AsyncClient,
) -> None:
    answer = await api.get("/docs")
    assert answer.status_code == 200
    _guarded(answer)
    assert answer.headers["content-security-policy"] == "frame-ancestors 'none'"


async def test_over_https_browsers_are_told_to_stay_on_https(app: FastAPI) -> None:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://holdfast"
    ) as client:
        answer = await client.get("/healthz")
    assert answer.headers["strict-transport-security"].startswith("max-age=")


async def test_over_http_there_is_no_hsts(api: httpx.AsyncClient) -> None:
    assert "strict-transport-security" not in (await api.get("/healthz")).headers


@pytest.fixture(scope="module")
async def closed(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(
        settings.model_copy(update={"public_docs": False, "public_metrics": False})
    )
    async with application.router.lifespan_context(application):
        yield application


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
async def test_closed_docs_are_not_served(closed: FastAPI, path: str) -> None:
    async with client_for(closed, ADMIN_KEY) as client:
        assert (await client.get(path)).status_code == 404


async def test_closed_metrics_answer_only_the_operator(closed: FastAPI) -> None:
    async with client_for(closed) as anonymous:
        assert_error(await anonymous.get("/metrics"), 401, "unauthorized")
    async with client_for(closed, ADMIN_KEY) as operator:
        answer = await operator.get("/metrics")
    assert answer.status_code == 200 and "holdfast_" in answer.text
