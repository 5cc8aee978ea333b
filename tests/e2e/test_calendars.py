"""Calendar sync end to end, against Google and Outlook alike (each test runs on both
stand-ins, through the real client libraries): busy time blocks slots after one sync,
each confirmed booking is one event that moves and goes with the booking, and faults
never cost a booking or a duplicate (docs/calendars.md)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.calendar import request_export
from api.context import AppContext
from contract import connection_workflow_id, delivery_task_queue, export_workflow_id
from db.models import ExternalBusy, WebhookEvent
from settings import Settings
from tests.support.api import ALWAYS_OPEN, assert_error, open_all_day, service, staff
from tests.support.bookings import book, first_slots
from tests.support.calendars import Calendars, Google, Outlook, Shown, calendar_settings
from tests.support.clients import fresh_tenant
from tests.support.db import EVERY_TENANT
from tests.support.histories import record
from tests.support.live import live_app
from tests.support.polling import eventually
from tests.support.receiver import receiver

QUEUE = "calendars-e2e"
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment, stand_ins: tuple[Google, Outlook]
) -> AsyncIterator[FastAPI]:
    configured = calendar_settings(settings, *stand_ins, webhook_allow_private_targets=True)
    async with live_app(configured, temporal_dev_server, QUEUE) as app:
        yield app


@dataclass
class Shop:
    live: FastAPI
    client: httpx.AsyncClient
    staff: str
    room: str
    calendar: Calendars
    address: str  # the staff member's calendar

    async def connect(self, resource: str | None = None, address: str | None = None) -> Any:
        body = self.calendar.connect(address or self.address)
        where = resource or self.staff
        made = await self.client.post(f"/v1/resources/{where}/calendar-connections", json=body)
        assert made.status_code == 201, made.text
        connection = made.json()
        assert connection["status"] == "syncing" and "credentials" not in connection
        return {**connection, "credentials": body["credentials"]}

    async def sync(self, connection: dict[str, Any]) -> Any:
        path = f"/v1/resources/{connection['resource_id']}/calendar-connections"
        synced = await self.client.post(f"{path}/{connection['id']}/sync")
        assert synced.status_code == 200, synced.text
        return synced.json()

    async def booked(self, n: int = 0) -> Any:
        slot = (await first_slots(self.client, "free"))[n]
        answer = await book(self.client, {"allocation_token": slot["allocation_token"]})
        assert answer.status_code == 201, answer.text
        return answer.json()

    async def shown(self, count: int) -> list[Shown]:
        return await eventually(
            lambda: self.calendar.shown(self.address), lambda s: len(s) == count, seconds=30
        )


@pytest.fixture
async def shop(live: FastAPI, calendar: Calendars) -> AsyncIterator[Shop]:
    async with fresh_tenant(live) as client:
        staff, room = await open_all_day(client)
        await service(client, code="free")
        yield Shop(
            live, client, staff["id"], room["id"], calendar, f"{uuid.uuid4().hex[:8]}@clinic.test"
        )


def _span(slot: dict[str, Any]) -> tuple[datetime, datetime]:
    return datetime.fromisoformat(slot["start"]), datetime.fromisoformat(slot["end"])


def _overlaps(slot: dict[str, Any], start: datetime, end: datetime) -> bool:
    s, e = _span(slot)
    return s < end and start < e


async def test_a_busy_block_removes_the_slots_it_covers_after_one_sync(shop: Shop) -> None:
    connection = await shop.connect()
    slots = await first_slots(shop.client, "free")
    start, end = _span(slots[1])
    await shop.calendar.busy(shop.address, start, end + timedelta(minutes=10))
    assert (await shop.sync(connection))["status"] == "active"

    after = await first_slots(shop.client, "free")
    assert not [s for s in after if _overlaps(s, start, end + timedelta(minutes=10))]
    assert _span(after[0]) == _span(slots[0])  # the rest stays


async def test_an_offer_made_before_the_sync_imported_a_block_is_refused_409(shop: Shop) -> None:
    connection = await shop.connect()
    slot = (await first_slots(shop.client, "free"))[1]
    await shop.calendar.busy(shop.address, *_span(slot))
    await shop.sync(connection)
    refused = await book(shop.client, {"allocation_token": slot["allocation_token"]})
    assert_error(refused, 409, "slot_unavailable")


async def test_a_transparent_or_free_event_removes_no_slot(shop: Shop) -> None:
    connection = await shop.connect()
    slots = await first_slots(shop.client, "free")
    await shop.calendar.busy(shop.address, *_span(slots[1]), free=True)
    await shop.sync(connection)
    assert [_span(s) for s in await first_slots(shop.client, "free")] == [_span(s) for s in slots]


async def test_confirm_writes_one_event_reschedule_moves_it_cancel_deletes_it(
    shop: Shop,
) -> None:
    await shop.connect()
    booking = await shop.booked()
    [event] = await shop.shown(1)
    assert (event.start, event.end) == (
        datetime.fromisoformat(booking["start"]),
        datetime.fromisoformat(booking["end"]),
    )
    assert "Grace Hopper" in event.summary

    later = (await first_slots(shop.client, "free"))[2]
    moved = await shop.client.post(
        f"/v1/bookings/{booking['id']}/reschedule",
        json={"allocation_token": later["allocation_token"]},
    )
    assert moved.status_code == 200, moved.text
    [event] = await eventually(
        lambda: shop.calendar.shown(shop.address),
        lambda s: len(s) == 1 and (s[0].start, s[0].end) == _span(later),
        seconds=20,
    )

    cancelled = await shop.client.post(f"/v1/bookings/{booking['id']}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    await shop.shown(0)
    view = await eventually(
        lambda: _booking(shop, booking["id"]),
        lambda b: [e["status"] for e in b["calendar_events"]] == ["deleted"],
    )
    assert view["calendar_events"][0]["calendar_id"] == shop.address
    if shop.calendar.provider == "google":  # one history of the workflow is enough
        await record(await _handle(shop, export_workflow_id(booking["id"])), "calendar_export")


async def test_a_second_delete_of_a_cancelled_bookings_event_is_a_no_op(
    shop: Shop, live: FastAPI
) -> None:
    await shop.connect()
    booking = await shop.booked()
    await shop.shown(1)
    await shop.client.post(f"/v1/bookings/{booking['id']}/cancel", json={})
    await shop.shown(0)
    ctx: AppContext = live.state.ctx
    await request_export(
        await ctx.temporal(), delivery_task_queue(QUEUE), booking["id"], remove=True
    )
    view = await eventually(
        lambda: _booking(shop, booking["id"]),
        lambda b: [e["status"] for e in b["calendar_events"]] == ["deleted"],
    )
    assert view["calendar_events"][0]["last_error"] is None
    assert await shop.calendar.shown(shop.address) == []


async def test_an_undo_takes_the_event_off_though_the_booking_still_reads_confirmed(
    shop: Shop, live: FastAPI
) -> None:
    """The saga's compensation removes the events before it writes the final status."""
    await shop.connect()
    booking = await shop.booked()
    await shop.shown(1)
    ctx: AppContext = live.state.ctx
    await request_export(
        await ctx.temporal(), delivery_task_queue(QUEUE), booking["id"], remove=True
    )
    await shop.shown(0)
    assert (await _booking(shop, booking["id"]))["status"] == "confirmed"


