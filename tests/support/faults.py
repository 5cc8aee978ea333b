"""What the fault tests (tests/faults/) share: a Temporal dev server and a PostgreSQL of
their own, which a test may kill and restart without disturbing the suite's shared ones;
localstripe in a process of its own, to stop and start again on its store; a webhook
receiver that can go away and come back on its port; and customers who keep
booking while a fault is on, noting every answer, so a test can say afterwards that
every booking it was told about exists and that nothing answered 500.

Every fault test ends the same way (`verdict`): the invariant check for its tenant, run
until the last changes settle, with nothing settled out (`settle=0`)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from fastapi import FastAPI
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from db.migrate import upgrade
from db.sessions import Sessions
from devstack.postgres import start_embedded, start_server, stop_server
from devstack.temporal import dev_server_args
from invariants import Report, check
from loadtest import until_quiet
from tests.support.api import ALWAYS_OPEN, create
from tests.support.clients import ADMIN_KEY
from tests.support.db import APP_PASSWORD, EVERY_TENANT
from tests.support.receiver import Receiver
from tests.support.stripe import free_port

# What a fault test may be told while a dependency is away: 503, and never another 5xx
# (599: no answer at all, as loadtest.py counts it).
UNAVAILABLE = 503


class TemporalServer:
    """`temporal server start-dev` on a SQLite file and ports of its own, as `make run`
    starts it (devstack/temporal.py): killed with SIGKILL, it starts again on the same
    file and port, and its workflows go on where they were."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port, self.ui_port = free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        """Start it and wait until it answers (a fresh server takes a few seconds)."""
        self._process = self._spawn()
        deadline = time.monotonic() + 60
        while True:
            try:
                client = await Client.connect(self.address)
                await client.workflow_service.get_system_info(
                    GetSystemInfoRequest(), timeout=timedelta(seconds=2)
                )
                return
            except Exception:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = dev_server_args(self.directory, "127.0.0.1", self.port, self.ui_port)
        with (self.directory / "temporal.log").open("ab") as log:
            return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        """SIGKILL: no shutdown of its own, as a crashed host would leave it."""
        assert self._process is not None
        self._process.send_signal(signal.SIGKILL)
        self._process.wait()

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@asynccontextmanager
async def temporal_server(
    directory: Path,
) -> AsyncIterator[tuple[TemporalServer, WorkflowEnvironment]]:
    """A started TemporalServer and a WorkflowEnvironment on it (what live_app takes)."""
    server = TemporalServer(directory)
    await server.start()
    try:
        env = WorkflowEnvironment.from_client(await Client.connect(server.address))
        yield server, env
    finally:
        server.stop()


class Postgres:
    """An embedded PostgreSQL of its own, migrated as the suite's is (tests/conftest.py),
    that a test may stop (`pg_ctl stop -m fast`: connections cut, as a restart of the
    database host cuts them) and start again on the same data directory and socket."""

    def __init__(self, directory: Path, database: str = "holdfast_faults") -> None:
        self.server, self.url = start_embedded(directory / "data", database)
        upgrade(self.url, APP_PASSWORD)

    def stop(self) -> None:
        stop_server(self.server)

    def start(self) -> None:
        start_server(self.server)

    def cleanup(self) -> None:
        self.server.cleanup()


class StripeStandIn:
    """localstripe (devstack/localstripe.py) in a process of its own, keeping its state
    in `store`: stopped, nothing listens on its port; started again, it reloads the
    store (objects and idempotent answers), as a Stripe that was unreachable for a while
    still has everything it had. (In-process, localstripe's one app cannot be served a
    second time, and the suite's Stripe tests serve it already.)"""

    def __init__(self, directory: Path, secret: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.store = directory / "localstripe.pickle"
        self._webhook = {"url": "", "secret": secret}
        self._log = directory / "localstripe.log"
        self._process: subprocess.Popen[bytes] | None = None

    async def start(self, webhook_url: str | None = None) -> None:
        """Start it, wait until it answers, and register `webhook_url` (the API's, given
        at the first start) for its own webhooks: localstripe keeps those in memory."""
        self._webhook["url"] = webhook_url or self._webhook["url"]
        self._process = self._spawn()
        deadline = time.monotonic() + 30
        async with httpx.AsyncClient(base_url=self.base, trust_env=False) as config:
            while True:
                try:
                    registered = await config.post("/_config/webhooks/holdfast", data=self._webhook)
                    registered.raise_for_status()
                    return
                except httpx.TransportError:
                    if self._process.poll() is not None or time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)

    def _spawn(self) -> subprocess.Popen[bytes]:
        args = [sys.executable, "-m", "devstack.localstripe", "--port", str(self.port)]
        with self._log.open("ab") as log:
            return subprocess.Popen(
                [*args, "--store", str(self.store)], stdout=log, stderr=subprocess.STDOUT
            )

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)


