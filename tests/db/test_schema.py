"""The database itself refuses a double booking (docs/lifecycle.md), and the migration builds
exactly the schema the models describe."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import AppContext
from db.models import Allocation, Base
from tests.support.api import room, service, staff
from tests.support.db import insert_booking

NINE = datetime.fromisoformat("2027-03-01T09:00:00+00:00")
HOUR = timedelta(hours=1)


@pytest.fixture
async def catalogue(api: httpx.AsyncClient) -> tuple[str, str]:
    ada, _ = await staff(api), await room(api)
    return ada["id"], (await service(api))["id"]


async def test_overlapping_live_allocations_of_one_resource_are_refused(
    db: AsyncSession, catalogue: tuple[str, str]
) -> None:
    ada, svc = catalogue
    await insert_booking(db, [ada], svc, NINE, NINE + HOUR)
    with pytest.raises(IntegrityError, match="ex_allocations_no_overlap"):
        await insert_booking(db, [ada], svc, NINE + HOUR / 2, NINE + 2 * HOUR)
    await db.rollback()


async def test_a_hold_overlapping_a_confirmed_booking_is_refused(
    db: AsyncSession, catalogue: tuple[str, str]
) -> None:
    ada, svc = catalogue
    await insert_booking(db, [ada], svc, NINE, NINE + HOUR)
    with pytest.raises(IntegrityError, match="ex_allocations_no_overlap"):
        await insert_booking(db, [ada], svc, NINE, NINE + HOUR, status="held", hold_expires_at=NINE)
    await db.rollback()


async def test_back_to_back_allocations_do_not_overlap(
    db: AsyncSession, catalogue: tuple[str, str]
) -> None:
    ada, svc = catalogue
    await insert_booking(db, [ada], svc, NINE, NINE + HOUR)
    await insert_booking(db, [ada], svc, NINE + HOUR, NINE + 2 * HOUR)


async def test_a_released_allocation_frees_its_span(
    db: AsyncSession, catalogue: tuple[str, str]
) -> None:
    ada, svc = catalogue
    first = await insert_booking(db, [ada], svc, NINE, NINE + HOUR)
    await db.execute(
        update(Allocation).where(Allocation.booking_id == first).values(status="released")
    )
    await db.commit()
    await insert_booking(db, [ada], svc, NINE, NINE + HOUR)


async def test_migrations_match_the_models(app: FastAPI) -> None:
    ctx: AppContext = app.state.ctx

    def diff(connection: object) -> list[object]:
        context = MigrationContext.configure(connection)  # type: ignore[arg-type]
        return list(compare_metadata(context, Base.metadata))

    async with ctx.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
