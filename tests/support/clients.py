"""HTTP clients for the API in-process: the operator, and one tenant per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

ADMIN_KEY = "test-operator-key"


def client_for(app: FastAPI, key: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://holdfast", headers=headers
    )


async def new_tenant_client(
    app: FastAPI, operator: httpx.AsyncClient, name: str = "Test clinic", **fields: str
) -> httpx.AsyncClient:
    response = await operator.post("/v1/tenants", json={"name": name, **fields})
    assert response.status_code == 201, response.text
    client = client_for(app, response.json()["api_key"])
    client.headers["X-Test-Tenant-Id"] = response.json()["id"]  # read by tests, not the API
    return client


@asynccontextmanager
async def fresh_tenant(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a tenant made for the caller alone, on `app`."""
    async with (
        client_for(app, ADMIN_KEY) as operator,
        await new_tenant_client(app, operator) as client,
    ):
        yield client


def tenant_of(client: httpx.AsyncClient) -> str:
    return client.headers["X-Test-Tenant-Id"]
