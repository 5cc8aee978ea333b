"""Rate limits per key, shared by every API process (docs/security.md#rate-limits): over
the limit a key gets 429 with Retry-After; every answer says where it stands; refused keys
are throttled per client address; a revoked key is refused at once everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, update
from sqlalchemy.ext.asyncio import AsyncSession

from api.app import create_app
from db.models import ApiKey
from db.tenants import hash_key
from settings import Settings
from tests.support.api import assert_error
from tests.support.clients import ADMIN_KEY, client_for, new_tenant_client


@pytest.fixture
async def limited(settings: Settings) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two API processes' apps on one database, at 60 requests a minute per key (one a
    second) and 3 refused keys a minute per address."""
    tight = settings.model_copy(update={"rate_limit_per_minute": 60, "refused_keys_per_minute": 3})
    first, second = create_app(tight), create_app(tight)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        yield first, second


@pytest.fixture
async def key(limited: tuple[FastAPI, FastAPI]) -> str:
    async with client_for(limited[0], ADMIN_KEY) as operator:
        client = await new_tenant_client(limited[0], operator)
    return client.headers["Authorization"].removeprefix("Bearer ")


async def test_the_61st_request_in_a_minute_is_429_with_retry_after(
    limited: tuple[FastAPI, FastAPI], key: str
) -> None:
    async with client_for(limited[0], key) as client:
        answers = [await client.get("/v1/resources") for _ in range(61)]
    assert {a.status_code for a in answers[:60]} == {200}
    refused = answers[60]
    assert_error(refused, 429, "rate_limited")
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["ratelimit-limit"] == "60"
    assert refused.headers["ratelimit-remaining"] == "0"


async def test_every_answer_says_how_many_requests_are_left(
    limited: tuple[FastAPI, FastAPI], key: str
) -> None:
    async with client_for(limited[0], key) as client:
        first, second = await client.get("/v1/resources"), await client.get("/v1/resources")
    assert first.headers["ratelimit-limit"] == "60"
    assert int(second.headers["ratelimit-remaining"]) < int(first.headers["ratelimit-remaining"])
    assert int(first.headers["ratelimit-reset"]) >= 1


async def test_the_limit_is_shared_by_every_api_process(
    limited: tuple[FastAPI, FastAPI], key: str
) -> None:
    first, second = limited
    async with client_for(first, key) as a, client_for(second, key) as b:
        answers = [await (a if i % 2 else b).get("/v1/resources") for i in range(61)]
    assert [x.status_code for x in answers].count(429) == 1
    assert answers[-1].status_code == 429


async def test_waiting_lets_a_limited_key_in_again(
    limited: tuple[FastAPI, FastAPI], key: str
) -> None:
    async with client_for(limited[0], key) as client:
        for _ in range(60):
            await client.get("/v1/resources")
        assert (await client.get("/v1/resources")).status_code == 429
        await asyncio.sleep(1.1)  # one request's worth refills each second
        assert (await client.get("/v1/resources")).status_code == 200


async def test_refused_keys_from_one_address_are_throttled(
    limited: tuple[FastAPI, FastAPI],
) -> None:
    async with client_for(limited[0], "hf_guess") as guesser:
        answers = [await guesser.get("/v1/resources") for _ in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1


async def test_the_operator_key_is_not_limited(limited: tuple[FastAPI, FastAPI]) -> None:
    async with client_for(limited[0], ADMIN_KEY) as operator:
        answers = [await operator.get("/v1/tenants") for _ in range(65)]
    assert {a.status_code for a in answers} == {200}
    assert "ratelimit-limit" not in answers[-1].headers


async def test_a_key_cannot_spend_another_keys_allowance(
    limited: tuple[FastAPI, FastAPI], key: str
) -> None:
    async with client_for(limited[0], ADMIN_KEY) as operator:
        other = await new_tenant_client(limited[0], operator)
    async with client_for(limited[0], key) as client:
        for _ in range(61):
            await client.get("/v1/resources")
    async with other:
        answer = await other.get("/v1/resources")
    assert answer.status_code == 200, answer.text


@pytest.fixture
async def processes(settings: Settings) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    """Two API processes' apps on one database, with the suite's own limits."""
    first, second = create_app(settings), create_app(settings)
    async with first.router.lifespan_context(first), second.router.lifespan_context(second):
        yield first, second


async def test_a_revoked_key_is_refused_at_once_by_every_api_process(
    processes: tuple[FastAPI, FastAPI], api: httpx.AsyncClient, db: AsyncSession
) -> None:
    first, second = processes
    key = api.headers["Authorization"].removeprefix("Bearer ")
    async with client_for(first, key) as a, client_for(second, key) as b:
        assert (await a.get("/v1/resources")).status_code == 200
        assert (await b.get("/v1/resources")).status_code == 200
        await db.execute(
            update(ApiKey).where(ApiKey.key_hash == hash_key(key)).values(revoked_at=func.now())
        )
        await db.commit()
        assert_error(await a.get("/v1/resources"), 401, "unauthorized")
        assert_error(await b.get("/v1/resources"), 401, "unauthorized")
