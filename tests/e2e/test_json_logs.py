"""JSON log lines follow a request into Temporal (docs/operations.md#logs): the API's
line, the booking workflow's and its activities' all carry the request id the client
sent, the tenant, the booking and the workflow. The API, a worker and the dispatcher
run in this process; every record is formatted as the processes format them."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from logs import JsonFormatter
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import fresh_tenant, tenant_of
from tests.support.live import live_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
REQUEST_ID = "checkout-42.trace"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter("test"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    # Sandboxed: the interceptor's workflow side passes the sandbox's checks too.
    sandboxed = settings.model_copy(update={"workflow_sandbox": True})
    async with live_app(sandboxed, temporal_dev_server, "json-logs-e2e") as app:
        yield app


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    caplog.set_level(logging.DEBUG)  # the root's level, restored after
    handler = Lines()
    logging.getLogger().addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger().removeHandler(handler)


async def _booked(live: FastAPI, lines: Lines) -> tuple[str, str, list[dict[str, Any]]]:
    async with fresh_tenant(live) as shop:
        await open_all_day(shop)
        await service(shop, code="free")
        slot = (await first_slots(shop, "free"))[0]
        lines.lines.clear()
        shop.headers["X-Request-Id"] = REQUEST_ID
        booked = await book(shop, {"allocation_token": slot["allocation_token"]})
        assert booked.status_code == 201, booked.text
        assert booked.headers["x-request-id"] == REQUEST_ID
        parsed = [json.loads(line) for line in lines.lines]  # every line is one object
        return tenant_of(shop), booked.json()["id"], parsed


def _ids(line: dict[str, Any]) -> dict[str, Any]:
    return {k: line.get(k) for k in ("request_id", "tenant_id", "booking_id", "workflow_id")}


async def test_json_lines_carry_the_request_through_api_workflow_and_activity(
    live: FastAPI, lines: Lines
) -> None:
    tenant, booking, parsed = await _booked(live, lines)
    ids = {
        "request_id": REQUEST_ID,
        "tenant_id": tenant,
        "booking_id": booking,
        "workflow_id": f"booking-{booking}",
    }
    api = [x for x in parsed if x["logger"] == "holdfast.api.request"]
    flow = [x for x in parsed if x.get("workflow_type") == "Booking" and "activity_type" not in x]
    # (The SDK's own "Starting activity" line comes before the interceptor sets the ids.)
    step = [
        x for x in parsed if x.get("activity_type") == "claim_booking" and x["message"] == "done"
    ]
    assert api and flow and step, parsed
    for line in (api[-1], flow[0], step[0]):
        assert _ids(line) == ids, line
    assert api[-1]["message"].startswith("POST /v1/bookings 201")


async def test_a_json_line_holds_time_level_logger_and_message(live: FastAPI, lines: Lines) -> None:
    _, _, parsed = await _booked(live, lines)
    for line in parsed:
        assert {"time", "level", "service", "logger", "message"} <= set(line), line
