"""Fault: the Stripe stand-in unreachable for OUTAGE_SECONDS, then back
(docs/operations.md#fault-tests). Money is where a retry must do nothing twice: a
capture, a refund and a new booking's authorisation are asked for while Stripe is away;
each is retried with its idempotency key until Stripe answers, and then done once.

10 s, not 30: the payment steps retry after 1, 2, 4 and 8 s (workflows/steps.py
PAYMENT_STEP), so a 10 s outage already fails each step four times and lets the fifth
through, the same path a 30 s one takes with one more failure and 20 s more of suite."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from activities.stripe_payments import StripePayments
from devstack.simulate_payment import VISA, intent_event
from invariants import Report
from settings import Settings
from tests.support.faults import FIRST_DAY, Shop, StripeStandIn, shop, verdict
from tests.support.live import live_app, served
from tests.support.polling import eventually
from tests.support.stripe import (
    WEBHOOK_SECRET,
    RecordingHTTPClient,
    deliver,
    pay,
    stripe_client,
)

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
QUEUE = "faults-stripe"
OUTAGE_SECONDS = 10
PRICE = 4000


@dataclass
class Outage:
    app: FastAPI
    stripe: Any  # the customer's and the test's Stripe client
    recorded: RecordingHTTPClient  # what the worker sent to Stripe
    back_at: float  # time.monotonic() when the stand-in answered again
    captured: dict[str, Any]  # authorised before, its capture asked for during the outage
    refunded: dict[str, Any]  # confirmed before, cancelled during the outage
    cancel_answer: httpx.Response
    paid_after: dict[str, Any]  # held before, paid after
    made_during: list[tuple[httpx.Response, float]]  # priced bookings asked for meanwhile
    free_during: httpx.Response
    final: dict[str, dict[str, Any]]  # every booking once all have settled
    report: Report


async def _confirm(clinic: Shop, stripe: Any, booking: dict[str, Any]) -> None:
    """The customer pays by card, and Stripe's authorised event reaches the API."""
    intent = booking["payment"]["intent_id"]
    await pay(stripe, intent, VISA)
    event = intent_event("payment_intent.amount_capturable_updated", intent, booking["id"])
    answer = await deliver(clinic.http, event)
    assert answer.status_code == 200, answer.text


async def _until(clinic: Shop, booking_id: str, status: str) -> dict[str, Any]:
    return await eventually(
        lambda: clinic.get(booking_id), lambda b: b["status"] == status, seconds=60, every=0.2
    )


async def _decided(clinic: Shop, token: str, key: str) -> dict[str, Any]:
    """A priced booking asked for again with its key until it is answered 201."""
    answer = await eventually(
        lambda: clinic.book(token, key), lambda a: a.status_code != 503, seconds=60, every=0.5
    )
    assert answer.status_code == 201, answer.text
    booking: dict[str, Any] = answer.json()
    return booking


