"""Calendar figures (docs/calendars.md): availability over HTTP for 100 staff carrying
5,000 busy blocks imported from their calendars, against the same tenant before the
import; and one incremental Google sync of 2,000 changed events, end to end through the
sync activity against the Google stand-in in this process."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from temporalio.client import Client

from activities.calendar_access import CalendarAccess
from activities.calendar_sync import CalendarSyncActivities
from activities.google_calendar import GoogleCalendar
from activities.worker_loop import WorkerLoop
from bench.availability import _wait_up
from bench.cpu import SELF, cpu_seconds, per_call_ms
from bench.dataset import TZ, WEEK_HOURS, next_monday
from bench.stats import APP_PASSWORD, SECURITY_ENV, Timing, api_command, measure
from connections import create_engine
from contract import ConnectionInput
from db import calendar_connections, external_busy
from db.availability import load_schedules
from db.migrate import upgrade
from db.models import CalendarConnection, ExternalBusy, Resource, Service
from db.services import service_rules
from db.sessions import Sessions
from db.tenancy import across_tenants
from db.tenants import create_tenant
from devstack.google_calendar import API_ROOT, STANDIN, GoogleStandin, build_app, rfc3339
from devstack.postgres import start_embedded
from devstack.stand_in import serve
from encryption import Keyring, new_key
from scheduling.engine import ResourceSchedule, SlotQuery, find_slots
from settings import Settings

PORT = 8767
STAFF, BLOCKS = 100, 5_000
CALENDAR_EVENTS, CHANGED, SYNC_ROUNDS = 3_000, 2_000, 5
SERVICE = "bench-staff-60"
HTTP_TARGET_MS, SYNC_TARGET_S = 30.0, 5.0


def _keys() -> str:
    """An ENCRYPTION_KEYS setting of one fresh key."""
    return f"bench:{new_key()}"


def _service(tenant_id: uuid.UUID, max_advance_days: int = 365) -> Service:
    return Service(
        tenant_id=tenant_id,
        code=SERVICE,
        name="Bench staff",
        timezone=TZ,
        duration_minutes=60,
        buffer_before_minutes=10,
        buffer_after_minutes=15,
        slot_interval_minutes=15,
        max_advance_days=max_advance_days,
        requirements=[{"kind": "staff"}],
        cancellation={"free_until_hours_before": 24, "late_refund_percent": 0},
    )


def _staff(tenant_id: uuid.UUID, i: int) -> Resource:
    return Resource(
        tenant_id=tenant_id,
        kind="staff",
        name=f"Staff {i:03d}",
        tags=[],
        timezone=TZ,
        weekly_hours=WEEK_HOURS,
        date_overrides=[],
    )


# ---- 1. availability over HTTP with imported busy time ----------------------------------


@dataclass
class Clinic:
    tenant_id: uuid.UUID
    key: str  # the tenant's API key
    targets: list[external_busy.Target]  # one Google connection per staff resource


async def _clinic(engine: AsyncEngine, keyring: Keyring) -> Clinic:
    """A tenant with 100 staff (any of them does the service), each with a connected
    calendar that has imported nothing yet."""
    async with async_sessionmaker(engine, expire_on_commit=False)() as db:
        tenant, key = await create_tenant(db, "Bench calendars")
        db.add(_service(tenant.id))
        staff = [_staff(tenant.id, i) for i in range(STAFF)]
        db.add_all(staff)
        await db.flush()
        targets = []
        for i, resource in enumerate(staff):
            row = await calendar_connections.create(
                db,
                keyring,
                tenant_id=tenant.id,
                resource_id=resource.id,
                provider="google",
                calendar_id=f"staff-{i:03d}@clinic.test",
                credentials={"key": {}, "subject": None},
                import_busy=True,
                export_events=False,
            )
            targets.append(calendar_connections.target(row))
        await db.commit()
    return Clinic(tenant.id, key, targets)


def busy_blocks(week_start: datetime, seed: int = 11) -> list[list[external_busy.Busy]]:
    """BLOCKS busy events, BLOCKS / STAFF per staff calendar, spread over the week's days
    between 07:00 and 20:00 local time, 15 minutes to 2 hours long; some overlap, as in
    people's calendars."""
    rng = random.Random(seed)
    calendars = []
    for _ in range(STAFF):
        events = []
        for _ in range(BLOCKS // STAFF):
            day = week_start + timedelta(days=rng.randrange(7))
            start = day.replace(hour=7) + timedelta(minutes=15 * rng.randrange(13 * 4))
            length = timedelta(minutes=rng.choice((15, 30, 45, 60, 90, 120)))
            events.append(
                external_busy.Busy(
                    secrets.token_hex(13), start.astimezone(UTC), (start + length).astimezone(UTC)
                )
            )
        calendars.append(events)
    return calendars


async def _import(engine: AsyncEngine, clinic: Clinic, week_start: datetime) -> float:
    """Stores each calendar's blocks as a full sync does (db/external_busy.py: rows and
    the resource's `calendar_busy`), one transaction per calendar; returns the seconds."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    started = time.perf_counter()
    for target, blocks in zip(clinic.targets, busy_blocks(week_start), strict=True):
        async with sessions() as db:
            await external_busy.apply(db, target, blocks, [], full=True)
            await db.commit()
    elapsed = time.perf_counter() - started
    async with sessions() as db:
        rows = await db.scalar(text("SELECT count(*) FROM external_busy"))
        merged = await db.scalar(
            text("SELECT count(*) FROM resources WHERE calendar_busy <> '{}'::tstzmultirange")
        )
    assert rows == BLOCKS and merged == STAFF, (rows, merged)
    return elapsed


@dataclass
class HttpFigures:
    timing: Timing
    slots: int
    cpu_ms: dict[str, float]  # per call, by process group


@dataclass
class Breakdown:
    """Where a query's time goes, measured in this process on the API's own code: the
    load (db/availability.py, SQL and decoding) and the engine on what it loaded; beside
    them, the busy read as it is now and from `resources.calendar_busy` instead."""

    load: Timing  # load_schedules, as offer_slots calls it
    engine: Timing  # find_slots on what it loaded
    spans: int  # busy spans loaded (external_busy rows)
    rows_sql: Timing  # the read's external_busy branch alone
    multirange_sql: Timing  # the same busy time from calendar_busy, cut to the window
    merged_engine: Timing  # find_slots with calendar_busy's spans as the busy time
    merged_spans: int


def _http(client: httpx.Client, body: dict[str, Any], pgdata: Path) -> HttpFigures:
    def query() -> int:
        response = client.post("/v1/availability/query", json=body)
        response.raise_for_status()
        return len(response.json()["slots"])

    slots = query()
    before = cpu_seconds(str(pgdata))
    timing = measure(query, runs=100, warmup=5)
    return HttpFigures(timing, slots, per_call_ms(before, cpu_seconds(str(pgdata)), 100 + 5))


_BUSY_ROWS = text("""
    SELECT resource_id, array_agg(floor(extract(epoch FROM lower(span)))::bigint),
           array_agg(ceil(extract(epoch FROM upper(span)))::bigint)
      FROM external_busy WHERE resource_id = ANY(:ids) AND span && tstzrange(:lo, :hi)
     GROUP BY resource_id
""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))
# The same busy time from the resource rows: the union each sync keeps, cut to the window.
_BUSY_MULTIRANGE = text("""
    SELECT id, array_agg(floor(extract(epoch FROM lower(r)))::bigint),
           array_agg(ceil(extract(epoch FROM upper(r)))::bigint)
      FROM resources, unnest(calendar_busy * tstzmultirange(tstzrange(:lo, :hi))) AS r
     WHERE id = ANY(:ids)
     GROUP BY id
""").bindparams(bindparam("ids", type_=ARRAY(UUID(as_uuid=True))))


