"""A resource's ICS feed (api/routes/calendar_feed.py, docs/calendars.md#ics-feed): the
tenant issues, replaces and revokes its token; the feed answers to the token alone, with
the resource's confirmed bookings as events whose UID is the invitations'. Bookings are
inserted directly."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from icalendar import Calendar
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Allocation, Booking
from tests.support.api import assert_error, room, service, staff
from tests.support.clients import client_for, fresh_tenant
from tests.support.db import insert_booking

UNKNOWN = "0190a2f4-6a2b-7c3d-8e4f-5a6b7c8d9e0f"


def feed_path(resource: str) -> str:
    return f"/v1/resources/{resource}/calendar-feed"


def ics_path(resource: str) -> str:
    return f"/v1/resources/{resource}/calendar.ics"


@pytest.fixture
async def subscriber(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A calendar app: no API key, only the feed's URL."""
    async with client_for(app) as client:
        yield client


@pytest.fixture
async def resource(api: httpx.AsyncClient) -> str:
    made: str = (await staff(api))["id"]
    return made


async def issued(api: httpx.AsyncClient, resource: str) -> dict[str, Any]:
    answer = await api.post(feed_path(resource))
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def fetched(subscriber: httpx.AsyncClient, resource: str, token: str) -> httpx.Response:
    return await subscriber.get(ics_path(resource), params={"token": token})


async def booked(
    db: AsyncSession, resource: str, service_id: str, start: datetime, status: str = "confirmed"
) -> str:
    """A booking of `resource` an hour long, in `status`. (insert_booking leaves
    `bookings.resource_ids` empty, which is what the feed reads: it is set here.)"""
    booking = await insert_booking(db, [resource], service_id, start, start + timedelta(hours=1))
    await db.execute(
        update(Booking)
        .where(Booking.id == booking)
        .values(resource_ids=[uuid.UUID(resource)], status=status)
    )
    if status != "confirmed":
        await db.execute(
            update(Allocation).where(Allocation.booking_id == booking).values(status="released")
        )
    await db.commit()
    return str(booking)


def uids(answer: httpx.Response) -> list[str]:
    calendar = Calendar.from_ical(answer.content)
    return [str(event["UID"]) for event in calendar.walk("VEVENT")]


# --- Issue -------------------------------------------------------------------------------


async def test_issuing_a_feed_answers_201_with_a_url_holding_its_token(
    api: httpx.AsyncClient, resource: str
) -> None:
    feed = await issued(api, resource)
    assert set(feed) == {"url", "token"}
    assert feed["token"].startswith("hf_cal_") and len(feed["token"]) > 40
    url = urlsplit(feed["url"])
    assert url.path == ics_path(resource)
    assert parse_qs(url.query) == {"token": [feed["token"]]}


async def test_issuing_a_feed_for_another_tenants_resource_is_404(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    async with fresh_tenant(app) as other:
        foreign = (await staff(other))["id"]
    assert_error(await api.post(feed_path(foreign)), 404, "not_found")


async def test_issuing_a_feed_for_an_unknown_resource_is_404(api: httpx.AsyncClient) -> None:
    assert_error(await api.post(feed_path(UNKNOWN)), 404, "not_found")


async def test_issuing_a_feed_needs_an_api_key(
    subscriber: httpx.AsyncClient, resource: str
) -> None:
    assert (await subscriber.post(feed_path(resource))).status_code == 401


# --- The feed ----------------------------------------------------------------------------


async def test_the_feed_answers_its_token_without_an_api_key_as_text_calendar(
    api: httpx.AsyncClient, subscriber: httpx.AsyncClient, resource: str
) -> None:
    feed = await issued(api, resource)
    answer = await subscriber.get(feed["url"])
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/calendar")
    calendar = Calendar.from_ical(answer.content)
    assert str(calendar["VERSION"]) == "2.0" and str(calendar["METHOD"]) == "PUBLISH"
    assert uids(answer) == []


async def test_the_feed_lists_the_resources_confirmed_bookings_only(
    api: httpx.AsyncClient,
    subscriber: httpx.AsyncClient,
    db: AsyncSession,
    resource: str,
) -> None:
    svc = (await service(api))["id"]
    other = (await room(api))["id"]
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    confirmed = await booked(db, resource, svc, soon)
    await booked(db, resource, svc, soon + timedelta(hours=2), status="cancelled")
    await booked(db, other, svc, soon)
    feed = await issued(api, resource)

    answer = await fetched(subscriber, resource, feed["token"])
    assert answer.status_code == 200, answer.text
    [event] = Calendar.from_ical(answer.content).walk("VEVENT")
    assert str(event["UID"]) == f"{confirmed}@holdfast"
    assert event.decoded("DTSTART") == soon
    assert event.decoded("DTEND") == soon + timedelta(hours=1)
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["SUMMARY"]) == "Physiotherapy — Test"


