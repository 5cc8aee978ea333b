"""The demo clinic `make run` seeds: created once, key reusable, every service bookable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import func, select

from api.context import AppContext
from db.models import Tenant
from devstack.seed import DEMO_TENANT, SERVICES, seed_demo
from settings import Settings
from tests.support.clients import client_for
from tests.support.db import EVERY_TENANT


async def test_seeding_twice_keeps_one_demo_tenant_and_its_key(
    app: FastAPI, settings: Settings
) -> None:
    first = await seed_demo(settings, saved_key="")
    again = await seed_demo(settings, saved_key=first)
    assert again == first
    replaced = await seed_demo(settings, saved_key="hf_lost")
    assert replaced not in (first, "hf_lost")
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        count = await db.scalar(select(func.count()).where(Tenant.name == DEMO_TENANT))
    assert count == 1


async def test_every_demo_service_has_slots_next_week(app: FastAPI, settings: Settings) -> None:
    key = await seed_demo(settings, saved_key="")
    monday = datetime.now(UTC).date() + timedelta(days=7 - datetime.now(UTC).weekday())
    async with client_for(app, key) as demo:
        for service in SERVICES:
            response = await demo.post(
                "/v1/availability/query",
                json={
                    "service": service["code"],
                    "timezone": "Europe/Berlin",
                    "range_start": f"{monday}T00:00:00+01:00",
                    "range_end": f"{monday}T23:00:00+01:00",
                },
            )
            assert response.status_code == 200, response.text
            assert response.json()["slots"], service["code"]