async def _measure_async(step: Callable[[], Awaitable[object]], runs: int = 50) -> Timing:
    for _ in range(3):
        await step()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await step()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return Timing(statistics.median(samples), samples[min(runs - 1, int(runs * 0.95))], runs)


async def _breakdown(
    engine: AsyncEngine, clinic: Clinic, week_start: datetime, week_end: datetime
) -> Breakdown:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as db:
        service = await db.scalar(select(Service).where(Service.tenant_id == clinic.tenant_id))
        assert service is not None
        rules = service_rules(service)
        margin = timedelta(seconds=rules.duration + rules.buffer_before + rules.buffer_after)
        lo, hi = week_start - margin, week_end + margin
        now = datetime.now(UTC)
        query = SlotQuery(
            int(week_start.timestamp()), int(week_end.timestamp()), int(now.timestamp())
        )
        kinds = {r.kind for r in rules.requirements}

        async def load() -> list[ResourceSchedule]:
            return await load_schedules(db, clinic.tenant_id, kinds, lo, hi, now)

        loaded = await load()
        load_timing = await _measure_async(load)
        engine_timing = measure(lambda: find_slots(rules, loaded, query), runs=50)
        params = {"ids": [t.resource_id for t in clinic.targets], "lo": lo, "hi": hi}
        rows_timing = await _measure_async(lambda: db.execute(_BUSY_ROWS, params))
        multirange_timing = await _measure_async(lambda: db.execute(_BUSY_MULTIRANGE, params))
        merged = {
            str(resource): list(zip(starts, ends, strict=True))
            for resource, starts, ends in await db.execute(_BUSY_MULTIRANGE, params)
        }
    # With no bookings or time off, calendar_busy's spans are all the busy time there is.
    as_merged = [replace(s, busy=merged.get(s.id, [])) for s in loaded]
    merged_timing = measure(lambda: find_slots(rules, as_merged, query), runs=50)
    assert [s.start for s in find_slots(rules, as_merged, query)] == [
        s.start for s in find_slots(rules, loaded, query)
    ]
    return Breakdown(
        load_timing,
        engine_timing,
        sum(len(s.busy) for s in loaded),
        rows_timing,
        multirange_timing,
        merged_timing,
        sum(len(b) for b in merged.values()),
    )


