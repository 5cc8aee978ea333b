"""Bookings end to end: HTTP API, Temporal dev server, worker, PostgreSQL
(docs/api.md#bookings, docs/lifecycle.md)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from db.models import Allocation, IdempotencyRecord
from scheduling.tokens import AllocationGrant
from settings import Settings
from tests.support.api import assert_error, open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import ADMIN_KEY, client_for, fresh_tenant, new_tenant_client
from tests.support.db import EVERY_TENANT, insert_booking, insert_external_busy
from tests.support.histories import record
from tests.support.live import live_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "bookings-e2e") as app:
        yield app


@pytest.fixture
async def shop(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        await open_all_day(client)
        yield client


async def test_a_free_service_is_confirmed_at_once(shop: httpx.AsyncClient) -> None:
    svc = await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[0]
    response = await book(
        shop, {"allocation_token": slot["allocation_token"], "metadata": {"ref": "A-1"}}
    )
    assert response.status_code == 201, response.text
    booking = response.json()
    assert booking["status"] == "confirmed" and booking["payment"] is None
    assert booking["start"] == slot["start"] and booking["service"]["code"] == svc["code"]
    assert [r["id"] for r in booking["resources"]] == [r["id"] for r in slot["resources"]]
    assert booking["workflow_id"] == f"booking-{booking['id']}"
    assert (await shop.get(f"/v1/bookings/{booking['id']}")).json()["id"] == booking["id"]
    assert slot["start"] not in [s["start"] for s in await first_slots(shop, "free", 1)]


async def test_a_booking_by_service_and_start(shop: httpx.AsyncClient) -> None:
    await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[1]
    response = await book(shop, {"service": "free", "start": slot["start"]})
    assert response.status_code == 201, response.text
    assert response.json()["start"] == slot["start"]
    again = await book(shop, {"service": "free", "start": slot["start"]})
    assert_error(again, 409, "slot_unavailable")


async def test_idempotency_key_is_required(shop: httpx.AsyncClient) -> None:
    await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[0]
    response = await shop.post(
        "/v1/bookings",
        json={
            "allocation_token": slot["allocation_token"],
            "customer": {"name": "G", "email": "g@example.test"},
        },
    )
    assert_error(response, 400, "idempotency_key_required")


async def test_same_key_same_body_replays_and_other_body_is_422(shop: httpx.AsyncClient) -> None:
    await service(shop, code="free")
    slots = await first_slots(shop, "free")
    first = await book(shop, {"allocation_token": slots[0]["allocation_token"]}, key="k-1")
    again = await book(shop, {"allocation_token": slots[0]["allocation_token"]}, key="k-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = await book(shop, {"allocation_token": slots[1]["allocation_token"]}, key="k-1")
    assert_error(other, 422, "idempotency_key_reused")


async def test_a_repeat_while_the_first_is_in_flight_gets_the_same_booking(
    shop: httpx.AsyncClient,
) -> None:
    await service(shop, code="free")
    token = (await first_slots(shop, "free"))[0]["allocation_token"]
    responses = await asyncio.gather(
        *(book(shop, {"allocation_token": token}, key="flight") for _ in range(5))
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1


async def test_200_concurrent_requests_for_one_slot_book_it_once(
    shop: httpx.AsyncClient,
    live: FastAPI,
) -> None:
    await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[0]
    responses = await asyncio.gather(
        *(book(shop, {"allocation_token": slot["allocation_token"]}) for _ in range(200))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) == 1 and codes.count(409) == 199, codes
    ctx: AppContext = live.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        live_allocations = await db.scalar(
            select(func.count())
            .select_from(Allocation)
            .where(
                Allocation.resource_id == uuid.UUID(slot["resources"][0]["id"]),
                Allocation.status.in_(("held", "confirmed")),
            )
        )
    assert live_allocations == 1


async def test_a_tampered_or_expired_token_is_422(shop: httpx.AsyncClient, live: FastAPI) -> None:
    await service(shop, code="free")
    token = (await first_slots(shop, "free"))[0]["allocation_token"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert_error(await book(shop, {"allocation_token": tampered}), 422, "invalid_allocation_token")
    ctx: AppContext = live.state.ctx
    grant = ctx.signer.read(token, now=0)
    expired = ctx.signer.issue(
        AllocationGrant(
            grant.tenant_id,
            grant.service_id,
            grant.start,
            grant.end,
            grant.resource_ids,
            expires_at=1,
        )
    )
    assert_error(await book(shop, {"allocation_token": expired}), 422, "allocation_token_expired")


async def test_another_tenants_token_and_booking_are_refused(
    shop: httpx.AsyncClient,
    live: FastAPI,
) -> None:
    await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[0]
    booking = (await book(shop, {"allocation_token": slot["allocation_token"]})).json()
    async with (
        client_for(live, ADMIN_KEY) as operator,
        await new_tenant_client(live, operator) as other,
    ):
        assert_error(
            await book(other, {"allocation_token": slot["allocation_token"]}),
            422,
            "invalid_allocation_token",
        )
        assert_error(await other.get(f"/v1/bookings/{booking['id']}"), 404, "not_found")
        assert_error(
            await other.post(f"/v1/bookings/{booking['id']}/cancel", json={}), 404, "not_found"
        )


async def test_another_tenants_resource_pinned_in_a_booking_is_404(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    """As in an availability query: another tenant's id is as unknown as a made-up one."""
    await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[0]
    async with (
        client_for(live, ADMIN_KEY) as operator,
        await new_tenant_client(live, operator) as other,
    ):
        await service(other, code="free")
        pinned = {"service": "free", "start": slot["start"]}
        theirs = [r["id"] for r in slot["resources"]]
        assert_error(await book(other, {**pinned, "resource_ids": theirs}), 404, "not_found")


