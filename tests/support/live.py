"""A live stack for end-to-end tests: the API wired to the Temporal dev server, with a
worker serving its task queue, and the dispatcher (dispatch.py), in this process."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from activities import Outbound
from activities.calendar_access import CalendarAccess
from activities.payments import PaymentProvider
from api.app import create_app
from api.context import AppContext
from settings import Settings
from tests.support.polling import until_serving
from worker import create_delivery_worker, create_worker, dispatching


@asynccontextmanager
async def live_app(
    settings: Settings,
    server: WorkflowEnvironment,
    task_queue: str,
    *,
    with_worker: bool = True,
    cards: PaymentProvider | None = None,
    outbound: Outbound | None = None,
) -> AsyncIterator[FastAPI]:
    """`outbound`: where messages go (default as `settings` say, as in the worker)."""
    address = server.client.service_client.config.target_host
    app = create_app(
        settings.model_copy(update={"temporal_address": address, "temporal_task_queue": task_queue})
    )
    async with app.router.lifespan_context(app):
        if not with_worker:
            yield app
            return
        ctx: AppContext = app.state.ctx
        client = await ctx.temporal()
        sandboxed = settings.workflow_sandbox
        # As the production worker runs (the timer tests and the replay test run sandboxed).
        with ThreadPoolExecutor(8) as pool, ThreadPoolExecutor(4) as delivery_pool:
            async with (
                create_worker(
                    client, ctx.engine, task_queue, pool, cards=cards, sandboxed=sandboxed
                ),
                create_delivery_worker(
                    client,
                    ctx.engine,
                    task_queue,
                    delivery_pool,
                    outbound or Outbound.from_settings(settings),
                    CalendarAccess(settings),
                    sandboxed=sandboxed,
                ),
                dispatching(client, ctx.engine, settings.app_database_url, task_queue),
            ):
                yield app


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """`app` over real HTTP on a free loopback port, for clients outside the process's
    ASGI transport (the load test, a provider's webhook); yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="error")
    )
    serving = asyncio.create_task(server.serve())
    await until_serving(server)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def worker_env(settings: Settings, temporal_address: str, task_queue: str) -> dict[str, str]:
    """What `python -m worker` needs to serve `task_queue` as the suite's own workers do:
    the database (as the application role), the audit key, Temporal, and the payloads' key."""
    return {
        **os.environ,
        "DATABASE_URL": settings.async_database_url,
        "APP_DATABASE_PASSWORD": settings.app_database_password.get_secret_value(),
        "AUDIT_KEY": settings.audit_key.get_secret_value(),
        "TEMPORAL_ADDRESS": temporal_address,
        "TEMPORAL_TASK_QUEUE": task_queue,
        "ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),
    }
