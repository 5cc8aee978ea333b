"""Durability: a worker process killed mid-saga, and a new one started, finishes the
booking (docs/lifecycle.md). The worker is a real `python -m worker` process, killed with
SIGKILL."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.clients import ADMIN_KEY, client_for, new_tenant_client
from tests.support.live import live_app, worker_env

TASK_QUEUE = "restart"


@pytest.fixture(scope="module")
async def api_only(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, TASK_QUEUE, with_worker=False) as app:
        yield app


def start_worker(settings: Settings, server: WorkflowEnvironment) -> subprocess.Popen[bytes]:
    env = worker_env(settings, server.client.service_client.config.target_host, TASK_QUEUE)
    return subprocess.Popen(
        [sys.executable, "-m", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_killed_worker_is_replaced_and_the_booking_completes(
    api_only: FastAPI,
    settings: Settings,
    temporal_dev_server: WorkflowEnvironment,
) -> None:
    first = start_worker(settings, temporal_dev_server)
    try:
        async with (
            client_for(api_only, ADMIN_KEY) as operator,
            await new_tenant_client(api_only, operator) as client,
        ):
            await open_all_day(client)
            await service(client, code="paid", price={"amount": 2500, "currency": "EUR"})
            start = (datetime.now(UTC) + timedelta(days=3)).replace(
                minute=0, second=0, microsecond=0
            )
            held = await client.post(
                "/v1/bookings",
                headers={"Idempotency-Key": str(uuid.uuid4())},
                json={
                    "service": "paid",
                    "start": start.isoformat(),
                    "customer": {"name": "Ada", "email": "a@example.test"},
                },
                timeout=60,
            )
            assert held.status_code == 201, held.text
            booking = held.json()
            assert booking["status"] == "pending_payment"

            first.send_signal(signal.SIGKILL)  # mid-saga: the booking waits for payment
            first.wait()
            paying = asyncio.create_task(
                client.post(f"/v1/bookings/{booking['id']}/mark-paid", timeout=120)
            )
            await asyncio.sleep(1)
            assert not paying.done()  # no worker: the update waits, durably
            second = start_worker(settings, temporal_dev_server)
            try:
                paid = await paying
            finally:
                second.terminate()
                second.wait()
            assert paid.status_code == 200, paid.text
            assert paid.json()["status"] == "confirmed"
            assert (await client.get(f"/v1/bookings/{booking['id']}")).json()[
                "status"
            ] == "confirmed"
    finally:
        if first.poll() is None:
            first.kill()
