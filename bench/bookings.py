"""Booking figures through the HTTP API — free services (claim, confirmed at once) and
priced ones (hold, mark-paid, confirm) — beside a minimal update-with-start workflow run
in this process against the same Temporal server."""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.cpu import cpu_seconds, machine_seconds, others_cores, per_call_ms
from bench.load import LoadFigures, short_load
from bench.load import show as show_load
from bench.mail import SMTP_PORT, Arrivals, to_inbox
from bench.minimal import MinimalClaim
from bench.stats import APP_PASSWORD, SECURITY_ENV, api_command
from bench.streams import StreamFigures, stream_costs
from bench.streams import show as show_streams
from connections import data_converter
from db.migrate import upgrade
from devstack.binaries import venv_binary
from devstack.mail import start as start_mail
from devstack.postgres import start_embedded
from devstack.temporal import register_search_attributes
from encryption import new_key
from settings import Settings

PORT = 8766
ADMIN = "bench-operator-key"
KEYS = f"bench:{new_key()}"
SEALED = Settings(encryption_keys=SecretStr(KEYS), _env_file=None)
SEQUENTIAL, CONCURRENT, CONCURRENCY = 60, 240, 16
MAILED = 30


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def timed(
    calls: int, concurrency: int, call: Callable[[int], Awaitable[None]]
) -> tuple[float, float, float]:
    """(p50 ms, p95 ms, calls per second) of `calls` runs, `concurrency` at a time."""
    samples: list[float] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            started = time.perf_counter()
            await call(i)
            samples.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    elapsed = time.perf_counter() - began
    return statistics.median(samples), percentile(samples, 0.95), calls / elapsed


