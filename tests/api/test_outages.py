"""Dependencies out of reach (docs/api.md#errors, #health-readiness-and-metrics): the API
answers `503` in the error shape with `Retry-After`, within its stated bounds, and
`/readyz` names what is missing. Real parts throughout: a closed port (127.0.0.1:1), a
socket that never answers, a relay to the Temporal dev server that is cut, a full pool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncConnection
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.booking_gateway import TEMPORAL_PROBE_SECONDS, TEMPORAL_TAKE_SECONDS
from api.context import AppContext
from api.errors import RETRY_AFTER_SECONDS
from connections import DATABASE_CONNECT_SECONDS, DATABASE_POOL_SECONDS, TEMPORAL_CONNECT_SECONDS
from settings import Settings
from tests.support.api import assert_error, open_all_day, service
from tests.support.bookings import book, first_slots
from tests.support.clients import ADMIN_KEY, client_for, fresh_tenant, new_tenant_client
from tests.support.live import live_app
from tests.support.polling import eventually
from tests.support.stripe import WEBHOOK_SECRET, sign

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

CLOSED = "127.0.0.1:1"  # nothing listens on port 1
NO_DATABASE = "postgresql://u:p@127.0.0.1:1/none"
UNKNOWN_KEY = "hf_sk_not_a_key_anyone_has"
# The documented bounds (docs/api.md#errors): a connect for the database; for Temporal a
# connect, or a call not taken and the probe that follows.
DATABASE_BOUND = DATABASE_CONNECT_SECONDS + 1.0
TEMPORAL_BOUND = TEMPORAL_CONNECT_SECONDS + TEMPORAL_TAKE_SECONDS + TEMPORAL_PROBE_SECONDS
READY_BOUND = 3.0  # /readyz: its checks' 2 s, at once


def assert_unavailable(answer: Answer, code: str, bound: float) -> dict[str, Any]:
    error = assert_error(answer.response, 503, code)
    assert answer.response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
    assert answer.seconds < bound, f"answered after {answer.seconds:.1f} s (bound {bound} s)"
    return error


@dataclass
class Answer:
    response: httpx.Response
    seconds: float


async def timed(request: Awaitable[httpx.Response]) -> Answer:
    started = time.monotonic()
    response = await request
    return Answer(response, time.monotonic() - started)


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@contextlib.asynccontextmanager
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never says a word."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        for writer in held:
            writer.close()
        server.close()


class Relay:
    """A TCP relay on 127.0.0.1 to `target`: it forwards while `open`, and otherwise
    closes each connection it accepts, as a server going away does. `cut()` also drops
    the connections it carries."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.open = True
        self._carried: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()

    def cut(self) -> None:
        self.open = False
        for writer in self._carried:
            writer.close()
        self._carried.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.open:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._carried += [writer, up_writer]
        await asyncio.gather(
            self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True
        )

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


def temporal_at(server: WorkflowEnvironment) -> str:
    return server.client.service_client.config.target_host


# ---- a booking to act on, made on a live stack; then Temporal out of reach ----------------


@dataclass
class Booked:
    key: str
    booking_id: str


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "outages") as app:
        yield app


@pytest.fixture(scope="module")
async def booked(live: FastAPI) -> Booked:
    """A confirmed booking of a free service, made while everything was up."""
    async with client_for(live, ADMIN_KEY) as operator:
        shop = await new_tenant_client(live, operator)
    async with shop:
        await open_all_day(shop)
        await service(shop, code="free")
        slot = (await first_slots(shop, "free"))[0]
        response = await book(shop, {"allocation_token": slot["allocation_token"]})
        assert response.status_code == 201, response.text
        key = shop.headers["Authorization"].removeprefix("Bearer ")
        return Booked(key, response.json()["id"])