async def test_the_feed_lists_completed_bookings_too(
    api: httpx.AsyncClient,
    subscriber: httpx.AsyncClient,
    db: AsyncSession,
    resource: str,
) -> None:
    svc = (await service(api))["id"]
    yesterday = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    done = await booked(db, resource, svc, yesterday, status="completed")
    feed = await issued(api, resource)
    assert uids(await fetched(subscriber, resource, feed["token"])) == [f"{done}@holdfast"]


async def test_the_feed_lists_bookings_in_order_of_their_start(
    api: httpx.AsyncClient,
    subscriber: httpx.AsyncClient,
    db: AsyncSession,
    resource: str,
) -> None:
    svc = (await service(api))["id"]
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    later = await booked(db, resource, svc, soon + timedelta(days=1))
    earlier = await booked(db, resource, svc, soon)
    feed = await issued(api, resource)
    answer = await fetched(subscriber, resource, feed["token"])
    assert uids(answer) == [f"{earlier}@holdfast", f"{later}@holdfast"]


async def test_the_feed_leaves_out_bookings_that_ended_over_30_days_ago(
    api: httpx.AsyncClient,
    subscriber: httpx.AsyncClient,
    db: AsyncSession,
    resource: str,
) -> None:
    svc = (await service(api))["id"]
    now = datetime.now(UTC).replace(microsecond=0)
    recent = await booked(db, resource, svc, now - timedelta(days=29))
    await booked(db, resource, svc, now - timedelta(days=31))
    feed = await issued(api, resource)
    assert uids(await fetched(subscriber, resource, feed["token"])) == [f"{recent}@holdfast"]


async def test_a_wrong_token_is_404(
    api: httpx.AsyncClient, subscriber: httpx.AsyncClient, resource: str
) -> None:
    await issued(api, resource)
    answer = await fetched(subscriber, resource, "hf_cal_wrong")
    assert_error(answer, 404, "not_found")


async def test_a_resource_without_a_feed_is_404(
    subscriber: httpx.AsyncClient, resource: str
) -> None:
    assert_error(await fetched(subscriber, resource, "hf_cal_none"), 404, "not_found")


async def test_one_resources_token_does_not_open_another_resources_feed(
    api: httpx.AsyncClient, subscriber: httpx.AsyncClient, resource: str
) -> None:
    feed = await issued(api, resource)
    other = (await staff(api, name="Dr Bea"))["id"]
    await issued(api, other)
    assert_error(await fetched(subscriber, other, feed["token"]), 404, "not_found")


async def test_the_feed_without_a_token_is_422(
    subscriber: httpx.AsyncClient, resource: str
) -> None:
    assert_error(await subscriber.get(ics_path(resource)), 422, "validation_error")


async def test_issuing_again_replaces_the_token_and_the_old_one_is_404(
    api: httpx.AsyncClient, subscriber: httpx.AsyncClient, resource: str
) -> None:
    old = await issued(api, resource)
    new = await issued(api, resource)
    assert new["token"] != old["token"]
    assert_error(await fetched(subscriber, resource, old["token"]), 404, "not_found")
    assert (await fetched(subscriber, resource, new["token"])).status_code == 200


# --- Revoke ------------------------------------------------------------------------------


async def test_revoking_the_feed_is_204_and_its_token_is_404_after(
    api: httpx.AsyncClient, subscriber: httpx.AsyncClient, resource: str
) -> None:
    feed = await issued(api, resource)
    assert (await api.delete(feed_path(resource))).status_code == 204
    assert_error(await fetched(subscriber, resource, feed["token"]), 404, "not_found")


async def test_revoking_a_revoked_feed_is_404(api: httpx.AsyncClient, resource: str) -> None:
    await issued(api, resource)
    assert (await api.delete(feed_path(resource))).status_code == 204
    assert_error(await api.delete(feed_path(resource)), 404, "not_found")


async def test_revoking_another_tenants_feed_is_404_and_leaves_it_working(
    api: httpx.AsyncClient, app: FastAPI, subscriber: httpx.AsyncClient
) -> None:
    async with fresh_tenant(app) as other:
        foreign = (await staff(other))["id"]
        feed = await issued(other, foreign)
    assert_error(await api.delete(feed_path(foreign)), 404, "not_found")
    assert (await fetched(subscriber, foreign, feed["token"])).status_code == 200
