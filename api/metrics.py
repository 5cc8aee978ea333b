"""Prometheus metrics: request counts and latency by route template (not raw path, so ids
don't explode the label set), from a plain ASGI middleware, to stay off the hot path; and
gauges of the database's state, read at each scrape. The worker's counters are its own
(activities/metrics.py, on WORKER_METRICS_PORT); docs/operations.md#metrics lists both."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from starlette.types import Message, Receive, Scope, Send

from api.auth import bearer_is_operator
from api.context import AppContext, context
from api.errors import ApiError
from api.middleware import HttpMiddleware
from contract import (
    BookingStatus,
    CalendarProvider,
    Channel,
    ConnectionStatus,
    DeliveryStatus,
    NotificationStatus,
)
from db.dispatch import delivery_backlog
from db.models import Booking, CalendarConnection, Notification, WebhookDelivery
from db.tenancy import across_tenants

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


# Deliveries that should have happened by now, read from the database at each scrape: a
# stuck message or webhook shows here (and in the booking's notifications), never only
# in a log (docs/notifications.md#seeing-what-was-sent).
STUCK_MESSAGES = Gauge(
    "holdfast_notifications_stuck",
    "Emails and text messages queued for more than 10 minutes",
    ["channel"],
)
STUCK_DELIVERIES = Gauge(
    "holdfast_webhook_deliveries_stuck", "Webhook deliveries pending for more than 10 minutes"
)
UNDISPATCHED = Gauge(
    "holdfast_dispatch_backlog",
    "Messages, webhook events and deliveries waiting more than a minute for the dispatcher",
)


# The state of things, read from the database at each scrape (docs/operations.md#metrics):
# what the worker's counters cannot say, since they count events as they happen.
BOOKINGS = Gauge("holdfast_bookings", "Bookings by status, every tenant's", ["status"])
OLDEST_QUEUED_MESSAGE = Gauge(
    "holdfast_notification_oldest_queued_seconds",
    "Age of the oldest email or text message not yet sent (0: none queued)",
    ["channel"],
)
OLDEST_PENDING_DELIVERY = Gauge(
    "holdfast_webhook_oldest_pending_seconds",
    "Age of the oldest webhook delivery not yet delivered or given up (0: none pending)",
)
CALENDAR_SYNC_LAG = Gauge(
    "holdfast_calendar_sync_lag_seconds",
    "Time since the least recently synced active calendar connection last synced",
    ["provider"],
)


def install_metrics(app: FastAPI) -> None:
    app.add_middleware(MetricsMiddleware)

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Open, or with `PUBLIC_METRICS=false` for the operator key only (a scraper
        sends it as a bearer token)."""
        ctx = context(request)
        if not ctx.settings.public_metrics and not bearer_is_operator(request):
            raise ApiError(401, "unauthorized", "metrics need the operator key")
        # Bounded: with the database away the request metrics still answer (/readyz says why).
        with contextlib.suppress(SQLAlchemyError, OSError, TimeoutError):
            await asyncio.wait_for(_read_state(ctx), timeout=2)
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


async def _read_state(ctx: AppContext) -> None:
    async with ctx.autocommit(across_tenants("metrics")) as db:
        backlog = await delivery_backlog(db)
        bookings = {s: n for s, n in (await db.execute(_BOOKINGS)).all()}
        queued: dict[str, Any] = {c: age for c, age in (await db.execute(_OLDEST_QUEUED)).all()}
        pending = await db.scalar(_OLDEST_PENDING)
        synced: dict[str, Any] = {p: age for p, age in (await db.execute(_SYNC_LAG)).all()}
    for status in BookingStatus:
        BOOKINGS.labels(status.value).set(bookings.get(status.value, 0))
    for channel in Channel:
        OLDEST_QUEUED_MESSAGE.labels(channel.value).set(queued.get(channel.value) or 0)
    OLDEST_PENDING_DELIVERY.set(pending or 0)
    for provider in CalendarProvider:
        CALENDAR_SYNC_LAG.labels(provider.value).set(synced.get(provider.value) or 0)
    for channel in Channel:
        STUCK_MESSAGES.labels(channel.value).set(backlog.stuck_messages.get(channel, 0))
    STUCK_DELIVERIES.set(backlog.stuck_deliveries)
    UNDISPATCHED.set(backlog.undispatched)


def _age(column: Any) -> Any:
    return func.extract("epoch", func.now() - func.min(column))


# A count by status reads the bookings' (tenant, status, start) index whole: bounded by
# the scrape's timeout above. The ages are served by the partial indexes on queued
# messages and pending deliveries.
_BOOKINGS = select(Booking.status, func.count()).group_by(Booking.status)
_OLDEST_QUEUED = (
    select(Notification.channel, _age(Notification.created_at))
    .where(Notification.status == NotificationStatus.QUEUED)
    .group_by(Notification.channel)
)
_OLDEST_PENDING = select(_age(WebhookDelivery.created_at)).where(
    WebhookDelivery.status == DeliveryStatus.PENDING
)
# A connection that never synced is `syncing`, not `active`: its lag starts at its first.
_SYNC_LAG = (
    select(CalendarConnection.provider, _age(CalendarConnection.last_synced_at))
    .where(CalendarConnection.status == ConnectionStatus.ACTIVE)
    .group_by(CalendarConnection.provider)
)
