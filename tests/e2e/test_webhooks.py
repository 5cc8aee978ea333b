"""Outgoing webhooks end to end: a booking's changes reach each subscribed endpoint,
signed (Standard Webhooks), retried until they are taken, one endpoint never holding up
another (docs/webhooks.md)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from standardwebhooks import Webhook, WebhookVerificationError
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from contract import delivery_workflow_id
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import fresh_tenant
from tests.support.histories import record
from tests.support.live import live_app
from tests.support.polling import eventually
from tests.support.receiver import receiver
from tests.support.stripe import free_port

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    allowed = settings.model_copy(update={"webhook_allow_private_targets": True})
    async with live_app(allowed, temporal_dev_server, "webhooks-e2e") as app:
        yield app


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        await open_all_day(client)
        await service(client, code="free")
        yield client


async def subscribe(shop: httpx.AsyncClient, url: str, events: list[str] | None = None) -> Any:
    answer = await shop.post("/v1/webhook-endpoints", json={"url": url, "events": events or ["*"]})
    assert answer.status_code == 201, answer.text
    return answer.json()


async def booked(shop: httpx.AsyncClient, n: int = 0) -> dict[str, Any]:
    slot = (await first_slots(shop, "free"))[n]
    answer = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert answer.status_code == 201, answer.text
    booking: dict[str, Any] = answer.json()
    return booking


async def test_a_receiver_failing_three_times_gets_the_event_on_the_fourth_signed(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    async with receiver(500, 500, 500, 200) as hooks:
        endpoint = await subscribe(shop, hooks.url, ["booking.confirmed"])
        booking = await booked(shop)
        [taken] = await hooks.wait_for(1, seconds=30)
    assert len(hooks.received) == 4
    assert len({r.headers["webhook-id"] for r in hooks.received}) == 1  # one message, retried
    event = Webhook(endpoint["secret"]).verify(taken.body, taken.headers)
    assert event["type"] == "booking.confirmed"
    assert event["data"]["booking"]["id"] == booking["id"]

    deliveries = await eventually(
        lambda: _deliveries(shop, endpoint["id"]),
        lambda items: bool(items) and items[0]["status"] == "delivered",
    )
    assert [a["status_code"] for a in deliveries[0]["attempts"]] == [500, 500, 500, 200]
    await record(await _delivery_workflow(live, deliveries[0]["id"]), "webhook_fourth_attempt")


async def test_a_forged_or_replayed_copy_fails_verification(shop: httpx.AsyncClient) -> None:
    async with receiver(200) as hooks:
        endpoint = await subscribe(shop, hooks.url, ["booking.confirmed"])
        await booked(shop)
        [taken] = await hooks.wait_for(1)
    verifier = Webhook(endpoint["secret"])
    forged = taken.body.replace(b"confirmed", b"cancelled")
    with pytest.raises(WebhookVerificationError):
        verifier.verify(forged, taken.headers)
    stale = {**taken.headers, "webhook-timestamp": str(int(time.time()) - 3600)}
    with pytest.raises(WebhookVerificationError):
        verifier.verify(taken.body, stale)
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + "A" * 43 + "=").verify(taken.body, taken.headers)


async def test_a_dead_endpoint_does_not_delay_a_healthy_one(shop: httpx.AsyncClient) -> None:
    dead = f"http://127.0.0.1:{free_port()}/nobody-listens"
    async with receiver(200) as hooks:
        await subscribe(shop, dead)
        await subscribe(shop, hooks.url)
        sent = time.monotonic()
        await booked(shop)
        [first] = await hooks.wait_for(1)
    assert first.at - sent < 1.0


async def test_a_reschedule_carries_the_previous_slot_and_versions_order_events(
    shop: httpx.AsyncClient,
) -> None:
    async with receiver(200) as hooks:
        await subscribe(shop, hooks.url)
        booking = await booked(shop)
        later = (await first_slots(shop, "free"))[2]
        moved = await shop.post(
            f"/v1/bookings/{booking['id']}/reschedule",
            json={"allocation_token": later["allocation_token"]},
        )
        assert moved.status_code == 200, moved.text
        cancelled = await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
        received = await hooks.wait_for(3)
    events = sorted((r.json for r in received), key=lambda e: e["data"]["booking"]["version"])
    assert [e["type"] for e in events] == [
        "booking.confirmed",
        "booking.rescheduled",
        "booking.cancelled",
    ]
    versions = [e["data"]["booking"]["version"] for e in events]
    assert versions == sorted(set(versions))  # strictly increasing
    previous = events[1]["data"]["previous"]
    assert _same_instant(previous["start"], booking["start"])
    assert _same_instant(events[1]["data"]["booking"]["start"], later["start"])
    assert previous["resource_ids"] == [r["id"] for r in booking["resources"]]
    assert "previous" not in events[2]["data"]


async def test_an_endpoint_gets_only_the_events_it_subscribed_to(
    shop: httpx.AsyncClient,
) -> None:
    async with receiver(200) as everything, receiver(200) as cancels:
        await subscribe(shop, everything.url)
        await subscribe(shop, cancels.url, ["booking.cancelled"])
        booking = await booked(shop)
        await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={})
        await everything.wait_for(2)
        [cancel] = await cancels.wait_for(1)
    assert cancel.json["type"] == "booking.cancelled"
    assert len(cancels.received) == 1


async def test_a_manual_retry_sends_a_delivery_again(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    async with receiver(200) as hooks:
        endpoint = await subscribe(shop, hooks.url, ["booking.confirmed"])
        await booked(shop)
        await hooks.wait_for(1)
        [delivery] = await eventually(
            lambda: _deliveries(shop, endpoint["id"]),
            lambda items: bool(items) and items[0]["status"] == "delivered",
        )
        retried = await shop.post(f"/v1/webhook-deliveries/{delivery['id']}/retry")
        assert retried.status_code == 202, retried.text
        again = await hooks.wait_for(2)
    assert again[0].headers["webhook-id"] == again[1].headers["webhook-id"]
    await record(await _delivery_workflow(live, delivery["id"]), "webhook_manual_retry")


async def test_a_disabled_endpoint_gets_nothing(shop: httpx.AsyncClient) -> None:
    async with receiver(200) as off, receiver(200) as on:
        endpoint = await subscribe(shop, off.url)
        patched = await shop.patch(
            f"/v1/webhook-endpoints/{endpoint['id']}", json={"status": "disabled"}
        )
        assert patched.status_code == 200, patched.text
        await subscribe(shop, on.url)
        await booked(shop)
        await on.wait_for(1)
    assert off.received == []


async def _deliveries(shop: httpx.AsyncClient, endpoint_id: str) -> list[dict[str, Any]]:
    answer = await shop.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def _delivery_workflow(live: FastAPI, delivery_id: str) -> WorkflowHandle[Any, Any]:
    """The delivery's workflow, once its run has ended."""
    ctx: AppContext = live.state.ctx
    handle = (await ctx.temporal()).get_workflow_handle(delivery_workflow_id(delivery_id))
    await handle.result()
    return handle


def _same_instant(a: str, b: str) -> bool:
    return datetime.fromisoformat(a).astimezone(UTC) == datetime.fromisoformat(b).astimezone(UTC)
