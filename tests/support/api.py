"""Request bodies for a small clinic, shared by the API tests."""

from __future__ import annotations

from typing import Any

import httpx

WEEKDAYS_9_TO_5 = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
ALWAYS_OPEN = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


async def create(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()
    return data


async def staff(client: httpx.AsyncClient, name: str = "Dr Ada", **extra: Any) -> dict[str, Any]:
    body = {
        "kind": "staff",
        "name": name,
        "timezone": "Europe/Berlin",
        "weekly_hours": WEEKDAYS_9_TO_5,
        "tags": ["physio"],
        **extra,
    }
    return await create(client, "/v1/resources", body)


async def room(client: httpx.AsyncClient, name: str = "Room 1", **extra: Any) -> dict[str, Any]:
    body = {
        "kind": "room",
        "name": name,
        "timezone": "Europe/Berlin",
        "weekly_hours": WEEKDAYS_9_TO_5,
        **extra,
    }
    return await create(client, "/v1/resources", body)


async def service(
    client: httpx.AsyncClient, code: str = "physio-60", **extra: Any
) -> dict[str, Any]:
    body = {
        "code": code,
        "name": "Physiotherapy",
        "timezone": "Europe/Berlin",
        "duration_minutes": 60,
        "slot_interval_minutes": 60,
        "max_advance_days": 730,
        "requirements": [{"kind": "staff", "tags_any": ["physio"]}, {"kind": "room"}],
        **extra,
    }
    return await create(client, "/v1/services", body)


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]  # type: ignore[no-any-return]


async def open_all_day(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """A practitioner and a room that are never closed, so tests don't depend on the hour."""
    return await staff(client, weekly_hours=ALWAYS_OPEN), await room(
        client, weekly_hours=ALWAYS_OPEN
    )
