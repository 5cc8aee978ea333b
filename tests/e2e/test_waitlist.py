"""The waitlist end to end (docs/waitlist.md): entries served in join order, an offer held
for the first as a booking nobody else is offered, declined to the next, accepted into a
booking; two freed slots serve two entries."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from contract import TENANT_ID
from settings import Settings
from tests.support.api import assert_error, open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import fresh_tenant, tenant_of
from tests.support.db import every_tenant
from tests.support.live import live_app
from tests.support.polling import eventually
from tests.support.saga import message_kinds, webhook_types

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "waitlist-e2e") as app:
        yield app


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        await open_all_day(client)
        await service(client, code="free")
        yield client


async def _full_slot(shop: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """The day's first slot, booked: (the slot, its booking)."""
    slot = (await first_slots(shop, "free"))[0]
    booked = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert booked.status_code == 201, booked.text
    return slot, booked.json()


async def _join(shop: httpx.AsyncClient, slot: dict[str, Any], name: str) -> dict[str, Any]:
    start = datetime.fromisoformat(slot["start"])
    answer = await shop.post(
        "/v1/waitlist",
        json={
            "service": "free",
            "range_start": start.isoformat(),
            "range_end": (start + timedelta(minutes=1)).isoformat(),
            "customer": {"name": name, "email": f"{name.lower()}@example.test"},
        },
    )
    assert answer.status_code == 201, answer.text
    entry: dict[str, Any] = answer.json()
    return entry


async def _entry(shop: httpx.AsyncClient, entry: dict[str, Any]) -> dict[str, Any]:
    answer = await shop.get(f"/v1/waitlist/{entry['id']}")
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def _offered(shop: httpx.AsyncClient, entry: dict[str, Any]) -> dict[str, Any]:
    return await eventually(lambda: _entry(shop, entry), lambda e: e["status"] == "offered")


async def _offered_to_anyone(shop: httpx.AsyncClient, slot: dict[str, Any]) -> bool:
    return slot["start"] in [s["start"] for s in await first_slots(shop, "free", 1)]


async def test_joining_for_a_taken_slot_waits(shop: httpx.AsyncClient) -> None:
    slot, _ = await _full_slot(shop)
    entry = await _join(shop, slot, "Ann")
    assert entry["status"] == "waiting" and entry["booking"] is None


async def _found_as_a_booking(app: FastAPI, workflow_id: str, shop: httpx.AsyncClient) -> bool:
    """The offer's workflow carries a booking's search attributes (the Temporal UI)."""
    ctx: AppContext = app.state.ctx
    described = await (await ctx.temporal()).get_workflow_handle(workflow_id).describe()
    return described.typed_search_attributes.get(TENANT_ID) == tenant_of(shop)


async def test_a_cancel_offers_the_slot_to_the_first_in_line_and_nobody_else(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    slot, booking = await _full_slot(shop)
    first, second = await _join(shop, slot, "Ann"), await _join(shop, slot, "Bob")
    assert (await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={})).status_code == 200
    offered = await _offered(shop, first)
    assert offered["booking"]["status"] == "pending_payment"
    assert await _found_as_a_booking(live, offered["booking"]["workflow_id"], shop)
    sessions = every_tenant(live.state.ctx)
    assert "waitlist.offered" in await webhook_types(sessions, offered["booking"]["id"])
    assert "offered" in await message_kinds(sessions, offered["booking"]["id"])
    assert offered["booking"]["start"] == slot["start"] and offered["offer_expires_at"]
    assert (await _entry(shop, second))["status"] == "waiting"
    assert not await _offered_to_anyone(shop, slot)


async def test_a_declined_offer_goes_to_the_next_who_accepts_and_books(
    shop: httpx.AsyncClient,
) -> None:
    slot, booking = await _full_slot(shop)
    first, second = await _join(shop, slot, "Ann"), await _join(shop, slot, "Bob")
    await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={})
    await _offered(shop, first)
    declined = await shop.post(f"/v1/waitlist/{first['id']}/decline")
    assert declined.status_code == 200 and declined.json()["status"] == "declined", declined.text
    await _offered(shop, second)
    assert not await _offered_to_anyone(shop, slot)
    accepted = await shop.post(f"/v1/waitlist/{second['id']}/accept")
    assert accepted.status_code == 200, accepted.text
    entry = accepted.json()
    assert entry["status"] == "booked" and entry["booking"]["status"] == "confirmed"
    assert entry["booking"]["customer"]["name"] == "Bob"


async def test_two_freed_slots_serve_two_entries_once_each(shop: httpx.AsyncClient) -> None:
    slots = await first_slots(shop, "free", 2)
    bookings = [
        (await book(shop, {"allocation_token": s["allocation_token"]})).json() for s in slots[:2]
    ]
    start, last = (datetime.fromisoformat(s["start"]) for s in slots[:2])
    wide = {
        "service": "free",
        "range_start": start.isoformat(),
        "range_end": (last + timedelta(minutes=1)).isoformat(),
    }
    entries = []
    for name in ("Ann", "Bob", "Cy"):
        customer = {"name": name, "email": f"{name.lower()}@example.test"}
        joined = await shop.post("/v1/waitlist", json={**wide, "customer": customer})
        entries.append(joined.json())
    assert [e["status"] for e in entries] == ["waiting"] * 3, entries
    for booking in bookings:
        await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={})
    ann, bob = await _offered(shop, entries[0]), await _offered(shop, entries[1])
    assert {ann["booking"]["start"], bob["booking"]["start"]} == {s["start"] for s in slots[:2]}
    assert (await _entry(shop, entries[2]))["status"] == "waiting"


async def test_a_waiting_entry_leaves_and_an_offered_one_must_decline(
    shop: httpx.AsyncClient,
) -> None:
    slot, booking = await _full_slot(shop)
    first, second = await _join(shop, slot, "Ann"), await _join(shop, slot, "Bob")
    left = await shop.delete(f"/v1/waitlist/{second['id']}")
    assert left.status_code == 200 and left.json()["status"] == "left", left.text
    await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={})
    await _offered(shop, first)
    assert_error(await shop.delete(f"/v1/waitlist/{first['id']}"), 409, "invalid_state")
