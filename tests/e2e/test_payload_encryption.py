"""Personal data never lies in clear in Temporal (docs/security.md#temporal-payloads): a
booking's history, as `temporal workflow show` reads it, holds its customer's name and
email only sealed; the codec endpoint opens them for an operator."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from contract import workflow_id_for
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import ADMIN_KEY, client_for, fresh_tenant
from tests.support.live import live_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
CUSTOMER = {"name": "Ada Lovelace", "email": "ada.lovelace@example.test"}


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "sealed-e2e") as app:
        yield app


async def _history(server: WorkflowEnvironment, booking_id: str) -> str:
    """The history as a client without the codec sees it (the CLI, the UI unaided)."""
    address = server.client.service_client.config.target_host
    plain = await Client.connect(address)
    history = await plain.get_workflow_handle(workflow_id_for(booking_id)).fetch_history()
    return history.to_json()


async def _booked(live: FastAPI) -> str:
    async with fresh_tenant(live) as shop:
        await open_all_day(shop)
        await service(shop, code="free")
        slot = (await first_slots(shop, "free"))[0]
        answer = await book(
            shop, {"allocation_token": slot["allocation_token"], "customer": CUSTOMER}
        )
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])


async def test_a_bookings_history_holds_its_customer_only_sealed(
    live: FastAPI, temporal_dev_server: WorkflowEnvironment
) -> None:
    history = await _history(temporal_dev_server, await _booked(live))
    assert "binary/encrypted" in history or "YmluYXJ5L2VuY3J5cHRlZA" in history
    for secret in ("Ada", "Lovelace", "ada.lovelace"):
        assert secret not in history


async def test_the_codec_endpoint_opens_the_history_for_an_operator(
    live: FastAPI, temporal_dev_server: WorkflowEnvironment
) -> None:
    history = json.loads(await _history(temporal_dev_server, await _booked(live)))
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    async with client_for(live, ADMIN_KEY) as operator:
        opened = await operator.post("/codec/decode", json=started["input"])
    assert opened.status_code == 200, opened.text
    [payload] = opened.json()["payloads"]
    assert base64.b64decode(payload["metadata"]["encoding"]) == b"json/plain"
    assert json.loads(base64.b64decode(payload["data"]))["customer"] == CUSTOMER