async def test_pay_at_venue_waits_for_mark_paid_then_confirms(shop: httpx.AsyncClient) -> None:
    await service(shop, code="paid", price={"amount": 8000, "currency": "EUR"})
    slot = (await first_slots(shop, "paid"))[0]
    held = (await book(shop, {"allocation_token": slot["allocation_token"]})).json()
    assert held["status"] == "pending_payment" and held["hold_expires_at"]
    assert held["payment"]["status"] == "requires_payment" and held["payment"]["amount"] == 8000
    paid = await shop.post(f"/v1/bookings/{held['id']}/mark-paid")
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "confirmed"
    assert paid.json()["payment"]["captured_amount"] == 8000
    again = await shop.post(f"/v1/bookings/{held['id']}/mark-paid")
    assert_error(again, 409, "invalid_state")


@pytest.mark.parametrize(("hours_before", "refund"), [(48, 8000), (10, 4000)])
async def test_cancel_after_confirm_refunds_per_policy_and_frees_the_slot(
    shop: httpx.AsyncClient,
    hours_before: int,
    refund: int,
) -> None:
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(
        hours=hours_before
    )
    local = start.astimezone().isoformat()
    await service(
        shop,
        code="paid",
        price={"amount": 8000, "currency": "EUR"},
        slot_interval_minutes=60,
        cancellation={"free_until_hours_before": 24, "late_refund_percent": 50},
    )
    created = await book(shop, {"service": "paid", "start": local})
    assert created.status_code == 201, created.text
    booking = created.json()
    await shop.post(f"/v1/bookings/{booking['id']}/mark-paid")
    cancelled = await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={"reason": "ill"})
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["payment"]["refunded_amount"] == refund
    rebooked = await book(shop, {"service": "paid", "start": local})
    assert rebooked.status_code == 201, rebooked.text


async def test_reschedule_moves_atomically_even_onto_its_own_old_slot(
    shop: httpx.AsyncClient,
) -> None:
    await service(shop, code="long", duration_minutes=90, slot_interval_minutes=30)
    slots = await first_slots(shop, "long")
    booking = (await book(shop, {"allocation_token": slots[0]["allocation_token"]})).json()
    moved = await shop.post(
        f"/v1/bookings/{booking['id']}/reschedule", json={"start": slots[1]["start"]}
    )  # overlaps its old span
    assert moved.status_code == 200, moved.text
    assert moved.json()["start"] == slots[1]["start"] and moved.json()["version"] == 2
    history = (await shop.get(f"/v1/bookings/{booking['id']}/history")).json()["items"]
    assert [e["type"] for e in history][:1] == ["booking.confirmed"]
    assert "booking.rescheduled" in [e["type"] for e in history]


async def test_reschedule_onto_a_taken_slot_is_409_and_changes_nothing(
    shop: httpx.AsyncClient,
) -> None:
    await service(shop, code="free")
    slots = await first_slots(shop, "free")
    mine = (await book(shop, {"allocation_token": slots[0]["allocation_token"]})).json()
    await book(shop, {"allocation_token": slots[2]["allocation_token"]})
    response = await shop.post(
        f"/v1/bookings/{mine['id']}/reschedule", json={"start": slots[2]["start"]}
    )
    assert_error(response, 409, "slot_unavailable")
    after = (await shop.get(f"/v1/bookings/{mine['id']}")).json()
    assert after["start"] == mine["start"] and after["version"] == 1


