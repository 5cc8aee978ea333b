"""Tenants, locations, resources, time off and services over HTTP (docs/api.md)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support.api import WEEKDAYS_9_TO_5, assert_error, create, room, service, staff
from tests.support.clients import client_for, new_tenant_client


async def test_operator_creates_a_tenant_whose_key_works(
    operator: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await create(operator, "/v1/tenants", {"name": "Clinic"})
    assert created["name"] == "Clinic" and created["api_key"].startswith("hf_")
    async with client_for(app, created["api_key"]) as tenant:
        assert (await tenant.get("/v1/resources")).status_code == 200


async def test_a_tenants_slug_is_its_own_and_well_formed(operator: httpx.AsyncClient) -> None:
    slug = f"clinic-{uuid.uuid4().hex[:8]}"
    first = await create(operator, "/v1/tenants", {"name": "Clinic", "slug": slug})
    assert first["slug"] == slug
    taken = await operator.post("/v1/tenants", json={"name": "Other", "slug": slug})
    assert_error(taken, 409, "slug_taken")
    other = await create(operator, "/v1/tenants", {"name": "Other"})
    moved = await operator.patch(f"/v1/tenants/{other['id']}", json={"slug": slug})
    assert_error(moved, 409, "slug_taken")
    for bad in ("Clinic", "-clinic", "clinic-", "cli nic", "x" * 64):
        refused = await operator.post("/v1/tenants", json={"name": "Bad", "slug": bad})
        assert_error(refused, 422, "validation_error")


async def test_creating_a_tenant_needs_the_operator_key(api: httpx.AsyncClient) -> None:
    assert_error(await api.post("/v1/tenants", json={"name": "x"}), 401, "unauthorized")


async def test_missing_or_unknown_key_is_401(app: FastAPI) -> None:
    async with client_for(app) as anonymous, client_for(app, "hf_nope") as stranger:
        assert_error(await anonymous.get("/v1/resources"), 401, "unauthorized")
        assert_error(await stranger.get("/v1/resources"), 401, "unauthorized")


async def test_operator_issues_another_key_for_a_tenant(
    operator: httpx.AsyncClient, app: FastAPI
) -> None:
    tenant = await create(operator, "/v1/tenants", {"name": "Clinic"})
    extra = await create(operator, f"/v1/tenants/{tenant['id']}/api-keys", {})
    async with client_for(app, extra["api_key"]) as client:
        await staff(client)
        async with client_for(app, tenant["api_key"]) as first:
            assert len((await first.get("/v1/resources")).json()["items"]) == 1


async def test_resource_round_trips_with_hours_and_overrides(api: httpx.AsyncClient) -> None:
    created = await staff(
        api,
        date_overrides=[
            {"date": "2026-12-24", "hours": [["09:00", "12:00"]]},
            {"date": "2026-12-25", "hours": []},
        ],
    )
    fetched = (await api.get(f"/v1/resources/{created['id']}")).json()
    assert fetched == created
    assert fetched["weekly_hours"]["mon"] == [["09:00", "17:00"]]
    assert fetched["date_overrides"][1] == {"date": "2026-12-25", "hours": []}


async def test_patch_changes_only_the_fields_sent(api: httpx.AsyncClient) -> None:
    created = await staff(api)
    response = await api.patch(
        f"/v1/resources/{created['id']}", json={"name": "Dr Grace", "tags": ["b", "a"]}
    )
    assert response.status_code == 200
    patched = response.json()
    assert patched["name"] == "Dr Grace" and patched["tags"] == ["a", "b"]
    assert patched["weekly_hours"] == created["weekly_hours"]


async def test_resource_list_paginates_with_a_cursor(api: httpx.AsyncClient) -> None:
    made = [(await room(api, name=f"Room {i}"))["id"] for i in range(5)]
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/resources", params=params)).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made


async def test_resource_list_filters_by_kind_and_tag(api: httpx.AsyncClient) -> None:
    await staff(api, tags=["physio", "senior"])
    await staff(api, name="Dr B", tags=["physio"])
    await room(api)
    rooms = (await api.get("/v1/resources", params={"kind": "room"})).json()["items"]
    seniors = (await api.get("/v1/resources", params={"tag": ["physio", "senior"]})).json()
    assert [r["kind"] for r in rooms] == ["room"]
    assert [r["name"] for r in seniors["items"]] == ["Dr Ada"]


async def test_a_bad_cursor_is_400(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/v1/resources", params={"cursor": "!!"}), 400, "invalid_cursor")


async def test_another_tenants_objects_are_404(
    api: httpx.AsyncClient, app: FastAPI, operator: httpx.AsyncClient
) -> None:
    mine = await staff(api)
    my_service = await service(api)
    async with await new_tenant_client(app, operator, "Other") as other:
        assert_error(await other.get(f"/v1/resources/{mine['id']}"), 404, "not_found")
        assert_error(
            await other.patch(f"/v1/resources/{mine['id']}", json={"name": "x"}), 404, "not_found"
        )
        assert_error(await other.get(f"/v1/services/{my_service['id']}"), 404, "not_found")
        assert_error(await other.get(f"/v1/services/{my_service['code']}"), 404, "not_found")
        assert (await other.get("/v1/resources")).json()["items"] == []
        body = {
            "code": "x",
            "name": "x",
            "timezone": "UTC",
            "duration_minutes": 30,
            "requirements": [{"kind": "staff", "resource_ids": [mine["id"]]}],
        }
        assert_error(await other.post("/v1/services", json=body), 404, "not_found")
        assert_error(
            await other.post(
                "/v1/resources",
                json={"kind": "room", "name": "r", "timezone": "UTC", "location_id": mine["id"]},
            ),
            404,
            "not_found",
        )


async def test_malformed_resource_is_422_in_the_error_shape(api: httpx.AsyncClient) -> None:
    bad_bodies = [
        {"kind": "robot", "name": "x", "timezone": "UTC"},
        {"kind": "staff", "name": "x", "timezone": "Mars/Olympus"},
        {
            "kind": "staff",
            "name": "x",
            "timezone": "UTC",
            "weekly_hours": {"mon": [["17:00", "09:00"]]},
        },
        {
            "kind": "staff",
            "name": "x",
            "timezone": "UTC",
            "weekly_hours": {"mon": [["9am", "5pm"]]},
        },
        {"kind": "staff", "name": "x", "timezone": "UTC", "weekly_hours": {"funday": []}},
        {
            "kind": "staff",
            "name": "x",
            "timezone": "UTC",
            "weekly_hours": {"mon": [["09:00", "12:00"], ["11:00", "13:00"]]},
        },
        {
            "kind": "staff",
            "name": "x",
            "timezone": "UTC",
            "date_overrides": [
                {"date": "2026-01-01", "hours": []},
                {"date": "2026-01-01", "hours": []},
            ],
        },
        {"kind": "staff", "name": "", "timezone": "UTC"},
        {"kind": "staff", "name": "x", "timezone": "UTC", "surprise": 1},
    ]
    for body in bad_bodies:
        error = assert_error(await api.post("/v1/resources", json=body), 422, "validation_error")
        assert error["details"][0]["field"], body
    assert (await api.get("/v1/resources")).json()["items"] == []


async def test_invalid_json_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/resources", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


async def test_unknown_route_is_404_in_the_error_shape(api: httpx.AsyncClient) -> None:
    assert_error(await api.get("/v1/nothing-here"), 404, "not_found")


async def test_time_off_is_added_listed_and_deleted(api: httpx.AsyncClient) -> None:
    ada = await staff(api)
    path = f"/v1/resources/{ada['id']}/time-off"
    off = await create(
        api,
        path,
        {
            "start": "2026-03-02T09:00:00+01:00",
            "end": "2026-03-02T12:00:00+01:00",
            "reason": "training",
        },
    )
    assert off["reason"] == "training" and off["resource_id"] == ada["id"]
    assert [o["id"] for o in (await api.get(path)).json()["items"]] == [off["id"]]
    assert (await api.delete(f"{path}/{off['id']}")).status_code == 204
    assert (await api.get(path)).json()["items"] == []
    assert_error(await api.delete(f"{path}/{off['id']}"), 404, "not_found")


async def test_time_off_must_end_after_it_starts_and_carry_an_offset(
    api: httpx.AsyncClient,
) -> None:
    ada = await staff(api)
    path = f"/v1/resources/{ada['id']}/time-off"
    backwards = {"start": "2026-03-02T12:00:00Z", "end": "2026-03-02T09:00:00Z"}
    naive = {"start": "2026-03-02T09:00:00", "end": "2026-03-02T12:00:00"}
    assert_error(await api.post(path, json=backwards), 422, "validation_error")
    assert_error(await api.post(path, json=naive), 422, "validation_error")


async def test_location_is_created_and_resources_refer_to_it(api: httpx.AsyncClient) -> None:
    place = await create(api, "/v1/locations", {"name": "Mitte", "timezone": "Europe/Berlin"})
    ada = await staff(api, location_id=place["id"])
    assert ada["location_id"] == place["id"]
    listed = (await api.get("/v1/resources", params={"location_id": place["id"]})).json()
    assert [r["id"] for r in listed["items"]] == [ada["id"]]
    renamed = (await api.patch(f"/v1/locations/{place['id']}", json={"name": "Kreuzberg"})).json()
    assert renamed["name"] == "Kreuzberg"


async def test_service_round_trips_with_defaults(api: httpx.AsyncClient) -> None:
    created = await service(
        api, price={"amount": 6500, "currency": "eur"}, reminders_minutes_before=[60, 1440, 60]
    )
    assert created["price"] == {"amount": 6500, "currency": "EUR"}
    assert created["reminders_minutes_before"] == [1440, 60]
    assert created["hold_seconds"] == 300 and created["retry_declined_payment"] is False
    assert created["cancellation"] == {"free_until_hours_before": 24, "late_refund_percent": 0}
    assert (await api.get(f"/v1/services/{created['code']}")).json() == created


async def test_service_code_is_unique_per_tenant(api: httpx.AsyncClient) -> None:
    await service(api)
    body = {
        "code": "physio-60",
        "name": "again",
        "timezone": "UTC",
        "duration_minutes": 30,
        "requirements": [{"kind": "staff"}],
    }
    assert_error(await api.post("/v1/services", json=body), 409, "service_code_taken")


async def test_service_patch_can_make_it_free(api: httpx.AsyncClient) -> None:
    created = await service(api, price={"amount": 100, "currency": "USD"})
    patched = (await api.patch(f"/v1/services/{created['id']}", json={"price": None})).json()
    assert patched["price"] is None and patched["duration_minutes"] == 60


async def test_malformed_service_is_422(api: httpx.AsyncClient) -> None:
    base = {
        "code": "s",
        "name": "s",
        "timezone": "UTC",
        "duration_minutes": 30,
        "requirements": [{"kind": "staff"}],
    }
    changes: list[dict[str, Any]] = [
        {"hold_seconds": 2},
        {"hold_seconds": 90000},
        {"requirements": []},
        {"duration_minutes": 0},
        {"price": {"amount": 10, "currency": "euro"}},
        {"cancellation": {"late_refund_percent": 150}},
        {"code": "has space"},
        {"requirements": [{"kind": "staff", "tags_any": ["bad tag"]}]},
    ]
    for change in changes:
        assert_error(
            await api.post("/v1/services", json={**base, **change}), 422, "validation_error"
        )


async def test_weekly_hours_accept_24_00_as_end_of_day(api: httpx.AsyncClient) -> None:
    night = await staff(api, weekly_hours={**WEEKDAYS_9_TO_5, "sat": [["18:00", "24:00"]]})
    assert night["weekly_hours"]["sat"] == [["18:00", "24:00"]]


async def test_a_tenant_with_an_unknown_field_is_422(operator: httpx.AsyncClient) -> None:
    response = await operator.post("/v1/tenants", json={"name": "Clinic", "plan": "gold"})
    assert_error(response, 422, "validation_error")
