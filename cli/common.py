"""What every `holdfast` command shares: how it refuses to run, and its connections."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import NoReturn

import typer
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.client import Client

from connections import connect_temporal, create_engine
from db.sessions import Sessions
from db.tenancy import across_tenants
from settings import Settings

CANNOT_RUN = 2  # as for bad usage: nothing was checked or changed


def fail(message: str) -> NoReturn:
    print(f"holdfast: {message}", file=sys.stderr)
    raise typer.Exit(CANNOT_RUN)


def owner_engine(settings: Settings) -> AsyncEngine:
    """The tables' owner, who reads every row whatever row-level security says: for the
    checks that must not trust the application role (audit verify)."""
    if not settings.database_url:
        fail("DATABASE_URL (the tables' owner) is not set, and no `make run` database runs here")
    return create_async_engine(
        settings.async_database_url, connect_args={"options": "-c timezone=UTC"}
    )


@asynccontextmanager
async def operator_sessions(settings: Settings) -> AsyncIterator[Sessions]:
    """Sessions of the application role acting across tenants as the operator, as the
    API's operator routes do: row-level security and the audit log apply."""
    if not settings.database_url:
        fail("DATABASE_URL is not set, and no `make run` database runs here")
    try:
        engine = create_engine(settings, pool_size=2, pre_ping=False)
    except RuntimeError as err:  # APP_DATABASE_PASSWORD or AUDIT_KEY unset
        fail(str(err))
    try:
        yield Sessions.on(engine, across_tenants("operator"))
    finally:
        await engine.dispose()


async def temporal(settings: Settings) -> Client | None:
    """Temporal, or None (and a warning) when it cannot be reached."""
    try:
        return await connect_temporal(settings)
    except RuntimeError as err:
        print(f"holdfast: Temporal at {settings.temporal_address}: {err}", file=sys.stderr)
        return None
