"""Durable timers of the booking saga on the time-skipping test server: hold expiry,
reminders, completion (docs/lifecycle.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.calendar import CalendarCall
from activities.payments import Authorization, PayAtVenue
from api.booking_gateway import run_update
from api.context import AppContext
from connections import data_converter
from contract import (
    ActorRequest,
    BookingRequest,
    BookingState,
    CancelRequest,
    Payment,
    PaymentEvent,
    RescheduleRequest,
    workflow_id_for,
)
from db.sessions import SessionFactory
from devstack.binaries import venv_binary
from devstack.temporal import register_search_attributes
from settings import Settings
from tests.support.clients import tenant_of
from tests.support.db import every_tenant
from tests.support.histories import record
from tests.support.polling import eventually
from tests.support.saga import (
    Clinic,
    allocation_statuses,
    booking_row,
    make_clinic,
    message_kinds,
    webhook_types,
)
from worker import create_worker
from workflows.booking import BookingWorkflow

TASK_QUEUE = "timers"


@pytest.fixture(scope="module")
async def env(app: FastAPI, settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        data_converter=data_converter(settings),
    )
    await register_search_attributes(environment.client)
    ctx: AppContext = app.state.ctx
    with ThreadPoolExecutor(4) as pool:
        async with create_worker(environment.client, ctx.engine, TASK_QUEUE, pool):
            yield environment
    await environment.shutdown()


@pytest.fixture
def sessions(app: FastAPI) -> SessionFactory:
    ctx: AppContext = app.state.ctx
    return every_tenant(ctx)


async def start(
    env: WorkflowEnvironment, request: BookingRequest
) -> WorkflowHandle[BookingWorkflow, BookingState]:
    return await env.client.start_workflow(
        BookingWorkflow.run,
        request,
        id=workflow_id_for(request.booking_id),
        task_queue=TASK_QUEUE,
    )


async def test_an_unpaid_hold_expires_and_releases_the_slot(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    clinic = await make_clinic(
        api, tenant_of(api), price={"amount": 5000, "currency": "EUR"}, hold_seconds=600
    )
    request = clinic.request(await env.get_current_time() + timedelta(days=2))
    handle = await start(env, request)
    final = await handle.result()
    await record(handle, "hold_expired")
    assert final.status == "expired"
    assert (await booking_row(sessions, request.booking_id)).status == "expired"
    assert await allocation_statuses(sessions, request.booking_id) == ["released", "released"]
    assert final.payment is not None and final.payment.status == "canceled"


async def reminders(sessions: SessionFactory, booking_id: str) -> list[str]:
    return [kind for kind in await message_kinds(sessions, booking_id) if kind == "reminder"]


async def free_clinic(api: httpx.AsyncClient, reminders_before: list[int]) -> Clinic:
    return await make_clinic(
        api,
        tenant_of(api),
        code=f"free-{uuid.uuid4().hex[:8]}",
        reminders_minutes_before=reminders_before,
    )


async def test_reminders_fire_at_each_offset_before_the_start(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    clinic = await free_clinic(api, [1440, 60])
    request = clinic.request(await env.get_current_time() + timedelta(days=3))
    handle = await start(env, request)
    await env.sleep(timedelta(days=2, minutes=-1))
    assert (await handle.query(BookingWorkflow.state)).reminders_sent == []
    await env.sleep(timedelta(minutes=2))  # one day before the start
    assert (await handle.query(BookingWorkflow.state)).reminders_sent == [1440]
    await env.sleep(timedelta(hours=23))  # just past one hour before
    assert (await handle.query(BookingWorkflow.state)).reminders_sent == [1440, 60]
    assert await reminders(sessions, request.booking_id) == ["reminder", "reminder"]


async def test_no_reminder_fires_after_cancel(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    clinic = await free_clinic(api, [1440, 60])
    request = clinic.request(await env.get_current_time() + timedelta(days=3))
    handle = await start(env, request)
    await env.sleep(timedelta(days=2, minutes=1))
    cancelled = await run_update(
        handle, BookingWorkflow.cancel, CancelRequest(reason="ill", actor="test")
    )
    assert cancelled.status == "cancelled"
    final = await handle.result()
    await record(handle, "reminder_then_cancel")
    assert final.reminders_sent == [1440] and final.status == "cancelled"
    assert await reminders(sessions, request.booking_id) == ["reminder"]
    assert await allocation_statuses(sessions, request.booking_id) == ["released", "released"]


async def test_cancel_after_the_start_refunds_nothing(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
) -> None:
    clinic = await make_clinic(
        api,
        tenant_of(api),
        code=f"late-{uuid.uuid4().hex[:8]}",
        price={"amount": 5000, "currency": "EUR"},
        cancellation={"free_until_hours_before": 24, "late_refund_percent": 50},
    )
    request = clinic.request(await env.get_current_time() + timedelta(days=2))
    handle = await start(env, request)
    await until_authorised(handle)
    paid = await run_update(handle, BookingWorkflow.mark_paid, ActorRequest(actor="test"))
    assert paid.status == "confirmed" and paid.payment is not None
    assert paid.payment.captured_amount == 5000
    await env.sleep(timedelta(days=2, minutes=10))  # ten minutes into the booking
    cancelled = await run_update(
        handle, BookingWorkflow.cancel, CancelRequest(reason="late", actor="test")
    )
    assert cancelled.status == "cancelled"
    assert cancelled.payment is not None and cancelled.payment.refunded_amount == 0


async def test_reschedule_re_arms_the_reminders(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    clinic = await free_clinic(api, [60])
    start_at = await env.get_current_time() + timedelta(days=1)
    request = clinic.request(start_at)
    handle = await start(env, request)
    await env.sleep(timedelta(hours=23, minutes=1))  # the first reminder fired
    assert (await handle.query(BookingWorkflow.state)).reminders_sent == [60]
    moved = clinic.request(start_at + timedelta(days=2)).slot
    state = await run_update(
        handle, BookingWorkflow.reschedule, RescheduleRequest(slot=moved, actor="test")
    )
    assert state.slot.start == moved.start and state.reminders_sent == []
    await env.sleep(timedelta(days=2))  # past the new start minus one hour
    assert (await handle.query(BookingWorkflow.state)).reminders_sent == [60]
    assert await reminders(sessions, request.booking_id) == ["reminder", "reminder"]
    row = await booking_row(sessions, request.booking_id)
    assert row.start_at == moved.start and row.version == 2
    await record(handle, "rescheduled_reminders_rearmed")


async def test_a_confirmed_booking_completes_after_its_end(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    clinic = await free_clinic(api, [])
    request = clinic.request(await env.get_current_time() + timedelta(hours=5))
    handle = await start(env, request)
    assert (await handle.result()).status == "completed"
    await record(handle, "completed")
    assert (await booking_row(sessions, request.booking_id)).status == "completed"
    assert await allocation_statuses(sessions, request.booking_id) == ["confirmed", "confirmed"]
    assert await webhook_types(sessions, request.booking_id) == [
        "booking.confirmed",
        "booking.completed",
    ]


async def test_a_free_booking_without_calendars_runs_on_local_activities_and_timers(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    sessions: SessionFactory,
) -> None:
    """Its confirmation notice is written with the claim and none of its resources has a
    calendar: nothing goes through the task queue, so a confirmation needs no workflow
    task after the one that answered the claim."""
    clinic = await free_clinic(api, [60])
    request = clinic.request(await env.get_current_time() + timedelta(hours=5))
    handle = await start(env, request)
    assert (await handle.result()).status == "completed"
    events = [event async for event in handle.fetch_history_events()]
    assert not [e for e in events if e.HasField("activity_task_scheduled_event_attributes")]
    assert await message_kinds(sessions, request.booking_id) == ["confirmed", "reminder"]
    assert await webhook_types(sessions, request.booking_id) == [
        "booking.confirmed",
        "booking.completed",
    ]


class CalendarDown:
    """Calendar requests that always fail, as if the export could never be handed on."""

    async def connected(self, resource_ids: list[str]) -> bool:
        return True

    async def request(self, call: CalendarCall, *, remove: bool) -> None:
        raise RuntimeError("calendar unreachable")


async def test_a_side_effect_failing_for_good_is_recorded_and_the_paid_booking_stands(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    app: FastAPI,
    sessions: SessionFactory,
) -> None:
    clinic = await make_clinic(api, tenant_of(api), price={"amount": 4000, "currency": "EUR"})
    request = clinic.request(await env.get_current_time() + timedelta(days=2))
    ctx: AppContext = app.state.ctx
    with ThreadPoolExecutor(2) as pool:
        async with create_worker(
            env.client, ctx.engine, "calendar-down", pool, calendars=CalendarDown()
        ):
            handle = await env.client.start_workflow(
                BookingWorkflow.run,
                request,
                id=workflow_id_for(request.booking_id),
                task_queue="calendar-down",
            )
            await until_authorised(handle)
            await run_update(handle, BookingWorkflow.mark_paid, ActorRequest("test"))
            await env.sleep(timedelta(hours=2))  # past every calendar retry
            state = await handle.query(BookingWorkflow.state)
    assert state.status == "confirmed" and state.payment is not None
    assert state.payment.refunded_amount == 0
    assert state.side_effects["calendar"].startswith("failed")
    assert "calendar unreachable" in state.side_effects["calendar"]
    row = await booking_row(sessions, request.booking_id)
    assert row.status == "confirmed"
    assert row.side_effects["calendar"] == state.side_effects["calendar"]


async def until_authorised(handle: WorkflowHandle[BookingWorkflow, BookingState]) -> Payment:
    state = await eventually(lambda: handle.query(BookingWorkflow.state), lambda s: bool(s.payment))
    assert state.payment is not None
    return state.payment


class Cards(PayAtVenue):
    """A card provider in-process: an intent per booking, settled like cash."""

    name = "cards"

    def authorize(
        self, booking_id: str, amount: int, currency: str, owner: str = "booking"
    ) -> Authorization:
        intent = f"pi_{booking_id}"
        payment = Payment(self.name, "requires_payment_method", amount, currency, intent)
        return Authorization(payment, f"{intent}_secret")


class CardsRefusingCapture(Cards):
    """...that refuses the capture, as Stripe does for an intent no longer capturable."""

    def capture(self, booking_id: str, payment: Payment) -> Payment:
        raise ApplicationError("this intent cannot be captured", non_retryable=True)


class CardsRefusingAll(CardsRefusingCapture):
    """...and the cancel too, as for an intent someone cancelled in Stripe's dashboard."""

    def cancel(self, booking_id: str, payment: Payment) -> Payment:
        raise ApplicationError("this intent cannot be cancelled", non_retryable=True)


