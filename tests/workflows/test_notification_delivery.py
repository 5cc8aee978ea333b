"""Messages leave on time and once (docs/notifications.md#delivery): a booking's life
against a real SMTP server, on the time-skipping test server, so reminders are seen to
wait for their timer's moment."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from icalendar import Calendar
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import Outbound, build_delivery_activities
from activities.calendar_access import CalendarAccess
from activities.messages import Sent
from activities.smtp import Mailer
from api.booking_gateway import run_update
from api.context import AppContext
from connections import data_converter
from contract import (
    ActorRequest,
    BookingState,
    CancelRequest,
    MessageInput,
    RescheduleRequest,
    Slot,
    delivery_task_queue,
    notification_workflow_id,
    workflow_id_for,
)
from devstack.binaries import venv_binary
from devstack.temporal import register_search_attributes
from settings import Settings
from tests.support.clients import tenant_of
from tests.support.db import every_tenant
from tests.support.histories import record
from tests.support.mail import MailServer, mail_server
from tests.support.polling import eventually
from tests.support.saga import make_clinic, message_kinds
from worker import DELIVERY_WORKFLOWS, create_worker, dispatching
from workflows.booking import BookingWorkflow

TASK_QUEUE = "messages"


class AnswerLostOnce:
    """`send_email` whose first attempt per message fails after the server accepted it,
    as when the worker dies before reporting: Temporal runs it again."""

    def __init__(self) -> None:
        self._real: Callable[[MessageInput], Any] | None = None
        self.calls: Counter[str] = Counter()

    def around(self, activities: list[Callable[..., Any]]) -> list[Callable[..., Any]]:
        """The worker's activities with this one in place of the real `send_email`."""
        self._real = next(a for a in activities if _name(a) == "send_email")
        return [self.send_email if _name(a) == "send_email" else a for a in activities]

    @activity.defn(name="send_email")
    async def send_email(self, message: MessageInput) -> Sent | None:
        assert self._real is not None
        accepted: Sent | None = await self._real(message)
        self.calls[message.notification_id] += 1
        if self.calls[message.notification_id] == 1:
            raise RuntimeError("the worker lost the server's answer")
        return accepted


@pytest.fixture(scope="module")
async def mail() -> AsyncIterator[MailServer]:
    async with mail_server() as server:
        yield server


@pytest.fixture(scope="module")
def lossy() -> AnswerLostOnce:
    return AnswerLostOnce()


@pytest.fixture(scope="module")
async def env(
    app: FastAPI, settings: Settings, mail: MailServer, lossy: AnswerLostOnce
) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        data_converter=data_converter(settings),
    )
    await register_search_attributes(environment.client)
    ctx: AppContext = app.state.ctx
    smtp = settings.model_copy(
        update={"smtp_host": mail.host, "smtp_port": mail.port, "smtp_starttls": False}
    )
    outbound = Outbound(mailer=Mailer(smtp))
    delivery = build_delivery_activities(
        ctx.engine,
        outbound,
        CalendarAccess(settings),
        environment.client,
        delivery_task_queue(TASK_QUEUE),
    )
    activities = lossy.around(list(delivery))
    with ThreadPoolExecutor(4) as pool:
        async with (
            create_worker(environment.client, ctx.engine, TASK_QUEUE, pool),
            Worker(
                environment.client,
                task_queue=delivery_task_queue(TASK_QUEUE),
                workflows=DELIVERY_WORKFLOWS,
                activities=activities,
                activity_executor=pool,
            ),
            dispatching(environment.client, ctx.engine, settings.app_database_url, TASK_QUEUE),
        ):
            yield environment
    await environment.shutdown()


def _name(fn: Callable[..., Any]) -> str:
    name = activity._Definition.must_from_callable(fn).name
    assert name is not None
    return name


def kinds(messages: list[EmailMessage], booking_id: str) -> list[str]:
    return [str(m["X-Holdfast-Kind"]) for m in messages if m["X-Holdfast-Booking"] == booking_id]


def invitation(message: EmailMessage) -> Calendar:
    [part] = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    data = part.get_payload(decode=True)
    assert isinstance(data, bytes)
    return Calendar.from_ical(data)


