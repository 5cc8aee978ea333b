"""`holdfast load`: the load test (loadtest.py) against a running stack, then the
invariant check on what it left (docs/operations.md#load-test). With no arguments it
targets the `make run` stack: its API on 127.0.0.1:8000, the operator key from `.data/`,
cards paid through its Stripe stand-in. Exit 1 on any invariant broken or any 5xx."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated

import stripe
import typer

from cli.common import fail, operator_sessions, temporal
from cli.stack import stack_settings
from devstack.secrets import signing_secret
from devstack.simulate_payment import LOCAL_STRIPE, LOCAL_STRIPE_KEY
from invariants import Report, check
from loadtest import Plan, Result, Target, run, until_quiet
from settings import Settings


def _target(settings: Settings, base_url: str) -> Target:
    operator = settings.admin_api_key.get_secret_value() if settings.admin_api_key else ""
    if not operator:
        fail("the operator key (ADMIN_API_KEY) is not set, and no `make run` stack is here")
    given = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else ""
    if given:  # real Stripe: cards are the customer's business, not ours to fake
        return Target(base_url, operator)
    customer = stripe.StripeClient(
        LOCAL_STRIPE_KEY,
        base_addresses={"api": settings.stripe_api_base or LOCAL_STRIPE},
        max_network_retries=0,
    )
    secret = signing_secret(settings.stripe_webhook_secret.get_secret_value())
    return Target(base_url, operator, customer, secret or None)


def load(
    base_url: Annotated[str, typer.Option(help="The API under load.")] = "http://127.0.0.1:8000",
    clients: Annotated[int, typer.Option(min=1, max=500)] = 20,
    seconds: Annotated[float, typer.Option(min=1, max=3600)] = 60,
    max_bookings: Annotated[int, typer.Option(min=1)] = 5000,
) -> None:
    """Customers booking, paying, cancelling and racing for `--seconds`; then the
    figures and the invariant check."""
    settings = stack_settings()
    target = _target(settings, base_url)
    plan = Plan(clients=clients, seconds=seconds, max_bookings=max_bookings)
    result = asyncio.run(run(target, plan))
    print(f"Load: {clients} clients for {seconds:.0f} s against {base_url}")
    for line in result.stats.lines(result.elapsed):
        print(line)
    report = asyncio.run(_verdict(settings, result))
    for line in report.lines():
        print(f"  invariants: {line}")
    broken = not report.ok or result.stats.server_errors > 0 or result.stats.races_lost
    raise typer.Exit(1 if broken else 0)


async def _verdict(settings: Settings, result: Result) -> Report:
    async with operator_sessions(settings) as sessions:
        client = await temporal(settings)
        tenant = uuid.UUID(result.tenant_id)

        async def one() -> Report:
            return await check(sessions, client, tenant_id=tenant, settle=timedelta(0))

        report: Report = await until_quiet(one)
        return report