@dataclass
class AvailabilityFigures:
    without: HttpFigures
    with_busy: HttpFigures
    import_seconds: float
    breakdown_without: Breakdown
    breakdown_with: Breakdown


def availability(database_url: str, pgdata: Path) -> AvailabilityFigures:
    week_start = next_monday(datetime.now(UTC).date())
    week_end = week_start + timedelta(days=7)
    keys = _keys()
    engine = create_async_engine(database_url)
    loop = asyncio.new_event_loop()
    try:
        clinic = loop.run_until_complete(_clinic(engine, Keyring.parse(keys)))
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            **SECURITY_ENV,
            "TOKEN_SECRET": "b" * 32,
            "RATE_LIMIT_PER_MINUTE": "1000000",  # taken per request as usual, never reached
            "TEMPORAL_ADDRESS": "127.0.0.1:1",
            "ENCRYPTION_KEYS": keys,
        }
        api = subprocess.Popen(api_command(PORT), env=env)
        try:
            with httpx.Client(
                base_url=f"http://127.0.0.1:{PORT}",
                headers={"Authorization": f"Bearer {clinic.key}"},
            ) as client:
                _wait_up(client)
                body = {
                    "service": SERVICE,
                    "timezone": TZ,
                    "range_start": week_start.isoformat(),
                    "range_end": week_end.isoformat(),
                }
                without = _http(client, body, pgdata)
                plain = loop.run_until_complete(_breakdown(engine, clinic, week_start, week_end))
                seconds = loop.run_until_complete(_import(engine, clinic, week_start))
                with_busy = _http(client, body, pgdata)
                busy = loop.run_until_complete(_breakdown(engine, clinic, week_start, week_end))
        finally:
            api.terminate()
            api.wait()
        loop.run_until_complete(engine.dispose())
    finally:
        loop.close()
    return AvailabilityFigures(without, with_busy, seconds, plain, busy)


# ---- 2. an incremental sync of 2,000 changed events ----------------------------------


@dataclass
class SyncRound:
    seconds: float  # the sync activity, end to end
    listing_seconds: float  # GoogleCalendar.changes alone: the same changes listed again
    events: int  # what the incremental listing returned
    cpu_ms: dict[str, float]  # of the sync, by process group


@dataclass
class SyncFigures:
    first_seconds: float  # the first sync: a full listing of CALENDAR_EVENTS
    rounds: list[SyncRound]
    stored: int  # external_busy rows after the last round


def _times(start: datetime, minutes: int) -> dict[str, Any]:
    end = start + timedelta(minutes=minutes)
    return {"start": {"dateTime": rfc3339(start)}, "end": {"dateTime": rfc3339(end)}}


class Person:
    """Someone at Google Calendar, on the stand-in's state as the tests' handle does it
    (tests/support/google_calendar.py): adds events and drags others elsewhere, on days
    from `first`, between 07:00 and 20:00."""

    def __init__(self, state: GoogleStandin, calendar_id: str, first: datetime, days: int) -> None:
        self._state = state
        self._calendar = state.add_calendar(calendar_id, TZ)
        self._first, self._days = first, days
        self._rng = random.Random(5)
        self._ids: list[str] = []

    def _when(self) -> dict[str, Any]:
        day = self._first + timedelta(days=self._rng.randrange(self._days))
        start = day.replace(hour=7) + timedelta(minutes=15 * self._rng.randrange(13 * 4))
        return _times(start, self._rng.choice((15, 30, 45, 60, 90, 120)))

    def add(self, count: int) -> None:
        for _ in range(count):
            fields = {"summary": "Busy", **self._when()}
            created = self._state.create(self._calendar, fields, None, self._calendar.id)
            self._ids.append(str(created["id"]))

    def move(self, count: int) -> None:
        """`count` different events, each moved once."""
        for event_id in self._rng.sample(self._ids, count):
            event = self._state.event(self._calendar, event_id)
            self._state.patch(self._calendar, event, self._when())