@pytest.fixture
async def shop_without_temporal(app: FastAPI, booked: Booked) -> AsyncIterator[httpx.AsyncClient]:
    """The booking's tenant, on the suite's app, whose Temporal is a closed port."""
    assert app.state.ctx.settings.temporal_address == CLOSED
    async with client_for(app, booked.key) as client:
        yield client


async def test_booking_with_temporal_down_is_503_workflow_unavailable(
    shop_without_temporal: httpx.AsyncClient,
) -> None:
    slot = (await first_slots(shop_without_temporal, "free"))[0]  # the database answers
    answer = await timed(
        book(shop_without_temporal, {"allocation_token": slot["allocation_token"]})
    )
    assert_unavailable(answer, "workflow_unavailable", TEMPORAL_BOUND)


async def test_cancelling_with_temporal_down_is_503_workflow_unavailable(
    shop_without_temporal: httpx.AsyncClient, booked: Booked
) -> None:
    path = f"/v1/bookings/{booked.booking_id}/cancel"
    answer = await timed(shop_without_temporal.post(path, json={"reason": "ill"}))
    assert_unavailable(answer, "workflow_unavailable", TEMPORAL_BOUND)
    read = await shop_without_temporal.get(f"/v1/bookings/{booked.booking_id}")
    assert read.json()["status"] == "confirmed"  # reads need only the database


async def test_rescheduling_with_temporal_down_is_503_workflow_unavailable(
    shop_without_temporal: httpx.AsyncClient, booked: Booked
) -> None:
    slot = (await first_slots(shop_without_temporal, "free"))[1]
    path = f"/v1/bookings/{booked.booking_id}/reschedule"
    answer = await timed(
        shop_without_temporal.post(path, json={"allocation_token": slot["allocation_token"]})
    )
    assert_unavailable(answer, "workflow_unavailable", TEMPORAL_BOUND)


async def test_a_no_show_with_temporal_down_is_503_workflow_unavailable(
    shop_without_temporal: httpx.AsyncClient, booked: Booked
) -> None:
    path = f"/v1/bookings/{booked.booking_id}/no-show"
    answer = await timed(shop_without_temporal.post(path))
    assert_unavailable(answer, "workflow_unavailable", TEMPORAL_BOUND)


async def test_marking_paid_with_temporal_down_is_503_workflow_unavailable(
    shop_without_temporal: httpx.AsyncClient, booked: Booked
) -> None:
    path = f"/v1/bookings/{booked.booking_id}/mark-paid"
    answer = await timed(shop_without_temporal.post(path))
    assert_unavailable(answer, "workflow_unavailable", TEMPORAL_BOUND)


async def test_a_temporal_that_never_answers_is_503_within_the_connect_bound(
    settings: Settings, booked: Booked
) -> None:
    async with (
        silent_port() as port,
        running(settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})) as app,
        client_for(app, booked.key) as client,
    ):
        answer = await timed(client.post(f"/v1/bookings/{booked.booking_id}/cancel", json={}))
    assert_unavailable(answer, "workflow_unavailable", TEMPORAL_CONNECT_SECONDS + 1)


async def test_temporal_lost_after_connecting_is_503_within_the_call_bound(
    settings: Settings, temporal_dev_server: WorkflowEnvironment, booked: Booked
) -> None:
    """The client is connected and kept; the server goes away. The SDK would retry for
    ten seconds and re-raise its RPCError; the API answers within its bound."""
    async with Relay(temporal_at(temporal_dev_server)) as relay:
        update = {"temporal_address": relay.address, "temporal_task_queue": "outages"}
        async with running(settings.model_copy(update=update)) as app:
            ctx: AppContext = app.state.ctx
            await (await ctx.temporal()).service_client.check_health()
            relay.cut()
            async with client_for(app, booked.key) as client:
                path = f"/v1/bookings/{booked.booking_id}/no-show"
                answer = await timed(client.post(path))
    error = assert_unavailable(answer, "workflow_unavailable", TEMPORAL_BOUND)
    assert "read the booking before repeating" in error["message"]


