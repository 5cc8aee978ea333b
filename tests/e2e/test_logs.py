"""No log line carries a key, a secret or a customer's personal data
(docs/security.md#logs): a whole booking's life, with a failure in it, logged at DEBUG in
this process (the API, the workers and the dispatcher all run here), is read line by
line, tracebacks included."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import fresh_tenant
from tests.support.live import live_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
CUSTOMER = {
    "name": "Hedy Lamarr",
    "email": "hedy.lamarr@example.test",
    "phone": "+4915123456789",
    "sms_opt_in": True,
}


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "logs-e2e") as app:
        yield app


async def test_a_bookings_life_logs_no_personal_data_and_no_key(
    live: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with fresh_tenant(live) as shop:
        key = shop.headers["Authorization"].removeprefix("Bearer ")
        await open_all_day(shop)
        await service(shop, code="free")
        slot = (await first_slots(shop, "free"))[0]
        body = {"allocation_token": slot["allocation_token"], "customer": CUSTOMER}
        booked = await book(shop, body)
        assert booked.status_code == 201, booked.text
        again = await book(shop, body)  # the slot is taken: a refused claim, logged
        assert again.status_code == 409
        await shop.post(f"/v1/bookings/{booked.json()['id']}/cancel", json={"reason": "x"})
    text = caplog.text
    assert len(caplog.records) > 20  # the run did log: workers, dispatcher, refusals
    for secret in (key, "Hedy", "Lamarr", "hedy.lamarr", "5123456789"):
        assert secret not in text, secret
