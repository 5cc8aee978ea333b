"""The shape the API's own pure-ASGI middleware share: they act on HTTP requests and let
anything else (the lifespan) through untouched. Pure ASGI rather than Starlette's
`BaseHTTPMiddleware`, which costs a task and a copy of the body per request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from opentelemetry import propagate, trace
from starlette.datastructures import Headers as RequestHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import logs

Headers = list[tuple[bytes, bytes]]


class HttpMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class ResponseHeaders(HttpMiddleware):
    """Adds headers to every answer, whatever the route returned (a model, a Response of
    its own, an error). `extra` says which, given the request and the headers set."""

    def extra(self, scope: Scope, headers: Headers) -> Headers:
        raise NotImplementedError

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                message = {**message, "headers": headers + self.extra(scope, headers)}
            await send(message)

        await self.app(scope, receive, with_headers)


# An incoming X-Request-Id is kept if it looks like an id (it is echoed in a header and
# written into log lines); anything else gets a fresh one.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")
# Probes and scrapes come every few seconds: their lines only at DEBUG.
_QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})

request_log = logging.getLogger("holdfast.api.request")
_tracer = trace.get_tracer("holdfast.api")


class RequestContext(HttpMiddleware):
    """Opens the request's log record (logs.py): its id, from `X-Request-Id` or made
    here and echoed on the answer, then the tenant (api/context.act_as) and the booking
    and workflow as they become known. Closes with one line per request: method, route
    template (never the raw path: paths carry feed tokens and emails), status and time.

    And the request's span (docs/operations.md#tracing), a child of an incoming
    `traceparent`: the parent of the Temporal calls the request makes. Without an
    exporter configured it is OpenTelemetry's no-op."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        headers = RequestHeaders(scope=scope)
        given = headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        token = logs.begin(request_id=request_id)
        status = 499  # the client went away before any answer

        async def with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                answer = list(message.get("headers", []))
                answer.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": answer}
            await send(message)

        method = scope["method"]
        with _tracer.start_as_current_span(
            method, context=propagate.extract(headers), kind=trace.SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, with_id)
            finally:
                route = str(getattr(scope.get("route"), "path", "unmatched"))
                logs.annotate(booking_id=scope.get("path_params", {}).get("booking_id"))
                if span.is_recording():
                    span.update_name(f"{method} {route}")
                    span.set_attributes(
                        {
                            "http.request.method": method,
                            "http.route": route,
                            "http.response.status_code": status,
                            "holdfast.request_id": request_id,
                        }
                    )
                    if status >= 500:
                        span.set_status(trace.StatusCode.ERROR)
                request_log.log(
                    logging.DEBUG if route in _QUIET_ROUTES else logging.INFO,
                    "%s %s %d %.1fms",
                    method,
                    route,
                    status,
                    (time.perf_counter() - started) * 1000,
                )
                logs.end(token)
