"""What a running API process holds: database engine, Temporal client, token signer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from temporalio.client import Client

from api.availability_page import Offload
from connections import connect_temporal
from db.sessions import Sessions
from scheduling.tokens import TokenSigner
from settings import Settings


@dataclass
class AppContext:
    settings: Settings
    engine: AsyncEngine
    signer: TokenSigner
    sessions: async_sessionmaker[AsyncSession] = field(init=False)
    # For single statements (the reads and the stored answer of a booking request).
    autocommit: async_sessionmaker[AsyncSession] = field(init=False)
    # Heavy availability pages, in processes of their own (api/availability_page.py).
    offload: Offload = field(init=False)
    _temporal: Client | None = field(default=None, init=False)
    _temporal_lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        makers = Sessions.on(self.engine)
        self.sessions, self.autocommit = makers.transaction, makers.autocommit
        secret = self.settings.token_secret.get_secret_value().encode()
        self.offload = Offload(secret, self.settings.availability_workers)

    async def temporal(self) -> Client:
        """Connect on first use, so the API starts (and reports not-ready) without Temporal."""
        async with self._temporal_lock:
            if self._temporal is None:
                self._temporal = await connect_temporal(self.settings)
            return self._temporal


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


async def session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; routes commit explicitly, anything else rolls back."""
    async with context(request).sessions() as db:
        yield db
