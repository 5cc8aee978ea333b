"""Absurd inputs are refused fast, before any work is done for them
(docs/security.md#expensive-requests)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import httpx

from tests.support.api import assert_error, service, staff


async def _timed(call: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """Answered within 0.2 s; a slow first try (a pause of this shared machine) gets a
    second, which must be quick: refusing absurd input is never slow."""
    for _ in range(2):
        started = time.perf_counter()
        answer = await call()
        if time.perf_counter() - started < 0.2:
            return answer
    raise AssertionError("answered in 0.2 s or more, twice")


async def test_a_ten_year_availability_window_is_422(api: httpx.AsyncClient) -> None:
    await staff(api)
    svc = await service(api)
    body = {
        "service": svc["code"],
        "timezone": "Europe/Berlin",
        "range_start": "2027-01-01T00:00:00+01:00",
        "range_end": "2037-01-01T00:00:00+01:00",
    }
    answer = await _timed(lambda: api.post("/v1/availability/query", json=body))
    assert_error(answer, 422, "range_too_long")


async def test_ten_thousand_requirements_are_refused(api: httpx.AsyncClient) -> None:
    requirements = [{"kind": "staff"}] * 10_000
    answer = await _timed(
        lambda: api.post(
            "/v1/services",
            json={
                "code": "absurd",
                "name": "Absurd",
                "timezone": "Europe/Berlin",
                "duration_minutes": 60,
                "slot_interval_minutes": 60,
                "requirements": requirements,
            },
        )
    )
    assert answer.status_code in (413, 422), answer.text


async def test_a_megabyte_metadata_value_is_refused(api: httpx.AsyncClient) -> None:
    body = {"allocation_token": "x", "customer": {"name": "A"}, "metadata": {"k": "v" * 2**20}}
    answer = await _timed(
        lambda: api.post("/v1/bookings", json=body, headers={"Idempotency-Key": "k"})
    )
    assert answer.status_code == 413, answer.text


async def test_a_huge_push_body_is_refused_unread(api: httpx.AsyncClient) -> None:
    """Push routes are left alone by the edge; they bound their own reads."""
    answer = await _timed(
        lambda: api.post(
            "/v1/webhooks/microsoft-graph",
            content=b'{"value": [' + b" " * (2 * 2**20) + b"]}",
            headers={"Content-Type": "application/json"},
        )
    )
    assert_error(answer, 413, "payload_too_large")
