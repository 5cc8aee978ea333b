"""The load test (loadtest.py, docs/operations.md#load-test), short, against a live stack
served over HTTP: customers book, pay at the venue, cancel, reschedule and race; no 5xx,
each race slot won at most once, and the invariant check holds once the run settles."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from db.sessions import Sessions
from invariants import Report, check
from loadtest import Plan, Target, run, until_quiet
from settings import Settings
from tests.support.clients import ADMIN_KEY
from tests.support.db import EVERY_TENANT
from tests.support.live import live_app, served

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "load-e2e") as app:
        yield app


async def test_a_short_run_answers_no_5xx_and_keeps_every_invariant(live: FastAPI) -> None:
    async with served(live) as url:
        result = await run(Target(url, ADMIN_KEY), Plan(clients=4, seconds=6))
    stats = result.stats
    assert stats.bookings > 10, stats.lines(result.elapsed)
    assert stats.server_errors == 0, stats.lines(result.elapsed)
    assert not stats.races_lost and stats.race_winners, stats.lines(result.elapsed)
    assert {e for e, _ in stats.statuses} >= {
        "POST /v1/availability/query",
        "POST /v1/bookings",
        "POST /v1/bookings/{id}/mark-paid",
    }
    ctx: AppContext = live.state.ctx
    sessions, temporal = Sessions.on(ctx.engine, EVERY_TENANT), await ctx.temporal()

    async def verdict() -> Report:
        tenant = uuid.UUID(result.tenant_id)
        return await check(sessions, temporal, tenant_id=tenant, settle=timedelta(0))

    report = await until_quiet(verdict, seconds=60)
    assert report.ok, report.lines()
    assert report.checked_bookings == stats.bookings
