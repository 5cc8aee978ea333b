"""`POST /v1/availability/query` against a real PostgreSQL (docs/api.md)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import AppContext
from tests.support.api import assert_error, room, service, staff
from tests.support.clients import new_tenant_client
from tests.support.db import insert_booking, insert_external_busy

MONDAY = "2027-03-01"  # a Monday, inside every test service's max advance
BERLIN = "+01:00"


def at(clock: str, day: str = MONDAY) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00{BERLIN}")


def query(svc: dict[str, Any], day: str = MONDAY, **extra: Any) -> dict[str, Any]:
    return {
        "service": svc["code"],
        "range_start": f"{day}T00:00:00{BERLIN}",
        "range_end": f"{day}T23:59:00{BERLIN}",
        "timezone": "Europe/Berlin",
        **extra,
    }


async def slots(api: httpx.AsyncClient, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await api.post("/v1/availability/query", json=body)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["slots"]
    return found


def clocks(found: list[dict[str, Any]]) -> list[str]:
    return [s["start"][11:16] for s in found]


async def test_slots_come_with_resources_in_the_requested_timezone(api: httpx.AsyncClient) -> None:
    ada, r1, svc = await staff(api), await room(api), await service(api)
    body = query(svc, timezone="America/New_York")
    found = await slots(api, body)
    assert len(found) == 8
    first = found[0]
    assert (
        first["start"] == "2027-03-01T03:00:00-05:00"
        and first["end"] == "2027-03-01T04:00:00-05:00"
    )
    assert first["resources"] == [
        {"id": ada["id"], "kind": "staff", "name": "Dr Ada"},
        {"id": r1["id"], "kind": "room", "name": "Room 1"},
    ]


async def test_allocation_token_is_signed_and_encodes_the_slot(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    ada, r1, svc = await staff(api), await room(api), await service(api)
    first = (await slots(api, query(svc)))[0]
    ctx: AppContext = app.state.ctx
    grant = ctx.signer.read(first["allocation_token"], now=int(time.time()))
    assert grant.service_id == svc["id"] and grant.resource_ids == (ada["id"], r1["id"])
    assert grant.start == int(at("09:00").timestamp()) and grant.end == int(at("10:00").timestamp())


async def test_service_can_be_named_by_id(api: httpx.AsyncClient) -> None:
    await staff(api), await room(api)
    svc = await service(api)
    assert len(await slots(api, {**query(svc), "service": svc["id"]})) == 8


async def test_existing_booking_with_buffers_blocks_its_widened_span(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    ada, _r1 = await staff(api), await room(api)
    svc = await service(
        api,
        duration_minutes=60,
        slot_interval_minutes=15,
        buffer_before_minutes=10,
        buffer_after_minutes=15,
    )
    await insert_booking(db, [ada["id"]], svc["id"], at("12:00"), at("13:00"), before=10, after=15)
    found = clocks(await slots(api, query(svc)))
    assert "10:30" in found and "10:45" not in found and "12:00" not in found
    assert "13:15" not in found and "13:30" in found
    assert len(set(found)) == len(found)


async def test_live_hold_blocks_but_an_expired_hold_does_not(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    ada, _r1, svc = await staff(api), await room(api), await service(api)
    future = datetime.now().astimezone() + timedelta(minutes=5)
    past = datetime.now().astimezone() - timedelta(seconds=1)
    await insert_booking(
        db, [ada["id"]], svc["id"], at("09:00"), at("10:00"), status="held", hold_expires_at=future
    )
    await insert_booking(
        db, [ada["id"]], svc["id"], at("11:00"), at("12:00"), status="held", hold_expires_at=past
    )
    found = clocks(await slots(api, query(svc)))
    assert "09:00" not in found and "11:00" in found


async def test_ignore_booking_id_treats_its_own_allocations_as_free(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    ada, r1, svc = await staff(api), await room(api), await service(api)
    booking = await insert_booking(db, [ada["id"], r1["id"]], svc["id"], at("09:00"), at("10:00"))
    assert "09:00" not in clocks(await slots(api, query(svc)))
    moved = await slots(api, query(svc, ignore_booking_id=str(booking)))
    assert "09:00" in clocks(moved)


async def test_ignoring_another_tenants_booking_is_404(
    api: httpx.AsyncClient, app: FastAPI, operator: httpx.AsyncClient, db: AsyncSession
) -> None:
    ada, _r1, svc = await staff(api), await room(api), await service(api)
    booking = await insert_booking(db, [ada["id"]], svc["id"], at("09:00"), at("10:00"))
    async with await new_tenant_client(app, operator) as other:
        await staff(other), await room(other)
        theirs = await service(other)
        response = await other.post(
            "/v1/availability/query", json=query(theirs, ignore_booking_id=str(booking))
        )
        assert_error(response, 404, "not_found")


async def test_time_off_and_external_busy_block_slots(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    ada, r1, svc = await staff(api), await room(api), await service(api)
    off = {"start": at("09:00").isoformat(), "end": at("11:00").isoformat()}
    assert (await api.post(f"/v1/resources/{ada['id']}/time-off", json=off)).status_code == 201
    await insert_external_busy(db, r1["id"], at("15:30"), at("16:10"))
    assert clocks(await slots(api, query(svc))) == ["11:00", "12:00", "13:00", "14:00"]


async def test_two_requirements_of_one_kind_take_two_resources(api: httpx.AsyncClient) -> None:
    ada = await staff(api)
    svc = await service(api, code="duo", requirements=[{"kind": "staff"}, {"kind": "staff"}])
    assert await slots(api, query(svc)) == []
    bob = await staff(api, name="Dr Bob")
    found = await slots(api, query(svc))
    assert {r["id"] for r in found[0]["resources"]} == {ada["id"], bob["id"]}


async def test_pinned_resource_is_used_for_its_requirement(api: httpx.AsyncClient) -> None:
    await staff(api)
    bob, r1 = await staff(api, name="Dr Bob"), await room(api)
    svc = await service(api)
    found = await slots(api, query(svc, resource_ids=[bob["id"]]))
    assert {s["resources"][0]["id"] for s in found} == {bob["id"]}
    assert {s["resources"][1]["id"] for s in found} == {r1["id"]}


async def test_pinning_another_tenants_resource_is_404(
    api: httpx.AsyncClient, app: FastAPI, operator: httpx.AsyncClient
) -> None:
    mine = await staff(api)
    async with await new_tenant_client(app, operator) as other:
        await staff(other), await room(other)
        theirs = await service(other)
        response = await other.post(
            "/v1/availability/query", json=query(theirs, resource_ids=[mine["id"]])
        )
        assert_error(response, 404, "not_found")


async def test_pinning_a_resource_the_service_cannot_use_is_422(api: httpx.AsyncClient) -> None:
    await staff(api), await room(api)
    device = (
        await api.post("/v1/resources", json={"kind": "asset", "name": "Laser", "timezone": "UTC"})
    ).json()
    svc = await service(api)
    response = await api.post(
        "/v1/availability/query", json=query(svc, resource_ids=[device["id"]])
    )
    assert_error(response, 422, "resource_not_usable")


async def test_deactivated_resource_offers_no_slots(api: httpx.AsyncClient) -> None:
    ada, _, svc = await staff(api), await room(api), await service(api)
    await api.patch(f"/v1/resources/{ada['id']}", json={"active": False})
    assert await slots(api, query(svc)) == []


async def test_unknown_or_inactive_service(api: httpx.AsyncClient) -> None:
    svc = await service(api)
    missing = {**query(svc), "service": "no-such-service"}
    assert_error(await api.post("/v1/availability/query", json=missing), 404, "not_found")
    await api.patch(f"/v1/services/{svc['id']}", json={"active": False})
    assert_error(await api.post("/v1/availability/query", json=query(svc)), 409, "service_inactive")


async def test_malformed_queries_are_422(api: httpx.AsyncClient) -> None:
    svc = await service(api)
    good = query(svc)
    for change in (
        {"range_start": "2027-03-01T00:00:00"},  # no offset
        {"range_end": "2027-02-28T00:00:00+01:00"},  # before the start
        {"timezone": "Nowhere/Land"},
        {"limit": 0},
        {"resource_ids": ["not-a-uuid"]},
        {"range_end": "2027-12-01T00:00:00+01:00"},
    ):
        response = await api.post("/v1/availability/query", json={**good, **change})
        assert response.status_code == 422, (change, response.text)
        assert response.json()["error"]["code"] in {"validation_error", "range_too_long"}


async def test_limit_caps_the_slots(api: httpx.AsyncClient) -> None:
    await staff(api), await room(api)
    svc = await service(api)
    assert len(await slots(api, query(svc, limit=3))) == 3


async def test_a_full_page_says_where_the_next_one_starts(api: httpx.AsyncClient) -> None:
    await staff(api), await room(api)
    svc = await service(api)
    every = await slots(api, query(svc))
    first = await api.post("/v1/availability/query", json=query(svc, limit=2))
    page = first.json()
    assert [s["start"] for s in page["slots"]] == [s["start"] for s in every[:2]]
    assert page["next_range_start"] == every[2]["start"]
    rest = await api.post(
        "/v1/availability/query", json={**query(svc), "range_start": page["next_range_start"]}
    )
    assert [s["start"] for s in rest.json()["slots"]] == [s["start"] for s in every[2:]]


async def test_the_last_page_has_no_next_start(api: httpx.AsyncClient) -> None:
    await staff(api), await room(api)
    svc = await service(api)
    answer = await api.post("/v1/availability/query", json=query(svc))
    assert answer.json()["next_range_start"] is None


async def test_long_searches_leave_the_server_free_for_other_requests(
    api: httpx.AsyncClient,
) -> None:
    """Long searches run in processes of their own: a health check waits for none of
    four 62-day searches of 5,000 slots each."""
    always = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    await staff(api, weekly_hours=always), await room(api, weekly_hours=always)
    svc = await service(api, slot_interval_minutes=15, duration_minutes=15)
    long = {
        **query(svc),
        "range_end": (
            datetime.fromisoformat(query(svc)["range_start"]) + timedelta(days=62)
        ).isoformat(),
        "limit": 5000,
    }

    async def search() -> float:
        started = time.perf_counter()
        answer = await api.post("/v1/availability/query", json=long)
        assert len(answer.json()["slots"]) == 5000
        return time.perf_counter() - started

    searches = [asyncio.create_task(search()) for _ in range(4)]
    # Due at 0.3 s, when their engines are under way; a blocked loop makes it late (the
    # sleep's own wake-up included).
    due = time.perf_counter() + 0.3
    await asyncio.sleep(0.3)
    assert (await api.get("/healthz")).status_code == 200
    late = time.perf_counter() - due
    slowest = max(await asyncio.gather(*searches))
    assert late < 0.15 < slowest, (late, slowest)  # inline, it was 0.35 s late
