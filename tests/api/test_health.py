"""`/healthz` and `/readyz` (docs/api.md)."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from settings import Settings
from tests.support.clients import client_for


async def test_healthz_answers_without_dependencies(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_readyz_is_503_while_temporal_is_unreachable(api: httpx.AsyncClient) -> None:
    response = await api.get("/readyz")
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "not_ready" and error["details"]["database"] == "ok"
    assert error["details"]["temporal"].startswith("unavailable")


async def test_readyz_is_200_with_database_and_temporal_up(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> None:
    address = temporal_dev_server.client.service_client.config.target_host
    app: FastAPI = create_app(settings.model_copy(update={"temporal_address": address}))
    async with app.router.lifespan_context(app), client_for(app) as client:
        response = await client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"database": "ok", "temporal": "ok"}}


async def test_metrics_count_requests_by_route_template(api: httpx.AsyncClient) -> None:
    await api.get("/v1/resources/00000000-0000-0000-0000-000000000000")
    body = (await api.get("/metrics")).text
    assert 'route="/v1/resources/{resource_id}"' in body and 'status="404"' in body
