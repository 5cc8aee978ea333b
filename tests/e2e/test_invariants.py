"""The invariant check against a live stack (invariants.py): real bookings, made and
cancelled through the API and their workflows, leave every invariant holding, and a row
that says something its workflow does not is found."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from db.models import Booking
from db.sessions import Sessions
from invariants import check
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import fresh_tenant, tenant_of
from tests.support.db import EVERY_TENANT
from tests.support.live import live_app
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "invariants-e2e") as app:
        yield app


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        await open_all_day(client)
        await service(client, code="free")
        yield client


async def _check(live: FastAPI, shop: httpx.AsyncClient) -> set[str]:
    ctx: AppContext = live.state.ctx
    report = await check(
        Sessions.on(ctx.engine, EVERY_TENANT),
        await ctx.temporal(),
        tenant_id=uuid.UUID(tenant_of(shop)),
        settle=timedelta(0),
    )
    assert report.checked_bookings >= 1
    return {b.rule for b in report.broken}


async def test_real_bookings_made_and_cancelled_keep_every_invariant(
    live: FastAPI, shop: httpx.AsyncClient
) -> None:
    slots = await first_slots(shop, "free")
    kept = await book(shop, {"allocation_token": slots[0]["allocation_token"]})
    dropped = await book(shop, {"allocation_token": slots[1]["allocation_token"]})
    assert kept.status_code == dropped.status_code == 201
    cancel = await shop.post(f"/v1/bookings/{dropped.json()['id']}/cancel", json={})
    assert cancel.status_code == 200, cancel.text
    # Once its messages have gone out (or failed: no mail server here), all is quiet.
    assert await eventually(lambda: _check(live, shop), lambda found: not found) == set()


async def test_a_row_its_workflow_disagrees_with_is_found(
    live: FastAPI, shop: httpx.AsyncClient, db: AsyncSession
) -> None:
    slot = (await first_slots(shop, "free"))[2]
    made = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert made.status_code == 201, made.text
    await db.execute(
        update(Booking)
        .where(Booking.id == uuid.UUID(made.json()["id"]))
        .values(status="completed", updated_at=datetime.now(UTC) - timedelta(hours=1))
    )
    await db.commit()
    assert "row_matches_workflow" in await _check(live, shop)
