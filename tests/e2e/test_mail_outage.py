"""A mail server that is down delays messages, visibly, and loses none: the message waits
`queued` with its attempts and last error, and is sent once the server is back
(docs/notifications.md#delivery)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from activities import Outbound
from activities.smtp import Mailer
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import fresh_tenant
from tests.support.live import live_app
from tests.support.mail import mail_server
from tests.support.polling import eventually
from tests.support.stripe import free_port

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

PORT = free_port()


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    smtp = settings.model_copy(
        update={"smtp_host": "127.0.0.1", "smtp_port": PORT, "smtp_starttls": False}
    )
    outbound = Outbound(mailer=Mailer(smtp))
    async with live_app(settings, temporal_dev_server, "mail-outage", outbound=outbound) as app:
        yield app


async def test_a_message_waits_visibly_while_the_mail_server_is_down_then_goes_once(
    live: FastAPI,
) -> None:
    async with fresh_tenant(live) as shop:
        await open_all_day(shop)
        await service(shop, code="free")
        slot = (await first_slots(shop, "free"))[0]
        booked = await book(shop, {"allocation_token": slot["allocation_token"]})
        assert booked.status_code == 201, booked.text
        booking = booked.json()["id"]

        async def listed() -> dict[str, Any]:
            answer = await shop.get(f"/v1/bookings/{booking}/notifications")
            assert answer.status_code == 200, answer.text
            items: list[dict[str, Any]] = answer.json()["items"]
            return items[0]

        waiting = await eventually(listed, lambda n: n["last_error"] is not None)
        assert waiting["status"] == "queued" and waiting["attempts"] >= 1
        assert waiting["dispatched"] is True

        async with mail_server(port=PORT) as mail:  # the server is back
            sent = await eventually(listed, lambda n: n["status"] == "sent", seconds=30)
            [message] = await mail.wait_for(1)
    assert sent["attempts"] >= 2 and sent["last_error"] is None
    assert message["X-Holdfast-Booking"] == booking
