"""`/healthz` and `/metrics` (docs/api.md); `/readyz`, which names what is missing, is
tested with the outages it reports (tests/api/test_outages.py)."""

from __future__ import annotations

import uuid
from datetime import timedelta

import httpx
from fastapi import FastAPI
from sqlalchemy import func

from api.app import create_app
from api.context import AppContext
from db.models import Notification
from settings import Settings
from tests.support.clients import client_for, tenant_of
from tests.support.db import EVERY_TENANT


async def test_healthz_answers_without_dependencies(api: httpx.AsyncClient) -> None:
    response = await api.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_healthz_answers_with_the_database_and_temporal_down(settings: Settings) -> None:
    """Liveness only: restarting the API cures no outage elsewhere. What is missing is
    /readyz's to say (tests/api/test_outages.py)."""
    down = {"database_url": "postgresql://u:p@127.0.0.1:1/none", "temporal_address": "127.0.0.1:1"}
    app: FastAPI = create_app(settings.model_copy(update=down))
    async with app.router.lifespan_context(app), client_for(app) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


async def test_metrics_count_requests_by_route_template(api: httpx.AsyncClient) -> None:
    await api.get("/v1/resources/00000000-0000-0000-0000-000000000000")
    body = (await api.get("/metrics")).text
    assert 'route="/v1/resources/{resource_id}"' in body and 'status="404"' in body


async def test_metrics_show_a_message_stuck_in_the_queue(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        db.add(
            Notification(
                id=uuid.uuid4(),
                tenant_id=uuid.UUID(tenant_of(api)),
                channel="sms",
                kind="reminder",
                recipient="+4915123456789",
                payload={},
                created_at=func.now() - timedelta(minutes=11),
                dispatched_at=func.now(),
            )
        )
        await db.commit()
    body = (await api.get("/metrics")).text
    [line] = [
        x for x in body.splitlines() if x.startswith('holdfast_notifications_stuck{channel="sms"}')
    ]
    assert float(line.split()[-1]) >= 1
