"""A series paid once, end to end (docs/series.md#payment): one Stripe intent for every
occurrence, paid through the stand-in whose webhook reaches the series' workflow; each
occurrence is then confirmed with its share, refunded on its own when cancelled."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from contract import series_workflow_id
from devstack.simulate_payment import DECLINED, VISA, intent_event
from settings import Settings
from tests.e2e.test_stripe_payments import intent, refunds, until_status
from tests.support.api import open_all_day, service
from tests.support.clients import ADMIN_KEY, client_for, new_tenant_client
from tests.support.histories import record
from tests.support.polling import eventually
from tests.support.stripe import Stack, StandIn, deliver, pay, stripe_stack

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
PRICE = 5000


@pytest.fixture(scope="module")
async def stack(
    settings: Settings,
    temporal_dev_server: WorkflowEnvironment,
    stripe_stand_in: StandIn,
) -> AsyncIterator[Stack]:
    async with stripe_stack(settings, temporal_dev_server, stripe_stand_in, "series-pay") as s:
        yield s


async def _course(client: httpx.AsyncClient, code: str, hold_seconds: int = 600) -> None:
    await service(
        client,
        code=code,
        price={"amount": PRICE, "currency": "EUR"},
        hold_seconds=hold_seconds,
        series_payment="per_series",
        cancellation={"free_until_hours_before": 24, "late_refund_percent": 50},
    )


@pytest.fixture
async def clinic(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        client_for(stack.app, ADMIN_KEY) as operator,
        await new_tenant_client(stack.app, operator) as client,
    ):
        await open_all_day(client)
        await _course(client, "course")
        await _course(client, "quick", hold_seconds=5)
        yield client


async def _series(clinic: httpx.AsyncClient, code: str = "course") -> dict[str, Any]:
    start = datetime.now(UTC).replace(microsecond=0, second=0, minute=0) + timedelta(days=3)
    answer = await clinic.post(
        "/v1/booking-series",
        json={
            "service": code,
            "start": start.isoformat(),
            "rrule": "FREQ=WEEKLY;COUNT=3",
            "customer": {"name": "Ada", "email": "ada@example.test"},
        },
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


async def _pay(stack: Stack, clinic: httpx.AsyncClient, series: dict[str, Any]) -> None:
    """The customer pays by card; Stripe tells the webhook the card is held for capture
    (localstripe does not send that event itself)."""
    intent_id = series["payment"]["intent_id"]
    await pay(stack.customer, intent_id, VISA)
    held = "payment_intent.amount_capturable_updated"
    event = intent_event(held, intent_id, series["id"], payer="series")
    assert (await deliver(clinic, event)).status_code == 200


async def _statuses(clinic: httpx.AsyncClient, series: dict[str, Any], status: str) -> list[Any]:
    return [await until_status(clinic, b["id"], status) for b in series["bookings"]]


async def test_a_series_paid_once_is_one_intent_for_every_occurrence(
    stack: Stack, clinic: httpx.AsyncClient
) -> None:
    series = await _series(clinic)
    payment = series["payment"]
    assert payment["amount"] == 3 * PRICE and payment["client_secret"]
    assert [b["status"] for b in series["bookings"]] == ["pending_payment"] * 3
    assert all(b["payment"] is None for b in series["bookings"])  # theirs is the series'
    await _pay(stack, clinic, series)
    for booking in await _statuses(clinic, series, "confirmed"):
        assert booking["payment"]["intent_id"] == payment["intent_id"]
        assert booking["payment"]["captured_amount"] == PRICE
    paid = (await clinic.get(f"/v1/booking-series/{series['id']}")).json()["payment"]
    assert paid["captured_amount"] == 3 * PRICE and paid["client_secret"] is None
    assert (await intent(stack, payment["intent_id"])).status == "succeeded"
    ctx: AppContext = stack.app.state.ctx
    temporal = await ctx.temporal()
    handle = temporal.get_workflow_handle(series_workflow_id(series["id"]))
    await handle.result()
    await record(handle, "series_paid_once")
    occurrence = temporal.get_workflow_handle(series["bookings"][0]["workflow_id"])
    await record(occurrence, "occurrence_paid_by_its_series")


async def test_a_paid_occurrence_cancelled_alone_refunds_its_share_by_the_policy(
    stack: Stack, clinic: httpx.AsyncClient
) -> None:
    series = await _series(clinic)
    await _pay(stack, clinic, series)
    first, *rest = await _statuses(clinic, series, "confirmed")
    cancelled = await clinic.post(f"/v1/bookings/{first['id']}/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["payment"]["refunded_amount"] == PRICE  # three days ahead: all
    assert await refunds(stack, series["payment"]["intent_id"]) == [PRICE]
    for booking in rest:  # the others keep their shares
        kept = await until_status(clinic, booking["id"], "confirmed")
        assert kept["payment"]["refunded_amount"] == 0


async def test_an_occurrence_cancelled_before_the_payment_gets_its_share_back(
    stack: Stack, clinic: httpx.AsyncClient
) -> None:
    series = await _series(clinic)
    second = series["bookings"][1]["id"]
    assert (await clinic.post(f"/v1/bookings/{second}/cancel", json={})).status_code == 200
    await _pay(stack, clinic, series)
    for booking in (series["bookings"][0], series["bookings"][2]):
        await until_status(clinic, booking["id"], "confirmed")

    async def returned() -> list[int]:
        return await refunds(stack, series["payment"]["intent_id"])

    assert await eventually(returned, lambda found: found == [PRICE], seconds=20) == [PRICE]
    assert (await clinic.get(f"/v1/bookings/{second}")).json()["status"] == "cancelled"
    paid = (await clinic.get(f"/v1/booking-series/{series['id']}")).json()["payment"]
    assert (paid["captured_amount"], paid["refunded_amount"]) == (3 * PRICE, PRICE)


async def test_a_declined_card_fails_every_occurrence(
    stack: Stack, clinic: httpx.AsyncClient
) -> None:
    series = await _series(clinic)
    await pay(stack.customer, series["payment"]["intent_id"], DECLINED)
    await _statuses(clinic, series, "failed")
    again = await _series(clinic)  # the slots are free again
    assert [b["start"] for b in again["bookings"]] == [b["start"] for b in series["bookings"]]


async def test_cancelling_the_unpaid_series_cancels_its_intent(
    stack: Stack, clinic: httpx.AsyncClient
) -> None:
    series = await _series(clinic)
    answer = await clinic.post(f"/v1/booking-series/{series['id']}/cancel", json={})
    assert answer.status_code == 200, answer.text
    assert [b["status"] for b in answer.json()["bookings"]] == ["cancelled"] * 3

    async def status() -> str:
        return str((await intent(stack, series["payment"]["intent_id"])).status)

    assert await eventually(status, lambda s: s == "canceled", seconds=20) == "canceled"


async def test_an_unpaid_series_expires_with_its_holds(
    stack: Stack, clinic: httpx.AsyncClient
) -> None:
    series = await _series(clinic, "quick")
    await _statuses(clinic, series, "expired")

    async def status() -> str:
        return str((await intent(stack, series["payment"]["intent_id"])).status)

    assert await eventually(status, lambda s: s == "canceled", seconds=20) == "canceled"


async def test_mark_paid_settles_the_series_at_the_venue(
    stack: Stack, clinic: httpx.AsyncClient
) -> None:
    series = await _series(clinic)
    occurrence = series["bookings"][0]["id"]
    refused = await clinic.post(f"/v1/bookings/{occurrence}/mark-paid")
    assert refused.status_code == 409 and "series" in refused.json()["error"]["message"]
    answer = await clinic.post(f"/v1/booking-series/{series['id']}/mark-paid")
    assert answer.status_code == 200, answer.text
    settled = answer.json()
    assert [b["status"] for b in settled["bookings"]] == ["confirmed"] * 3
    assert settled["payment"]["provider"] == "pay_at_venue"
    assert all(b["payment"]["provider"] == "pay_at_venue" for b in settled["bookings"])

    async def status() -> str:
        return str((await intent(stack, series["payment"]["intent_id"])).status)

    assert await eventually(status, lambda s: s == "canceled", seconds=20) == "canceled"


async def test_cancelling_every_occurrence_one_by_one_cancels_the_unpaid_intent(
    stack: Stack, clinic: httpx.AsyncClient
) -> None:
    series = await _series(clinic)
    for booking in series["bookings"][:-1]:
        assert (await clinic.post(f"/v1/bookings/{booking['id']}/cancel", json={})).is_success
    assert (await intent(stack, series["payment"]["intent_id"])).status != "canceled"
    last = series["bookings"][-1]["id"]
    assert (await clinic.post(f"/v1/bookings/{last}/cancel", json={})).is_success

    async def status() -> str:
        return str((await intent(stack, series["payment"]["intent_id"])).status)

    assert await eventually(status, lambda s: s == "canceled", seconds=20) == "canceled"