async def test_reschedule_by_a_token_whose_slot_was_taken_since_is_409(
    shop: httpx.AsyncClient,
) -> None:
    """The token was offered while the slot was free: the workflow's move step finds it
    taken, and its refusal reaches the client as 409, not as a failed booking."""
    await service(shop, code="free")
    slots = await first_slots(shop, "free")
    mine = (await book(shop, {"allocation_token": slots[0]["allocation_token"]})).json()
    await book(shop, {"allocation_token": slots[2]["allocation_token"]})
    await assert_move_refused(shop, mine, slots[2])


async def assert_move_refused(
    shop: httpx.AsyncClient, mine: dict[str, Any], slot: dict[str, Any]
) -> None:
    """A move by `slot`'s token is 409, and the booking stays where and as it was."""
    response = await shop.post(
        f"/v1/bookings/{mine['id']}/reschedule", json={"allocation_token": slot["allocation_token"]}
    )
    assert_error(response, 409, "slot_unavailable")
    after = (await shop.get(f"/v1/bookings/{mine['id']}")).json()
    assert after["start"] == mine["start"] and after["version"] == 1


async def test_no_show_before_the_start_is_409(shop: httpx.AsyncClient) -> None:
    await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[0]
    booking = (await book(shop, {"allocation_token": slot["allocation_token"]})).json()
    assert_error(await shop.post(f"/v1/bookings/{booking['id']}/no-show"), 409, "invalid_state")


async def test_list_filters_by_status_resource_time_and_metadata(shop: httpx.AsyncClient) -> None:
    await service(shop, code="free")
    slots = await first_slots(shop, "free")
    a = (
        await book(
            shop, {"allocation_token": slots[0]["allocation_token"], "metadata": {"channel": "web"}}
        )
    ).json()
    b = (
        await book(
            shop,
            {"allocation_token": slots[1]["allocation_token"], "metadata": {"channel": "phone"}},
        )
    ).json()
    await shop.post(f"/v1/bookings/{b['id']}/cancel", json={})

    async def ids(**params: str) -> list[str]:
        response = await shop.get("/v1/bookings", params=params)
        assert response.status_code == 200, response.text
        return [item["id"] for item in response.json()["items"]]

    assert await ids() == [a["id"], b["id"]]
    assert await ids(status="cancelled") == [b["id"]]
    assert await ids(**{"metadata.channel": "web"}) == [a["id"]]
    assert await ids(resource_id=a["resources"][0]["id"]) == [a["id"], b["id"]]
    assert await ids(**{"from": slots[1]["start"]}) == [b["id"]]
    assert await ids(to=slots[1]["start"]) == [a["id"]]


async def held(shop: httpx.AsyncClient) -> dict[str, Any]:
    """A booking of a priced service, held for payment."""
    await service(shop, code="paid", price={"amount": 100, "currency": "EUR"})
    slot = (await first_slots(shop, "paid"))[0]
    booking: dict[str, Any] = (
        await book(shop, {"allocation_token": slot["allocation_token"]})
    ).json()
    return booking


async def test_history_lists_the_audit_events_in_order(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    booking = await held(shop)
    await shop.post(f"/v1/bookings/{booking['id']}/mark-paid")
    await shop.post(f"/v1/bookings/{booking['id']}/cancel", json={"reason": "changed plans"})
    ctx: AppContext = live.state.ctx
    await record(
        (await ctx.temporal()).get_workflow_handle(booking["workflow_id"]), "paid_then_cancelled"
    )
    items = (await shop.get(f"/v1/bookings/{booking['id']}/history")).json()["items"]
    types = [item["type"] for item in items]
    assert types == [
        "booking.held",
        "payment.requested",
        "payment.captured",  # captured first: a confirmed booking is a paid one
        "booking.confirmed",
        "payment.refunded",
        "booking.cancelled",
    ]
    assert items[-1]["data"] == {"reason": "changed plans"} and items[-1]["actor"] == "api"


async def test_the_history_names_who_settled_the_payment(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    booking = await held(shop)
    async with client_for(live, ADMIN_KEY) as operator:
        paid = await operator.post(f"/v1/bookings/{booking['id']}/mark-paid")
    assert paid.json()["status"] == "confirmed", paid.text
    items = (await shop.get(f"/v1/bookings/{booking['id']}/history")).json()["items"]
    assert [i["actor"] for i in items if i["type"] == "booking.confirmed"] == ["operator"]


async def test_a_pending_booking_moved_then_paid_is_confirmed(shop: httpx.AsyncClient) -> None:
    await service(shop, code="paid", price={"amount": 3000, "currency": "EUR"})
    slots = await first_slots(shop, "paid")
    held = (await book(shop, {"allocation_token": slots[0]["allocation_token"]})).json()
    moved = await shop.post(
        f"/v1/bookings/{held['id']}/reschedule",
        json={"allocation_token": slots[2]["allocation_token"]},
    )
    assert moved.status_code == 200, moved.text
    paid = await shop.post(f"/v1/bookings/{held['id']}/mark-paid")
    assert paid.status_code == 200 and paid.json()["status"] == "confirmed", paid.text
    assert paid.json()["start"] == slots[2]["start"]


async def forget_response(live: FastAPI, key: str) -> None:
    """As if the API had stopped between the claim and storing its answer."""
    ctx: AppContext = live.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        await db.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.key == key)
            .values(response_status=None, response_body=None)
        )
        await db.commit()


