"""The demo clinic `make run` seeds: created once, key reusable, every service bookable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from sqlalchemy import func, select, update

from api.context import AppContext
from db.models import Tenant
from devstack.seed import DEMO_SLUG, DEMO_TENANT, SERVICES, seed_demo
from settings import Settings
from tests.support.clients import client_for
from tests.support.db import EVERY_TENANT

PAGE = "http://127.0.0.1:8000"


async def test_seeding_twice_keeps_one_demo_tenant_and_its_keys(
    app: FastAPI, settings: Settings
) -> None:
    first, page = await seed_demo(settings, "", "", PAGE)
    again = await seed_demo(settings, first, page, PAGE)
    assert again == (first, page)
    replaced, _ = await seed_demo(settings, "hf_lost", page, PAGE)
    assert replaced not in (first, "hf_lost")
    _, moved = await seed_demo(settings, first, page, "http://127.0.0.1:9000")
    assert moved != page  # a page key is only good for its origin
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        count = await db.scalar(select(func.count()).where(Tenant.name == DEMO_TENANT))
    assert count == 1


async def test_the_demo_booking_page_is_found_by_its_slug(app: FastAPI, settings: Settings) -> None:
    await seed_demo(settings, "", "", PAGE)
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:  # as seeded before tenants had slugs
        await db.execute(update(Tenant).where(Tenant.name == DEMO_TENANT).values(slug=None))
        await db.commit()
    _, page = await seed_demo(settings, "", "", PAGE)
    async with client_for(app, page) as browser:
        found = await browser.get(f"/book/{DEMO_SLUG}/massage-60")
        assert found.status_code == 200 and "Book an appointment" in found.text
        service = await browser.get("/v1/services/massage-60")  # what the page reads first
        assert service.status_code == 200 and service.json()["price"]["amount"] == 6500
        assert (await browser.get("/book/no-such-clinic/massage-60")).status_code == 404


async def test_every_demo_service_has_slots_next_week(app: FastAPI, settings: Settings) -> None:
    key, _ = await seed_demo(settings, "", "", PAGE)
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
