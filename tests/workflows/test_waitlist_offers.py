"""The waitlist's offer chain on the time-skipping server (docs/waitlist.md): two entries
wait for a taken slot; a cancel offers it to the first; her offer lapses and passes to
the second, who accepts and gets the booking; the slot is offered to nobody else."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.booking_gateway import occurrence_answer, run_update
from api.context import AppContext
from api.slots import slot_search
from connections import data_converter, libpq_url
from contract import (
    ActorRequest,
    CancelRequest,
    WaitlistRequest,
    waitlist_workflow_id,
    workflow_id_for,
)
from db.models import Service, WaitlistEntry
from db.sessions import SessionFactory, Sessions
from db.tenancy import across_tenants
from db.waitlist import offer_id
from devstack.binaries import venv_binary
from devstack.temporal import register_search_attributes
from settings import Settings
from tests.support.clients import tenant_of
from tests.support.db import every_tenant
from tests.support.histories import record
from tests.support.polling import eventually
from tests.support.saga import Clinic, booking_row, make_clinic
from waitlist_dispatch import WaitlistDispatcher
from worker import create_worker
from workflows.booking import BookingWorkflow
from workflows.waitlist_entry import WaitlistEntryWorkflow

TASK_QUEUE = "waitlist-timers"
OFFER_MINUTES = 30


@pytest.fixture(scope="module")
async def env(app: FastAPI, settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping server, a worker, and the waitlist's dispatcher asking entries."""
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        data_converter=data_converter(settings),
    )
    await register_search_attributes(environment.client)
    ctx: AppContext = app.state.ctx
    dispatcher = WaitlistDispatcher(
        environment.client,
        Sessions.on(ctx.engine, across_tenants("waitlist")),
        libpq_url(settings.app_database_url),
    )
    stop = asyncio.Event()
    with ThreadPoolExecutor(4) as pool:
        async with create_worker(environment.client, ctx.engine, TASK_QUEUE, pool):
            asking = asyncio.create_task(dispatcher.run(stop))
            yield environment
            stop.set()
            await asking
    await environment.shutdown()


@pytest.fixture
def sessions(app: FastAPI) -> SessionFactory:
    ctx: AppContext = app.state.ctx
    return every_tenant(ctx)


async def _join(
    env: WorkflowEnvironment, sessions: SessionFactory, clinic: Clinic, start: datetime, name: str
) -> str:
    """An entry for the hour at `start`, in line from now, and its workflow, as
    `POST /v1/waitlist` makes them."""
    entry_id = str(uuid.uuid4())
    async with sessions() as db:
        db.add(
            WaitlistEntry(
                id=uuid.UUID(entry_id),
                tenant_id=uuid.UUID(clinic.tenant_id),
                service_id=uuid.UUID(clinic.service["id"]),
                range_start=start,
                range_end=start + timedelta(minutes=1),
                customer={"name": name, "email": f"{name.lower()}@example.test"},
                workflow_id=waitlist_workflow_id(entry_id),
            )
        )
        await db.commit()
    await env.client.start_workflow(
        WaitlistEntryWorkflow.run,
        WaitlistRequest(entry_id, clinic.tenant_id, clinic.service["id"]),
        id=waitlist_workflow_id(entry_id),
        task_queue=TASK_QUEUE,
        start_signal="slots_freed",
    )
    return entry_id


async def _status(sessions: SessionFactory, entry_id: str) -> str:
    async with sessions() as db:
        entry = await db.get(WaitlistEntry, uuid.UUID(entry_id))
        assert entry is not None
        return entry.status


async def _offered(sessions: SessionFactory, entry_id: str) -> None:
    await eventually(lambda: _status(sessions, entry_id), lambda s: s == "offered")


async def _free_to_anyone(app: FastAPI, clinic: Clinic, start: datetime) -> bool:
    """Whether availability offers the hour at `start`, as the API searches it."""
    ctx: AppContext = app.state.ctx
    async with every_tenant(ctx)() as db:
        service = await db.get(Service, uuid.UUID(clinic.service["id"]))
        assert service is not None
        search = await slot_search(
            db, uuid.UUID(clinic.tenant_id), service, start, start + timedelta(minutes=1)
        )
    return any(s.start == int(start.timestamp()) and s.bookable for s in search.run())


async def test_a_lapsed_offer_passes_to_the_next_who_accepts(
    env: WorkflowEnvironment, app: FastAPI, api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    clinic = await make_clinic(api, tenant_of(api), offer_minutes=OFFER_MINUTES)
    hour = (await env.get_current_time()).replace(minute=0, second=0, microsecond=0)
    request = clinic.request(hour + timedelta(days=2))  # on the service's hourly grid
    start = request.slot.start
    booking = await env.client.start_workflow(
        BookingWorkflow.run, request, id=workflow_id_for(request.booking_id), task_queue=TASK_QUEUE
    )
    assert (await occurrence_answer(env.client, TASK_QUEUE, request.booking_id)).status
    first = await _join(env, sessions, clinic, start, "Ann")
    second = await _join(env, sessions, clinic, start, "Bob")
    await run_update(booking, BookingWorkflow.cancel, CancelRequest("ill", "api"))

    await _offered(sessions, first)
    assert await _status(sessions, second) == "waiting"
    assert not await _free_to_anyone(app, clinic, start)

    await env.sleep(timedelta(minutes=OFFER_MINUTES + 1))  # Ann lets it lapse
    await _offered(sessions, second)
    assert (await booking_row(sessions, offer_id(first))).status == "expired"
    assert not await _free_to_anyone(app, clinic, start)

    offer = env.client.get_workflow_handle(workflow_id_for(offer_id(second)))
    accepted = await run_update(offer, BookingWorkflow.accept, ActorRequest("api"))
    assert accepted.status == "confirmed"
    row = await booking_row(sessions, offer_id(second))
    assert row.status == "confirmed" and row.customer["name"] == "Bob"
    await record(env.client.get_workflow_handle(workflow_id_for(offer_id(first))), "offer_lapsed")
    await record(offer, "offer_accepted")
    await record(env.client.get_workflow_handle(waitlist_workflow_id(first)), "waitlist_entry")