async def test_booking_cancelling_and_booking_the_same_slot_again_gives_a_live_event(
    shop: Shop,
) -> None:
    await shop.connect()
    first = await shop.booked()
    await shop.shown(1)
    await shop.client.post(f"/v1/bookings/{first['id']}/cancel", json={})
    await shop.shown(0)
    again = await shop.booked()
    assert again["start"] == first["start"]
    [event] = await shop.shown(1)
    assert event.start == datetime.fromisoformat(again["start"])


@pytest.mark.parametrize(("status", "retry_after"), [(429, 0.5), (500, None), (503, 1.0)])
async def test_a_provider_failing_for_a_while_delays_the_export_not_the_booking(
    shop: Shop, status: int, retry_after: float | None
) -> None:
    await shop.connect()
    shop.calendar.fail(3, status, retry_after=retry_after)
    booking = await shop.booked()
    assert booking["status"] == "confirmed"
    await shop.shown(1)
    view = await _booking(shop, booking["id"])
    assert [e["status"] for e in view["calendar_events"]] == ["written"]


async def test_an_export_retried_after_the_provider_took_it_writes_one_event(
    shop: Shop,
) -> None:
    await shop.connect()
    shop.calendar.stall(1, 2.5)  # past the client's 2 s timeout, then it takes effect
    await shop.booked()
    await shop.shown(1)