class CardsRefusingRefund(Cards):
    """...that refuses every refund, as Stripe does for a charge refunded by hand already."""

    def refund(self, booking_id: str, payment: Payment, amount: int, attempt: int) -> Payment:
        raise ApplicationError("this charge is refunded already", non_retryable=True)


@asynccontextmanager
async def card_booking(
    env: WorkflowEnvironment, app: FastAPI, api: httpx.AsyncClient, cards: Cards, **service: Any
) -> AsyncIterator[tuple[WorkflowHandle[BookingWorkflow, BookingState], Payment]]:
    """A priced booking, held and its card intent made, on a worker with these `cards`."""
    clinic = await make_clinic(
        api, tenant_of(api), price={"amount": 3000, "currency": "EUR"}, **service
    )
    request = clinic.request(await env.get_current_time() + timedelta(days=2))
    ctx: AppContext = app.state.ctx
    with ThreadPoolExecutor(2) as pool:
        async with create_worker(env.client, ctx.engine, "cards", pool, cards=cards):
            handle = await env.client.start_workflow(
                BookingWorkflow.run,
                request,
                id=workflow_id_for(request.booking_id),
                task_queue="cards",
            )
            yield handle, await until_authorised(handle)


async def refused_capture(
    env: WorkflowEnvironment, app: FastAPI, api: httpx.AsyncClient, cards: Cards
) -> BookingState:
    async with card_booking(env, app, api, cards) as (handle, payment):
        authorised = PaymentEvent("evt_1", "authorized", str(payment.intent_id))
        await handle.signal(BookingWorkflow.payment_event, authorised)
        state = await handle.result()
        if isinstance(cards, CardsRefusingAll):
            await record(handle, "card_capture_and_cancel_refused")
    return state


