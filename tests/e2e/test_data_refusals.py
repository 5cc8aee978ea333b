"""Data PostgreSQL refuses, reaching the saga behind the API's back (the API refuses it at
its edge): the database step fails for good instead of retrying forever, the claim ends
cleanly, and an update answers an error and leaves the booking as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from api.booking_gateway import run_update, start_booking
from api.context import AppContext
from api.errors import ApiError
from contract import BookingState, CancelRequest, Failure, is_failure
from settings import Settings
from tests.support.clients import ADMIN_KEY, client_for, new_tenant_client, tenant_of
from tests.support.db import every_tenant
from tests.support.live import live_app
from tests.support.saga import Clinic, booking_row, make_clinic
from workflows.booking import BookingWorkflow

QUEUE = "data-refusals"


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, QUEUE) as app:
        yield app


@pytest.fixture
async def clinic(live: FastAPI) -> AsyncIterator[Clinic]:
    async with (
        client_for(live, ADMIN_KEY) as operator,
        await new_tenant_client(live, operator) as shop,
    ):
        yield await make_clinic(shop, tenant_of(shop))


def soon(hours: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=2, hours=hours)).replace(microsecond=0)


async def test_a_claim_with_data_the_database_refuses_ends_at_once(
    live: FastAPI, clinic: Clinic
) -> None:
    ctx: AppContext = live.state.ctx
    client = await ctx.temporal()
    request = clinic.request(soon(1))
    request = replace(request, customer={**request.customer, "name": "n\u0000"})
    with pytest.raises(ApiError) as refused:
        await start_booking(client, QUEUE, request)
    assert (refused.value.status, refused.value.code) == (422, "data_refused")
    handle = client.get_workflow_handle(f"booking-{request.booking_id}", result_type=BookingState)
    state = await handle.result()  # ended, not retrying
    assert state.status == "failed"
    assert "the database refused the data" in (state.error or "")


async def test_an_update_with_data_the_database_refuses_leaves_the_booking_cancellable(
    live: FastAPI, clinic: Clinic
) -> None:
    ctx: AppContext = live.state.ctx
    client = await ctx.temporal()
    state = await start_booking(client, QUEUE, clinic.request(soon(3)))
    assert state.status == "confirmed"
    handle = client.get_workflow_handle(f"booking-{state.booking_id}")
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await run_update(handle, BookingWorkflow.cancel, CancelRequest(reason="r\u0000"))
    assert is_failure(failed.value.cause, Failure.DATA_REFUSED)
    assert (await booking_row(every_tenant(ctx), state.booking_id)).status == "confirmed"
    async with client_for(live, ADMIN_KEY) as api:
        cancelled = await api.post(
            f"/v1/bookings/{state.booking_id}/cancel", json={"reason": "plans changed"}
        )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
