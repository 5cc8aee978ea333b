"""Booking requests as a client makes them: the day's first slots, then a booking."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

DAY = (datetime.now(UTC) + timedelta(days=7)).date()


async def first_slots(client: httpx.AsyncClient, code: str, n: int = 3) -> list[dict[str, Any]]:
    response = await client.post(
        "/v1/availability/query",
        json={
            "service": code,
            "timezone": "Europe/Berlin",
            "range_start": f"{DAY}T00:00:00+01:00",
            "range_end": f"{DAY}T23:59:00+01:00",
        },
    )
    assert response.status_code == 200, response.text
    slots: list[dict[str, Any]] = response.json()["slots"]
    assert len(slots) >= n
    return slots


async def book(
    client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await client.post(
        "/v1/bookings",
        json={
            "customer": {"name": "Grace Hopper", "email": "grace@example.test"},
            **body,
        },
        headers={"Idempotency-Key": key or str(uuid.uuid4())},
    )