class Endpoint:
    """A webhook receiver on a port of its own that can go away (nothing listens:
    connections are refused) and come back on the same port, keeping what it got."""

    def __init__(self) -> None:
        self.port = free_port()
        self.receiver = Receiver(f"http://127.0.0.1:{self.port}/hooks", [200])
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return self.receiver.url

    async def up(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks", self.receiver.handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


@dataclass
class Shop:
    """A tenant of its own, over real HTTP: a practitioner and a room always open, a free
    service and a priced one (held `hold_seconds` for payment)."""

    http: httpx.AsyncClient
    tenant_id: str

    async def slots(self, code: str, day: datetime) -> list[dict[str, Any]]:
        answer = await self.http.post(
            "/v1/availability/query",
            json={
                "service": code,
                "timezone": "UTC",
                "range_start": day.isoformat(),
                "range_end": (day + timedelta(days=1)).isoformat(),
                "limit": 48,
            },
        )
        answer.raise_for_status()
        return list(answer.json()["slots"])

    async def book(self, token: str, key: str | None = None) -> httpx.Response:
        return await self.http.post(
            "/v1/bookings",
            json={
                "allocation_token": token,
                "customer": {"name": "Grace Hopper", "email": "grace@example.test"},
            },
            headers={"Idempotency-Key": key or str(uuid.uuid4())},
        )

    async def booked(self, code: str, day: int = 0) -> dict[str, Any]:
        """A booking of the first free slot `day` days after the shop's first day."""
        slot = (await self.slots(code, FIRST_DAY + timedelta(days=day)))[0]
        answer = await self.book(slot["allocation_token"])
        assert answer.status_code == 201, answer.text
        booking: dict[str, Any] = answer.json()
        return booking

    async def get(self, booking_id: str) -> dict[str, Any]:
        answer = await self.http.get(f"/v1/bookings/{booking_id}")
        assert answer.status_code == 200, answer.text
        booking: dict[str, Any] = answer.json()
        return booking

    async def status(self, booking_id: str) -> str:
        return str((await self.get(booking_id))["status"])


# Far enough ahead that no reminder falls due during a test: confirmed bookings wait on
# their reminder timers, as most real ones do.
FIRST_DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)
DAYS = 40


@asynccontextmanager
async def shop(
    base_url: str, *, hold_seconds: int = 600, brief_seconds: int = 5, **priced: Any
) -> AsyncIterator[Shop]:
    """A fresh tenant on the API at `base_url`; `priced`: more of the priced service.
    A second priced service, `brief`, holds for `brief_seconds` only: a hold booked just
    before a fault runs out during it, and must still be released."""
    async with httpx.AsyncClient(base_url=base_url, timeout=90) as http:
        operator = {"Authorization": f"Bearer {ADMIN_KEY}"}
        made = await http.post("/v1/tenants", json={"name": "fault clinic"}, headers=operator)
        assert made.status_code == 201, made.text
        http.headers["Authorization"] = f"Bearer {made.json()['api_key']}"
        for kind in ("staff", "room"):
            body = {"kind": kind, "name": kind, "timezone": "UTC", "weekly_hours": ALWAYS_OPEN}
            await create(http, "/v1/resources", {**body, "tags": ["fault"]})
        service = {
            "name": "Fault",
            "timezone": "UTC",
            "duration_minutes": 30,
            "slot_interval_minutes": 30,
            "max_advance_days": 730,
            "requirements": [{"kind": "staff", "tags_any": ["fault"]}, {"kind": "room"}],
        }
        await create(http, "/v1/services", {**service, "code": "free"})
        price = {"amount": 4000, "currency": "EUR"}
        await create(
            http,
            "/v1/services",
            {**service, "code": "priced", "price": price, "hold_seconds": hold_seconds, **priced},
        )
        await create(
            http,
            "/v1/services",
            {**service, "code": "brief", "price": price, "hold_seconds": brief_seconds},
        )
        yield Shop(http, made.json()["id"])


@dataclass
class Answers:
    """What the customers were told while a fault was on."""

    statuses: Counter[int] = field(default_factory=Counter)
    booked: dict[str, str] = field(default_factory=dict)  # booking id -> status answered
    # Requests answered 503, to repeat with their Idempotency-Key once the fault is over.
    unanswered: list[tuple[str, str]] = field(default_factory=list)  # (token, key)
    # Every 5xx but 503 (and 599, no answer at all), with what it said: a bug.
    errors: list[str] = field(default_factory=list)
    # 503s without Retry-After.
    without_retry_after: int = 0

    def note(self, what: str, answer: httpx.Response | None) -> None:
        status = 599 if answer is None else answer.status_code
        self.statuses[status] += 1
        if answer is None:
            self.errors.append(f"{what}: no answer")
        elif status == UNAVAILABLE:
            self.without_retry_after += "retry-after" not in answer.headers
        elif status >= 500:
            self.errors.append(f"{what}: {status} {answer.text[:200]}")