async def arrived(mail: MailServer, booking_id: str, kind: str, count: int = 1) -> EmailMessage:
    async def mine() -> list[EmailMessage]:
        return [m for m in mail.messages if m["X-Holdfast-Booking"] == booking_id]

    found = await eventually(
        mine, lambda ms: sum(m["X-Holdfast-Kind"] == kind for m in ms) >= count, seconds=20
    )
    return [m for m in found if m["X-Holdfast-Kind"] == kind][-1]


async def test_a_paid_bookings_life_sends_each_email_once_even_when_a_send_is_retried(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    mail: MailServer,
    lossy: AnswerLostOnce,
) -> None:
    clinic = await make_clinic(
        api,
        tenant_of(api),
        code=f"paid-{uuid.uuid4().hex[:6]}",
        price={"amount": 6000, "currency": "EUR"},
        reminders_minutes_before=[1440, 60],
    )
    start = await env.get_current_time() + timedelta(days=3)
    request = clinic.request(start)
    handle: WorkflowHandle[BookingWorkflow, BookingState] = await env.client.start_workflow(
        BookingWorkflow.run, request, id=workflow_id_for(request.booking_id), task_queue=TASK_QUEUE
    )
    booking = request.booking_id
    await eventually(lambda: handle.query(BookingWorkflow.state), lambda s: bool(s.payment))
    await run_update(handle, BookingWorkflow.mark_paid, ActorRequest("desk"))
    confirmed = await arrived(mail, booking, "confirmed")
    new = Slot(start + timedelta(hours=2), start + timedelta(hours=3), request.slot.resource_ids)
    await run_update(handle, BookingWorkflow.reschedule, RescheduleRequest(new, "desk"))
    rescheduled = await arrived(mail, booking, "rescheduled")

    await env.sleep(timedelta(days=2, hours=2))  # past one day before the new start
    await arrived(mail, booking, "reminder")
    await env.sleep(timedelta(hours=23))  # past one hour before
    await arrived(mail, booking, "reminder", count=2)
    await run_update(handle, BookingWorkflow.cancel, CancelRequest("ill", "desk"))
    cancelled = await arrived(mail, booking, "cancelled")

    ids = [
        str(m["Message-ID"]).strip("<>").split("@")[0]
        for m in mail.messages
        if m["X-Holdfast-Booking"] == booking
    ]

    async def retried() -> list[int]:
        return [lossy.calls[i] for i in ids]

    await eventually(retried, lambda calls: calls == [2] * 5)  # each retry found it sent
    sending = env.client.get_workflow_handle(notification_workflow_id(ids[0]))
    assert await sending.result() == "done"  # its retry found it sent already
    await record(sending, "notification_retried_after_accept")
    assert sorted(kinds(mail.messages, booking)) == sorted(
        ["confirmed", "rescheduled", "reminder", "reminder", "cancelled"]
    )
    assert len({m["Message-ID"] for m in mail.messages if m["X-Holdfast-Booking"] == booking}) == 5
    first, moved, gone = (invitation(m) for m in (confirmed, rescheduled, cancelled))
    uids = {str(c.walk("VEVENT")[0]["UID"]) for c in (first, moved, gone)}
    assert len(uids) == 1
    sequences = [int(str(c.walk("VEVENT")[0]["SEQUENCE"])) for c in (first, moved, gone)]
    assert sequences == sorted(set(sequences))
    assert [str(c["METHOD"]) for c in (first, moved, gone)] == ["REQUEST", "REQUEST", "CANCEL"]


async def test_a_reminder_waits_for_its_timers_moment(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    app: FastAPI,
    mail: MailServer,
) -> None:
    clinic = await make_clinic(
        api, tenant_of(api), code=f"free-{uuid.uuid4().hex[:6]}", reminders_minutes_before=[60]
    )
    start = await env.get_current_time() + timedelta(days=1)
    request = clinic.request(start)
    await env.client.start_workflow(
        BookingWorkflow.run, request, id=workflow_id_for(request.booking_id), task_queue=TASK_QUEUE
    )
    await arrived(mail, request.booking_id, "confirmed")
    await env.sleep(timedelta(hours=22, minutes=58))  # two minutes before the reminder
    ctx: AppContext = app.state.ctx
    assert await message_kinds(every_tenant(ctx), request.booking_id) == ["confirmed"]
    assert kinds(mail.messages, request.booking_id) == ["confirmed"]
    await env.sleep(timedelta(minutes=3))
    reminder = await arrived(mail, request.booking_id, "reminder")
    assert reminder["X-Holdfast-Kind"] == "reminder"