@pytest.fixture(scope="module")
async def outage(
    settings: Settings,
    temporal_dev_server: WorkflowEnvironment,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Outage]:
    stand_in = StripeStandIn(tmp_path_factory.mktemp("stripe"), WEBHOOK_SECRET)
    recorded = RecordingHTTPClient()
    cards = StripePayments(stripe_client(stand_in.base, recorded))
    configured = settings.model_copy(
        update={"stripe_webhook_secret": SecretStr(WEBHOOK_SECRET), "rate_limit_per_minute": 10**5}
    )
    customer = stripe_client(stand_in.base)
    try:
        async with (
            live_app(configured, temporal_dev_server, QUEUE, cards=cards) as app,
            served(app) as url,
            shop(url) as clinic,
        ):
            await stand_in.start(f"{url}/v1/webhooks/stripe")
            captured = await clinic.booked("priced", 0)
            await pay(customer, captured["payment"]["intent_id"], VISA)
            refunded = await clinic.booked("priced", 1)
            await _confirm(clinic, customer, refunded)
            await _until(clinic, refunded["id"], "confirmed")
            paid_after = await clinic.booked("priced", 2)
            tokens = [
                (await clinic.slots("priced", FIRST_DAY + timedelta(days=d)))[0]["allocation_token"]
                for d in (3, 4)
            ]
            free_slot = (await clinic.slots("free", FIRST_DAY + timedelta(days=5)))[0]

            stand_in.stop()
            event = intent_event(
                "payment_intent.amount_capturable_updated",
                captured["payment"]["intent_id"],
                captured["id"],
            )
            assert (await deliver(clinic.http, event)).status_code == 200
            cancelling = asyncio.create_task(
                clinic.http.post(f"/v1/bookings/{refunded['id']}/cancel", json={"reason": "ill"})
            )
            keys = [str(uuid.uuid4()) for _ in tokens]

            async def asked(token: str, key: str) -> tuple[httpx.Response, float]:
                answer = await clinic.book(token, key)
                return answer, time.monotonic()

            making = [asyncio.create_task(asked(t, k)) for t, k in zip(tokens, keys, strict=True)]
            free_during = await clinic.book(free_slot["allocation_token"])
            await asyncio.sleep(OUTAGE_SECONDS)
            await stand_in.start()
            back_at = time.monotonic()

            cancel_answer = await cancelling
            made_during = [await task for task in making]
            made = [await _decided(clinic, t, k) for t, k in zip(tokens, keys, strict=True)]
            for held in [paid_after, *made]:
                await _confirm(clinic, customer, held)
            ids = [captured["id"], refunded["id"], paid_after["id"], *(b["id"] for b in made)]
            final = {
                b: await _until(clinic, b, "cancelled" if b == refunded["id"] else "confirmed")
                for b in ids
            }
            report = await verdict(app, clinic.tenant_id)
            yield Outage(
                app,
                customer,
                recorded,
                back_at,
                captured,
                refunded,
                cancel_answer,
                paid_after,
                made_during,
                free_during,
                final,
                report,
            )
    finally:
        stand_in.stop()


async def _intent(outage: Outage, intent_id: str) -> Any:
    return await asyncio.to_thread(outage.stripe.v1.payment_intents.retrieve, intent_id)


def test_a_free_booking_does_not_wait_for_stripe(outage: Outage) -> None:
    assert outage.free_during.status_code == 201, outage.free_during.text
    assert outage.free_during.json()["status"] == "confirmed"


def test_a_priced_booking_asked_for_meanwhile_answers_503_or_once_stripe_is_back(
    outage: Outage,
) -> None:
    for answer, at in outage.made_during:
        assert answer.status_code in (201, 503), answer.text
        if answer.status_code == 201:  # it waited for its authorisation, then got it
            assert at >= outage.back_at and answer.json()["payment"]["intent_id"]
        else:
            assert answer.headers["Retry-After"]


async def test_a_capture_asked_for_during_the_outage_is_made_once_after(
    outage: Outage,
) -> None:
    booking = outage.final[outage.captured["id"]]
    assert booking["payment"]["captured_amount"] == PRICE
    intent_id = outage.captured["payment"]["intent_id"]
    intent = await _intent(outage, intent_id)
    assert intent.status == "succeeded" and intent.amount == PRICE
    keys = {key for path, key in outage.recorded.posts if path.endswith(f"{intent_id}/capture")}
    assert keys == {f"{outage.captured['id']}:capture"}  # retried, always as one capture


async def test_a_refund_asked_for_during_the_outage_is_made_once_after(
    outage: Outage,
) -> None:
    booking = outage.final[outage.refunded["id"]]
    assert booking["payment"]["refunded_amount"] == PRICE  # days ahead: all of it back
    intent_id = outage.refunded["payment"]["intent_id"]
    refunds = await asyncio.to_thread(outage.stripe.v1.refunds.list, {"payment_intent": intent_id})
    assert [r.amount for r in refunds.data] == [PRICE]
    assert outage.cancel_answer.status_code in (200, 503), outage.cancel_answer.text


def test_held_bookings_are_neither_lost_nor_charged_twice(outage: Outage) -> None:
    held = [outage.captured["id"], outage.paid_after["id"]]
    held += [b for b in outage.final if b not in (*held, outage.refunded["id"])]
    assert len(held) == 2 + len(outage.made_during)
    for booking_id in held:
        payment = outage.final[booking_id]["payment"]
        assert payment["captured_amount"] == PRICE and not payment["refunded_amount"], payment


def test_every_invariant_holds_after_the_outage(outage: Outage) -> None:
    assert outage.report.ok, outage.report.lines()
