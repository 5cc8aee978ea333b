"""Fault: a calendar provider (Google's and Microsoft's stand-ins alike) answering 500 to
its next FAILURES requests while bookings are confirmed and cancelled and a sync is
asked for (docs/operations.md#fault-tests). A calendar is a copy: its outage must never
delay or undo a booking, and once the provider answers again the exports and the sync
catch up, one event per kept booking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from invariants import Report
from settings import Settings
from tests.support.calendars import Calendars, Google, Outlook, Shown, calendar_settings
from tests.support.faults import FIRST_DAY, Shop, shop, verdict
from tests.support.live import live_app, served
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
QUEUE = "faults-calendars"
# Enough for every export and the sync to fail twice or more (they retry after 1, 2,
# 4 s...), few enough to be used up within seconds.
FAILURES = 12


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment, stand_ins: tuple[Google, Outlook]
) -> AsyncIterator[tuple[FastAPI, str]]:
    """One stack for both providers' outages."""
    async with (
        live_app(calendar_settings(settings, *stand_ins), temporal_dev_server, QUEUE) as app,
        served(app) as url,
    ):
        yield app, url


@dataclass
class Outage:
    provider: Calendars
    booked_answers: list[httpx.Response]
    sync_during: httpx.Response
    kept: list[dict[str, Any]]
    shown: list[Shown]
    sync_after: dict[str, Any]
    busy: tuple[datetime, datetime]  # added at the provider during the outage
    slots_after: list[dict[str, Any]]
    views: list[dict[str, Any]]
    report: Report


async def _staff(clinic: Shop) -> str:
    listed = await clinic.http.get("/v1/resources")
    assert listed.status_code == 200, listed.text
    return str(next(r["id"] for r in listed.json()["items"] if r["kind"] == "staff"))


def _exported(views: list[dict[str, Any]]) -> bool:
    """Each kept booking's event written, the cancelled one's deleted."""
    want = {"confirmed": ["written"], "cancelled": ["deleted"]}
    return all([e["status"] for e in v["calendar_events"]] == want[v["status"]] for v in views)


@pytest.fixture(scope="module", params=["google", "microsoft"])
async def outage(
    request: pytest.FixtureRequest, live: tuple[FastAPI, str], stand_ins: tuple[Google, Outlook]
) -> AsyncIterator[Outage]:
    """Per provider: a connected calendar, then FAILURES 500s while three bookings are
    made, one of them cancelled, a busy block added and a sync asked for."""
    app, url = live
    google, outlook = stand_ins
    provider: Calendars = google if request.param == "google" else outlook
    async with shop(url) as clinic:
        staff = await _staff(clinic)
        address = f"fault-{request.param}@clinic.test"
        made = await clinic.http.post(
            f"/v1/resources/{staff}/calendar-connections", json=provider.connect(address)
        )
        assert made.status_code == 201, made.text
        path = f"/v1/resources/{staff}/calendar-connections/{made.json()['id']}"
        await eventually(
            lambda: clinic.http.get(path),
            lambda a: a.json()["status"] == "active",
            seconds=30,
            every=0.2,
        )

        provider.fail(FAILURES, 500)
        day = FIRST_DAY + timedelta(days=2)
        slots = await clinic.slots("free", day)
        booked_answers = [await clinic.book(s["allocation_token"]) for s in slots[:3]]
        bookings = [a.json() for a in booked_answers if a.status_code == 201]
        cancelled = await clinic.http.post(f"/v1/bookings/{bookings[1]['id']}/cancel", json={})
        assert cancelled.status_code == 200, cancelled.text
        later = datetime.fromisoformat(slots[6]["start"])
        busy = (later, later + timedelta(minutes=30))
        await provider.busy(address, *busy)
        sync_during = await clinic.http.post(f"{path}/sync")

        kept = [bookings[0], bookings[2]]
        await eventually(
            lambda: provider.shown(address), lambda s: len(s) == len(kept), seconds=60, every=0.5
        )
        views = await eventually(
            lambda: asyncio.gather(*(clinic.get(b["id"]) for b in bookings)),
            _exported,
            seconds=60,
            every=0.5,
        )
        shown = await provider.shown(address)  # (no late third event since)
        synced = await clinic.http.post(f"{path}/sync")
        assert synced.status_code == 200, synced.text
        yield Outage(
            provider,
            booked_answers,
            sync_during,
            kept,
            shown,
            synced.json(),
            busy,
            await clinic.slots("free", day),
            list(views),
            await verdict(app, clinic.tenant_id),
        )


def test_bookings_are_confirmed_at_once_while_the_provider_fails(outage: Outage) -> None:
    assert [a.status_code for a in outage.booked_answers] == [201] * 3
    assert {a.json()["status"] for a in outage.booked_answers} == {"confirmed"}


def test_a_sync_asked_for_while_the_provider_fails_is_answered_not_500(outage: Outage) -> None:
    assert outage.sync_during.status_code in (200, 503), outage.sync_during.text


def test_once_it_recovers_each_kept_booking_is_one_event_and_the_cancelled_none(
    outage: Outage,
) -> None:
    assert sorted(e.start for e in outage.shown) == sorted(
        datetime.fromisoformat(b["start"]) for b in outage.kept
    )
    assert _exported(outage.views)


def test_once_it_recovers_a_sync_imports_what_changed_meanwhile(outage: Outage) -> None:
    assert outage.sync_after["status"] == "active" and outage.sync_after["last_error"] is None
    start, end = outage.busy
    covered = [
        s
        for s in outage.slots_after
        if datetime.fromisoformat(s["start"]) < end and start < datetime.fromisoformat(s["end"])
    ]
    assert covered == []


def test_every_invariant_holds_after_the_outage(outage: Outage) -> None:
    assert outage.report.ok, outage.report.lines()
