"""The FastAPI application: `uvicorn api.app:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.context import AppContext
from api.cors import KeyCors
from api.edge import EdgeMiddleware
from api.errors import install_error_handlers
from api.headers import SecurityHeaders
from api.metrics import install_metrics
from api.middleware import RequestContext
from api.openapi import install_openapi
from api.rate_limits import RateLimitHeaders
from api.routes import (
    api_keys,
    audit_events,
    availability,
    booking_page,
    booking_series,
    bookings,
    calendar_connections,
    calendar_feed,
    calendar_push,
    codec,
    console,
    customers,
    health,
    locations,
    resources,
    services,
    stripe_webhook,
    tenants,
    waitlist,
    webhook_endpoints,
)
from connections import create_engine
from logs import configure_logging
from scheduling.tokens import TokenSigner
from settings import Settings, get_settings
from tracing import configure_tracing

DESCRIPTION = """Headless booking engine. Authenticate with `Authorization: Bearer <key>`:
the operator key manages tenants; a tenant key manages everything else. Errors are
`{"error": {"code", "message", "details"}}`."""


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_format, "api")  # docs/operations.md#logs
    configure_tracing(settings, "api")
    ctx = AppContext(
        settings=settings,
        engine=create_engine(settings),
        signer=TokenSigner(settings.token_secret.get_secret_value().encode()),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            ctx.offload.close()
            await ctx.feed.aclose()
            await ctx.engine.dispose()

    docs = settings.public_docs  # closed: no /docs, /redoc or /openapi.json at all
    app = FastAPI(
        title="Holdfast",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.ctx = ctx
    # The last added is the outermost: the edge refuses bad input before any route runs;
    # ErrorMiddleware wraps it and the routes, so no exception below it can reset a
    # keep-alive connection; metrics wrap those, counting every answer as it was sent;
    # then the headers every answer carries, and outermost the request's log context.
    app.add_middleware(EdgeMiddleware)
    install_error_handlers(app)
    install_metrics(app)
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(KeyCors)
    app.add_middleware(SecurityHeaders)  # on every answer, errors included
    app.add_middleware(RequestContext)  # outermost: every line and span of it has its ids
    routers = (
        health,
        tenants,
        api_keys,
        audit_events,
        locations,
        resources,
        services,
        availability,
        bookings,
        booking_series,
        waitlist,
        customers,
    )
    calendars = (calendar_connections, calendar_feed, calendar_push)
    pages = (booking_page, console)
    for module in (*routers, *calendars, webhook_endpoints, stripe_webhook, codec, *pages):
        app.include_router(module.router)
    install_openapi(app)  # every error response documented, in its shape (api/openapi.py)
    return app