async def _sync_connection(
    sessions: Sessions, keys: str, key: dict[str, Any], calendar_id: str
) -> ConnectionInput:
    """A tenant booking 90 days ahead (the import window) and one staff member whose
    Google calendar is connected, not synced yet."""
    async with sessions.transaction() as db:
        tenant, _ = await create_tenant(db, "Bench sync")
        db.add(_service(tenant.id, max_advance_days=90))
        resource = _staff(tenant.id, 0)
        db.add(resource)
        await db.flush()
        row = await calendar_connections.create(
            db,
            Keyring.parse(keys),
            tenant_id=tenant.id,
            resource_id=resource.id,
            provider="google",
            calendar_id=calendar_id,
            credentials={"key": key, "subject": None},
            import_busy=True,
            export_events=False,
        )
        await db.commit()
    return ConnectionInput(str(row.id), str(tenant.id))


async def _cursor(sessions: Sessions, connection: ConnectionInput) -> str | None:
    async with sessions.autocommit() as db:
        return await db.scalar(
            select(CalendarConnection.sync_cursor).where(
                CalendarConnection.id == uuid.UUID(connection.connection_id)
            )
        )


async def _sync_run(database_url: str, pgdata: Path) -> SyncFigures:
    app = build_app()
    runner = await serve(app, port=0)
    host, port = runner.addresses[0][:2]
    api_base = f"http://{host}:{port}{API_ROOT}"
    state = app[STANDIN]
    keys = _keys()
    settings = Settings(
        database_url=database_url,
        app_database_password=APP_PASSWORD,
        audit_key=SECURITY_ENV["AUDIT_KEY"],
        encryption_keys=keys,
        google_calendar_api_base=api_base,
        _env_file=None,
    )
    engine = create_engine(settings, pool_size=5, pre_ping=False)  # as the worker's
    try:
        key = state.issue_key(f"http://{host}:{port}/token")
        calendar_id = "ada@clinic.test"
        today = datetime.now(ZoneInfo(TZ)).replace(hour=0, minute=0, second=0, microsecond=0)
        person = Person(state, calendar_id, today, days=80)
        person.add(CALENDAR_EVENTS)
        sessions = Sessions.on(engine, across_tenants("bench"))
        connection = await _sync_connection(sessions, keys, key, calendar_id)
        # As the delivery worker runs it: on a thread, its database steps on this loop.
        # Temporal is only used after a refused credential works again (to resume exports).
        syncs = CalendarSyncActivities(
            sessions,
            WorkerLoop(asyncio.get_running_loop()),
            CalendarAccess(settings),
            cast(Client, None),
            "bench-delivery",
        )
        started = time.perf_counter()
        outcome = await asyncio.to_thread(syncs.sync, connection)
        first_seconds = time.perf_counter() - started
        assert outcome.status == "active", outcome
        listing = GoogleCalendar(key, calendar_id, subject=None, api_base=api_base, timeout=20)
        window = (today, today + timedelta(days=90))
        rounds = []
        for _ in range(SYNC_ROUNDS):
            cursor = await _cursor(sessions, connection)
            person.move(CHANGED // 2)
            person.add(CHANGED - CHANGED // 2)
            before = cpu_seconds(str(pgdata))
            started = time.perf_counter()
            outcome = await asyncio.to_thread(syncs.sync, connection)
            seconds = time.perf_counter() - started
            cpu = per_call_ms(before, cpu_seconds(str(pgdata)), 1)
            assert outcome.status == "active", outcome
            started = time.perf_counter()
            changes = await asyncio.to_thread(listing.changes, cursor, *window)
            listed = time.perf_counter() - started
            assert not changes.full and len(changes.events) == CHANGED, len(changes.events)
            rounds.append(SyncRound(seconds, listed, len(changes.events), cpu))
        async with sessions.autocommit() as db:
            stored = await db.scalar(
                select(func.count()).where(
                    ExternalBusy.connection_id == uuid.UUID(connection.connection_id)
                )
            )
        return SyncFigures(first_seconds, rounds, int(stored or 0))
    finally:
        await engine.dispose()
        await runner.cleanup()


def sync(database_url: str, pgdata: Path) -> SyncFigures:
    return asyncio.run(_sync_run(database_url, pgdata))


# ---- report -----------------------------------------------------------------------------

_GROUPS = {SELF: "this process", "PostgreSQL": "PostgreSQL", "API": "API"}


def _cpu(figures: dict[str, float]) -> str:
    parts = ", ".join(f"{_GROUPS.get(g, g)} {ms:.1f}" for g, ms in sorted(figures.items()))
    return f"CPU {sum(figures.values()):5.1f} ms ({parts})"


def _report_availability(figures: AvailabilityFigures) -> None:
    without, busy = figures.without, figures.with_busy
    print(
        f"Calendars: availability over one week for {STAFF} staff (any one does the service), "
        "60 min, 10/15 min buffers, 15 min grid"
    )
    print(
        f"  {BLOCKS:,} busy blocks imported with external_busy.apply, {STAFF} calendars "
        f"one transaction each: {figures.import_seconds:.2f} s"
    )
    print(f"  HTTP, no imported busy time   {without.timing}   {without.slots} slots")
    print(f"    per call: {_cpu(without.cpu_ms)}")
    print(
        f"  HTTP, {BLOCKS:,} busy blocks      {busy.timing}   {busy.slots} slots"
        f"   target p50 < {HTTP_TARGET_MS:.0f} ms"
    )
    print(f"    per call: {_cpu(busy.cpu_ms)}")
    verdict = "met" if busy.timing.p50 < HTTP_TARGET_MS else "MISSED"
    print(
        f"  with / without busy blocks: p50 {busy.timing.p50 / without.timing.p50:.2f}x, "
        f"p95 {busy.timing.p95 / without.timing.p95:.2f}x   target: {verdict}"
    )
    plain, spent = figures.breakdown_without, figures.breakdown_with
    print("  where it goes, in this process on the API's code (without -> with the blocks):")
    print(
        f"    load_schedules (SQL, decoding)  p50 {plain.load.p50:6.2f} -> {spent.load.p50:6.2f} ms"
        f"   {plain.spans} -> {spent.spans} busy spans"
    )
    print(
        f"    find_slots                      p50 {plain.engine.p50:6.2f} -> "
        f"{spent.engine.p50:6.2f} ms"
    )
    print("  the busy read from resources.calendar_busy instead of external_busy rows:")
    print(f"    SQL, external_busy rows (now)   {spent.rows_sql}   {spent.spans} spans")
    print(
        f"    SQL, calendar_busy * window     {spent.multirange_sql}   {spent.merged_spans} spans"
    )
    print(f"    find_slots on the merged spans  {spent.merged_engine}   (same slots)")


def _report_sync(synced: SyncFigures) -> None:
    rounds = synced.rounds
    print(
        f"Calendar sync: CalendarSyncActivities.sync on a thread against the Google stand-in "
        f"in this process; a {CALENDAR_EVENTS:,}-event calendar listed in full first "
        f"({synced.first_seconds:.2f} s)"
    )
    print(
        f"  {SYNC_ROUNDS} rounds of {CHANGED:,} events changed (half added, half moved), "
        "then one incremental sync:"
    )
    for n, r in enumerate(rounds, 1):
        print(
            f"    round {n}  {r.seconds:5.2f} s  {r.events / r.seconds:7,.0f} events/s   "
            f"listing alone {r.listing_seconds:5.2f} s   {_cpu(r.cpu_ms)}"
        )
    seconds = sorted(r.seconds for r in rounds)
    p50 = statistics.median(seconds)
    cpu: dict[str, float] = {}
    for r in rounds:
        for group, ms in r.cpu_ms.items():
            cpu[group] = cpu.get(group, 0.0) + ms / len(rounds)
    verdict = "met" if seconds[-1] < SYNC_TARGET_S else "MISSED"
    print(
        f"  incremental sync of {CHANGED:,} events: p50 {p50:.2f} s, worst {seconds[-1]:.2f} s, "
        f"{CHANGED / p50:,.0f} events/s   target < {SYNC_TARGET_S:.0f} s: {verdict}"
    )
    print(f"    per sync: {_cpu(cpu)}; {synced.stored:,} busy rows stored at the end")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        pgdata = Path(tmp) / "pg"
        server, database_url = start_embedded(pgdata, "bench")
        try:
            upgrade(database_url, APP_PASSWORD)
            figures = availability(database_url, pgdata)
            synced = sync(database_url, pgdata)
        finally:
            server.cleanup()
    _report_availability(figures)
    print()
    _report_sync(synced)


if __name__ == "__main__":
    main()
