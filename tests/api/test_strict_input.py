"""Request bodies say exactly what they mean: JSON integers and booleans, not strings that
look like them; real UTC offsets; canonical time zones; currencies in use; each weekday
once."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel
from sqlalchemy import update

from api.context import AppContext
from api.currencies import CURRENCIES
from db.models import Service
from tests.support.api import assert_error, create, service, staff
from tests.support.db import EVERY_TENANT

SERVICE: dict[str, Any] = {
    "code": "s",
    "name": "s",
    "timezone": "UTC",
    "duration_minutes": 30,
    "requirements": [{"kind": "staff"}],
}


async def _time_off(api: httpx.AsyncClient, start: str, end: str) -> httpx.Response:
    ada = await staff(api)
    return await api.post(f"/v1/resources/{ada['id']}/time-off", json={"start": start, "end": end})


async def test_an_offset_beyond_plus_14_hours_is_422(api: httpx.AsyncClient) -> None:
    response = await _time_off(api, "2018-01-01T17:47:23+21:44", "2018-01-02T17:47:23Z")
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "start"
    assert "between -12:00 and +14:00" in error["message"]


@pytest.mark.parametrize("start", [1772442000, "1772442000", "2026-03-02T09:00:00.123456789Z"])
async def test_an_instant_is_rfc_3339_text_only(api: httpx.AsyncClient, start: Any) -> None:
    """No Unix timestamps read as UTC, no nanoseconds cut off without a word."""
    ada = await staff(api)
    body = {"start": start, "end": "2026-03-02T10:00:00Z"}
    response = await api.post(f"/v1/resources/{ada['id']}/time-off", json=body)
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "start"


async def test_an_offset_beyond_minus_12_hours_is_422(api: httpx.AsyncClient) -> None:
    response = await _time_off(api, "2026-03-02T09:00:00Z", "2026-03-02T09:00:00-12:30")
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "end"


async def test_offsets_of_minus_12_and_plus_14_hours_are_accepted(api: httpx.AsyncClient) -> None:
    response = await _time_off(api, "2026-03-02T09:00:00+14:00", "2026-03-02T09:00:00-12:00")
    assert response.status_code == 201, response.text


async def test_an_integer_sent_as_a_string_is_422(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/services", json={**SERVICE, "duration_minutes": "45"})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0] == {
        "field": "duration_minutes",
        "message": "Input should be a valid integer",
        "type": "int_type",
    }


@pytest.mark.parametrize(
    "change",
    [
        {"duration_minutes": True},
        {"reminders_minutes_before": [True]},
        {"price": {"amount": True, "currency": "EUR"}},
        {"cancellation": {"late_refund_percent": True}},
        {"duration_minutes": 30.0},
    ],
)
async def test_a_boolean_or_a_float_is_not_an_integer(
    api: httpx.AsyncClient, change: dict[str, Any]
) -> None:
    response = await api.post("/v1/services", json={**SERVICE, **change})
    assert_error(response, 422, "validation_error")


async def test_a_boolean_sent_as_a_string_is_422(api: httpx.AsyncClient) -> None:
    ada = await staff(api)
    patched = await api.patch(f"/v1/resources/{ada['id']}", json={"active": "true"})
    assert assert_error(patched, 422, "validation_error")["details"][0]["field"] == "active"
    body = {**SERVICE, "retry_declined_payment": "true"}
    assert_error(await api.post("/v1/services", json=body), 422, "validation_error")


async def test_the_availability_limit_must_be_a_json_integer(api: httpx.AsyncClient) -> None:
    body = {
        "service": "s",
        "range_start": "2027-03-01T00:00:00Z",
        "range_end": "2027-03-02T00:00:00Z",
        "timezone": "UTC",
        "limit": "10",
    }
    response = await api.post("/v1/availability/query", json=body)
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "limit"


def _schemas(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _schemas(value)
    elif isinstance(node, list | tuple):
        for value in node:
            yield from _schemas(value)


def test_every_integer_and_boolean_in_a_request_body_is_strict(app: FastAPI) -> None:
    """So a new field cannot bring back `"45"` or `true` as a number."""
    models = {
        route.body_field.field_info.annotation
        for route in iter_route_contexts(app.routes)
        if getattr(route, "body_field", None) is not None
    }
    assert models
    for model in models:
        assert issubclass(model, BaseModel)
        for schema in _schemas(model.__pydantic_core_schema__):
            if schema.get("type") in ("int", "bool"):
                assert schema.get("strict") is True, f"{model.__name__}: {schema}"


async def test_a_weekday_given_in_two_cases_is_422_naming_it(api: httpx.AsyncClient) -> None:
    hours = {"MON": [["09:00", "12:00"]], "mon": [["13:00", "17:00"]]}
    body = {"kind": "staff", "name": "x", "timezone": "UTC", "weekly_hours": hours}
    error = assert_error(await api.post("/v1/resources", json=body), 422, "validation_error")
    assert error["details"][0]["field"] == "weekly_hours"
    assert "'mon'" in error["message"]


async def test_a_weekday_in_upper_case_is_still_accepted(api: httpx.AsyncClient) -> None:
    created = await staff(api, weekly_hours={"MON": [["09:00", "17:00"]]})
    assert created["weekly_hours"] == {"mon": [["09:00", "17:00"]]}


@pytest.mark.parametrize(
    "zone",
    ["localtime", "Factory", "EST5EDT", "US/Eastern", "Etc/GMT+5", "GMT", "Zulu", "Japan"],
)
async def test_a_time_zone_that_is_not_a_canonical_iana_name_is_422(
    api: httpx.AsyncClient, zone: str
) -> None:
    response = await api.post("/v1/locations", json={"name": "x", "timezone": zone})
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "timezone"


@pytest.mark.parametrize(
    "zone",
    [
        "UTC",
        "Europe/Berlin",
        "America/New_York",
        "America/Chicago",
        "Australia/Lord_Howe",
        "America/Argentina/Buenos_Aires",
        "Asia/Kolkata",
        "Pacific/Kiritimati",
    ],
)
async def test_canonical_time_zones_are_accepted(api: httpx.AsyncClient, zone: str) -> None:
    created = await create(api, "/v1/locations", {"name": "x", "timezone": zone})
    assert created["timezone"] == zone


@pytest.mark.parametrize("code", ["XXX", "zzz", "XTS", "XAU", "XDR", "ABC"])
async def test_a_currency_that_is_not_an_iso_4217_code_in_use_is_422(
    api: httpx.AsyncClient, code: str
) -> None:
    body = {**SERVICE, "price": {"amount": 100, "currency": code}}
    error = assert_error(await api.post("/v1/services", json=body), 422, "validation_error")
    assert error["details"][0]["field"] == "price.currency"


@pytest.mark.parametrize("code", ["eur", "Usd", "xof", "XAF", "xpf", "XCD", "JPY"])
async def test_a_currency_in_use_is_accepted_in_any_case_and_stored_upper_case(
    api: httpx.AsyncClient, code: str
) -> None:
    created = await service(api, code=f"priced-{code}", price={"amount": 100, "currency": code})
    assert created["price"] == {"amount": 100, "currency": code.upper()}


def test_the_currency_list_holds_only_money() -> None:
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in CURRENCIES)
    not_money = {"XXX", "XTS", "XAU", "XAG", "XPT", "XPD"} | {"XBA", "XBB", "XBC", "XBD"}
    assert not (CURRENCIES & (not_money | {"XDR", "XSU", "XUA"}))
    assert {"EUR", "USD", "GBP", "JPY", "XAF", "XOF", "XPF", "XCD"} <= CURRENCIES


async def test_a_price_stored_in_a_currency_refused_now_still_reads(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    created = await service(api, price={"amount": 100, "currency": "EUR"})
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        await db.execute(
            update(Service).where(Service.id == created["id"]).values(price_currency="XXX")
        )
        await db.commit()
    response = await api.get(f"/v1/services/{created['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["price"] == {"amount": 100, "currency": "XXX"}
