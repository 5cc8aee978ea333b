"""What a publishable key reaches (docs/security.md#api-keys): availability, booking and
the bookings it made; nothing else of its tenant, nothing of another's, and only from the
origins it allows. Its booking flow end to end is in tests/e2e/test_publishable_keys.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from settings import Settings
from tests.support.api import assert_error, open_all_day, service
from tests.support.bookings import first_slots
from tests.support.clients import client_for

SITE = "https://book.example.com"


def day_of(service: str) -> dict[str, str]:
    """An availability query for one day of a service."""
    return {
        "service": service,
        "range_start": "2030-01-07T00:00:00Z",
        "range_end": "2030-01-08T00:00:00Z",
        "timezone": "UTC",
    }


async def publishable_key(api: httpx.AsyncClient, *origins: str) -> str:
    response = await api.post(
        "/v1/api-keys",
        json={"kind": "publishable", "name": "booking page", "allowed_origins": list(origins)},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])


@pytest.fixture
async def browser(app: FastAPI, api: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A booking page's client: the tenant's publishable key, from an allowed origin."""
    await open_all_day(api)
    await service(api, code="free")
    async with client_for(app, await publishable_key(api, SITE)) as client:
        client.headers["Origin"] = SITE
        yield client


async def test_it_queries_availability(browser: httpx.AsyncClient) -> None:
    assert await first_slots(browser, "free")


async def test_it_reads_a_bookable_services_public_face_only(
    browser: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    shown = await browser.get("/v1/services/free")
    assert shown.status_code == 200, shown.text
    assert set(shown.json()) == {
        "id",
        "code",
        "name",
        "timezone",
        "duration_minutes",
        "price",
        "tenant_slug",
    }  # no resources, tags or policies
    assert "requirements" in (await api.get("/v1/services/free")).json()  # the secret key's
    await api.patch("/v1/services/free", json={"active": False})
    assert_error(await browser.get("/v1/services/free"), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/bookings"),
        ("GET", "/v1/resources"),
        ("POST", "/v1/resources"),
        ("GET", "/v1/services"),
        ("GET", "/v1/webhook-endpoints"),
        ("GET", "/v1/api-keys"),
    ],
)
async def test_it_is_forbidden_everything_else_of_its_tenant(
    browser: httpx.AsyncClient, method: str, path: str
) -> None:
    body = {"kind": "room", "name": "x"} if method == "POST" else None
    assert_error(await browser.request(method, path, json=body), 403, "forbidden")


async def test_it_cannot_read_a_booking_without_its_access_token(
    browser: httpx.AsyncClient,
) -> None:
    missing = "01a2326f-8237-7278-8df8-fa9d1a02bbb1"
    assert_error(await browser.get(f"/v1/bookings/{missing}"), 403, "forbidden")
    assert_error(
        await browser.get(f"/v1/bookings/{missing}", params={"access_token": "hf_bt_guess"}),
        403,
        "forbidden",
    )


async def test_it_reaches_nothing_of_another_tenant(
    app: FastAPI, operator: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    other = await operator.post("/v1/tenants", json={"name": "Other"})
    async with client_for(app, other.json()["api_key"]) as stranger:
        await open_all_day(stranger)
        await service(stranger, code="theirs")
    answer = await browser.post(
        "/v1/availability/query",
        json=day_of("theirs"),
    )
    assert_error(answer, 404, "not_found")


async def test_it_is_refused_from_an_origin_it_does_not_allow(
    browser: httpx.AsyncClient,
) -> None:
    browser.headers["Origin"] = "https://evil.example"
    response = await browser.post(
        "/v1/availability/query",
        json=day_of("free"),
    )
    assert_error(response, 403, "origin_not_allowed")
    assert "access-control-allow-origin" not in response.headers


async def test_an_allowed_origin_may_read_the_answer(browser: httpx.AsyncClient) -> None:
    response = await browser.post(
        "/v1/availability/query",
        json=day_of("free"),
    )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == SITE
    assert "ratelimit-remaining" in response.headers["access-control-expose-headers"].lower()


async def test_a_key_without_origins_is_refused_from_any_browser(
    app: FastAPI, api: httpx.AsyncClient
) -> None:
    await service(api, code="free")
    async with client_for(app, await publishable_key(api)) as client:
        client.headers["Origin"] = SITE
        response = await client.post(
            "/v1/availability/query",
            json=day_of("free"),
        )
    assert_error(response, 403, "origin_not_allowed")


async def test_a_browsers_preflight_is_answered_with_what_a_booking_page_sends(
    app: FastAPI,
) -> None:
    async with client_for(app) as anonymous:
        response = await anonymous.options(
            "/v1/bookings",
            headers={
                "Origin": SITE,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, idempotency-key",
            },
        )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == SITE
    allowed = response.headers["access-control-allow-headers"].lower()
    assert {"authorization", "idempotency-key", "x-booking-token"} <= {
        h.strip() for h in allowed.split(",")
    }


@pytest.fixture
async def default_limits(settings: Settings) -> AsyncIterator[FastAPI]:
    """An API process at the default limits (the suite's own raise the refused-key one)."""
    app = create_app(settings.model_copy(update={"rate_limit_per_minute": 600}))
    async with app.router.lifespan_context(app):
        yield app


async def test_70_requests_in_a_minute_meet_the_publishable_limit(
    default_limits: FastAPI, api: httpx.AsyncClient
) -> None:
    await service(api, code="free")
    query = day_of("free")
    async with client_for(default_limits, await publishable_key(api)) as app_client:
        answers = [await app_client.post("/v1/availability/query", json=query) for _ in range(70)]
    codes = [a.status_code for a in answers]
    assert codes[:60] == [200] * 60 and 429 in codes[60:]
    refused = next(a for a in answers if a.status_code == 429)
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1 and refused.headers["ratelimit-limit"] == "60"