async def test_a_repeat_whose_answer_was_lost_gets_the_booking_it_made(
    shop: httpx.AsyncClient,
    live: FastAPI,
) -> None:
    await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[0]
    key = f"lost-{uuid.uuid4()}"
    first = await book(shop, {"service": "free", "start": slot["start"]}, key=key)
    await forget_response(live, key)
    again = await book(shop, {"service": "free", "start": slot["start"]}, key=key)
    assert again.status_code == 201, again.text
    assert again.json()["id"] == first.json()["id"]


async def test_a_repeat_of_a_refused_claim_is_still_409(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    await service(shop, code="free")
    token = (await first_slots(shop, "free"))[0]["allocation_token"]
    assert (await book(shop, {"allocation_token": token})).status_code == 201
    key = f"refused-{uuid.uuid4()}"
    assert_error(await book(shop, {"allocation_token": token}, key=key), 409, "slot_unavailable")
    await forget_response(live, key)  # the workflow that refused it has finished
    assert_error(await book(shop, {"allocation_token": token}, key=key), 409, "slot_unavailable")


async def test_an_expired_hold_does_not_block_a_reschedule(
    shop: httpx.AsyncClient,
    live: FastAPI,
) -> None:
    svc = await service(shop, code="free")
    slots = await first_slots(shop, "free")
    mine = (await book(shop, {"allocation_token": slots[0]["allocation_token"]})).json()
    lapsed = datetime.now(UTC) - timedelta(minutes=1)
    target = datetime.fromisoformat(slots[2]["start"])
    ctx: AppContext = live.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:  # a hold whose workflow never ran to release it
        await insert_booking(
            db,
            [r["id"] for r in slots[2]["resources"]],
            svc["id"],
            target,
            target + timedelta(hours=1),
            status="held",
            hold_expires_at=lapsed,
        )
    moved = await shop.post(
        f"/v1/bookings/{mine['id']}/reschedule", json={"start": slots[2]["start"]}
    )
    assert moved.status_code == 200, moved.text


@pytest.mark.parametrize("start", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
async def test_a_start_outside_any_plausible_year_is_422(
    shop: httpx.AsyncClient, start: str
) -> None:
    await service(shop, code="free")
    assert_error(await book(shop, {"service": "free", "start": start}), 422, "validation_error")


async def test_an_expired_hold_never_blocks_a_new_booking(
    shop: httpx.AsyncClient,
    live: FastAPI,
) -> None:
    svc = await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[0]
    start = datetime.fromisoformat(slot["start"])
    ctx: AppContext = live.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:  # a hold whose workflow never ran to release it
        stale = await insert_booking(
            db,
            [r["id"] for r in slot["resources"]],
            svc["id"],
            start,
            start + timedelta(hours=1),
            status="held",
            hold_expires_at=datetime.now(UTC) - timedelta(seconds=1),
        )
    booked = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert booked.status_code == 201, booked.text
    assert (await shop.get(f"/v1/bookings/{stale}")).json()["status"] == "expired"


async def busy_in_their_calendar(live: FastAPI, slot: dict[str, Any]) -> None:
    """The slot's first resource turns busy in its own calendar after the offer was made."""
    ctx: AppContext = live.state.ctx
    start, end = datetime.fromisoformat(slot["start"]), datetime.fromisoformat(slot["end"])
    async with ctx.sessions(EVERY_TENANT) as db:
        await insert_external_busy(db, slot["resources"][0]["id"], start, end)


async def test_a_claim_over_busy_time_in_a_resources_calendar_is_refused(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    await service(shop, code="free")
    slot = (await first_slots(shop, "free"))[1]
    await busy_in_their_calendar(live, slot)
    response = await book(shop, {"allocation_token": slot["allocation_token"]})
    assert_error(response, 409, "slot_unavailable")


async def test_a_move_onto_busy_time_in_a_resources_calendar_is_409_and_changes_nothing(
    shop: httpx.AsyncClient, live: FastAPI
) -> None:
    await service(shop, code="free")
    slots = await first_slots(shop, "free")
    mine = (await book(shop, {"allocation_token": slots[0]["allocation_token"]})).json()
    await busy_in_their_calendar(live, slots[2])
    await assert_move_refused(shop, mine, slots[2])
