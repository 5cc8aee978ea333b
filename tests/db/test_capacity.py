"""The database refuses a claim beyond capacity as it refuses an overlap (docs/capacity.md):
a seat exists only below the resource's capacity, each seat is booked once at a time, and
capacity cannot shrink under a live booking."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Allocation, Resource
from tests.support.api import room, service
from tests.support.db import insert_booking

NINE = datetime.fromisoformat("2027-03-01T09:00:00+00:00")
HOUR = timedelta(hours=1)


@pytest.fixture
async def studio(api: httpx.AsyncClient) -> tuple[str, str]:
    """A room of three seats, and a class held in it."""
    studio = await room(api, "Studio", capacity=3)
    svc = await service(api, code="yoga", requirements=[{"kind": "room"}])
    return studio["id"], svc["id"]


async def test_each_seat_below_capacity_takes_one_booking(
    db: AsyncSession, studio: tuple[str, str]
) -> None:
    rid, svc = studio
    for seat in range(3):
        await insert_booking(db, [rid], svc, NINE, NINE + HOUR, seat=seat)


async def test_a_seat_taken_twice_at_once_is_refused(
    db: AsyncSession, studio: tuple[str, str]
) -> None:
    rid, svc = studio
    await insert_booking(db, [rid], svc, NINE, NINE + HOUR, seat=1)
    with pytest.raises(IntegrityError, match="ex_allocations_no_overlap"):
        await insert_booking(db, [rid], svc, NINE, NINE + HOUR, seat=1)
    await db.rollback()


async def test_a_seat_beyond_capacity_is_refused(db: AsyncSession, studio: tuple[str, str]) -> None:
    rid, svc = studio
    with pytest.raises(IntegrityError, match="allocations_within_capacity"):
        await insert_booking(db, [rid], svc, NINE, NINE + HOUR, seat=3)
    await db.rollback()


async def test_only_a_resource_of_capacity_one_is_shared_by_a_session(
    db: AsyncSession, studio: tuple[str, str]
) -> None:
    rid, svc = studio
    booking = await insert_booking(db, [rid], svc, NINE, NINE + HOUR)
    with pytest.raises(IntegrityError, match="allocations_within_capacity"):
        await db.execute(
            update(Allocation)
            .where(Allocation.booking_id == booking)
            .values(group_session=uuid.uuid4())
        )
    await db.rollback()


async def test_one_session_shares_a_resource_of_capacity_one_and_no_other_may(
    db: AsyncSession, api: httpx.AsyncClient
) -> None:
    instructor = (await room(api, "Instructor"))["id"]
    svc = (await service(api, code="class", requirements=[{"kind": "room"}]))["id"]
    session, other = uuid.uuid4(), uuid.uuid4()
    later = [NINE + n * HOUR for n in range(1, 4)]  # apart first, then moved together
    first, second, third = [
        await insert_booking(db, [instructor], svc, at, at + HOUR) for at in later
    ]
    nine = Range(NINE, NINE + HOUR, bounds="[)")
    for booking, key in ((first, session), (second, session)):
        await db.execute(
            update(Allocation)
            .where(Allocation.booking_id == booking)
            .values(group_session=key, span=nine)
        )
    await db.commit()
    with pytest.raises(IntegrityError, match="ex_allocations_no_overlap"):
        await db.execute(
            update(Allocation)
            .where(Allocation.booking_id == third)
            .values(group_session=other, span=nine)
        )
    await db.rollback()


async def test_capacity_cannot_shrink_below_a_live_seat(
    db: AsyncSession, studio: tuple[str, str]
) -> None:
    rid, svc = studio
    await insert_booking(db, [rid], svc, NINE, NINE + HOUR, seat=2)
    with pytest.raises(IntegrityError, match="resources_capacity_in_use"):
        await db.execute(update(Resource).where(Resource.id == uuid.UUID(rid)).values(capacity=2))
    await db.rollback()