async def test_a_revoked_credential_marks_only_its_own_connection(
    shop: Shop, live: FastAPI
) -> None:
    staff = await shop.connect()
    room = await shop.connect(shop.room, f"room-{uuid.uuid4().hex[:6]}@clinic.test")
    shop.calendar.revoke(staff)
    assert (await shop.sync(staff))["status"] == "reauth_required"
    assert (await shop.sync(room))["status"] == "active"
    listed = await shop.client.get(f"/v1/resources/{shop.staff}/calendar-connections")
    [shown] = listed.json()["items"]
    assert shown["status"] == "reauth_required" and shown["last_error"]
    ctx: AppContext = live.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        broken = await db.scalars(
            select(WebhookEvent).where(WebhookEvent.type == "calendar_connection.broken")
        )
        ids = [e.payload["data"]["calendar_connection"]["id"] for e in broken]
    assert ids.count(staff["id"]) == 1 and room["id"] not in ids
    if shop.calendar.provider == "microsoft":
        handle = await _handle(shop, connection_workflow_id(staff["id"]))
        await record(handle, "calendar_connection_reauth_required")


async def test_a_broken_connection_is_announced_to_the_tenants_webhook_receivers(
    shop: Shop,
) -> None:
    async with receiver(200) as hooks:
        subscribed = await shop.client.post(
            "/v1/webhook-endpoints",
            json={"url": hooks.url, "events": ["calendar_connection.broken"]},
        )
        assert subscribed.status_code == 201, subscribed.text
        connection = await shop.connect()
        shop.calendar.revoke(connection)
        await shop.sync(connection)
        [heard] = await hooks.wait_for(1, seconds=20)
    event = heard.json
    assert event["type"] == "calendar_connection.broken"
    broken = event["data"]["calendar_connection"]
    assert broken["id"] == connection["id"] and broken["status"] == "reauth_required"
    assert "credentials" not in broken


async def test_an_event_deleted_by_hand_is_recorded_in_the_bookings_history(shop: Shop) -> None:
    connection = await shop.connect()
    booking = await shop.booked()
    [event] = await shop.shown(1)
    await shop.calendar.delete(shop.address, event.id)
    await shop.sync(connection)
    history = (await shop.client.get(f"/v1/bookings/{booking['id']}/history")).json()
    assert "booking.calendar_event_deleted" in [h["type"] for h in history["items"]]
    view = await _booking(shop, booking["id"])
    assert [e["status"] for e in view["calendar_events"]] == ["deleted_by_hand"]
    assert view["status"] == "confirmed"


async def test_an_event_deleted_by_hand_is_sent_as_a_webhook_naming_the_calendar(
    shop: Shop, live: FastAPI
) -> None:
    connection = await shop.connect()
    booking = await shop.booked()
    [event] = await shop.shown(1)
    await shop.calendar.delete(shop.address, event.id)
    await shop.sync(connection)
    ctx: AppContext = live.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        [sent] = await db.scalars(
            select(WebhookEvent).where(
                WebhookEvent.booking_id == uuid.UUID(booking["id"]),
                WebhookEvent.type == "booking.calendar_event_deleted",
            )
        )
    assert sent.payload["data"]["calendar"] == {
        "connection_id": connection["id"],
        "provider": shop.calendar.provider,
        "calendar_id": shop.address,
    }
    assert sent.payload["data"]["booking"]["id"] == booking["id"]


