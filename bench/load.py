"""A short load test (loadtest.py) on the bookings benchmark's stack, while it is up:
customers booking free and priced services (paid at the venue: the benchmark runs no
Stripe), cancelling, rescheduling and racing; then the invariant check. The full run is
`holdfast load` (20 clients for 60 s against `make run`); this one keeps `make bench`
short."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client

from connections import create_engine
from db.sessions import Sessions
from db.tenancy import across_tenants
from invariants import Report, check
from loadtest import Plan, Result, Target, run, until_quiet
from settings import Settings

PLAN = Plan(clients=8, seconds=15)


@dataclass(frozen=True)
class LoadFigures:
    result: Result
    report: Report


async def short_load(
    base_url: str, operator_key: str, settings: Settings, temporal: Client
) -> LoadFigures:
    result = await run(Target(base_url, operator_key), PLAN)
    engine = create_engine(settings, pool_size=2, pre_ping=False)
    try:
        sessions = Sessions.on(engine, across_tenants("bench"))
        tenant = uuid.UUID(result.tenant_id)

        async def once() -> Report:
            return await check(sessions, temporal, tenant_id=tenant, settle=timedelta(0))

        report: Report = await until_quiet(once)
    finally:
        await engine.dispose()
    return LoadFigures(result, report)


def show(figures: LoadFigures) -> None:
    print(f"Load: {PLAN.clients} clients for {PLAN.seconds:.0f} s (holdfast load, short)")
    for line in figures.result.stats.lines(figures.result.elapsed):
        print(line)
    print(f"  5xx: {figures.result.stats.server_errors}")
    for line in figures.report.lines():
        print(f"  invariants: {line}")
