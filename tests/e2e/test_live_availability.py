"""Live availability end to end (docs/capacity.md#live-availability): a stream opened on
one API process hears, within a second, the changes made through another (a booking, a
cancellation, time off, new hours), and only those that touch its service and range."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from settings import Settings
from tests.support.api import ALWAYS_OPEN, assert_error, create, open_all_day, service
from tests.support.bookings import DAY, book, first_slots
from tests.support.clients import fresh_tenant
from tests.support.live import live_app, served
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
STREAMS_PER_KEY = 3
GEAR = {"kind": "asset", "name": "Treadmill", "timezone": "Europe/Berlin"}
RANGE = {"range_start": f"{DAY}T00:00:00+01:00", "range_end": f"{DAY}T23:59:00+01:00"}


@pytest.fixture(scope="module")
async def booking_api(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    """The API process (with a worker) that bookings go through."""
    async with live_app(settings, temporal_dev_server, "live-availability") as app:
        yield app


@pytest.fixture(scope="module")
async def streaming_api(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[tuple[FastAPI, str]]:
    """Another API process, over real HTTP, that the streams are opened on."""
    bounded = settings.model_copy(update={"availability_streams_per_key": STREAMS_PER_KEY})
    async with (
        live_app(bounded, temporal_dev_server, "live-availability", with_worker=False) as app,
        served(app) as url,
    ):
        yield app, url


@pytest.fixture
async def shop(booking_api: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(booking_api) as client:
        await open_all_day(client)
        await service(client, code="free")
        yield client


class Events:
    """The events of one open stream, read line by line."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, seconds: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(seconds):
            event: dict[str, Any] = {}
            async for line in self._lines:
                if line.startswith("event: "):
                    event["event"] = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    event["data"] = json.loads(line.removeprefix("data: "))
                elif not line and "event" in event:
                    return event
        raise AssertionError("the stream ended")


@asynccontextmanager
async def stream(
    streaming: tuple[FastAPI, str], shop: httpx.AsyncClient, **query: str
) -> AsyncIterator[Events]:
    app, url = streaming
    params = {"service": "free", **RANGE, **query}
    headers = {"Authorization": shop.headers["Authorization"]}
    async with (
        httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client,
        client.stream("GET", "/v1/availability/stream", params=params) as response,
    ):
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        ctx: AppContext = app.state.ctx
        await eventually(lambda: _listening(ctx), bool, seconds=10)
        yield Events(response)


async def _listening(ctx: AppContext) -> bool:
    return ctx.feed.listening.is_set()


def _covers(event: dict[str, Any], start: str) -> bool:
    data = event["data"]
    at = datetime.fromisoformat(start)
    return (
        datetime.fromisoformat(data["range_start"])
        <= at
        < datetime.fromisoformat(data["range_end"])
    )


async def test_a_stream_hears_a_booking_through_another_api_within_a_second(
    streaming_api: tuple[FastAPI, str], shop: httpx.AsyncClient
) -> None:
    slot = (await first_slots(shop, "free"))[0]
    async with stream(streaming_api, shop) as events:
        booked = await book(shop, {"allocation_token": slot["allocation_token"]})
        assert booked.status_code == 201, booked.text
        answered = time.monotonic()
        event = await events.next()
        assert time.monotonic() - answered < 1.0
        assert event["event"] == "slots.changed" and _covers(event, slot["start"])


async def test_a_stream_hears_a_cancellation(
    streaming_api: tuple[FastAPI, str], shop: httpx.AsyncClient
) -> None:
    slot = (await first_slots(shop, "free"))[0]
    booking = (await book(shop, {"allocation_token": slot["allocation_token"]})).json()
    async with stream(streaming_api, shop) as events:
        cancelled = await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
        assert _covers(await events.next(1.0), slot["start"])


async def test_a_stream_hears_time_off_and_new_hours(
    streaming_api: tuple[FastAPI, str], shop: httpx.AsyncClient
) -> None:
    slot = (await first_slots(shop, "free"))[0]
    staff = (await shop.get("/v1/resources", params={"kind": "staff"})).json()["items"][0]
    start = datetime.fromisoformat(slot["start"])
    async with stream(streaming_api, shop) as events:
        off = {"start": slot["start"], "end": (start + timedelta(hours=1)).isoformat()}
        added = await shop.post(f"/v1/resources/{staff['id']}/time-off", json=off)
        assert added.status_code == 201, added.text
        assert _covers(await events.next(1.0), slot["start"])
        hours = {"weekly_hours": {"mon": [["09:00", "12:00"]]}}
        changed = await shop.patch(f"/v1/resources/{staff['id']}", json=hours)
        assert changed.status_code == 200, changed.text
        whole = (await events.next(1.0))["data"]
        assert datetime.fromisoformat(whole["range_start"]) == datetime.fromisoformat(
            RANGE["range_start"]
        )


async def test_a_change_outside_the_range_or_the_service_is_not_heard(
    streaming_api: tuple[FastAPI, str], shop: httpx.AsyncClient
) -> None:
    slots = await first_slots(shop, "free", 6)
    await create(shop, "/v1/resources", {**GEAR, "weekly_hours": ALWAYS_OPEN})
    await service(shop, code="gear", requirements=[{"kind": "asset"}])
    async with stream(streaming_api, shop, range_end=slots[2]["start"]) as events:
        outside = await book(shop, {"allocation_token": slots[5]["allocation_token"]})
        gear = await book(shop, {"service": "gear", "start": slots[0]["start"]})
        assert outside.status_code == 201 and gear.status_code == 201, gear.text
        inside = await book(shop, {"allocation_token": slots[0]["allocation_token"]})
        assert inside.status_code == 201, inside.text
        event = await events.next()
        assert _covers(event, slots[0]["start"]) and not _covers(event, slots[2]["start"])


async def test_another_tenants_booking_is_not_heard(
    streaming_api: tuple[FastAPI, str], shop: httpx.AsyncClient, booking_api: FastAPI
) -> None:
    async with stream(streaming_api, shop) as events, fresh_tenant(booking_api) as other:
        await open_all_day(other)
        await service(other, code="free")
        theirs = (await first_slots(other, "free"))[0]
        assert (
            await book(other, {"allocation_token": theirs["allocation_token"]})
        ).status_code == 201
        with pytest.raises(TimeoutError):
            await events.next(1.0)


async def test_a_key_may_hold_only_so_many_streams(
    streaming_api: tuple[FastAPI, str], shop: httpx.AsyncClient
) -> None:
    _, url = streaming_api
    async with asyncio.TaskGroup() as group:
        done = asyncio.Event()

        async def hold() -> None:
            async with stream(streaming_api, shop):
                await done.wait()

        holders = [group.create_task(hold()) for _ in range(STREAMS_PER_KEY)]
        await eventually(lambda: _opened(streaming_api[0]), lambda n: n >= STREAMS_PER_KEY)
        headers = {"Authorization": shop.headers["Authorization"]}
        async with httpx.AsyncClient(base_url=url, headers=headers) as client:
            refused = await client.get(
                "/v1/availability/stream", params={"service": "free", **RANGE}
            )
        assert_error(refused, 429, "too_many_streams")
        done.set()
    assert all(holder.done() for holder in holders)
    await eventually(lambda: _opened(streaming_api[0]), lambda n: n == 0)


async def _opened(app: FastAPI) -> int:
    ctx: AppContext = app.state.ctx
    return sum(ctx.feed.open_streams().values())
