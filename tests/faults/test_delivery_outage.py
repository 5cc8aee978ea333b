"""Fault: the mail server and a webhook receiver both down (nothing listens on their
ports) while bookings are made and cancelled, then back (docs/operations.md#fault-tests).
A message or a webhook delivery may be late, never lost from view: while they are away
each waits with its attempts and last error recorded, and once they are back each is
delivered, once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from invariants import Report
from settings import Settings
from tests.support.faults import Endpoint, Shop, shop, verdict
from tests.support.live import live_app, served
from tests.support.mail import MailServer
from tests.support.polling import eventually
from tests.support.stripe import free_port

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
QUEUE = "faults-delivery"
DOWN_SECONDS = 3  # once every message and delivery has failed visibly


@dataclass
class Outage:
    app: FastAPI
    bookings: list[str]
    failing: tuple[list[dict[str, Any]], list[dict[str, Any]]]  # messages, deliveries
    report_while_down: Report
    after: tuple[list[dict[str, Any]], list[dict[str, Any]]]
    mail: MailServer
    endpoint: Endpoint
    report: Report


async def _messages(clinic: Shop, bookings: list[str]) -> list[dict[str, Any]]:
    found = []
    for booking_id in bookings:
        answer = await clinic.http.get(f"/v1/bookings/{booking_id}/notifications")
        assert answer.status_code == 200, answer.text
        found += answer.json()["items"]
    return found


async def _deliveries(clinic: Shop, endpoint_id: str) -> list[dict[str, Any]]:
    answer = await clinic.http.get(f"/v1/webhook-endpoints/{endpoint_id}/deliveries")
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def _failing(items: list[dict[str, Any]], pending: str) -> bool:
    return bool(items) and all(i["status"] == pending and i["last_error"] for i in items)


@pytest.fixture(scope="module")
async def outage(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[Outage]:
    """Both down before the module's bookings: two confirmed, one of them then
    cancelled; both back DOWN_SECONDS after every message and delivery failed once."""
    mail_port = free_port()
    smtp = settings.model_copy(
        update={
            "smtp_host": "127.0.0.1",
            "smtp_port": mail_port,
            "smtp_starttls": False,
            "webhook_allow_private_targets": True,
        }
    )
    mail, endpoint = MailServer(), Endpoint()
    async with (
        live_app(smtp, temporal_dev_server, QUEUE) as app,
        served(app) as url,
        shop(url) as clinic,
    ):
        subscribed = await clinic.http.post(
            "/v1/webhook-endpoints", json={"url": endpoint.url, "events": ["*"]}
        )
        assert subscribed.status_code == 201, subscribed.text
        endpoint_id = subscribed.json()["id"]
        kept, dropped = await clinic.booked("free", 0), await clinic.booked("free", 1)
        cancelled = await clinic.http.post(f"/v1/bookings/{dropped['id']}/cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
        bookings = [kept["id"], dropped["id"]]

        async def state() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
            return await _messages(clinic, bookings), await _deliveries(clinic, endpoint_id)

        failing = await eventually(
            state,
            lambda s: (
                len(s[0]) == 3  # confirmed twice, cancelled once
                and _failing(s[0], "queued")
                and len(s[1]) == 3
                and _failing(s[1], "pending")
            ),
            seconds=30,
            every=0.2,
        )
        report_while_down = await verdict(app, clinic.tenant_id, seconds=0)
        await asyncio.sleep(DOWN_SECONDS)
        await asyncio.to_thread(mail.start, 5, mail_port)
        await endpoint.up()
        try:
            after = await eventually(
                state,
                lambda s: (
                    all(m["status"] == "sent" for m in s[0])
                    and all(d["status"] == "delivered" for d in s[1])
                ),
                seconds=60,
                every=0.5,
            )
            report = await verdict(app, clinic.tenant_id)
            yield Outage(app, bookings, failing, report_while_down, after, mail, endpoint, report)
        finally:
            await endpoint.down()
            await asyncio.to_thread(mail.stop)


def test_while_they_are_down_every_message_and_delivery_fails_visibly(outage: Outage) -> None:
    """Each is still trying, with its last attempt's error recorded, which is what the
    invariants ask of a delivery not made yet: the check holds during the outage too."""
    messages, deliveries = outage.failing
    assert all(m["attempts"] >= 1 for m in messages)
    assert all(d["attempt_count"] >= 1 and d["attempts"] for d in deliveries)
    assert outage.report_while_down.ok, outage.report_while_down.lines()


def test_once_back_every_message_is_sent_once(outage: Outage) -> None:
    messages, _ = outage.after
    assert all(m["attempts"] >= 2 and m["last_error"] is None for m in messages), messages
    booked = sorted(m["X-Holdfast-Booking"] for m in outage.mail.messages)
    assert booked == sorted([outage.bookings[0], *[outage.bookings[1]] * 2])


def test_once_back_every_webhook_is_delivered_once(outage: Outage) -> None:
    _, deliveries = outage.after
    assert all(d["attempt_count"] >= 2 for d in deliveries), deliveries
    taken = outage.endpoint.receiver.delivered()
    assert len({r.headers["webhook-id"] for r in taken}) == len(taken) == len(deliveries)


def test_every_invariant_holds_after_the_outage(outage: Outage) -> None:
    assert outage.report.ok, outage.report.lines()
