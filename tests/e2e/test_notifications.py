"""Customer messages end to end: a booking made through the API reaches a real SMTP
server (and the Twilio stand-in), in the customer's language and time zone, and its
notifications list says what became of each message (docs/notifications.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from activities import Outbound
from activities.sms_providers import TwilioSms
from activities.smtp import Mailer
from devstack.mail import MailFolder
from devstack.sms import SENT, build_app, new_account_sid
from devstack.stand_in import serve
from settings import Settings
from tests.support.api import assert_error, open_all_day, service
from tests.support.bookings import first_slots
from tests.support.clients import fresh_tenant
from tests.support.live import live_app
from tests.support.mail import MailServer, mail_server
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

SID, TOKEN, FROM = new_account_sid(), "sms-token", "+15005550006"


class RefusingNobody(MailFolder):
    """Takes mail for everyone but `nobody@`, whose address it refuses for good (550)."""

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.startswith("nobody@"):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"


@pytest.fixture(scope="module")
async def mail() -> AsyncIterator[MailServer]:
    async with mail_server(handler=RefusingNobody(None, keep=True)) as server:
        yield server


@dataclass(frozen=True)
class Texts:
    """The Twilio stand-in: its address, and the messages it took."""

    app: web.Application
    base: str

    @property
    def sent(self) -> list[dict[str, Any]]:
        return self.app[SENT]


@pytest.fixture(scope="module")
async def texts() -> AsyncIterator[Texts]:
    app = build_app(SID, TOKEN)
    runner = await serve(app, port=0)
    yield Texts(app, "http://{}:{}".format(*runner.addresses[0][:2]))
    await runner.cleanup()


@pytest.fixture(scope="module")
async def live(
    settings: Settings,
    temporal_dev_server: WorkflowEnvironment,
    mail: MailServer,
    texts: Texts,
) -> AsyncIterator[FastAPI]:
    smtp = settings.model_copy(
        update={"smtp_host": mail.host, "smtp_port": mail.port, "smtp_starttls": False}
    )
    outbound = Outbound(mailer=Mailer(smtp), sms=TwilioSms(SID, TOKEN, FROM, texts.base))
    async with live_app(settings, temporal_dev_server, "messages-e2e", outbound=outbound) as app:
        yield app


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        await open_all_day(client)
        await service(client, code="free", name="Physiotherapie")
        yield client


async def booked(shop: httpx.AsyncClient, customer: dict[str, Any]) -> dict[str, Any]:
    slot = (await first_slots(shop, "free"))[0]
    answer = await shop.post(
        "/v1/bookings",
        json={"allocation_token": slot["allocation_token"], "customer": customer},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status_code == 201, answer.text
    booking: dict[str, Any] = answer.json()
    return booking


async def email_of(mail: MailServer, booking_id: str, kind: str) -> EmailMessage:
    async def mine() -> list[EmailMessage]:
        return [
            m
            for m in mail.messages
            if m["X-Holdfast-Booking"] == booking_id and m["X-Holdfast-Kind"] == kind
        ]

    [message] = await eventually(mine, bool, seconds=15)
    return message


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


async def test_a_booking_sends_its_confirmation_with_an_invitation(
    shop: httpx.AsyncClient, mail: MailServer
) -> None:
    booking = await booked(shop, {"name": "Grace Hopper", "email": "grace@example.test"})
    message = await email_of(mail, booking["id"], "confirmed")
    assert message["To"] == "Grace Hopper <grace@example.test>"
    assert [p.get_content_type() for p in message.walk()].count("text/calendar") == 1

    async def listed() -> list[dict[str, Any]]:
        answer = await shop.get(f"/v1/bookings/{booking['id']}/notifications")
        assert answer.status_code == 200, answer.text
        items: list[dict[str, Any]] = answer.json()["items"]
        return items

    [item] = await eventually(listed, lambda items: items[0]["status"] == "sent")
    assert item["channel"] == "email" and item["kind"] == "confirmed"
    assert item["attempts"] == 1 and item["provider_id"] and item["dispatched"]
    assert message["Message-ID"] == f"<{item['id']}@holdfast>"


async def test_a_german_customer_reads_the_time_in_their_zone_and_german_dates(
    shop: httpx.AsyncClient, mail: MailServer
) -> None:
    customer = {
        "name": "Greta",
        "email": "greta@example.test",
        "locale": "de-DE",
        "timezone": "Asia/Tokyo",
    }
    booking = await booked(shop, customer)
    body = text_of(await email_of(mail, booking["id"], "confirmed"))
    start = datetime.fromisoformat(booking["start"]).astimezone(ZoneInfo("Asia/Tokyo"))
    months = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August"]
    months += ["September", "Oktober", "November", "Dezember"]
    assert f"{start.day}. {months[start.month - 1]} {start.year}" in body
    assert start.strftime("%H:%M") in body and "Asia/Tokyo" in body
    assert "Physiotherapie" in body


async def test_a_text_message_goes_only_to_a_customer_who_opted_in(
    shop: httpx.AsyncClient, mail: MailServer, texts: Texts
) -> None:
    opted = await booked(
        shop,
        {
            "name": "Ada",
            "email": "ada@example.test",
            "phone": "+49 151 2345 6789",
            "sms_opt_in": True,
        },
    )
    silent = await booked(
        shop, {"name": "Bea", "email": "bea@example.test", "phone": "+4915123456780"}
    )
    await email_of(mail, silent["id"], "confirmed")

    async def sent() -> list[dict[str, Any]]:
        return [m for m in texts.sent if m["to"] in ("+4915123456789", "+4915123456780")]

    [text] = await eventually(sent, bool)
    assert text["to"] == "+4915123456789" and text["from"] == FROM
    assert opted["customer"]["phone"] == "+4915123456789"  # stored in E.164
    answer = await shop.get(f"/v1/bookings/{opted['id']}/notifications")
    assert sorted(i["channel"] for i in answer.json()["items"]) == ["email", "sms"]


@pytest.mark.parametrize(
    ("customer", "field"),
    [
        ({"phone": "0151 2345"}, "phone"),
        ({"sms_opt_in": True}, "customer"),
        ({"locale": "xx-!!"}, "locale"),
        ({"locale": "zz"}, "locale"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
    ],
)
async def test_a_customer_unreachable_as_asked_is_refused(
    shop: httpx.AsyncClient, customer: dict[str, Any], field: str
) -> None:
    slot = (await first_slots(shop, "free"))[0]
    answer = await shop.post(
        "/v1/bookings",
        json={
            "allocation_token": slot["allocation_token"],
            "customer": {"name": "Cy", "email": "cy@example.test", **customer},
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    error = assert_error(answer, 422, "validation_error")
    assert field in str(error["details"])


async def test_a_message_the_mail_server_refuses_for_good_is_failed_at_once(
    shop: httpx.AsyncClient,
) -> None:
    booking = await booked(shop, {"name": "No One", "email": "nobody@example.test"})

    async def listed() -> dict[str, Any]:
        answer = await shop.get(f"/v1/bookings/{booking['id']}/notifications")
        items: list[dict[str, Any]] = answer.json()["items"]
        return items[0]

    failed = await eventually(listed, lambda n: n["status"] != "queued")
    assert failed["status"] == "failed" and failed["attempts"] == 1
    assert "550" in failed["last_error"] and "nobody" not in failed["last_error"]
