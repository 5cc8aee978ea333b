"""A bug in workflow code is not a failure of the booking (docs/lifecycle.md#compensation):
it fails the workflow task, which Temporal retries, and a fixed worker carries the
booking on. The customer is neither refunded nor released meanwhile.

On the dev server: the bug is injected into the running worker's workflow class (it runs
unsandboxed, as in production), then the worker is replaced by one without it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.api.enums.v1 import EventType
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from contract import BookingStatus
from settings import Settings
from tests.support.api import assert_error, open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import ADMIN_KEY, client_for, new_tenant_client
from tests.support.db import every_tenant
from tests.support.live import live_app
from tests.support.polling import eventually
from tests.support.saga import allocation_statuses, booking_row, webhook_types
from worker import create_worker
from workflows.booking import BookingWorkflow

QUEUE = "code-bugs"


@asynccontextmanager
async def worker(app: FastAPI) -> AsyncIterator[None]:
    ctx: AppContext = app.state.ctx
    with ThreadPoolExecutor(4) as pool:
        async with create_worker(await ctx.temporal(), ctx.engine, QUEUE, pool, sandboxed=False):
            yield


async def injected_bug(self: BookingWorkflow) -> None:
    raise TypeError("an injected bug")


@pytest.fixture
async def app(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, QUEUE, with_worker=False) as live:
        yield live


async def task_failures(app: FastAPI, workflow_id: str) -> list[str]:
    ctx: AppContext = app.state.ctx
    handle = (await ctx.temporal()).get_workflow_handle(workflow_id)
    return [
        event.workflow_task_failed_event_attributes.failure.message
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    ]


async def test_a_bug_after_payment_neither_refunds_nor_releases_and_a_fix_carries_on(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx: AppContext = app.state.ctx
    async with (
        client_for(app, ADMIN_KEY) as operator,
        await new_tenant_client(app, operator) as shop,
    ):
        await open_all_day(shop)
        await service(shop, code="paid", price={"amount": 8000, "currency": "EUR"})
        slot = (await first_slots(shop, "paid"))[0]
        with monkeypatch.context() as bugged:
            bugged.setattr(BookingWorkflow, "_announce_confirmed", injected_bug)
            async with worker(app):
                held = await book(shop, {"allocation_token": slot["allocation_token"]})
                booking: dict[str, Any] = held.json()
                assert booking["status"] == "pending_payment", held.text
                paying = asyncio.create_task(
                    shop.post(f"/v1/bookings/{booking['id']}/mark-paid", timeout=120)
                )
                failures = await eventually(
                    lambda: task_failures(app, booking["workflow_id"]), bool, seconds=20
                )
                assert "an injected bug" in failures[0]
                # Meanwhile the workflow takes no update: the caller is told to try again.
                refused = await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={})
                assert_error(refused, 503, "workflow_unavailable")
                assert refused.headers["Retry-After"]
        # Paid and confirmed before the bug struck, and still so: nothing was undone.
        row = await booking_row(every_tenant(ctx), booking["id"])
        assert row.status == BookingStatus.CONFIRMED
        assert row.payment is not None
        assert row.payment["captured_amount"] == 8000 and row.payment["refunded_amount"] == 0
        assert await allocation_statuses(every_tenant(ctx), booking["id"]) == ["confirmed"] * 2
        assert not paying.done()  # the booking's workflow is stuck, not ended
        async with worker(app):  # the fix is deployed
            paid = await paying
        assert paid.status_code == 200, paid.text
        assert paid.json()["status"] == "confirmed"
        assert "booking.confirmed" in await webhook_types(every_tenant(ctx), booking["id"])
        assert (await booking_row(every_tenant(ctx), booking["id"])).payment == row.payment
