"""The operations console in a real browser (docs/console.md): Debian's Chromium driven
by Playwright against the API served over HTTP with its workers. The numbers it shows
are checked against the API's own answers; a screenshot is saved in
`test-results/screenshots/`. Skipped, and said so, without Chromium."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, Page, expect
from sqlalchemy import update
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from db.models import Booking
from settings import Settings
from tests.support.api import open_all_day, service
from tests.support.bookings import book
from tests.support.browser import NEEDS_CHROMIUM, screenshot, serious_violations
from tests.support.calendars import Google, Outlook, calendar_settings
from tests.support.clients import ADMIN_KEY, client_for, new_tenant_client
from tests.support.db import EVERY_TENANT
from tests.support.live import live_app, served
from tests.support.polling import eventually
from tests.support.receiver import receiver

pytestmark = [NEEDS_CHROMIUM, pytest.mark.filterwarnings("ignore::ResourceWarning")]
TEMPORAL_UI = "http://127.0.0.1:8233"


@dataclass
class Served:
    app: FastAPI
    base: str
    google: Google


@pytest.fixture(scope="module")
async def console(
    settings: Settings, temporal_dev_server: WorkflowEnvironment, stand_ins: tuple[Google, Outlook]
) -> AsyncIterator[Served]:
    configured = calendar_settings(
        settings, *stand_ins, webhook_allow_private_targets=True, temporal_ui_url=TEMPORAL_UI
    )
    async with (
        live_app(configured, temporal_dev_server, "console") as app,
        served(app) as base,
    ):
        yield Served(app, base, stand_ins[0])


@pytest.fixture
async def clinic(console: Served) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        client_for(console.app, ADMIN_KEY) as operator,
        await new_tenant_client(console.app, operator, "Console clinic") as api,
    ):
        await open_all_day(api)
        paid = {"price": {"amount": 3000, "currency": "EUR"}, "slot_interval_minutes": 60}
        await service(api, code="free", slot_interval_minutes=60)
        await service(api, code="paid", hold_seconds=600, **paid)
        await service(api, code="quick", hold_seconds=5, **paid)
        yield api


@pytest.fixture
async def page(browser: Browser, request: pytest.FixtureRequest) -> AsyncIterator[Page]:
    audited = "publishable" not in request.node.name  # axe goes in as an inline script
    context = await browser.new_context(timezone_id="UTC", bypass_csp=audited)
    opened = await context.new_page()
    yield opened
    await screenshot(opened, request.node.name)
    await context.close()


def _hours_ahead(hours: int) -> str:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)
    return start.isoformat()


async def _booked(api: httpx.AsyncClient, code: str, hours: int) -> dict[str, Any]:
    answer = await book(api, {"service": code, "start": _hours_ahead(hours)})
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _sign_in(page: Page, base: str, key: str) -> None:
    await page.goto(f"{base}/console")
    await page.get_by_label("A tenant's secret API key, or the operator key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


def _this_week(bookings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    monday = today - timedelta(days=today.weekday())
    return [
        b
        for b in bookings
        if monday <= datetime.fromisoformat(b["start"]) < monday + timedelta(days=7)
    ]


async def test_the_console_shows_the_weeks_bookings_conversion_and_what_failed(
    page: Page, console: Served, clinic: httpx.AsyncClient
) -> None:
    free = [await _booked(clinic, "free", h) for h in (1, 2, 3)]
    cancelled = await clinic.post(f"/v1/bookings/{free[2]['id']}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    paid = await _booked(clinic, "paid", 4)
    assert (await clinic.post(f"/v1/bookings/{paid['id']}/mark-paid")).status_code == 200
    lapsing = await _booked(clinic, "quick", 5)

    async def status() -> str:
        return str((await clinic.get(f"/v1/bookings/{lapsing['id']}")).json()["status"])

    await eventually(status, lambda s: s == "expired", seconds=30)
    ctx: AppContext = console.app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:  # as a calendar outage leaves a booking
        await db.execute(
            update(Booking)
            .where(Booking.id == uuid.UUID(free[0]["id"]))
            .values(side_effects={"calendar": "failed: Google answered 503"})
        )
        await db.commit()
    staff = (await clinic.get("/v1/resources")).json()["items"][0]
    wanted = console.google.connect(f"{uuid.uuid4().hex[:8]}@clinic.test")
    made = await clinic.post(f"/v1/resources/{staff['id']}/calendar-connections", json=wanted)
    assert made.status_code == 201, made.text
    connection = made.json()
    console.google.revoke({"credentials": wanted["credentials"]})  # revoked at Google
    path = f"/v1/resources/{staff['id']}/calendar-connections/{connection['id']}/sync"
    assert (await clinic.post(path)).json()["status"] == "reauth_required"
    async with receiver(500) as hooks:
        endpoint = await clinic.post(
            "/v1/webhook-endpoints", json={"url": hooks.url, "events": ["booking.confirmed"]}
        )
        assert endpoint.status_code == 201, endpoint.text
        await _booked(clinic, "free", 6)  # its booking.confirmed is refused
        await eventually(lambda: _received(hooks), lambda n: n >= 1, seconds=20)

        secret = str(clinic.headers["Authorization"]).removeprefix("Bearer ")
        await _sign_in(page, console.base, secret)
        await page.wait_for_selector("body[data-ready=true]", timeout=20_000)

    listed = (await clinic.get("/v1/bookings?limit=200")).json()["items"]
    week = _this_week(listed)
    confirmed = len([b for b in week if b["status"] == "confirmed"])
    chart = page.locator("#week-chart svg")
    await expect(chart).to_have_attribute("aria-label", re.compile(f"Confirmed {confirmed},"))
    if len(_this_week([paid, lapsing])) == 2:  # (late on a Sunday, they start next week)
        await expect(page.locator("#conversion")).to_have_text("50% of 2 settled holds were paid")
    failing = page.locator("#side-effects")
    await expect(failing).to_contain_text("calendar: failed: Google answered 503")
    workflow = failing.get_by_role("link", name=free[0]["workflow_id"])
    href = f"{TEMPORAL_UI}/namespaces/default/workflows/{free[0]['workflow_id']}"
    await expect(workflow).to_have_attribute("href", href)
    await expect(page.locator("#deliveries")).to_contain_text("booking.confirmed")
    await expect(page.locator("#deliveries")).to_contain_text("500")
    await expect(page.locator("#endpoints")).to_contain_text("failing since")
    calendars = page.locator("#calendars")
    await expect(calendars).to_contain_text(wanted["calendar_id"])
    await expect(calendars).to_contain_text("reauth required")
    assert await serious_violations(page) == []


async def _received(hooks: Any) -> int:
    return len(hooks.received)


async def test_a_publishable_key_cannot_open_the_console(
    page: Page, console: Served, clinic: httpx.AsyncClient
) -> None:
    key = await clinic.post(
        "/v1/api-keys",
        json={"kind": "publishable", "name": "page", "allowed_origins": [console.base]},
    )
    await _sign_in(page, console.base, key.json()["api_key"])
    await expect(page.get_by_role("alert")).to_contain_text("use a secret key")
    await expect(page.locator("#dashboard")).to_be_hidden()


async def test_the_operator_sees_every_tenants_bookings_from_metrics(
    page: Page, console: Served, clinic: httpx.AsyncClient
) -> None:
    await _booked(clinic, "free", 1)
    await _sign_in(page, console.base, ADMIN_KEY)
    await page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    await expect(page.locator("#dashboard")).to_be_hidden()
    scraped = (await clinic.get("/metrics")).text
    confirmed = re.search(r'^holdfast_bookings\{status="confirmed"\} (\S+)$', scraped, re.M)
    assert confirmed is not None
    chart = page.locator("#all-bookings-chart svg")
    shown = f"Confirmed {int(float(confirmed.group(1)))},"
    await expect(chart).to_have_attribute("aria-label", re.compile(shown))
    await expect(page.locator("#tenants")).to_contain_text("Console clinic")
    await expect(page.locator("#health")).to_contain_text("webhook deliveries pending")
    assert await serious_violations(page) == []