async def test_holdfasts_own_events_are_never_imported_as_busy_time(
    shop: Shop, live: FastAPI
) -> None:
    connection = await shop.connect()
    await shop.booked()
    await shop.shown(1)
    await shop.sync(connection)
    assert await _imported(live, connection) == 0


async def test_a_deleted_connection_stops_blocking_at_once(shop: Shop) -> None:
    connection = await shop.connect()
    slots = await first_slots(shop.client, "free")
    await shop.calendar.busy(shop.address, *_span(slots[1]))
    await shop.sync(connection)
    path = f"/v1/resources/{shop.staff}/calendar-connections/{connection['id']}"
    assert (await shop.client.delete(path)).status_code == 204
    assert [_span(s) for s in await first_slots(shop.client, "free")][:3] == [
        _span(s) for s in slots[:3]
    ]
    gone = await eventually(lambda: shop.client.get(path), lambda r: r.status_code == 404)
    assert_error(gone, 404, "not_found")


async def _handle(shop: Shop, workflow_id: str) -> WorkflowHandle[Any, Any]:
    ctx: AppContext = shop.live.state.ctx
    return (await ctx.temporal()).get_workflow_handle(workflow_id)


async def _booking(shop: Shop, booking_id: str) -> Any:
    answer = await shop.client.get(f"/v1/bookings/{booking_id}")
    assert answer.status_code == 200, answer.text
    return answer.json()


async def test_an_event_that_never_changes_enters_the_window_as_the_horizon_moves(
    shop: Shop, live: FastAPI
) -> None:
    """The horizon moves with the days (here: with the service's own reach); a cursor of
    the old window gives way to a full listing, so an untouched event comes in too."""
    await shop.client.patch("/v1/services/free", json={"max_advance_days": 30})
    connection = await shop.connect()
    far = datetime.now(UTC) + timedelta(days=60)
    await shop.calendar.busy(shop.address, far, far + timedelta(hours=1))
    await shop.sync(connection)
    assert await _imported(live, connection) == 0
    await shop.client.patch("/v1/services/free", json={"max_advance_days": 90})
    await shop.sync(connection)
    assert await _imported(live, connection) == 1


async def _imported(live: FastAPI, connection: dict[str, Any]) -> int:
    ctx: AppContext = live.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        count = await db.scalar(
            select(func.count())
            .select_from(ExternalBusy)
            .where(ExternalBusy.connection_id == uuid.UUID(connection["id"]))
        )
    return int(count or 0)


async def test_two_resources_of_a_booking_on_one_calendar_show_it_once(
    shop: Shop, live: FastAPI
) -> None:
    await shop.connect()
    await shop.connect(shop.room, shop.address)
    booking = await shop.booked()
    await shop.shown(1)
    await shop.client.post(f"/v1/bookings/{booking['id']}/cancel", json={})
    await shop.shown(0)
    history = (await shop.client.get(f"/v1/bookings/{booking['id']}/history")).json()
    assert "booking.calendar_event_deleted" not in [h["type"] for h in history["items"]]


async def test_another_resources_booking_on_a_shared_calendar_is_busy_time(
    shop: Shop, live: FastAPI
) -> None:
    """One person as two resources reading one calendar: a booking of either, written
    there, is busy time for the other, and not for the one it holds."""
    other = (await staff(shop.client, "Dr Ada, online", weekly_hours=ALWAYS_OPEN))["id"]
    by_staff = {s: await shop.connect(s, shop.address) for s in (shop.staff, other)}
    booking = await shop.booked()
    await shop.shown(1)
    [held] = [r["id"] for r in booking["resources"] if r["id"] in by_staff]
    [free] = [s for s in by_staff if s != held]
    for connection in by_staff.values():
        await shop.sync(connection)
    assert await _imported(live, by_staff[free]) == 1
    assert await _imported(live, by_staff[held]) == 0


async def test_a_calendar_connected_after_a_booking_shows_it_after_its_first_sync(
    shop: Shop,
) -> None:
    booking = await shop.booked()
    connection = await shop.connect()
    await shop.sync(connection)
    [event] = await shop.shown(1)
    assert event.start == datetime.fromisoformat(booking["start"])