async def test_a_failed_connect_to_temporal_is_tried_again_on_the_next_request(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> None:
    async with Relay(temporal_at(temporal_dev_server)) as relay:
        relay.open = False
        async with (
            running(settings.model_copy(update={"temporal_address": relay.address})) as app,
            client_for(app) as client,
        ):
            before = (await client.get("/readyz")).json()["error"]["details"]
            relay.open = True
            after = (await client.get("/readyz")).json()["error"]["details"]
    assert before["temporal"].startswith("unavailable") and after["temporal"] == "ok"


async def test_a_booking_no_worker_takes_is_503_and_its_repeat_joins_it(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> None:
    """Temporal is up but nothing polls the queue: the workflow starts and waits. The
    503 says to repeat with the same key, and the repeat, once a worker polls, gets the
    one booking that request started."""
    queue = f"outages-unpolled-{uuid.uuid4().hex[:8]}"
    update = {"temporal_address": temporal_at(temporal_dev_server), "temporal_task_queue": queue}
    key = str(uuid.uuid4())
    async with running(settings.model_copy(update=update)) as app, fresh_tenant(app) as shop:
        await open_all_day(shop)
        await service(shop, code="free")
        slot = (await first_slots(shop, "free"))[0]
        body = {"allocation_token": slot["allocation_token"]}
        answer = await timed(book(shop, body, key))
        error = assert_unavailable(answer, "workflow_unavailable", TEMPORAL_BOUND)
        assert answer.seconds >= TEMPORAL_TAKE_SECONDS  # it waited, then asked for a worker
        assert error["message"].startswith("no worker polls the task queue")
        assert "same Idempotency-Key" in error["message"]
        shop_key = shop.headers["Authorization"].removeprefix("Bearer ")
        async with (
            live_app(settings, temporal_dev_server, queue) as served,
            client_for(served, shop_key) as again,
        ):
            repeat = await book(again, body, key)
            assert repeat.status_code == 201, repeat.text
            listed = (await again.get("/v1/bookings")).json()["items"]
    assert [b["id"] for b in listed] == [repeat.json()["id"]]


# ---- the database out of reach --------------------------------------------------------------


@pytest.fixture(scope="module")
async def no_database(settings: Settings) -> AsyncIterator[FastAPI]:
    update = {"database_url": NO_DATABASE, "stripe_webhook_secret": SecretStr(WEBHOOK_SECRET)}
    async with running(settings.model_copy(update=update)) as app:
        yield app


async def test_a_catalogue_read_with_the_database_down_is_503_database_unavailable(
    no_database: FastAPI,
) -> None:
    async with client_for(no_database, UNKNOWN_KEY) as client:
        answer = await timed(client.get("/v1/services"))
    assert_unavailable(answer, "database_unavailable", DATABASE_BOUND)


async def test_a_catalogue_write_with_the_database_down_is_503_database_unavailable(
    no_database: FastAPI,
) -> None:
    body = {"kind": "room", "name": "Room 1", "timezone": "Europe/Berlin", "weekly_hours": {}}
    async with client_for(no_database, UNKNOWN_KEY) as client:
        answer = await timed(client.post("/v1/resources", json=body))
    assert_unavailable(answer, "database_unavailable", DATABASE_BOUND)


async def test_stripes_webhook_with_the_database_down_is_503_so_stripe_delivers_again(
    no_database: FastAPI,
) -> None:
    intent = {
        "id": "pi_1",
        "object": "payment_intent",
        "metadata": {"booking_id": str(uuid.uuid4())},
    }
    event = {"id": "evt_1", "type": "payment_intent.succeeded", "data": {"object": intent}}
    body = json.dumps(event).encode()
    headers = {"Stripe-Signature": sign(body), "Content-Type": "application/json"}
    async with client_for(no_database) as stripe:
        answer = await timed(stripe.post("/v1/webhooks/stripe", content=body, headers=headers))
    assert_unavailable(answer, "database_unavailable", DATABASE_BOUND)


async def test_a_database_that_never_answers_is_503_within_the_connect_bound(
    settings: Settings,
) -> None:
    async with silent_port() as port:
        silent = f"postgresql://u:p@127.0.0.1:{port}/none"
        async with (
            running(settings.model_copy(update={"database_url": silent})) as app,
            client_for(app, UNKNOWN_KEY) as client,
        ):
            answer = await timed(client.get("/v1/services"))
    assert_unavailable(answer, "database_unavailable", DATABASE_BOUND)


async def test_no_pooled_connection_free_is_503_within_the_pool_bound(settings: Settings) -> None:
    async with running(settings) as app, contextlib.AsyncExitStack() as held:
        ctx: AppContext = app.state.ctx
        pool = ctx.engine.pool
        every = pool.size() + pool._max_overflow  # type: ignore[attr-defined]
        connections: list[AsyncConnection] = [
            await held.enter_async_context(ctx.engine.connect()) for _ in range(every)
        ]
        assert len(connections) == every
        async with client_for(app, UNKNOWN_KEY) as client:
            answer = await timed(client.get("/v1/services"))
    assert_unavailable(answer, "database_unavailable", DATABASE_POOL_SECONDS + 1.0)
    assert answer.seconds >= DATABASE_POOL_SECONDS  # it waited, as long as the bound


# ---- /readyz --------------------------------------------------------------------------------


async def test_readyz_names_temporal_and_workers_while_temporal_is_down(app: FastAPI) -> None:
    async with client_for(app) as client:
        answer = await timed(client.get("/readyz"))
    error = assert_error(answer.response, 503, "not_ready")
    assert error["message"] == "not ready: temporal, workers"
    assert error["details"] == {
        "database": "ok",
        "temporal": "unavailable: TemporalUnreachable",
        "workers": "unavailable: TemporalUnreachable",
    }
    assert answer.seconds < READY_BOUND


async def test_readyz_answers_within_its_bound_while_temporal_never_answers(
    settings: Settings,
) -> None:
    async with (
        silent_port() as port,
        running(settings.model_copy(update={"temporal_address": f"127.0.0.1:{port}"})) as app,
        client_for(app) as client,
    ):
        answer = await timed(client.get("/readyz"))
    checks = assert_error(answer.response, 503, "not_ready")["details"]
    assert checks["database"] == "ok"
    assert checks["temporal"].startswith("unavailable: ")
    assert checks["workers"].startswith("unavailable: ")
    assert answer.seconds < READY_BOUND


async def test_readyz_names_the_database_while_it_is_down(no_database: FastAPI) -> None:
    async with client_for(no_database) as client:
        error = assert_error(await client.get("/readyz"), 503, "not_ready")
    assert error["details"]["database"].startswith("unavailable")
    assert error["message"].startswith("not ready: database")


async def test_readyz_is_503_naming_workers_while_nothing_polls_the_task_queue(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> None:
    queue = f"outages-idle-{uuid.uuid4().hex[:8]}"
    update = {"temporal_address": temporal_at(temporal_dev_server), "temporal_task_queue": queue}
    async with running(settings.model_copy(update=update)) as app, client_for(app) as client:
        error = assert_error(await client.get("/readyz"), 503, "not_ready")
    checks = error["details"]
    assert checks["database"] == "ok" and checks["temporal"] == "ok"
    assert checks["workers"] == (
        f"unavailable: no worker polls {queue} (workflow tasks), {queue} (activity tasks), "
        f"{queue}-delivery (workflow tasks), {queue}-delivery (activity tasks)"
    )
    assert error["message"] == "not ready: workers"


async def test_readyz_is_200_while_workers_poll_both_task_queues(live: FastAPI) -> None:
    async with client_for(live) as client:

        async def ready() -> httpx.Response:
            return await client.get("/readyz")

        response = await eventually(ready, lambda r: r.status_code == 200)
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "temporal": "ok", "workers": "ok"},
    }
