"""The worker's counters move as bookings live (docs/operations.md#metrics): the API,
a worker and the dispatcher in this process, the counters read off the worker's
registry before and after."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from activities import metrics as worker_metrics
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import fresh_tenant
from tests.support.live import live_app
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
PRICE = {"amount": 8000, "currency": "EUR"}
Sample = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "metrics-e2e") as app:
        yield app


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        await open_all_day(client)
        yield client


def _counts() -> dict[Sample, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in worker_metrics.REGISTRY.collect()
        for s in family.samples
        if s.name.startswith("holdfast_") and s.name.endswith("_total")
    }


def _moved(before: dict[Sample, float], after: dict[Sample, float]) -> dict[Sample, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _key(name: str, **labels: str) -> Sample:
    return (name, tuple(sorted(labels.items())))


async def test_a_paid_bookings_life_moves_the_counters(shop: httpx.AsyncClient) -> None:
    await service(shop, code="paid", price=PRICE)
    slot = (await first_slots(shop, "paid"))[0]
    before = _counts()
    held = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert held.status_code == 201, held.text
    taken = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert taken.status_code == 409, taken.text
    booking = held.json()["id"]
    paid = await shop.post(f"/v1/bookings/{booking}/mark-paid")
    assert paid.status_code == 200 and paid.json()["status"] == "confirmed", paid.text
    cancelled = await shop.post(f"/v1/bookings/{booking}/cancel", json={"reason": "x"})
    assert cancelled.status_code == 200, cancelled.text
    moved = _moved(before, _counts())
    expected = {
        _key("holdfast_claims_total", step="claim", outcome="claimed"): 1,
        _key("holdfast_claims_total", step="claim", outcome="conflict"): 1,
        _key("holdfast_booking_status_changes_total", status="pending_payment"): 1,
        _key("holdfast_booking_status_changes_total", status="confirmed"): 1,
        _key("holdfast_booking_status_changes_total", status="cancelled"): 1,
        _key(
            "holdfast_payments_total",
            provider="pay_at_venue",
            operation="authorize",
            outcome="requires_payment",
        ): 1,
        _key(
            "holdfast_payments_total",
            provider="pay_at_venue",
            operation="capture",
            outcome="captured",
        ): 1,
    }
    assert {k: moved.get(k) for k in expected} == expected, moved


async def test_a_hold_running_out_is_counted_as_expired(shop: httpx.AsyncClient) -> None:
    await service(shop, code="quick", price=PRICE, hold_seconds=5)
    slot = (await first_slots(shop, "quick"))[0]
    before = _counts()
    held = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert held.status_code == 201, held.text

    async def status() -> str:
        found: str = (await shop.get(f"/v1/bookings/{held.json()['id']}")).json()["status"]
        return found

    async def moved_since() -> dict[Sample, float]:
        return _moved(before, _counts())

    await eventually(status, lambda s: s == "expired", seconds=30)
    # Counted as the release commits, a moment before or after the API can read it.
    moved = await eventually(moved_since, lambda m: _key("holdfast_holds_expired_total") in m)
    assert moved[_key("holdfast_holds_expired_total")] == 1
    assert moved[_key("holdfast_booking_status_changes_total", status="expired")] == 1
