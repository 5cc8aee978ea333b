"""The load test (docs/operations.md#load-test): N clients on loopback for a fixed time,
each doing what customers do: query availability, book free and priced services, pay
through the Stripe stand-in (or at the venue), cancel and reschedule some, and race each
other for the same few slots. It prints throughput, latency per endpoint and errors by
status, then the invariant check (invariants.py) on what the run left behind.

It makes a tenant of its own for each run (a clinic that is always open), so the check
judges only what the run did, and it gives each client a key of its own, so a client's
rate limit is its own. Bounded twice: by time and by the number of bookings.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import stripe

from devstack.simulate_payment import intent_event, pay, sign

RACE_SLOTS = 3  # the slots every racer wants: exactly one booking each, the rest 409
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALWAYS_OPEN = {day: [["00:00", "24:00"]] for day in WEEK}
VISA = "4242424242424242"
STRIPE_WEBHOOK = "/v1/webhooks/stripe"


@dataclass(frozen=True)
class Target:
    """The stack under load: its API, the operator key (to make the run's tenant), and how
    priced bookings are paid: through the Stripe stand-in (its client and the webhook
    secret that signs the event it does not send itself) or, without, at the venue."""

    base_url: str
    operator_key: str
    stripe: stripe.StripeClient | None = None
    webhook_secret: str | None = None


@dataclass(frozen=True)
class Plan:
    clients: int = 20
    seconds: float = 60
    max_bookings: int = 5000
    racers: float = 0.2  # the share of booking attempts that go for the race slots
    seed: int = 7


@dataclass
class Stats:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    bookings: int = 0
    race_winners: Counter[str] = field(default_factory=Counter)

    def record(self, endpoint: str, status: int, seconds: float) -> None:
        self.latencies[endpoint].append(seconds * 1000)
        self.statuses[(endpoint, status)] += 1

    @property
    def races_lost(self) -> bool:
        """A race slot booked twice: the database let a double booking through."""
        return any(n > 1 for n in self.race_winners.values())

    @property
    def server_errors(self) -> int:
        return sum(n for (_, status), n in self.statuses.items() if status >= 500)

    def lines(self, elapsed: float) -> list[str]:
        total = sum(self.statuses.values())
        out = [
            f"  {total} requests in {elapsed:.1f} s: {total / elapsed:.1f}/s; "
            f"{self.bookings} bookings made ({self.bookings / elapsed:.1f}/s)"
        ]
        for endpoint in sorted(self.latencies):
            ms = sorted(self.latencies[endpoint])
            out.append(
                f"  {endpoint:<36} n={len(ms):<5} p50 {_pct(ms, 50):7.1f} ms"
                f"  p95 {_pct(ms, 95):7.1f} ms  p99 {_pct(ms, 99):7.1f} ms"
            )
        errors = {k: n for k, n in self.statuses.items() if k[1] >= 400}
        out.append(
            "  answers >= 400: "
            + (
                ", ".join(
                    f"{endpoint} {status} x{n}" for (endpoint, status), n in sorted(errors.items())
                )
                or "none"
            )
        )
        winners = sorted(self.race_winners.values())
        out.append(f"  race slots won: {winners} (each at most once)")
        return out


def _pct(sorted_ms: list[float], pct: int) -> float:
    if not sorted_ms:
        return 0.0
    if len(sorted_ms) == 1:
        return sorted_ms[0]
    return statistics.quantiles(sorted_ms, n=100, method="inclusive")[pct - 1]


@dataclass
class _Clinic:
    tenant_id: str
    keys: list[str]
    days: list[datetime]
    race: list[str] = field(default_factory=list)  # the race slots' tokens


async def _call(
    stats: Stats,
    client: httpx.AsyncClient,
    method: str,
    template: str,
    booking_id: str = "",
    **kwargs: Any,
) -> httpx.Response:
    """One request, timed and counted under its route's template."""
    endpoint = f"{method} {template}"
    started = time.perf_counter()
    try:
        response = await client.request(method, template.format(id=booking_id), **kwargs)
    except httpx.HTTPError:
        stats.record(endpoint, 599, time.perf_counter() - started)  # no answer at all
        raise
    stats.record(endpoint, response.status_code, time.perf_counter() - started)
    return response


async def _clinic(target: Target, plan: Plan) -> _Clinic:
    """The run's own tenant: staff and rooms always open, a free and a priced service,
    and a secret key per client."""
    async with httpx.AsyncClient(base_url=target.base_url, timeout=30) as http:
        operator = {"Authorization": f"Bearer {target.operator_key}"}
        made = (
            (
                await http.post(
                    "/v1/tenants", json={"name": f"load {uuid.uuid4().hex[:8]}"}, headers=operator
                )
            )
            .raise_for_status()
            .json()
        )
        owner = {"Authorization": f"Bearer {made['api_key']}"}
        for n in range(4):
            body = {"kind": "staff", "name": f"Staff {n}", "tags": ["load"]}
            await _create(
                http,
                owner,
                "/v1/resources",
                {**body, "timezone": "UTC", "weekly_hours": ALWAYS_OPEN},
            )
        for n in range(2):
            body = {"kind": "room", "name": f"Room {n}", "timezone": "UTC"}
            await _create(http, owner, "/v1/resources", {**body, "weekly_hours": ALWAYS_OPEN})
        service = {
            "name": "Load",
            "timezone": "UTC",
            "slot_interval_minutes": 30,
            "max_advance_days": 730,
            "requirements": [{"kind": "staff", "tags_any": ["load"]}, {"kind": "room"}],
        }
        await _create(
            http, owner, "/v1/services", {**service, "code": "free", "duration_minutes": 30}
        )
        await _create(
            http,
            owner,
            "/v1/services",
            {
                **service,
                "code": "priced",
                "duration_minutes": 60,
                "price": {"amount": 5000, "currency": "EUR"},
            },
        )
        keys = []
        for n in range(plan.clients):
            issued = await _create(
                http, owner, "/v1/api-keys", {"kind": "secret", "name": f"client {n}"}
            )
            keys.append(str(issued["api_key"]))
    tomorrow = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        days=2
    )
    return _Clinic(made["id"], keys, [tomorrow + timedelta(days=d) for d in range(60)])