async def minimal_claim(client: Client, task_queue: str) -> None:
    op = WithStartWorkflowOperation(
        MinimalClaim.run,
        id=f"minimal-{uuid.uuid4()}",
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    await client.execute_update_with_start_workflow(MinimalClaim.claim, start_workflow_operation=op)


async def catalogue(api: httpx.AsyncClient) -> dict[str, list[str]]:
    every_day = {d: [["00:00", "24:00"]] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    for kind, name in (("staff", "Bench staff"), ("room", "Bench room")):
        response = await api.post(
            "/v1/resources",
            json={"kind": kind, "name": name, "timezone": "UTC", "weekly_hours": every_day},
        )
        response.raise_for_status()
    tokens = {}
    for code, price in (("free", None), ("paid", {"amount": 1000, "currency": "EUR"})):
        (
            await api.post(
                "/v1/services",
                json={
                    "code": code,
                    "name": code,
                    "timezone": "UTC",
                    "duration_minutes": 15,
                    "slot_interval_minutes": 15,
                    "max_advance_days": 400,
                    "price": price,
                    "requirements": [{"kind": "staff"}, {"kind": "room"}],
                },
            )
        ).raise_for_status()
        start = datetime.now(UTC) + timedelta(days=1 if code == "free" else 40)
        response = await api.post(
            "/v1/availability/query",
            json={
                "service": code,
                "timezone": "UTC",
                "range_start": start.isoformat(),
                "range_end": (start + timedelta(days=30)).isoformat(),
                "limit": 5000,
            },
        )
        response.raise_for_status()
        tokens[code] = [s["allocation_token"] for s in response.json()["slots"]]
    return tokens


@dataclass
class Figures:
    p50: float
    p95: float
    rate: float
    cpu_ms: dict[str, float]  # CPU per call under concurrency, by process group
    others: float  # cores other processes on the machine kept busy meanwhile


@dataclass
class Measured:
    calls: dict[str, Figures]
    to_inbox: dict[str, tuple[float, float]]  # (p50, p95) ms from POST to SMTP, by service
    streams: StreamFigures
    load: LoadFigures | None = None


async def measure(
    api: httpx.AsyncClient, client: Client, task_queue: str, pgdata: Path, arrivals: Arrivals
) -> Measured:
    tokens = await catalogue(api)
    free, paid = iter(tokens["free"]), iter(tokens["paid"])
    customer = {"name": "Bench", "email": "bench@example.test"}

    async def post(token: str) -> dict[str, Any]:
        response = await api.post(
            "/v1/bookings",
            json={"allocation_token": token, "customer": customer},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    async def book_free(_: int = 0) -> None:
        await post(next(free))

    async def book_paid(_: int = 0) -> None:
        await paid_booking()

    async def paid_booking() -> str:
        held = await post(next(paid))
        done = await api.post(f"/v1/bookings/{held['id']}/mark-paid")
        assert done.json()["status"] == "confirmed", done.text
        return str(held["id"])

    async def free_booking() -> str:
        return str((await post(next(free)))["id"])

    async def baseline(_: int) -> None:
        await minimal_claim(client, task_queue)

    for warm in (baseline, book_free):
        await timed(10, 4, warm)
    figures = {}
    for name, call in (("minimal", baseline), ("free", book_free), ("paid", book_paid)):
        p50, p95, _ = await timed(SEQUENTIAL, 1, call)
        before, machine = cpu_seconds(str(pgdata)), machine_seconds()
        _, _, rate = await timed(CONCURRENT, CONCURRENCY, call)
        after = cpu_seconds(str(pgdata))
        cpu = per_call_ms(before, after, CONCURRENT)
        figures[name] = Figures(p50, p95, rate, cpu, others_cores(machine, before, after))
    await asyncio.sleep(2)  # the load's emails drain
    inbox = {
        "free": await to_inbox(arrivals, MAILED, free_booking),
        "paid": await to_inbox(arrivals, MAILED, paid_booking),
    }
    return Measured(figures, inbox, await stream_costs(api, pgdata, book_free))


async def run() -> Measured:
    with tempfile.TemporaryDirectory() as tmp:
        pgdata = Path(tmp) / "pg"
        server, database_url = start_embedded(pgdata, "bench")
        await asyncio.to_thread(upgrade, database_url, APP_PASSWORD)
        temporal = await WorkflowEnvironment.start_local(
            dev_server_existing_path=venv_binary("temporal"),
            data_converter=data_converter(
                Settings(encryption_keys=SecretStr(KEYS), _env_file=None)
            ),
            ui=False,
            dev_server_log_level="error",
        )
        await register_search_attributes(temporal.client)
        address = temporal.client.service_client.config.target_host
        arrivals = Arrivals()
        mail = start_mail(arrivals, "127.0.0.1", SMTP_PORT)
        env = {
            **os.environ,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(SMTP_PORT),
            "SMTP_STARTTLS": "false",
            "DATABASE_URL": database_url,
            **SECURITY_ENV,
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TASK_QUEUE": "bench",
            "TOKEN_SECRET": "b" * 32,
            "RATE_LIMIT_PER_MINUTE": "1000000",  # taken per request as usual, never reached
            "ENCRYPTION_KEYS": KEYS,  # payloads sealed, as in production (the baseline's too)
            "ADMIN_API_KEY": ADMIN,
        }
        processes = spawn_api_and_worker(env)
        try:
            async with (
                Worker(temporal.client, task_queue="minimal", workflows=[MinimalClaim]),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{PORT}", timeout=60) as web,
            ):
                await _wait_up(web)
                created = await web.post(
                    "/v1/tenants",
                    json={"name": "bench"},
                    headers={"Authorization": f"Bearer {ADMIN}"},
                )
                web.headers["Authorization"] = f"Bearer {created.json()['api_key']}"
                measured = await measure(web, temporal.client, "minimal", pgdata, arrivals)
                secured = Settings(
                    database_url=database_url,
                    app_database_password=SecretStr(APP_PASSWORD),
                    audit_key=SecretStr(SECURITY_ENV["AUDIT_KEY"]),
                    _env_file=None,
                )
                measured.load = await short_load(
                    f"http://127.0.0.1:{PORT}", ADMIN, secured, temporal.client
                )
                return measured
        finally:
            mail.stop()
            for process in processes:
                process.terminate()
                process.wait()
            await temporal.shutdown()
            server.cleanup()


def spawn_api_and_worker(env: dict[str, str]) -> list[subprocess.Popen[bytes]]:
    """Production topology: the API and the booking worker are processes of their own."""
    api = api_command(PORT)
    return [
        subprocess.Popen(api, env=env),
        subprocess.Popen([sys.executable, "-m", "worker"], env=env, stderr=subprocess.DEVNULL),
    ]


async def _wait_up(web: httpx.AsyncClient) -> None:
    for _ in range(150):
        try:
            await web.get("/healthz")
            return
        except httpx.TransportError:
            await asyncio.sleep(0.2)
    raise SystemExit("benchmark API did not start")


def main() -> None:
    measured = asyncio.run(run())
    figures = measured.calls
    base, free = figures["minimal"], figures["free"]
    print(
        f"Bookings: {SEQUENTIAL} sequential calls for latency, {CONCURRENT} at concurrency "
        f"{CONCURRENCY} for throughput"
    )
    labels = {
        "minimal": "minimal update-with-start (baseline)",
        "free": "POST /v1/bookings, free service",
        "paid": "POST /v1/bookings + mark-paid, priced",
    }
    for name, f in figures.items():
        print(
            f"  {labels[name]:40s} p50 {f.p50:7.1f} ms   p95 {f.p95:7.1f} ms   {f.rate:6.1f}/s"
            f"   CPU {sum(f.cpu_ms.values()):5.1f} ms/call"
        )
    print(f"  free booking throughput / baseline: {free.rate / base.rate:.0%}   (target >= 70%)")
    print(f"  free booking p50 / baseline claim p50: {free.p50 / base.p50:.2f}x   (target <= 1.3x)")
    print(f"  CPU ms per call under load, by process ({os.cpu_count()} cores: throughput follows")
    print("  the sum, so the throughput ratio is about the inverse of the CPU ratio)")
    print(f"    {'':34s}{'baseline':>10s}{'free':>10s}{'priced':>10s}")
    for group in sorted({g for f in figures.values() for g in f.cpu_ms}):
        row = "".join(f"{f.cpu_ms.get(group, 0.0):10.1f}" for f in figures.values())
        print(f"    {group:34s}{row}")
    others = [f.others for f in figures.values()]
    print(f"    {'other processes (cores busy)':34s}" + "".join(f"{o:10.2f}" for o in others))
    if max(others) > 0.2:
        print("  ! the machine was shared: other processes inflate these CPU figures as well as")
        print("    the times; compare only with a run made under the same load, back to back")
    print(f"  POST to confirmation email accepted by SMTP ({MAILED} bookings one at a time):")
    for name, (p50, p95) in measured.to_inbox.items():
        what = "free service" if name == "free" else "priced, POST + mark-paid"
        print(f"    {what:38s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
    print()
    show_streams(measured.streams, free.p50)
    if measured.load is not None:
        print()
        show_load(measured.load)