async def test_a_refused_capture_undoes_the_booking(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    app: FastAPI,
    sessions: SessionFactory,
) -> None:
    state = await refused_capture(env, app, api, CardsRefusingCapture())
    assert state.status == "failed" and state.payment is not None
    assert state.payment.status == "canceled"
    assert "cannot be captured" in (state.error or "")
    assert (await booking_row(sessions, state.booking_id)).status == "failed"
    assert await allocation_statuses(sessions, state.booking_id) == ["released", "released"]
    assert (await message_kinds(sessions, state.booking_id))[-1] == "failed"


async def test_an_undo_step_refused_for_good_is_recorded_and_the_rest_still_runs(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    app: FastAPI,
    sessions: SessionFactory,
) -> None:
    state = await refused_capture(env, app, api, CardsRefusingAll())
    assert state.status == "failed"
    assert "cannot be cancelled" in state.side_effects["undo:void_payment"]
    row = await booking_row(sessions, state.booking_id)
    assert row.status == "failed" and "undo:void_payment" in row.side_effects
    assert await allocation_statuses(sessions, state.booking_id) == ["released", "released"]


async def test_a_refund_refused_for_good_is_recorded_and_the_cancel_goes_on(
    env: WorkflowEnvironment,
    api: httpx.AsyncClient,
    app: FastAPI,
    sessions: SessionFactory,
) -> None:
    async with card_booking(env, app, api, CardsRefusingRefund()) as (handle, payment):
        authorised = PaymentEvent("evt_1", "authorized", str(payment.intent_id))
        await handle.signal(BookingWorkflow.payment_event, authorised)
        await until_status(handle, "confirmed")
        cancelled = await run_update(
            handle, BookingWorkflow.cancel, CancelRequest(reason="ill", actor="test")
        )
        await handle.result()
        await record(handle, "refund_refused_on_cancel")
    assert cancelled.status == "cancelled" and cancelled.payment is not None
    assert cancelled.payment.refunded_amount == 0
    assert "refunded already" in cancelled.side_effects["payment:refund"]
    assert (await booking_row(sessions, cancelled.booking_id)).status == "cancelled"
    assert await allocation_statuses(sessions, cancelled.booking_id) == ["released", "released"]


async def until_status(
    handle: WorkflowHandle[BookingWorkflow, BookingState], status: str
) -> BookingState:
    return await eventually(
        lambda: handle.query(BookingWorkflow.state), lambda s: s.status == status
    )


async def test_a_service_may_let_the_customer_try_another_card_after_a_decline(
    env: WorkflowEnvironment, api: httpx.AsyncClient, app: FastAPI
) -> None:
    async with card_booking(env, app, api, Cards(), retry_declined_payment=True) as (
        handle,
        payment,
    ):
        intent = str(payment.intent_id)
        declined = PaymentEvent("evt_declined", "failed", intent, "Your card was declined.")
        await handle.signal(BookingWorkflow.payment_event, declined)
        assert (await handle.query(BookingWorkflow.state)).status == "pending_payment"
        await handle.signal(
            BookingWorkflow.payment_event, PaymentEvent("evt_ok", "authorized", intent)
        )
        state = await until_status(handle, "confirmed")
        assert state.payment is not None
        assert state.payment.captured_amount == 3000
