"""Errors nobody handled (api/errors.py's ErrorMiddleware): a complete 500 in the error
shape, or 503 with Retry-After when the database or Temporal is out of reach, and never a
reset connection. The bounds on those 503s are tests/api/test_outages.py's."""

from __future__ import annotations

import asyncio
import http.client
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import psycopg
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.background import BackgroundTask
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.app import create_app
from api.errors import RETRY_AFTER_SECONDS, database_unavailable, temporal_unavailable
from connections import TemporalUnreachable
from settings import Settings
from tests.support.api import assert_error
from tests.support.clients import client_for
from tests.support.polling import eventually

UNREACHABLE = "postgresql://u:p@127.0.0.1:1/none"  # nothing listens on port 1
UNKNOWN_KEY = {"Authorization": "Bearer hf_not_a_key_anyone_has"}  # never in auth's cache


class Boom(RuntimeError):
    pass


async def _boom() -> None:
    raise Boom("boom")


async def _fail_later() -> None:
    raise Boom("after the response")


async def _answers_then_fails() -> JSONResponse:
    return JSONResponse({"ok": True}, background=BackgroundTask(_fail_later))


@pytest.fixture(scope="module")
async def fragile(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with two routes that fail: before answering, and after."""
    app = create_app(settings)
    app.add_api_route("/test/boom", _boom)
    app.add_api_route("/test/answers-then-fails", _answers_then_fails)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="module")
async def no_database(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"database_url": UNREACHABLE}))
    async with app.router.lifespan_context(app):
        yield app


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[int]:
    """The app behind a real uvicorn on 127.0.0.1, as in production: its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, lifespan="off", log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def started() -> bool:
        return server.started or task.done()

    try:
        await eventually(started, bool)
        assert not task.done(), "uvicorn did not start"
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
        sock.close()


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def _read(conn: http.client.HTTPConnection) -> Answer:
    response = conn.getresponse()
    headers = {k.lower(): v for k, v in response.getheaders()}
    return Answer(response.status, headers, response.read())


def _then_healthz(port: int, path: str, headers: dict[str, str]) -> tuple[Answer, Answer]:
    """`path`, then /healthz on the same keep-alive connection (http.client would quietly
    open a new one had the server announced `Connection: close`: asserted not)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path, headers=headers)
        first_socket = conn.sock
        first = _read(conn)
        conn.request("GET", "/healthz")
        second = _read(conn)
        assert conn.sock is first_socket, "the second request went on a new connection"
        return first, second
    finally:
        conn.close()


async def test_an_unhandled_error_is_500_internal_error_in_the_error_shape(
    fragile: FastAPI,
) -> None:
    async with client_for(fragile) as client:
        assert_error(await client.get("/test/boom"), 500, "internal_error")


async def test_an_unreachable_database_is_503_database_unavailable(no_database: FastAPI) -> None:
    async with client_for(no_database) as client:
        response = await client.get("/v1/resources", headers=UNKNOWN_KEY)
        assert_error(response, 503, "database_unavailable")
        assert response.headers["Retry-After"] == str(RETRY_AFTER_SECONDS)
        metrics = (await client.get("/metrics")).text
    counted = 'holdfast_http_requests_total{method="GET",route="/v1/resources",status="503"}'
    assert counted in metrics  # as it was answered, not as the exception it began as


def test_only_connection_failures_count_as_the_database_being_unavailable() -> None:
    refused = psycopg.OperationalError("connection failed: Connection refused")
    wrapped = sa_exc.OperationalError("SELECT 1", {}, refused)
    assert database_unavailable(refused) and database_unavailable(wrapped)
    assert database_unavailable(psycopg.errors.AdminShutdown("terminating connection"))
    assert database_unavailable(psycopg.errors.TooManyConnections("too many clients"))
    assert database_unavailable(ConnectionRefusedError(111, "Connection refused"))
    assert database_unavailable(sa_exc.TimeoutError("QueuePool limit reached"))
    serialization = psycopg.errors.SerializationFailure("could not serialize access")
    assert not database_unavailable(serialization)
    assert not database_unavailable(sa_exc.OperationalError("UPDATE", {}, serialization))
    assert not database_unavailable(psycopg.errors.QueryCanceled("statement timeout"))
    assert not database_unavailable(Boom("boom"))
    # psycopg's InterfaceError is a fault in the program (a closed cursor, no dumper); a
    # lost connection is its OperationalError, or one SQLAlchemy found invalidated.
    closed = psycopg.InterfaceError("the cursor is closed")
    assert not database_unavailable(sa_exc.InterfaceError("SELECT 1", {}, closed))
    lost = sa_exc.InterfaceError("SELECT 1", {}, closed, connection_invalidated=True)
    assert database_unavailable(lost)


def test_only_temporal_out_of_reach_counts_as_temporal_being_unavailable() -> None:
    assert temporal_unavailable(TemporalUnreachable("Failed client connect"))
    assert temporal_unavailable(RPCError("connection refused", RPCStatusCode.UNAVAILABLE, b""))
    assert temporal_unavailable(RPCError("deadline", RPCStatusCode.DEADLINE_EXCEEDED, b""))
    assert temporal_unavailable(RPCError("transport error", RPCStatusCode.UNKNOWN, b""))
    assert temporal_unavailable(WorkflowUpdateRPCTimeoutOrCancelledError())
    assert not temporal_unavailable(RPCError("no such workflow", RPCStatusCode.NOT_FOUND, b""))
    assert not temporal_unavailable(RPCError("bad", RPCStatusCode.INVALID_ARGUMENT, b""))
    assert not temporal_unavailable(Boom("boom"))  # a RuntimeError, but not Temporal's


async def test_a_500_leaves_the_keep_alive_connection_usable(fragile: FastAPI) -> None:
    async with serving(fragile) as port:
        failed, health = await asyncio.to_thread(_then_healthz, port, "/test/boom", {})
    assert failed.status == 500 and b'"internal_error"' in failed.body
    assert failed.headers.get("connection") != "close"
    assert health.status == 200 and health.body == b'{"status":"ok"}'


async def test_an_unreachable_database_leaves_the_keep_alive_connection_usable(
    no_database: FastAPI,
) -> None:
    async with serving(no_database) as port:
        failed, health = await asyncio.to_thread(_then_healthz, port, "/v1/resources", UNKNOWN_KEY)
    assert failed.status == 503 and b'"database_unavailable"' in failed.body
    assert health.status == 200


async def test_an_error_after_the_response_is_sent_leaves_the_connection_usable(
    fragile: FastAPI,
) -> None:
    async with serving(fragile) as port:
        answered, health = await asyncio.to_thread(
            _then_healthz, port, "/test/answers-then-fails", {}
        )
    assert answered.status == 200 and answered.body == b'{"ok":true}'
    assert health.status == 200


async def test_an_unhandled_error_is_logged_once(
    fragile: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with serving(fragile) as port:
        await asyncio.to_thread(_then_healthz, port, "/test/boom", {})
    logged = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], Boom)]
    assert len(logged) == 1, [f"{r.name}: {r.getMessage()}" for r in logged]
    assert logged[0].name == "api.errors" and logged[0].levelno == logging.ERROR


async def test_an_error_after_the_response_is_sent_is_logged(
    fragile: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    async with client_for(fragile) as client:
        response = await client.get("/test/answers-then-fails")
    assert response.status_code == 200
    failures = [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], Boom)]
    assert len(failures) == 1 and failures[0].name == "api.errors"
