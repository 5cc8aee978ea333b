"""Two API processes and two worker processes against one PostgreSQL and one Temporal
(docs/operations.md#two-of-each): 500 racers spread over both APIs for one slot book it
exactly once, and a worker killed mid-load loses nothing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from db.sessions import Sessions
from invariants import Report, check
from loadtest import Plan, Target, run, until_quiet
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import first_slots
from tests.support.clients import ADMIN_KEY, client_for, new_tenant_client
from tests.support.db import EVERY_TENANT
from tests.support.live import live_app, served, worker_env
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
TASK_QUEUE = "two-of-each"
RACERS = 500


@pytest.fixture(scope="module")
def roomy(settings: Settings) -> Settings:
    """Limits that 500 racers on one key do not meet: the race is the database's."""
    return settings.model_copy(update={"rate_limit_per_minute": 100_000})


@pytest.fixture(scope="module")
async def apis(
    roomy: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[tuple[FastAPI, list[str]]]:
    """Two API processes' apps, each served over HTTP, with no worker of their own."""
    async with AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(
                live_app(roomy, temporal_dev_server, TASK_QUEUE, with_worker=False)
            )
            for _ in range(2)
        ]
        urls = [await stack.enter_async_context(served(app)) for app in apps]
        yield apps[0], urls


def _worker(settings: Settings, server: WorkflowEnvironment) -> subprocess.Popen[bytes]:
    env = worker_env(settings, server.client.service_client.config.target_host, TASK_QUEUE)
    quiet = subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "worker"], env=env, stdout=quiet, stderr=quiet)


async def _pollers(server: WorkflowEnvironment) -> int:
    """How many workers poll the booking queue for workflow tasks now."""
    request = DescribeTaskQueueRequest(
        namespace=server.client.namespace,
        task_queue=TaskQueue(name=TASK_QUEUE, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    answer = await server.client.workflow_service.describe_task_queue(request)
    return len(answer.pollers)


@pytest.fixture(scope="module")
async def workers(
    roomy: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    """Two `python -m worker` processes on the queue, both polling before any test."""
    both = [_worker(roomy, temporal_dev_server) for _ in range(2)]
    await eventually(lambda: _pollers(temporal_dev_server), lambda n: n >= 2, seconds=60)
    yield both
    for worker in both:
        if worker.poll() is None:
            worker.send_signal(signal.SIGKILL)
        worker.wait()


async def _verdict(app: FastAPI, tenant: str) -> Report:
    ctx: AppContext = app.state.ctx
    sessions, temporal = Sessions.on(ctx.engine, EVERY_TENANT), await ctx.temporal()

    async def once() -> Report:
        return await check(sessions, temporal, tenant_id=uuid.UUID(tenant), settle=timedelta(0))

    report: Report = await until_quiet(once, seconds=90)
    return report


async def test_500_racers_over_two_apis_book_one_slot_once(
    apis: tuple[FastAPI, list[str]], workers: list[subprocess.Popen[bytes]]
) -> None:
    app, urls = apis
    async with (
        client_for(app, ADMIN_KEY) as operator,
        await new_tenant_client(app, operator) as shop,
    ):
        await open_all_day(shop)
        await service(shop, code="free")
        token = (await first_slots(shop, "free"))[0]["allocation_token"]
        key = shop.headers["Authorization"]
        tenant = shop.headers["X-Test-Tenant-Id"]
    gate = asyncio.Semaphore(16)  # within PostgreSQL's connections, shared with the suite

    async def racer(n: int, client: httpx.AsyncClient) -> int:
        """One customer's booking, repeated with its key while the API answers 503 (busy:
        the outcome is not known yet), as that answer tells a client to: each ends with a
        decided answer, 201 or 409."""
        body = {
            "allocation_token": token,
            "customer": {"name": f"Racer {n}", "email": f"racer{n}@example.test"},
        }
        headers = {"Idempotency-Key": str(uuid.uuid4())}
        async with gate:
            answer = await client.post("/v1/bookings", json=body, headers=headers)
        while answer.status_code == 503:
            await asyncio.sleep(1)
            answer = await client.post("/v1/bookings", json=body, headers=headers)
        return answer.status_code

    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, headers={"Authorization": key}, timeout=120)
            )
            for url in urls
        ]
        codes = await asyncio.wait_for(
            asyncio.gather(*(racer(n, clients[n % 2]) for n in range(RACERS))), timeout=300
        )
    assert codes.count(201) == 1, sorted(set(codes))
    assert codes.count(409) == RACERS - 1, sorted(set(codes))
    assert (await _verdict(app, tenant)).ok


async def test_a_worker_killed_mid_load_loses_nothing(
    apis: tuple[FastAPI, list[str]], workers: list[subprocess.Popen[bytes]]
) -> None:
    app, urls = apis

    async def kill_one() -> None:
        await asyncio.sleep(3)
        workers[0].send_signal(signal.SIGKILL)

    plans = [Plan(clients=2, seconds=8, seed=n) for n in range(2)]
    loads = [run(Target(url, ADMIN_KEY), plan) for url, plan in zip(urls, plans, strict=True)]
    killer = asyncio.create_task(kill_one())  # three seconds into the eight
    results = await asyncio.gather(*loads)
    await killer
    assert workers[0].wait() == -signal.SIGKILL and workers[1].poll() is None
    for result in results:
        figures = result.stats.lines(result.elapsed)
        assert result.stats.bookings > 5 and result.stats.server_errors == 0, figures
        report = await _verdict(app, result.tenant_id)
        assert report.ok, report.lines()
        assert report.checked_bookings == result.stats.bookings
