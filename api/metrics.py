"""Prometheus metrics: request counts and latency by route template (not raw path, so ids
don't explode the label set). A plain ASGI middleware, to stay off the hot path."""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import Message, Receive, Scope, Send

from api.middleware import HttpMiddleware

REQUESTS = Counter("holdfast_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "holdfast_http_request_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class MetricsMiddleware(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 499  # the client went away before any answer (nginx's number for it)

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            # The router leaves the matched route in the scope.
            route = str(getattr(scope.get("route"), "path", "unmatched"))
            LATENCY.labels(scope["method"], route).observe(time.perf_counter() - started)
            REQUESTS.labels(scope["method"], route, str(status)).inc()


def install_metrics(app: FastAPI) -> None:
    app.add_middleware(MetricsMiddleware)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
