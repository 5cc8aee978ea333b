"""A booking page's whole flow with a publishable key (docs/security.md#api-keys): it
books, and with the booking's access token reads, reschedules and cancels that booking,
and no other."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from tests.support.api import assert_error, open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import client_for, fresh_tenant
from tests.support.live import live_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
SITE = "https://book.example.com"


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "publishable-e2e") as app:
        yield app


@pytest.fixture
async def page(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The tenant's booking page: its publishable key, from its own origin."""
    async with fresh_tenant(live) as shop:
        await open_all_day(shop)
        await service(shop, code="free")
        created = await shop.post(
            "/v1/api-keys",
            json={"kind": "publishable", "name": "page", "allowed_origins": [SITE]},
        )
        async with client_for(live, created.json()["api_key"]) as client:
            client.headers["Origin"] = SITE
            yield client


async def _booked(page: httpx.AsyncClient, index: int = 0) -> dict[str, Any]:
    slot = (await first_slots(page, "free"))[index]
    response = await book(page, {"allocation_token": slot["allocation_token"]})
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def test_it_books_and_gets_the_bookings_access_token(page: httpx.AsyncClient) -> None:
    booking = await _booked(page)
    assert booking["status"] == "confirmed"
    assert str(booking["access_token"]).startswith("hf_bt_")


async def test_a_repeated_request_answers_the_same_access_token(page: httpx.AsyncClient) -> None:
    slot = (await first_slots(page, "free"))[2]
    key = str(uuid.uuid4())
    first = await book(page, {"allocation_token": slot["allocation_token"]}, key=key)
    again = await book(page, {"allocation_token": slot["allocation_token"]}, key=key)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json()["access_token"] == first.json()["access_token"]


async def test_with_the_token_it_reads_the_booking_by_query_or_header(
    page: httpx.AsyncClient,
) -> None:
    booking = await _booked(page, 3)
    path, token = f"/v1/bookings/{booking['id']}", booking["access_token"]
    by_query = await page.get(path, params={"access_token": token})
    by_header = await page.get(path, headers={"X-Booking-Token": token})
    assert by_query.status_code == by_header.status_code == 200, by_query.text
    assert by_query.json()["id"] == booking["id"] and by_query.json()["access_token"] is None
    assert by_query.headers["access-control-allow-origin"] == SITE


async def test_one_bookings_token_opens_no_other(page: httpx.AsyncClient) -> None:
    mine, theirs = await _booked(page, 4), await _booked(page, 5)
    response = await page.get(
        f"/v1/bookings/{theirs['id']}", params={"access_token": mine["access_token"]}
    )
    assert_error(response, 403, "forbidden")
    assert_error(await page.get(f"/v1/bookings/{mine['id']}"), 403, "forbidden")


async def test_with_the_token_it_reschedules_and_cancels(page: httpx.AsyncClient) -> None:
    booking = await _booked(page, 6)
    headers = {"X-Booking-Token": booking["access_token"]}
    later = (await first_slots(page, "free", 8))[7]
    moved = await page.post(
        f"/v1/bookings/{booking['id']}/reschedule",
        json={"allocation_token": later["allocation_token"]},
        headers=headers,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == later["start"]
    cancelled = await page.post(
        f"/v1/bookings/{booking['id']}/cancel", json={"reason": "ill"}, headers=headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"


async def test_it_cannot_mark_its_booking_paid_or_a_no_show(page: httpx.AsyncClient) -> None:
    booking = await _booked(page, 1)
    headers = {"X-Booking-Token": booking["access_token"]}
    for action in ("mark-paid", "no-show"):
        response = await page.post(f"/v1/bookings/{booking['id']}/{action}", headers=headers)
        assert_error(response, 403, "forbidden")
