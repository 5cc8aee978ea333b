"""The invariant check (invariants.py, docs/operations.md#invariants): a sound tenant
passes; each broken promise, made on purpose in the database, is found and named. Each
test checks its own tenant only, as other tests leave states of their own."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from api.context import AppContext
from db import invariants as rows
from db.models import Booking, Notification
from db.sessions import Sessions
from invariants import check
from settings import Settings
from tests.support.api import room, service, staff
from tests.support.clients import tenant_of
from tests.support.db import EVERY_TENANT, insert_booking

LONG_AGO = datetime.now(UTC) - timedelta(hours=1)
START = datetime(2027, 3, 1, 9, tzinfo=UTC)


@pytest.fixture
def sessions(app: FastAPI) -> Sessions:
    ctx: AppContext = app.state.ctx
    return Sessions.on(ctx.engine, EVERY_TENANT)


@pytest.fixture
async def clinic(api: httpx.AsyncClient) -> tuple[uuid.UUID, list[str], str]:
    """A tenant with a practitioner, a room and a service."""
    resources = [(await staff(api))["id"], (await room(api))["id"]]
    return uuid.UUID(tenant_of(api)), resources, (await service(api))["id"]


async def _findings(sessions: Sessions, tenant: uuid.UUID) -> set[str]:
    report = await check(sessions, None, tenant_id=tenant, settle=timedelta(seconds=1))
    return {b.rule for b in report.broken}


async def _settle(db: AsyncSession, booking_id: uuid.UUID, **values: object) -> None:
    """Change a booking as if long ago, so the check counts it as settled."""
    await db.execute(
        update(Booking).where(Booking.id == booking_id).values(updated_at=LONG_AGO, **values)
    )
    await db.commit()


async def test_a_sound_tenant_passes(
    sessions: Sessions, db: AsyncSession, clinic: tuple[uuid.UUID, list[str], str]
) -> None:
    tenant, resources, svc = clinic
    booking = await insert_booking(db, resources, svc, START, START + timedelta(hours=1))
    await _settle(db, booking)
    report = await check(sessions, None, tenant_id=tenant, settle=timedelta(seconds=1))
    assert report.ok, report.lines()
    assert report.checked_bookings == 1


async def test_a_hold_alive_past_its_expiry_is_found(
    sessions: Sessions, db: AsyncSession, clinic: tuple[uuid.UUID, list[str], str]
) -> None:
    tenant, resources, svc = clinic
    await insert_booking(
        db,
        resources,
        svc,
        START,
        START + timedelta(hours=1),
        status="held",
        hold_expires_at=datetime.now(UTC) - timedelta(minutes=5),
    )
    assert "holds_expire" in await _findings(sessions, tenant)


async def test_a_final_booking_keeping_its_resources_is_found(
    sessions: Sessions, db: AsyncSession, clinic: tuple[uuid.UUID, list[str], str]
) -> None:
    tenant, resources, svc = clinic
    booking = await insert_booking(db, resources, svc, START, START + timedelta(hours=1))
    await _settle(db, booking, status="cancelled")
    assert "final_frees_resources" in await _findings(sessions, tenant)


async def test_a_confirmed_priced_booking_not_captured_is_found(
    sessions: Sessions, db: AsyncSession, clinic: tuple[uuid.UUID, list[str], str]
) -> None:
    tenant, resources, svc = clinic
    booking = await insert_booking(db, resources, svc, START, START + timedelta(hours=1))
    payment = {"amount": 8000, "captured_amount": 0, "refunded_amount": 0, "status": "x"}
    await _settle(db, booking, payment=payment)
    assert "paid_is_captured" in await _findings(sessions, tenant)


async def test_a_cancel_refunded_against_its_policy_is_found(
    sessions: Sessions, db: AsyncSession, clinic: tuple[uuid.UUID, list[str], str]
) -> None:
    """Cancelled weeks ahead: the default policy gives everything back, not half."""
    tenant, resources, svc = clinic
    booking = await insert_booking(db, resources, svc, START, START + timedelta(hours=1))
    await db.execute(
        text(
            "INSERT INTO booking_events (id, tenant_id, booking_id, at, type, actor, data)"
            " VALUES (gen_random_uuid(), :t, :b, now(), 'booking.cancelled', 'api', '{}')"
        ),
        {"t": tenant, "b": booking},
    )
    payment = {"amount": 8000, "captured_amount": 8000, "refunded_amount": 4000}
    await _settle(db, booking, status="cancelled", payment=payment)
    await db.execute(
        text("UPDATE allocations SET status = 'released' WHERE booking_id = :b"), {"b": booking}
    )
    await db.commit()
    assert await _findings(sessions, tenant) == {"refund_per_policy"}


async def test_a_refund_refused_and_recorded_is_not_a_finding(
    sessions: Sessions, db: AsyncSession, clinic: tuple[uuid.UUID, list[str], str]
) -> None:
    tenant, resources, svc = clinic
    booking = await insert_booking(db, resources, svc, START, START + timedelta(hours=1))
    payment = {"amount": 8000, "captured_amount": 8000, "refunded_amount": 0}
    await db.execute(
        text("UPDATE allocations SET status = 'released' WHERE booking_id = :b"), {"b": booking}
    )
    await _settle(
        db,
        booking,
        status="cancelled",
        payment=payment,
        side_effects={"payment:refund": "failed: already refunded"},
    )
    assert await _findings(sessions, tenant) == set()


async def test_a_message_queued_without_a_trace_is_found(
    sessions: Sessions, db: AsyncSession, clinic: tuple[uuid.UUID, list[str], str]
) -> None:
    tenant, resources, svc = clinic
    booking = await insert_booking(db, resources, svc, START, START + timedelta(hours=1))
    await _settle(db, booking)
    db.add(
        Notification(
            id=uuid.uuid4(),
            tenant_id=tenant,
            booking_id=booking,
            channel="email",
            kind="confirmed",
            recipient="test@example.test",
            payload={},
            created_at=LONG_AGO,
        )
    )
    await db.commit()
    assert await _findings(sessions, tenant) == {"messages_delivered_or_failed"}


@pytest.fixture
async def owner(settings: Settings) -> AsyncIterator[AsyncSession]:
    engine = create_async_engine(settings.async_database_url)
    async with AsyncSession(engine) as session:
        yield session
    await engine.dispose()


async def test_overlapping_live_allocations_are_found(
    owner: AsyncSession, db: AsyncSession, clinic: tuple[uuid.UUID, list[str], str]
) -> None:
    """Only possible without the exclusion constraint: dropped in a transaction that is
    rolled back, the check's query run inside it."""
    tenant, resources, svc = clinic
    first = await insert_booking(db, resources, svc, START, START + timedelta(hours=1))
    await owner.execute(text("ALTER TABLE allocations DROP CONSTRAINT ex_allocations_no_overlap"))
    await owner.execute(
        text(
            "INSERT INTO allocations (id, tenant_id, booking_id, resource_id, span, status)"
            " SELECT gen_random_uuid(), tenant_id, booking_id, resource_id, span, status"
            " FROM allocations WHERE booking_id = :b"
        ),
        {"b": first},
    )
    found = await rows.overlapping_allocations(owner, tenant)
    await owner.rollback()
    assert {b.rule for b in found} == {"no_double_booking"}
    assert {b.subject for b in found} == set(resources)