async def _create(
    http: httpx.AsyncClient, headers: dict[str, str], path: str, body: dict[str, Any]
) -> dict[str, Any]:
    response = await http.post(path, json=body, headers=headers)
    if response.status_code != 201:
        raise RuntimeError(f"setting up the load tenant: {path} answered {response.text}")
    created: dict[str, Any] = response.json()
    return created


class _Customer:
    """One client: its own key, its own bookings, a random but seeded mix of actions."""

    def __init__(
        self,
        target: Target,
        clinic: _Clinic,
        key: str,
        stats: Stats,
        rng: random.Random,
        racers: float,
    ) -> None:
        self._target, self._clinic, self._stats, self._rng = target, clinic, stats, rng
        self._racers = racers
        self._http = httpx.AsyncClient(
            base_url=target.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        self._mine: list[dict[str, Any]] = []

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self, method: str, template: str, booking_id: str = "", **kwargs: Any
    ) -> httpx.Response:
        return await _call(self._stats, self._http, method, template, booking_id, **kwargs)

    async def act(self) -> None:
        roll = self._rng.random()
        confirmed = [b for b in self._mine if b["status"] == "confirmed"]
        if confirmed and roll < 0.1:
            await self._cancel(self._rng.choice(confirmed))
        elif confirmed and roll < 0.2:
            await self._reschedule(self._rng.choice(confirmed))
        else:
            await self._book("priced" if self._rng.random() < 0.3 else "free")

    async def slots(self, code: str, day: datetime) -> list[dict[str, Any]]:
        query = {
            "service": code,
            "timezone": "UTC",
            "range_start": day.isoformat(),
            "range_end": (day + timedelta(days=1)).isoformat(),
            "limit": 50,
        }
        answer = await self._call(
            "POST",
            "/v1/availability/query",
            json=query,
        )
        return list(answer.json().get("slots", [])) if answer.status_code == 200 else []

    async def _book(self, code: str) -> None:
        """A booking of a slot found by a query; or, for a racer, of one of the few race
        slots every racer holds the same token for (the same start and resources), which
        exactly one of them can win."""
        race = self._clinic.race
        racing = code == "free" and bool(race) and self._rng.random() < self._racers
        if racing:
            token = self._rng.choice(race)
        else:
            slots = await self.slots(code, self._rng.choice(self._clinic.days[1:]))
            if not slots:
                return
            token = self._rng.choice(slots)["allocation_token"]
        answer = await self._call(
            "POST",
            "/v1/bookings",
            json={
                "allocation_token": token,
                "customer": {"name": "Load Test", "email": "load@example.test"},
            },
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        if answer.status_code != 201:
            return
        booking: dict[str, Any] = answer.json()
        self._stats.bookings += 1
        if racing:  # kept as won: a cancel would let the next racer win it again
            self._stats.race_winners[booking["start"]] += 1
            return
        if booking["status"] == "pending_payment":
            booking = await self._pay(booking)
        self._mine.append(booking)

    async def _pay(self, booking: dict[str, Any]) -> dict[str, Any]:
        target = self._target
        if target.stripe is None or not (booking.get("payment") or {}).get("intent_id"):
            answer = await self._call(
                "POST",
                "/v1/bookings/{id}/mark-paid",
                booking["id"],
            )
            return answer.json() if answer.status_code == 200 else booking
        intent = booking["payment"]["intent_id"]
        await asyncio.to_thread(_pay_with_card, target.stripe, intent)
        if target.webhook_secret:
            await self._authorised(booking["id"], intent, target.webhook_secret)
        return {**booking, "status": "pending_payment"}

    async def _authorised(self, booking_id: str, intent: str, secret: str) -> None:
        """The event localstripe does not send itself, signed as Stripe signs it."""
        body = json.dumps(
            intent_event("payment_intent.amount_capturable_updated", intent, booking_id)
        ).encode()
        await self._call(
            "POST",
            STRIPE_WEBHOOK,
            content=body,
            headers={"Stripe-Signature": sign(body, secret), "Content-Type": "application/json"},
        )

    async def _cancel(self, booking: dict[str, Any]) -> None:
        answer = await self._call(
            "POST",
            "/v1/bookings/{id}/cancel",
            booking["id"],
            json={"reason": "load"},
        )
        if answer.status_code == 200:
            booking["status"] = answer.json()["status"]

    async def _reschedule(self, booking: dict[str, Any]) -> None:
        code = booking["service"]["code"]
        slots = await self.slots(code, self._rng.choice(self._clinic.days[1:]))
        if not slots:
            return
        slot = self._rng.choice(slots)
        answer = await self._call(
            "POST",
            "/v1/bookings/{id}/reschedule",
            booking["id"],
            json={"allocation_token": slot["allocation_token"]},
        )
        if answer.status_code == 200:
            booking.update(answer.json())


def _pay_with_card(client: stripe.StripeClient, intent_id: str) -> None:
    with contextlib.suppress(stripe.StripeError):
        pay(client, intent_id, VISA)


@dataclass
class Result:
    tenant_id: str
    stats: Stats
    elapsed: float


async def run(target: Target, plan: Plan) -> Result:
    """Make the run's tenant, then let `plan.clients` customers loose for `plan.seconds`
    (or until `plan.max_bookings` are made)."""
    clinic = await _clinic(target, plan)
    stats = Stats()
    probe = _Customer(target, clinic, clinic.keys[0], stats, random.Random(plan.seed), 0)
    try:
        first_day = await probe.slots("free", clinic.days[0])
        clinic.race = [s["allocation_token"] for s in first_day[:RACE_SLOTS]]
    finally:
        await probe.close()
    deadline = time.monotonic() + plan.seconds
    started = time.perf_counter()

    async def customer(n: int) -> None:
        rng = random.Random(plan.seed + n)
        one = _Customer(target, clinic, clinic.keys[n], stats, rng, plan.racers)
        try:
            while time.monotonic() < deadline and stats.bookings < plan.max_bookings:
                with contextlib.suppress(httpx.HTTPError):
                    await one.act()
        finally:
            await one.close()

    await asyncio.gather(*(customer(n) for n in range(plan.clients)))
    return Result(clinic.tenant_id, stats, time.perf_counter() - started)


async def until_quiet(
    check: Callable[[], Awaitable[Any]], *, seconds: float = 90, every: float = 2
) -> Any:
    """The invariant check once the run's last changes have settled (messages sent,
    payments confirmed), or its last answer after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        report = await check()
        if report.ok or time.monotonic() > deadline:
            return report
        await asyncio.sleep(every)
