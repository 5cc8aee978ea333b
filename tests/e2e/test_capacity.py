"""Seats end to end (docs/capacity.md): through the API, the worker and PostgreSQL, a class
of three takes three bookings however many race for it, a cancellation frees a seat,
and a class's instructor is shared by its attendees and by nobody else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from tests.support.api import ALWAYS_OPEN, assert_error, room, service, staff
from tests.support.bookings import book, first_slots
from tests.support.clients import fresh_tenant
from tests.support.live import live_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
RACERS = 50


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    roomy = settings.model_copy(update={"rate_limit_per_minute": 100_000})
    async with live_app(roomy, temporal_dev_server, "capacity-e2e") as app:
        yield app


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        yield client


async def _class(shop: httpx.AsyncClient, capacity: int = 3, **extra: Any) -> dict[str, Any]:
    studio = await room(shop, "Studio", capacity=capacity, weekly_hours=ALWAYS_OPEN)
    await service(shop, code="yoga", requirements=[{"kind": "room"}], **extra)
    return studio


async def _slot_at(shop: httpx.AsyncClient, start: str) -> dict[str, Any]:
    return next(s for s in await first_slots(shop, "yoga") if s["start"] == start)


async def test_fifty_claims_for_a_class_of_three_book_three(shop: httpx.AsyncClient) -> None:
    await _class(shop)
    slot = (await first_slots(shop, "yoga"))[0]
    assert slot["seats_left"] == 3
    answers = await asyncio.gather(
        *(book(shop, {"allocation_token": slot["allocation_token"]}) for _ in range(RACERS))
    )
    codes = [a.status_code for a in answers]
    assert codes.count(201) == 3 and codes.count(409) == RACERS - 3, sorted(set(codes))
    for answer in answers:
        if answer.status_code == 409:
            assert_error(answer, 409, "slot_unavailable")
    full = await _slot_at(shop, slot["start"])
    assert full["seats_left"] == 0 and full["allocation_token"] is None


async def test_a_cancelled_seat_is_offered_again(shop: httpx.AsyncClient) -> None:
    await _class(shop)
    slot = (await first_slots(shop, "yoga"))[0]
    booked = [(await book(shop, {"allocation_token": slot["allocation_token"]})) for _ in range(3)]
    assert [b.status_code for b in booked] == [201, 201, 201]
    cancel = await shop.post(f"/v1/bookings/{booked[0].json()['id']}/cancel", json={})
    assert cancel.status_code == 200, cancel.text
    again = await _slot_at(shop, slot["start"])
    assert again["seats_left"] == 1 and again["allocation_token"]
    assert (await book(shop, {"allocation_token": again["allocation_token"]})).status_code == 201


async def test_a_booking_takes_the_service_seats_per_booking(shop: httpx.AsyncClient) -> None:
    await _class(shop, seats_per_booking=2)
    slot = (await first_slots(shop, "yoga"))[0]
    first = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert first.status_code == 201, first.text
    assert (await _slot_at(shop, slot["start"]))["seats_left"] == 1
    second = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert_error(second, 409, "slot_unavailable")


async def test_a_full_class_is_refused_by_start_too(shop: httpx.AsyncClient) -> None:
    await _class(shop, capacity=2)
    slot = (await first_slots(shop, "yoga"))[0]
    for _ in range(2):
        assert (await book(shop, {"service": "yoga", "start": slot["start"]})).status_code == 201
    assert_error(
        await book(shop, {"service": "yoga", "start": slot["start"]}), 409, "slot_unavailable"
    )


async def test_a_class_shares_its_instructor_and_nobody_else_may_book_her(
    shop: httpx.AsyncClient,
) -> None:
    await room(shop, "Studio", capacity=12, weekly_hours=ALWAYS_OPEN)
    ada = await staff(shop, "Ada", weekly_hours=ALWAYS_OPEN)
    await service(shop, code="yoga", requirements=[{"kind": "room"}, {"kind": "staff"}])
    await service(shop, code="private", requirements=[{"kind": "staff"}])
    slot = (await first_slots(shop, "yoga"))[0]
    for _ in range(2):
        answer = await book(shop, {"allocation_token": slot["allocation_token"]})
        assert answer.status_code == 201, answer.text
        assert ada["id"] in [r["id"] for r in answer.json()["resources"]]
    assert (await _slot_at(shop, slot["start"]))["seats_left"] == 10
    private = [s["start"] for s in await first_slots(shop, "private", 1)]
    assert slot["start"] not in private
    refused = await book(shop, {"service": "private", "start": slot["start"]})
    assert_error(refused, 409, "slot_unavailable")


async def test_capacity_cannot_shrink_below_live_bookings(shop: httpx.AsyncClient) -> None:
    studio = await _class(shop)
    slot = (await first_slots(shop, "yoga"))[0]
    for _ in range(2):
        assert (await book(shop, {"allocation_token": slot["allocation_token"]})).status_code == 201
    shrink = await shop.patch(f"/v1/resources/{studio['id']}", json={"capacity": 1})
    assert_error(shrink, 409, "capacity_in_use")
    grow = await shop.patch(f"/v1/resources/{studio['id']}", json={"capacity": 4})
    assert grow.status_code == 200 and grow.json()["capacity"] == 4
    assert (await _slot_at(shop, slot["start"]))["seats_left"] == 2


async def test_a_booking_moves_into_a_class_with_a_seat_and_not_into_a_full_one(
    shop: httpx.AsyncClient,
) -> None:
    await _class(shop, capacity=2)
    first, second = (await first_slots(shop, "yoga"))[:2]
    for _ in range(2):
        assert (
            await book(shop, {"allocation_token": first["allocation_token"]})
        ).status_code == 201
    mover = (await book(shop, {"allocation_token": second["allocation_token"]})).json()
    refused = await shop.post(
        f"/v1/bookings/{mover['id']}/reschedule", json={"service": "yoga", "start": first["start"]}
    )
    assert_error(refused, 409, "slot_unavailable")
    third = (await first_slots(shop, "yoga"))[2]
    moved = await shop.post(
        f"/v1/bookings/{mover['id']}/reschedule", json={"service": "yoga", "start": third["start"]}
    )
    assert moved.status_code == 200, moved.text
    assert (await _slot_at(shop, second["start"]))["seats_left"] == 2


async def test_an_instructor_teaching_one_class_is_not_booked_into_another_room(
    shop: httpx.AsyncClient,
) -> None:
    for name in ("Studio A", "Studio B"):
        await room(shop, name, capacity=12, weekly_hours=ALWAYS_OPEN)
    ada = await staff(shop, "Ada", weekly_hours=ALWAYS_OPEN)
    await service(shop, code="yoga", requirements=[{"kind": "room"}, {"kind": "staff"}])
    slot = (await first_slots(shop, "yoga"))[0]
    first = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert first.status_code == 201, first.text
    taught = {r["id"] for r in first.json()["resources"]}
    again = await _slot_at(shop, slot["start"])
    assert {r["id"] for r in again["resources"]} == taught  # her room, not the other
    other = next(
        r["id"]
        for r in (await shop.get("/v1/resources", params={"kind": "room"})).json()["items"]
        if r["id"] not in taught
    )
    elsewhere = await book(
        shop, {"service": "yoga", "start": slot["start"], "resource_ids": [other, ada["id"]]}
    )
    assert_error(elsewhere, 409, "slot_unavailable")
