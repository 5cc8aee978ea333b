"""Every error leaves the API as `{"error": {"code", "message", "details"}}` (docs/api.md)."""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as sa_exc
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive, Scope, Send
from temporalio.client import RPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from api.middleware import HttpMiddleware
from connections import TemporalUnreachable

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        *,
        headers: dict[str, str] | None = None,
    ) -> None:
        """`headers` go with the error's answer (CORS, Retry-After)."""
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = headers


# Sent with every 503 of a dependency out of reach (docs/api.md#errors): long enough for
# a database restart or a Temporal frontend to come back, short enough that a client
# told to wait loses little. The API's own bounds (connections.py, api/booking_gateway.py)
# make each such answer come within seconds.
RETRY_AFTER_SECONDS = 5


def unavailable(code: str, message: str, details: Any = None) -> ApiError:
    """503 with `Retry-After`: nothing is wrong with the request, a repeat may succeed."""
    return ApiError(503, code, message, details, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


def workflow_unavailable(message: str) -> ApiError:
    """Temporal, or any worker, did not take the call in time (api/booking_gateway.py)."""
    return unavailable("workflow_unavailable", message)


@contextmanager
def refused_by(constraint: str, answer: ApiError) -> Iterator[None]:
    """Inside, data the database refuses by `constraint` (a unique key, a trigger's
    check) is `answer`, a decided 4xx; any other refusal passes through."""
    try:
        yield
    except sa_exc.IntegrityError as exc:
        if constraint not in str(exc.orig):
            raise
        raise answer from exc


def not_found(what: str, details: Any = None) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found", details)


def slot_unavailable() -> ApiError:
    return ApiError(409, "slot_unavailable", "a resource is already taken for this slot")


def invalid(code: str, message: str, details: Any = None) -> ApiError:
    return ApiError(422, code, message, details)


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": jsonable_encoder(details)}}
    return JSONResponse(body, status_code=status, headers=headers)


def api_error_response(err: ApiError) -> JSONResponse:
    return error_response(err.status, err.code, err.message, err.details, err.headers)


def validation_response(details: list[dict[str, Any]]) -> JSONResponse:
    """422 `validation_error`, its message naming the first field at fault; the edge
    (api/edge.py) answers its refusals in this same shape."""
    first = details[0] if details else {"field": "", "message": "invalid request"}
    where = f"{first['field']}: " if first["field"] else ""
    return error_response(422, "validation_error", f"{where}{first['message']}", details)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    return [
        {
            "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
            "message": err.get("msg", ""),
            "type": err.get("type", ""),
        }
        for err in exc.errors()
    ]


# SQLSTATE classes that mean the server cannot take the work: connection exceptions,
# insufficient resources (too many connections), and shutting down or starting up.
_UNAVAILABLE_STATES = ("08", "53", "57P")
_NETWORK_ERRNOS = {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


def database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says the database cannot be reached, as opposed
    to a query that failed: a serialization failure or a deadlock stays a 500."""
    seen: BaseException | None = exc
    for _ in range(5):  # the chain is short: sqlalchemy's wrapper, then the driver's error
        if seen is None:
            return False
        if isinstance(seen, sa_exc.TimeoutError):  # no pooled connection came free
            return True
        if isinstance(seen, sa_exc.DBAPIError) and seen.connection_invalidated:
            return True
        if isinstance(seen, psycopg.OperationalError):
            return seen.sqlstate is None or seen.sqlstate.startswith(_UNAVAILABLE_STATES)
        if isinstance(seen, ConnectionError | socket.gaierror):
            return True
        if isinstance(seen, OSError) and seen.errno in _NETWORK_ERRNOS:
            return True
        seen = seen.orig if isinstance(seen, sa_exc.DBAPIError) else seen.__cause__
    return False


# What an RPC fails with when Temporal could not take it: no server answered, none in
# time, or it is shedding load. A connection lost mid-call fails as UNKNOWN ("transport
# error") or CANCELLED as often as UNAVAILABLE. Any other status is Temporal's answer (not
# found, a refusal), for the caller to turn into its own.
TEMPORAL_UNREACHABLE = frozenset(
    {
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.UNKNOWN,
        RPCStatusCode.CANCELLED,
    }
)


def temporal_unavailable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) says Temporal is out of reach: no connection, an
    RPC no server answered, or one that ran out of time. The booking gateway maps these
    itself; this is the net for any other route's call."""
    seen: BaseException | None = exc
    for _ in range(3):
        if seen is None:
            return False
        if isinstance(seen, TemporalUnreachable | RPCTimeoutOrCancelledError):
            return True
        if isinstance(seen, RPCError):
            return seen.status in TEMPORAL_UNREACHABLE
        seen = seen.__cause__
    return False


class ErrorMiddleware(HttpMiddleware):
    """Outermost of the app's own middleware: an exception below it becomes a complete
    500 (or 503) answer and is never re-raised. Starlette's ServerErrorMiddleware sends
    its 500 and then re-raises, so the server closes the keep-alive connection without
    `Connection: close` and the client's next request on it fails; here the exception
    stops. One raised after the response started (a BackgroundTask, say) is logged only."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            where = f"{scope.get('method')} {scope.get('path')!r}"  # no forged log lines
            if started:
                log.exception("error after the response started: %s", where, exc_info=exc)
                return
            if database_unavailable(exc):
                log.error("database unavailable: %s: %r", where, exc)
                response = api_error_response(
                    unavailable("database_unavailable", "the database is unavailable; try again")
                )
            elif temporal_unavailable(exc):
                log.error("Temporal unavailable: %s: %r", where, exc)
                response = api_error_response(
                    workflow_unavailable("Temporal is unavailable; try again")
                )
            elif isinstance(exc, sa_exc.StatementError):
                # Its message may quote the data (`DETAIL: Key (email)=(...)`): kind only.
                orig = exc.orig
                code = getattr(orig, "sqlstate", None)
                log.error("unhandled database error: %s: %s %s", where, type(orig).__name__, code)
                response = error_response(500, "internal_error", "internal server error")
            else:
                log.exception("unhandled error: %s", where, exc_info=exc)
                response = error_response(500, "internal_error", "internal server error")
            try:
                await response(scope, receive, send)
            except Exception:  # the client has gone: nothing more to tell it
                log.debug("could not send the error response for %s", where, exc_info=True)


def install_error_handlers(app: FastAPI) -> None:
    """The handlers for errors the routes raise, and ErrorMiddleware for all others.
    Call it after adding the other middleware: the last added is the outermost."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return api_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_response(_validation_details(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _CODES.get(exc.status_code, "error")
        return error_response(
            exc.status_code, code, str(exc.detail), None, dict(exc.headers) if exc.headers else None
        )

    app.add_middleware(ErrorMiddleware)
