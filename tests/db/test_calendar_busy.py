"""Imported busy time refuses a claim in the claim's own statement, also when the claim
races the sync that imports it (docs/calendars.md#claims)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from api.context import AppContext
from db import bookings, calendar_connections, external_busy
from db.bookings import ExternallyBusy
from db.models import Resource
from db.sessions import Sessions
from tests.support.api import service, staff
from tests.support.db import EVERY_TENANT, insert_connection

NINE = datetime.fromisoformat("2027-03-01T09:00:00+00:00")
HOUR = timedelta(hours=1)


async def _claim(sessions: Sessions, resource: str, service_id: str) -> bool:
    booking = str(uuid.uuid4())
    return await bookings.claim(
        sessions,
        bookings.claim_of(
            booking_id=booking,
            tenant_id=str(await _tenant(sessions, resource)),
            service_id=service_id,
            service_code="physio-60",
            start=NINE,
            end=NINE + HOUR,
            widened=(NINE, NINE + HOUR),
            resource_ids=[resource],
            hold_expires_at=None,
            customer={"name": "Test"},
            metadata={},
            idempotency_key=booking,
            workflow_id=f"booking-{booking}",
            now=NINE - timedelta(days=1),
            actor="test",
        ),
    )


async def _tenant(sessions: Sessions, resource: str) -> uuid.UUID:
    async with sessions.autocommit() as db:
        row = await db.get(Resource, uuid.UUID(resource))
        assert row is not None
        return row.tenant_id


@pytest.fixture
def sessions(app: FastAPI) -> Sessions:
    ctx: AppContext = app.state.ctx
    return Sessions.on(ctx.engine, EVERY_TENANT)


async def _target(sessions: Sessions, resource: str) -> external_busy.Target:
    async with sessions.transaction() as db:
        return calendar_connections.target(await insert_connection(db, resource))


async def test_a_claim_waiting_on_a_sync_sees_what_it_imported_and_is_refused(
    api: httpx.AsyncClient, sessions: Sessions
) -> None:
    ada, svc = (await staff(api))["id"], (await service(api))["id"]
    target = await _target(sessions, ada)
    async with sessions.transaction() as sync:
        await external_busy.apply(
            sync, target, [external_busy.Busy("evt-1", NINE, NINE + HOUR)], [], full=False
        )
        claim = asyncio.create_task(_claim(sessions, ada, svc))
        await asyncio.sleep(0.3)
        assert not claim.done()  # it waits for the sync's transaction
        await sync.commit()
    with pytest.raises(ExternallyBusy):
        await claim


async def test_a_sync_waiting_on_a_claim_lets_it_book(
    api: httpx.AsyncClient, sessions: Sessions
) -> None:
    ada, svc = (await staff(api))["id"], (await service(api))["id"]
    assert await _claim(sessions, ada, svc)
    # The booking came first: the block after it is the calendar's, and stands beside it.
    async with sessions.transaction() as sync:
        await external_busy.apply(
            sync,
            await _target(sessions, ada),
            [external_busy.Busy("evt-1", NINE, NINE + HOUR)],
            [],
            full=False,
        )
        await sync.commit()
    with pytest.raises(ExternallyBusy):
        await _claim(sessions, ada, svc)


async def test_a_full_listing_drops_the_events_it_lacks(
    api: httpx.AsyncClient, sessions: Sessions
) -> None:
    ada, svc = (await staff(api))["id"], (await service(api))["id"]
    target = await _target(sessions, ada)
    block = [external_busy.Busy("evt-1", NINE, NINE + HOUR)]
    async with sessions.transaction() as db:
        await external_busy.apply(db, target, block, [], full=False)
        await db.commit()
    async with sessions.transaction() as db:
        await external_busy.apply(db, target, [], [], full=True)
        await db.commit()
    assert await _claim(sessions, ada, svc)
