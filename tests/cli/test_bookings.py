"""`holdfast bookings show ID` and `holdfast doctor` (cli/bookings.py, cli/doctor.py)
against a live stack: the row, the workflow and the history side by side, and the
invariant check's verdict, as an operator sees them in a terminal."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.testing import WorkflowEnvironment

from db.models import Booking
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.cli import holdfast
from tests.support.clients import fresh_tenant, tenant_of
from tests.support.live import live_app
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "cli-e2e") as app:
        yield app


@pytest.fixture
def stack(settings: Settings, temporal_dev_server: WorkflowEnvironment) -> dict[str, str]:
    """What the command needs beyond the database: Temporal, and the payloads' key."""
    return {
        "TEMPORAL_ADDRESS": temporal_dev_server.client.service_client.config.target_host,
        "ENCRYPTION_KEYS": settings.encryption_keys.get_secret_value(),
    }


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        await open_all_day(client)
        await service(client, code="free")
        yield client


async def test_show_puts_the_row_the_workflow_and_the_history_side_by_side(
    tmp_path: Path, settings: Settings, stack: dict[str, str], shop: httpx.AsyncClient
) -> None:
    slot = (await first_slots(shop, "free"))[0]
    booking = (await book(shop, {"allocation_token": slot["allocation_token"]})).json()
    code, out, err = await holdfast(tmp_path, settings, "bookings", "show", booking["id"], **stack)
    assert code == 0, err
    shown = json.loads(out)
    assert shown["row"]["status"] == shown["workflow"]["state"]["status"] == "confirmed"
    assert shown["workflow"]["published_status"] == "confirmed" and shown["agree"] is True
    assert shown["history"][0]["type"] == "booking.confirmed"
    assert "Grace" not in out and "grace@" not in out  # no customer data on screen


async def test_show_of_an_unknown_booking_cannot_run(
    tmp_path: Path, settings: Settings, stack: dict[str, str]
) -> None:
    missing = "01a2326f-8237-7278-8df8-fa9d1a02bbb1"
    code, _, err = await holdfast(tmp_path, settings, "bookings", "show", missing, **stack)
    assert code == 2 and "no booking" in err


async def test_doctor_finds_a_sound_tenant_sound(
    tmp_path: Path, settings: Settings, stack: dict[str, str], shop: httpx.AsyncClient
) -> None:
    slot = (await first_slots(shop, "free"))[1]
    assert (await book(shop, {"allocation_token": slot["allocation_token"]})).status_code == 201

    async def doctor() -> tuple[int, str, str]:
        return await holdfast(
            tmp_path, settings, "doctor", "--tenant", tenant_of(shop), "--settle", "0", **stack
        )

    _, out, err = await eventually(doctor, lambda answer: answer[0] == 0, seconds=20)
    assert out.startswith("ok: 1 bookings checked"), (out, err)


async def test_doctor_exits_1_naming_what_is_broken(
    tmp_path: Path,
    settings: Settings,
    stack: dict[str, str],
    shop: httpx.AsyncClient,
    db: AsyncSession,
) -> None:
    slot = (await first_slots(shop, "free"))[2]
    booking = (await book(shop, {"allocation_token": slot["allocation_token"]})).json()
    await db.execute(
        update(Booking)
        .where(Booking.id == uuid.UUID(booking["id"]))
        .values(status="no_show", updated_at=datetime.now(UTC) - timedelta(hours=1))
    )
    await db.commit()
    code, out, err = await holdfast(
        tmp_path, settings, "doctor", "--tenant", tenant_of(shop), **stack
    )
    assert code == 1, (out, err)
    assert f"row_matches_workflow: {booking['id']}: row says no_show" in out
