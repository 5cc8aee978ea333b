"""Fault: PostgreSQL stopped for 15 s mid-load and started again on the same data
directory (docs/operations.md#fault-tests). Every request needs the database (the key is
checked there), and every step of a booking writes to it: while it is away the API must
answer 503 with Retry-After, never 500, and the worker's steps must wait and retry, so
that once it is back nothing is lost and every hold still runs out."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI
from temporalio.testing import WorkflowEnvironment

from invariants import Report
from settings import Settings
from tests.support.faults import (
    FIRST_DAY,
    Answers,
    Postgres,
    keep_booking,
    repeat_unanswered,
    settle_held,
    shop,
    until_answered,
    verdict,
)
from tests.support.live import live_app, served
from tests.support.polling import eventually

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
QUEUE = "faults-postgres"
DOWN_SECONDS = 15


@dataclass
class Outage:
    app: FastAPI
    answers: Answers
    probes: list[httpx.Response]  # a booking and a read, asked for while it was down
    in_flight: dict[str, str]
    brief: str  # held just before the stop: its hold ran out while the database was down
    brief_status: str
    decided: Counter[int]
    resolved: dict[str, str]
    report: Report


async def keep_booking_done(
    traffic: asyncio.Task[Answers], arriving: asyncio.Task[Answers], answers: Answers
) -> None:
    """The customers there before the stop, noted with those who came during it."""
    before = await traffic
    await arriving
    answers.statuses.update(before.statuses)
    answers.booked.update(before.booked)
    answers.unanswered += before.unanswered
    answers.errors += before.errors
    answers.without_retry_after += before.without_retry_after


@pytest.fixture(scope="module")
async def outage(
    settings: Settings,
    temporal_dev_server: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Outage]:
    """One outage for the module's tests, on a PostgreSQL of the module's own (the
    suite's shared one stays up): bookings in flight, three customers booking, the
    database stopped 1.5 s in and started again DOWN_SECONDS later."""
    database = await asyncio.to_thread(
        Postgres, tmp_path_factory.mktemp("pg")
    )  # (migrations run a loop)
    own = settings.model_copy(
        update={"database_url": database.url, "rate_limit_per_minute": 100_000}
    )
    try:
        async with (
            live_app(own, temporal_dev_server, QUEUE) as app,
            served(app) as url,
            shop(url) as clinic,
        ):
            codes = ["free"] * 2 + ["priced"] * 2
            made = [await clinic.booked(code, day) for day, code in enumerate(codes)]
            in_flight = {b["id"]: b["status"] for b in made}
            slot = (await clinic.slots("free", FIRST_DAY + timedelta(days=6)))[0]
            existing = next(iter(in_flight))
            brief = (await clinic.booked("brief", 5))["id"]
            stop = asyncio.Event()
            traffic = asyncio.create_task(keep_booking(clinic, stop))
            await asyncio.sleep(1.5)
            await asyncio.to_thread(database.stop)
            # Customers already booking may be waiting in a claim that retries until the
            # database is back: these arrive while it is down.
            answers = Answers()
            arriving = asyncio.create_task(keep_booking(clinic, stop, 2, answers, seed=10))
            probes = [
                await clinic.book(slot["allocation_token"], key := "postgres-probe"),
                await clinic.http.get(f"/v1/bookings/{existing}"),
            ]
            await asyncio.sleep(DOWN_SECONDS)
            await asyncio.to_thread(database.start)
            await until_answered(clinic)
            await asyncio.sleep(1)
            stop.set()
            await keep_booking_done(traffic, arriving, answers)
            answers.unanswered.append((slot["allocation_token"], key))
            decided = await repeat_unanswered(clinic, answers)
            brief_status = await eventually(
                lambda: clinic.status(brief), lambda s: s != "pending_payment", seconds=30
            )
            answers.booked.update(in_flight)
            resolved = await settle_held(clinic, answers)
            report = await verdict(app, clinic.tenant_id)
            yield Outage(
                app, answers, probes, in_flight, brief, brief_status, decided, resolved, report
            )
    finally:
        database.cleanup()


def test_while_the_database_is_down_requests_are_answered_503_with_retry_after(
    outage: Outage,
) -> None:
    for probe in outage.probes:
        assert probe.status_code == 503, probe.text
        assert probe.json()["error"]["code"] == "database_unavailable"
        assert probe.headers["Retry-After"]


def test_no_answer_during_the_outage_is_a_500(outage: Outage) -> None:
    answers = outage.answers
    assert answers.errors == [], answers.errors
    assert answers.statuses[503] >= 1 and answers.without_retry_after == 0, answers.statuses


def test_a_hold_that_ran_out_while_the_database_was_down_is_released_after(
    outage: Outage,
) -> None:
    """Its expiry step met no database, and retried until it came back."""
    assert outage.brief_status == "expired"


def test_every_request_answered_503_is_decided_when_repeated_with_its_key(
    outage: Outage,
) -> None:
    assert set(outage.decided) <= {201, 409}, outage.decided
    assert sum(outage.decided.values()) == len(outage.answers.unanswered)


def test_every_booking_answered_201_exists_and_held_ones_resolve(outage: Outage) -> None:
    assert set(outage.in_flight) <= set(outage.resolved)
    assert set(outage.resolved.values()) == {"confirmed"}, Counter(outage.resolved.values())


def test_every_invariant_holds_after_the_restart(outage: Outage) -> None:
    assert outage.report.ok, outage.report.lines()
    assert outage.report.checked_bookings >= len(outage.resolved) + 1
