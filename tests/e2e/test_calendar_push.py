"""Calendars kept fresh by push (docs/calendars.md#freshness): with a public address,
each connection opens a push channel on its first sync; a change a person makes reaches
the availability without anyone asking for a sync, and a burst of pushes collapses into
one sync. The stand-ins push into this process's API through ASGI."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from contract import connection_workflow_id
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import first_slots
from tests.support.calendars import Calendars, Google, Outlook, calendar_settings
from tests.support.clients import fresh_tenant
from tests.support.live import live_app
from tests.support.microsoft_graph import asgi_deliver
from tests.support.polling import eventually

QUEUE = "calendar-push-e2e"
PUBLIC = "https://holdfast.example.test"
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment, stand_ins: tuple[Google, Outlook]
) -> AsyncIterator[FastAPI]:
    google, outlook = stand_ins
    # Only pushes prompt syncs here.
    configured = calendar_settings(
        settings,
        google,
        outlook,
        calendar_push_base_url=PUBLIC,
        calendar_push_fallback_seconds=3600,
    )
    async with live_app(configured, temporal_dev_server, QUEUE) as app:
        google.standin.deliver = _google_into(app)
        outlook.graph.deliver_with(asgi_deliver(app))
        yield app


def _google_into(app: FastAPI) -> Any:
    """Google's push, an empty POST with its headers, into the app at the URL's path."""

    async def deliver(url: str, headers: dict[str, str]) -> None:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=PUBLIC
        ) as client:
            await client.post(url.removeprefix(PUBLIC), headers=headers)

    return deliver


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async with fresh_tenant(live) as client:
        staff, _ = await open_all_day(client)
        await service(client, code="free")
        yield client, staff["id"]


async def _connected(
    client: httpx.AsyncClient, staff: str, calendar: Calendars, address: str
) -> Any:
    path = f"/v1/resources/{staff}/calendar-connections"
    made = await client.post(path, json=calendar.connect(address))
    assert made.status_code == 201, made.text
    connection = made.json()
    synced = await client.post(f"{path}/{connection['id']}/sync")
    assert synced.json()["status"] == "active", synced.text
    return connection


def _span(slot: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(slot["start"]), datetime.fromisoformat(slot["end"])


async def _syncs(live: FastAPI, connection_id: str) -> int:
    """How many syncs the connection's workflow has run."""
    ctx: AppContext = live.state.ctx
    handle = (await ctx.temporal()).get_workflow_handle(connection_workflow_id(connection_id))
    events = [e async for e in handle.fetch_history_events()]
    return sum(e.HasField("activity_task_completed_event_attributes") for e in events)


async def test_the_first_sync_opens_a_push_channel_to_the_public_address(
    shop: tuple[httpx.AsyncClient, str], calendar: Calendars
) -> None:
    client, staff = shop
    address = f"{uuid.uuid4().hex[:8]}@clinic.test"
    await _connected(client, staff, calendar, address)
    [channel] = await eventually(lambda: _channels(calendar, address), lambda c: len(c) == 1)
    assert channel.startswith(f"{PUBLIC}/v1/webhooks/")


async def test_a_change_in_the_calendar_reaches_the_slots_by_push_alone(
    shop: tuple[httpx.AsyncClient, str], calendar: Calendars
) -> None:
    client, staff = shop
    address = f"{uuid.uuid4().hex[:8]}@clinic.test"
    await _connected(client, staff, calendar, address)
    slot = (await first_slots(client, "free"))[1]
    await calendar.busy(address, *_span(slot))
    await eventually(
        lambda: first_slots(client, "free"),
        lambda slots: _span(slot) not in [_span(s) for s in slots],
        seconds=20,
    )


async def test_a_burst_of_pushes_collapses_into_fewer_syncs(
    shop: tuple[httpx.AsyncClient, str], calendar: Calendars, live: FastAPI
) -> None:
    client, staff = shop
    address = f"{uuid.uuid4().hex[:8]}@clinic.test"
    connection = await _connected(client, staff, calendar, address)
    before = await _syncs(live, connection["id"])
    slots = await first_slots(client, "free", n=6)
    for slot in slots[:6]:
        await calendar.busy(address, *_span(slot))
    await eventually(
        lambda: first_slots(client, "free", n=0),
        lambda now: not {_span(s) for s in slots[:6]} & {_span(s) for s in now},
        seconds=20,
    )
    assert await _syncs(live, connection["id"]) - before < 6


async def _channels(calendar: Calendars, address: str) -> list[str]:
    if isinstance(calendar, Google):
        return [c["address"] for c in calendar.standin.channels(address)]
    assert isinstance(calendar, Outlook)
    return [s["notificationUrl"] for s in calendar.graph.subscriptions(address)]
