"""Booking series end to end (docs/series.md): the API, the series workflow and its
children, PostgreSQL. Occurrences keep their wall-clock time across DST, all-or-nothing
books every week or none, skip-conflicts books the free weeks and names the others."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from contract import TENANT_ID, series_workflow_id
from settings import Settings
from tests.support.api import WEEKDAYS_9_TO_5, assert_error, room, service, staff
from tests.support.bookings import book
from tests.support.clients import fresh_tenant, tenant_of
from tests.support.histories import record
from tests.support.live import live_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
WEEKLY_SIX = "FREQ=WEEKLY;COUNT=6"
CUSTOMER = {"name": "Ada Lovelace", "email": "ada@example.test"}


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "series-e2e") as app:
        yield app


async def _clinic(client: httpx.AsyncClient, tz: str) -> None:
    await staff(client, timezone=tz, weekly_hours=WEEKDAYS_9_TO_5)
    await room(client, timezone=tz, weekly_hours=WEEKDAYS_9_TO_5)
    await service(client, code="physio", timezone=tz)


@pytest.fixture
async def berlin(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        await _clinic(client, "Europe/Berlin")
        yield client


async def _series(
    client: httpx.AsyncClient, start: str, key: str | None = None, **extra: Any
) -> httpx.Response:
    body = {"service": "physio", "start": start, "rrule": WEEKLY_SIX, "customer": CUSTOMER}
    return await client.post(
        "/v1/booking-series",
        json={**body, **extra},
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
    )


def _local(booking: dict[str, Any], tz: str) -> str:
    return datetime.fromisoformat(booking["start"]).astimezone(ZoneInfo(tz)).strftime("%a %H:%M")


@pytest.mark.parametrize(
    ("tz", "first"),
    [
        ("Europe/Berlin", "2027-03-15T09:00:00+01:00"),
        ("America/Chicago", "2027-03-01T09:00:00-06:00"),
    ],
)
async def test_a_weekly_series_keeps_its_local_time_across_the_dst_change(
    live: FastAPI, tz: str, first: str
) -> None:
    async with fresh_tenant(live) as client:
        await _clinic(client, tz)
        answer = await _series(client, first)
    assert answer.status_code == 201, answer.text
    series = answer.json()
    assert [_local(b, tz) for b in series["bookings"]] == ["Mon 09:00"] * 6
    offsets = {
        datetime.fromisoformat(b["start"]).astimezone(ZoneInfo(tz)).utcoffset()
        for b in series["bookings"]
    }
    assert len(offsets) == 2  # the change falls inside the series
    assert series["skipped"] == [] and all(b["status"] == "confirmed" for b in series["bookings"])
    assert all(b["access_token"] for b in series["bookings"])


async def test_all_or_nothing_with_one_week_taken_books_nothing(
    berlin: httpx.AsyncClient,
) -> None:
    taken = await book(berlin, {"service": "physio", "start": "2027-03-29T09:00:00+02:00"})
    assert taken.status_code == 201, taken.text
    answer = await _series(berlin, "2027-03-15T09:00:00+01:00")
    error = assert_error(answer, 409, "slot_unavailable")
    assert [datetime.fromisoformat(t) for t in error["details"]["taken"]] == [
        datetime.fromisoformat("2027-03-29T09:00:00+02:00")
    ]
    listed = (await berlin.get("/v1/bookings")).json()["items"]
    assert [b["id"] for b in listed] == [taken.json()["id"]]


async def test_skip_conflicts_books_the_free_weeks_and_names_the_taken_one(
    berlin: httpx.AsyncClient, live: FastAPI
) -> None:
    await book(berlin, {"service": "physio", "start": "2027-03-29T09:00:00+02:00"})
    answer = await _series(berlin, "2027-03-15T09:00:00+01:00", policy="skip_conflicts")
    assert answer.status_code == 201, answer.text
    series = answer.json()
    assert len(series["bookings"]) == 5
    assert [datetime.fromisoformat(s["start"]) for s in series["skipped"]] == [
        datetime.fromisoformat("2027-03-29T09:00:00+02:00")
    ]
    assert series["skipped"][0]["reason"] == "slot_unavailable"
    again = await berlin.get(f"/v1/booking-series/{series['id']}")
    assert [b["id"] for b in again.json()["bookings"]] == [b["id"] for b in series["bookings"]]
    ctx: AppContext = live.state.ctx
    temporal = await ctx.temporal()
    child = await temporal.get_workflow_handle(series["bookings"][0]["workflow_id"]).describe()
    assert child.typed_search_attributes.get(TENANT_ID) == tenant_of(berlin)  # found as any
    handle = temporal.get_workflow_handle(series_workflow_id(series["id"]))
    await record(handle, "series_skip_conflicts")


async def test_a_repeat_with_the_same_key_is_the_same_series(berlin: httpx.AsyncClient) -> None:
    first = await _series(berlin, "2027-03-15T09:00:00+01:00", key="series-1")
    repeat = await _series(berlin, "2027-03-15T09:00:00+01:00", key="series-1")
    assert first.status_code == repeat.status_code == 201, repeat.text
    assert repeat.json()["id"] == first.json()["id"]
    changed = await _series(berlin, "2027-03-16T09:00:00+01:00", key="series-1")
    assert_error(changed, 422, "idempotency_key_reused")


async def test_cancel_this_and_future_leaves_the_earlier_weeks(berlin: httpx.AsyncClient) -> None:
    series = (await _series(berlin, "2027-03-15T09:00:00+01:00")).json()
    fourth = series["bookings"][3]["id"]
    answer = await berlin.post(
        f"/v1/booking-series/{series['id']}/cancel",
        json={"scope": "this_and_future", "booking_id": fourth},
    )
    assert answer.status_code == 200, answer.text
    statuses = [b["status"] for b in answer.json()["bookings"]]
    assert statuses == ["confirmed"] * 3 + ["cancelled"] * 3


async def test_cancel_all_and_one_occurrence_alone(berlin: httpx.AsyncClient) -> None:
    series = (await _series(berlin, "2027-03-15T09:00:00+01:00")).json()
    one = series["bookings"][1]["id"]
    assert (await berlin.post(f"/v1/bookings/{one}/cancel", json={})).status_code == 200
    answer = await berlin.post(f"/v1/booking-series/{series['id']}/cancel", json={"scope": "all"})
    assert answer.status_code == 200, answer.text
    assert {b["status"] for b in answer.json()["bookings"]} == {"cancelled"}


async def test_one_occurrence_is_rescheduled_alone(berlin: httpx.AsyncClient) -> None:
    series = (await _series(berlin, "2027-03-15T09:00:00+01:00")).json()
    second = series["bookings"][1]
    moved = await berlin.post(
        f"/v1/bookings/{second['id']}/reschedule",
        json={"service": "physio", "start": "2027-03-23T10:00:00+01:00"},
    )
    assert moved.status_code == 200, moved.text
    again = (await berlin.get(f"/v1/booking-series/{series['id']}")).json()["bookings"]
    assert [_local(b, "Europe/Berlin") for b in again] == ["Mon 09:00", "Tue 10:00"] + [
        "Mon 09:00"
    ] * 4


@pytest.mark.parametrize(
    "rule",
    [
        "FREQ=WEEKLY",
        "FREQ=DAILY;COUNT=400",
        "not a rule",
        "DTSTART:20270101T000000\nFREQ=DAILY;COUNT=2",
    ],
)
async def test_an_unusable_rule_is_refused(berlin: httpx.AsyncClient, rule: str) -> None:
    answer = await _series(berlin, "2027-03-15T09:00:00+01:00", rrule=rule)
    assert_error(answer, 422, "invalid_rrule")


async def test_a_priced_series_holds_each_occurrence_for_its_own_payment(
    berlin: httpx.AsyncClient,
) -> None:
    await service(berlin, code="paid", price={"amount": 5000, "currency": "EUR"})
    answer = await _series(
        berlin, "2027-03-15T09:00:00+01:00", service="paid", rrule="FREQ=WEEKLY;COUNT=3"
    )
    assert answer.status_code == 201, answer.text
    bookings = answer.json()["bookings"]
    assert [b["status"] for b in bookings] == ["pending_payment"] * 3
    assert all(b["payment"]["amount"] == 5000 for b in bookings)
    paid = await berlin.post(f"/v1/bookings/{bookings[0]['id']}/mark-paid")
    assert paid.status_code == 200 and paid.json()["status"] == "confirmed", paid.text