async def keep_booking(
    shop: Shop, stop: asyncio.Event, clients: int = 3, answers: Answers | None = None, seed: int = 0
) -> Answers:
    """`clients` customers, each querying a day's slots and booking one of them (a
    priced one every third time), until `stop` is set; their answers go into `answers`
    (shared by customers who arrive later)."""
    answers = answers if answers is not None else Answers()

    async def customer(n: int) -> None:
        rng = random.Random(seed + n)
        while not stop.is_set():
            code = "priced" if rng.random() < 0.3 else "free"
            day = FIRST_DAY + timedelta(days=rng.randrange(1, DAYS))
            try:
                queried = await shop.http.post(
                    "/v1/availability/query",
                    json={
                        "service": code,
                        "timezone": "UTC",
                        "range_start": day.isoformat(),
                        "range_end": (day + timedelta(days=1)).isoformat(),
                        "limit": 48,
                    },
                )
            except httpx.HTTPError:
                answers.note("availability", None)
                continue
            answers.note("availability", queried)
            if queried.status_code != 200 or not queried.json()["slots"]:
                await asyncio.sleep(0.2)  # an outage answers fast: no hot loop
                continue
            token = rng.choice(queried.json()["slots"])["allocation_token"]
            key = str(uuid.uuid4())
            try:
                answer = await shop.book(token, key)
            except httpx.HTTPError:
                answers.note("booking", None)
                continue
            answers.note("booking", answer)
            if answer.status_code == 201:
                answers.booked[answer.json()["id"]] = answer.json()["status"]
            elif answer.status_code == UNAVAILABLE:
                answers.unanswered.append((token, key))
                await asyncio.sleep(0.2)

    await asyncio.gather(*(customer(n) for n in range(clients)))
    return answers


async def repeat_unanswered(shop: Shop, answers: Answers, seconds: float = 60) -> Counter[int]:
    """Each request answered 503 repeated with its Idempotency-Key, as that answer tells
    a client to, until it is decided (201 or 409); the bookings it made join
    `answers.booked`. Returns the decided statuses."""
    decided: Counter[int] = Counter()
    deadline = time.monotonic() + seconds
    for token, key in answers.unanswered:
        while True:
            answer = await shop.book(token, key)
            if answer.status_code != UNAVAILABLE or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        decided[answer.status_code] += 1
        if answer.status_code == 201:
            answers.booked[answer.json()["id"]] = answer.json()["status"]
    return decided


async def until_answered(shop: Shop, seconds: float = 60) -> float:
    """Wait until a free booking is answered 201 again (the fault is over for the API);
    returns how long that took."""
    started = time.monotonic()
    day = FIRST_DAY + timedelta(days=DAYS + 1)
    while True:
        with contextlib.suppress(httpx.HTTPError):
            queried = await shop.http.post(
                "/v1/availability/query",
                json={
                    "service": "free",
                    "timezone": "UTC",
                    "range_start": day.isoformat(),
                    "range_end": (day + timedelta(days=1)).isoformat(),
                },
            )
            if queried.status_code == 200 and queried.json()["slots"]:
                slot = random.choice(queried.json()["slots"])
                if (await shop.book(slot["allocation_token"])).status_code == 201:
                    return time.monotonic() - started
        if time.monotonic() - started > seconds:
            raise AssertionError(f"no booking answered 201 within {seconds} s")
        await asyncio.sleep(0.5)


async def settle_held(shop: Shop, answers: Answers) -> dict[str, str]:
    """Pay every booking still held for payment (at the venue), so each resolves;
    returns each one's status after."""
    resolved = {}
    for booking_id in list(answers.booked):
        if await shop.status(booking_id) == "pending_payment":
            paid = await shop.http.post(f"/v1/bookings/{booking_id}/mark-paid")
            assert paid.status_code in (200, 409), paid.text
        resolved[booking_id] = await shop.status(booking_id)
    return resolved


async def verdict(app: FastAPI, tenant_id: str, seconds: float = 90) -> Report:
    """The invariant check for the tenant, once its last changes have settled."""
    ctx: AppContext = app.state.ctx
    sessions, temporal = Sessions.on(ctx.engine, EVERY_TENANT), await ctx.temporal()

    async def once() -> Report:
        return await check(sessions, temporal, tenant_id=uuid.UUID(tenant_id), settle=timedelta(0))

    report: Report = await until_quiet(once, seconds=seconds)
    return report
