"""What a running API process holds: database engine, Temporal client, token signer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from temporalio.client import Client

import logs
from api.availability_page import Offload
from api.live_availability import SlotFeed
from connections import (
    TEMPORAL_CONNECT_SECONDS,
    TemporalUnreachable,
    connect_temporal,
    libpq_url,
)
from db.sessions import Sessions
from db.tenancy import NOBODY, Tenancy, TenancySource, across_tenants
from scheduling.tokens import TokenSigner
from settings import Settings

_TENANCY = "tenancy"


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    signer: TokenSigner
    # Each session acts for a tenancy (db/tenancy.py): a request's, that its key names.
    tenants: Sessions = field(init=False)
    # Heavy availability pages, in processes of their own (api/availability_page.py).
    offload: Offload = field(init=False)
    # Live availability's streams and their listener (api/live_availability.py).
    feed: SlotFeed = field(init=False)
    _temporal: Client | None = field(default=None, init=False)
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        self.tenants = Sessions.on(self.engine)
        secret = self.settings.token_secret.get_secret_value().encode()
        self.offload = Offload(secret, self.settings.availability_workers)
        self.feed = SlotFeed(
            libpq_url(self.settings.app_database_url),
            self.settings.availability_streams_per_key,
        )

    def sessions(self, acting: TenancySource) -> AsyncSession:
        """A session for units of several statements."""
        return self.tenants.transaction(acting)

    def autocommit(self, acting: TenancySource) -> AsyncSession:
        """A session for one statement (the reads and the stored answer of a booking
        request)."""
        return self.tenants.autocommit(acting)

    async def temporal(self) -> Client:
        """Connect on first use, so the API starts (and reports not-ready) without Temporal.
        Bounded: within TEMPORAL_CONNECT_SECONDS, waiting for another request's connect
        included, the client or TemporalUnreachable (a Temporal that accepts the socket
        but never answers would otherwise hold every request). Only a client is kept: after
        a failure the next request tries again."""
        if self._temporal is not None:
            return self._temporal
        try:
            async with asyncio.timeout(TEMPORAL_CONNECT_SECONDS), self._temporal_lock:
                if self._temporal is None:
                    self._temporal = await connect_temporal(self.settings)
                return self._temporal
        except TimeoutError as err:
            raise TemporalUnreachable(
                f"no connection to Temporal within {TEMPORAL_CONNECT_SECONDS:g} s"
            ) from err


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def act_as(request: Request, tenancy: Tenancy) -> None:
    """What this request's database sessions act for, once its key is known (or the
    route takes the cross-tenant path)."""
    setattr(request.state, _TENANCY, tenancy)
    logs.annotate(tenant_id=tenancy.tenant_id)  # the request's log lines name the tenant


def across_tenants_as(actor: str) -> Callable[[Request], None]:
    """A dependency for a route that finds its tenant from what it is given (a provider's
    push, a feed's token) rather than from a key: the explicit cross-tenant path, its
    sessions seeing every tenant's rows, recorded as `actor`."""

    def acting(request: Request) -> None:
        act_as(request, across_tenants(actor))

    return acting


def tenancy(request: Request) -> Tenancy:
    found = getattr(request.state, _TENANCY, NOBODY)
    assert isinstance(found, Tenancy)
    return found


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, acting for the tenant its key names (read as its first
    transaction begins, after the key dependency ran); routes commit explicitly, anything
    else rolls back."""
    async with context(request).sessions(lambda: tenancy(request)) as db:
        yield db
