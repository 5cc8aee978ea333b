"""Availability figures: the engine alone against the minute-by-minute reference, and the
HTTP endpoint against `/healthz` on the same server (the floor every request pays)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import insert
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from bench.dataset import TZ, WEEK_HOURS, Dataset, build
from bench.stats import APP_PASSWORD, SECURITY_ENV, Timing, api_command, measure
from db.migrate import upgrade
from db.models import Allocation, Booking, Resource, Service
from db.tenants import create_tenant
from devstack.postgres import start_embedded
from scheduling.engine import Requirement, ResourceSchedule, ServiceRules, SlotQuery, find_slots
from scheduling.hours import working_hours_from_json
from scheduling.naive import naive_slots

RULES = ServiceRules(
    timezone=TZ,
    duration=3600,
    interval=900,
    buffer_before=600,
    buffer_after=900,
    requirements=(Requirement("staff"), Requirement("room")),
)
PORT = 8765


def engine_figures(data: Dataset) -> tuple[Timing, Timing, int]:
    hours = working_hours_from_json(WEEK_HOURS, [])
    schedules = [
        ResourceSchedule(str(i), r.kind, r.name, TZ, hours, frozenset(r.tags), busy=r.busy)
        for i, r in enumerate(data.resources)
    ]
    query = SlotQuery(
        int(data.week_start.timestamp()),
        int(data.week_end.timestamp()),
        now=int(data.week_start.timestamp()) - 86400,
    )
    fast = measure(lambda: find_slots(RULES, schedules, query), runs=200)
    slow = measure(lambda: naive_slots(RULES, schedules, query), runs=3, warmup=1)
    slots = find_slots(RULES, schedules, query)
    assert [s.start for s in slots] == [s.start for s in naive_slots(RULES, schedules, query)]
    return fast, slow, len(slots)


async def _load(database_url: str, data: Dataset) -> str:
    engine = create_async_engine(database_url)
    async with async_sessionmaker(engine)() as db:
        tenant, key = await create_tenant(db, "Bench clinic")
        service = Service(
            tenant_id=tenant.id,
            code="bench-60",
            name="Bench",
            timezone=TZ,
            duration_minutes=60,
            buffer_before_minutes=10,
            buffer_after_minutes=15,
            slot_interval_minutes=15,
            max_advance_days=365,
            requirements=[{"kind": "staff"}, {"kind": "room"}],
            cancellation={"free_until_hours_before": 24, "late_refund_percent": 0},
        )
        db.add(service)
        await db.flush()
        bookings: list[dict[str, object]] = []
        allocations: list[dict[str, object]] = []
        for res in data.resources:
            row = Resource(
                tenant_id=tenant.id,
                kind=res.kind,
                name=res.name,
                tags=res.tags,
                timezone=TZ,
                weekly_hours=WEEK_HOURS,
                date_overrides=[],
            )
            db.add(row)
            await db.flush()
            for start, end in res.busy:
                begin = datetime.fromtimestamp(start, UTC)
                finish = datetime.fromtimestamp(end, UTC)
                booking_id = uuid.uuid4()
                bookings.append(
                    {
                        "id": booking_id,
                        "tenant_id": tenant.id,
                        "service_id": service.id,
                        "status": "confirmed",
                        "start_at": begin,
                        "end_at": finish,
                        "customer": {},
                        "workflow_id": f"booking-{booking_id}",
                    }
                )
                allocations.append(
                    {
                        "tenant_id": tenant.id,
                        "booking_id": booking_id,
                        "resource_id": row.id,
                        "status": "confirmed",
                        "span": Range(begin, finish, bounds="[)"),
                    }
                )
        await db.execute(insert(Booking), bookings)
        await db.execute(insert(Allocation), allocations)
        await db.commit()
    await engine.dispose()
    return key


def http_figures(data: Dataset) -> tuple[Timing, Timing, Timing, int]:
    with tempfile.TemporaryDirectory() as tmp:
        server, database_url = start_embedded(Path(tmp) / "pg", "bench")
        upgrade(database_url, APP_PASSWORD)
        key = asyncio.run(_load(database_url, data))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            **SECURITY_ENV,
            "TOKEN_SECRET": "b" * 32,
            "RATE_LIMIT_PER_MINUTE": "1000000",  # taken per request as usual, never reached
            "TEMPORAL_ADDRESS": "127.0.0.1:1",
        }
        api = subprocess.Popen(
            api_command(PORT),
            env=env,
        )
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{PORT}", headers={"Authorization": f"Bearer {key}"}
            ) as client:
                _wait_up(client)
                body = {
                    "service": "bench-60",
                    "timezone": TZ,
                    "range_start": data.week_start.isoformat(),
                    "range_end": data.week_end.isoformat(),
                }

                def query() -> int:
                    response = client.post("/v1/availability/query", json=body)
                    response.raise_for_status()
                    return len(response.json()["slots"])

                count = query()
                end_to_end = measure(query, runs=100, warmup=5)
                floor = measure(lambda: client.get("/healthz").raise_for_status(), runs=100)
                keyed = measure(
                    lambda: client.get("/v1/services/bench-60").raise_for_status(), runs=100
                )
        finally:
            api.terminate()
            api.wait()
            server.cleanup()
    return end_to_end, floor, keyed, count


def _wait_up(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            client.get("/healthz")
            return
        except httpx.TransportError:
            time.sleep(0.2)
    raise SystemExit("benchmark API did not start")


def main() -> None:
    data = build()
    week = f"{data.week_start:%Y-%m-%d} to {(data.week_end - timedelta(days=1)):%Y-%m-%d}"
    print(f"Availability: one week ({week}), staff + room, 60 min, 10/15 min buffers, 15 min grid")
    print(f"  {len(data.resources)} resources, {data.allocation_count} existing allocations")
    fast, slow, slots = engine_figures(data)
    print(f"  engine alone            {fast}   {slots} slots   target p50 < 10 ms")
    print(f"  naive minute-by-minute  {slow}")
    print(f"  engine speed-up over naive: {slow.p50 / fast.p50:,.0f}x")
    e2e, floor, keyed, http_slots = http_figures(data)
    print(f"  HTTP end to end         {e2e}   {http_slots} slots   target p50 < 30 ms")
    print(f"  HTTP GET /healthz       {floor}")
    print(f"  HTTP GET a service      {keyed}   (key + rate limit, tenant set, one read)")
    print(f"  per request for key, rate limit and tenancy: {keyed.p50 - floor.p50:.2f} ms p50")
    print(f"  end to end / healthz floor: {e2e.p50 / floor.p50:.1f}x")
