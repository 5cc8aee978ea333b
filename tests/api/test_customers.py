"""A customer's export and erasure (api/routes/customers.py, docs/security.md#erasure-and-
export). Most bookings are inserted directly, with a copy of their customer in every place
the engine keeps one (a message, a history entry, a webhook event, the stored answer of
an Idempotency-Key, a calendar's export, a Stripe event); one booking's whole life, made
and cancelled through the API on a Temporal dev server, checks the copies the engine
really writes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, text, update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.testing import WorkflowEnvironment

from api.context import AppContext
from db import customers
from db.history import booking_snapshot, webhook_body
from db.models import (
    Allocation,
    Booking,
    BookingEvent,
    CalendarEvent,
    IdempotencyRecord,
    Notification,
    PaymentEvent,
    WebhookEvent,
)
from settings import Settings
from tests.support.api import assert_error, open_all_day, service, staff
from tests.support.bookings import first_slots
from tests.support.clients import client_for, fresh_tenant, new_tenant_client, tenant_of
from tests.support.db import audit_verdict, insert_booking, insert_connection
from tests.support.live import live_app

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

ADA = {
    "name": "Ada Lovelace",
    "email": "Ada.Lovelace@Example.test",  # stored as given; asked for in lower case
    "phone": "+4915123456789",
    "sms_opt_in": True,
    "locale": "en-GB",
}
GRACE = {"name": "Grace Hopper", "email": "grace@example.test"}
ADA_EMAIL = "ada.lovelace@example.test"
# What must appear nowhere once Ada is erased.
ADA_TRACES = ("ada.lovelace", "Lovelace", "5123456789")
PLACES = customers.PLACES
TENANT_TABLES = PLACES[:-1]
ZEROS = dict.fromkeys(PLACES, 0)
PAST = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)


async def erase(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.delete("/v1/customers", params={"email": email})


async def exported(client: httpx.AsyncClient, email: str) -> dict[str, Any]:
    answer = await client.get("/v1/customers/export", params={"email": email})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


@pytest.fixture
async def shop(api: httpx.AsyncClient) -> tuple[str, str]:
    """A resource and a service of the tenant: (resource id, service id)."""
    resource = (await staff(api))["id"]
    return resource, (await service(api, requirements=[{"kind": "staff"}]))["id"]


async def booking_of(
    db: AsyncSession,
    shop: tuple[str, str],
    customer: dict[str, Any],
    *,
    status: str = "completed",
    start: datetime = PAST,
    calendar: str = "deleted",
    queued: bool = False,
) -> uuid.UUID:
    """A booking of `customer` with a copy of them in every place the engine keeps one,
    as the engine writes each: `calendar` is the status of its export to a calendar."""
    resource, service_id = shop
    booking_id = await insert_booking(db, [resource], service_id, start, start + timedelta(hours=1))
    row = await db.get(Booking, booking_id)
    assert row is not None
    row.status, row.customer, row.resource_ids = status, customer, [uuid.UUID(resource)]
    row.meta = {"crm_note": f"called {customer['email']} twice"}
    intent = f"pi_{booking_id.hex[:12]}"
    row.payment = {
        "provider": "stripe",
        "status": "refunded",
        "amount": 5000,
        "currency": "EUR",
        "intent_id": intent,
        "captured_amount": 5000,
        "refunded_amount": 5000,
    }
    if status not in ("confirmed", "pending_payment"):
        await db.execute(
            update(Allocation).where(Allocation.booking_id == booking_id).values(status="released")
        )
    snapshot = booking_snapshot(row, "physio-60")
    tenant = row.tenant_id
    mailbox = f"550 5.1.1 <{customer['email']}>: mailbox full"
    db.add_all(
        [
            Notification(
                id=uuid.uuid4(),
                tenant_id=tenant,
                booking_id=booking_id,
                channel="email",
                kind="confirmed",
                recipient=customer["email"],
                payload={"booking": snapshot, "version": 1, "previous": None},
                status="queued" if queued else "failed",
                last_error=None if queued else mailbox,
            ),
            BookingEvent(
                tenant_id=tenant,
                booking_id=booking_id,
                type="side_effect.failed",
                actor="workflow",
                data={"step": "notify", "error": mailbox},
            ),
            IdempotencyRecord(
                tenant_id=tenant,
                key=f"key-{booking_id}",
                request_hash="0" * 64,
                booking_id=booking_id,
                response_status=201,
                response_body={"id": str(booking_id), "customer": customer},
            ),
            WebhookEvent(
                id=uuid.uuid4(),
                tenant_id=tenant,
                booking_id=booking_id,
                type="booking.confirmed",
                payload=webhook_body("booking.confirmed", start, {"booking": snapshot}),
            ),
            PaymentEvent(
                id=f"evt_{booking_id.hex}",
                type="charge.refunded",
                intent_id=intent,
                booking_id=booking_id,
                outcome="recorded",
                payload=stripe_event(customer, intent),
            ),
        ]
    )
    if "phone" in customer:
        db.add(
            Notification(
                id=uuid.uuid4(),
                tenant_id=tenant,
                booking_id=booking_id,
                channel="sms",
                kind="confirmed",
                recipient=customer["phone"],
                payload={"booking": snapshot, "version": 1, "previous": None},
                status="sent",
            )
        )
    connection = await insert_connection(db, resource, calendar_id=f"{uuid.uuid4()}@example.com")
    db.add(
        CalendarEvent(
            booking_id=booking_id,
            connection_id=connection.id,
            tenant_id=tenant,
            status=calendar,
            external_id="evt-1",
            fingerprint="f" * 64,
        )
    )
    await db.commit()
    return booking_id


def stripe_event(customer: dict[str, Any], intent: str) -> dict[str, Any]:
    """A charge as Stripe reports it: the billing details are what the customer typed."""
    return {
        "id": "evt_1",
        "type": "charge.refunded",
        "data": {
            "object": {
                "object": "charge",
                "payment_intent": intent,
                "amount_refunded": 5000,
                "receipt_email": customer["email"],
                "billing_details": {
                    "name": customer["name"],
                    "email": customer["email"],
                    "phone": customer.get("phone"),
                    "address": {"city": "London", "line1": "12 St James's Square"},
                },
                "metadata": {"booking_id": "b"},
            }
        },
    }


async def traces(db: AsyncSession, tenant: str, needle: str) -> dict[str, int]:
    """In how many rows of each place of `tenant` the text occurs, in any case: each row
    read whole as text, its jsonb included."""
    found = {}
    for table in TENANT_TABLES:
        found[table] = await db.scalar(
            text(f"SELECT count(*) FROM {table} t WHERE t.tenant_id = :t AND t::text ILIKE :n"),
            {"t": tenant, "n": f"%{needle}%"},
        )
    found["payment_events"] = await db.scalar(
        text(
            "SELECT count(*) FROM payment_events p WHERE p::text ILIKE :n AND p.booking_id IN"
            " (SELECT id FROM bookings WHERE tenant_id = :t)"
        ),
        {"t": tenant, "n": f"%{needle}%"},
    )
    return found


def nowhere() -> dict[str, int]:
    return dict.fromkeys(PLACES, 0)


async def customer_of(db: AsyncSession, booking_id: uuid.UUID) -> dict[str, Any]:
    row = await db.get(Booking, booking_id, populate_existing=True)
    assert row is not None
    return row.customer


# --- Erasure -----------------------------------------------------------------------------


async def test_erasure_leaves_the_customers_email_name_and_phone_in_no_place(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    await booking_of(db, shop, ADA)
    await booking_of(db, shop, ADA, status="cancelled")
    tenant = tenant_of(api)
    assert (await traces(db, tenant, "Lovelace"))["payment_events"] == 2  # the seeds hold them

    answer = await erase(api, ADA_EMAIL)

    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"] == {
        "bookings": 2,
        "notifications": 4,
        "booking_events": 2,
        "idempotency_records": 2,
        "webhook_events": 2,
        "calendar_events": 2,
        "payment_events": 2,
    }
    for trace in ADA_TRACES:
        assert await traces(db, tenant, trace) == nowhere(), trace


async def test_erasure_answers_the_pseudonym_that_replaces_the_name_and_email(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    booking = await booking_of(db, shop, ADA)
    body = (await erase(api, ADA_EMAIL)).json()
    pseudonym = body["pseudonym"]
    assert pseudonym.startswith("erased-") and len(pseudonym) == len("erased-") + 16
    assert body["email"] == f"{pseudonym}@erased.invalid"
    assert await customer_of(db, booking) == {"name": pseudonym, "email": body["email"]}
    message = await db.scalar(
        select(Notification.recipient).where(
            Notification.booking_id == booking, Notification.channel == "email"
        )
    )
    assert message == body["email"]


async def test_erasure_empties_the_personal_fields_of_stripes_events(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    booking = await booking_of(db, shop, ADA)
    assert (await erase(api, ADA_EMAIL)).status_code == 200
    row = await db.get(PaymentEvent, f"evt_{booking.hex}", populate_existing=True)
    assert row is not None
    charge = row.payload["data"]["object"]
    assert charge["billing_details"] is None and charge["receipt_email"] is None
    assert charge["amount_refunded"] == 5000  # what operators need of it stays


async def test_erasure_records_itself_in_each_bookings_history(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    booking = await booking_of(db, shop, ADA)
    before = (await db.get(Booking, booking, populate_existing=True)).version  # type: ignore[union-attr]
    pseudonym = (await erase(api, ADA_EMAIL)).json()["pseudonym"]
    history = (await api.get(f"/v1/bookings/{booking}/history")).json()["items"]
    assert history[-1]["type"] == "customer.erased"
    assert history[-1]["data"] == {"pseudonym": pseudonym}
    assert history[-1]["actor"].startswith("key:")
    after = (await db.get(Booking, booking, populate_existing=True)).version  # type: ignore[union-attr]
    assert after == before + 1  # a subscribed ICS feed sees the change (SEQUENCE)


async def test_the_pseudonym_is_the_same_for_two_erasures_and_two_bookings(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    first = await booking_of(db, shop, ADA)
    once = (await erase(api, ADA_EMAIL)).json()["pseudonym"]
    second = await booking_of(db, shop, {**ADA, "email": ADA_EMAIL.upper()})  # books again
    twice = (await erase(api, "Ada.Lovelace@example.TEST")).json()["pseudonym"]
    assert once == twice
    assert (await customer_of(db, first))["name"] == (await customer_of(db, second))["name"]


async def test_the_pseudonym_differs_between_customers_and_between_tenants(
    api: httpx.AsyncClient, app: FastAPI, operator: httpx.AsyncClient
) -> None:
    mine = (await erase(api, ADA_EMAIL)).json()["pseudonym"]
    assert (await erase(api, GRACE["email"])).json()["pseudonym"] != mine
    async with await new_tenant_client(app, operator) as other:
        assert (await erase(other, ADA_EMAIL)).json()["pseudonym"] != mine


async def test_erasing_twice_changes_nothing_the_second_time(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    booking = await booking_of(db, shop, ADA)
    first = (await erase(api, ADA_EMAIL)).json()
    erased = await customer_of(db, booking)
    again = await erase(api, ADA_EMAIL)
    assert again.status_code == 200, again.text
    assert again.json() == {**first, "counts": ZEROS}
    assert await customer_of(db, booking) == erased


async def test_erasing_an_unknown_email_answers_200_with_zero_counts(
    api: httpx.AsyncClient,
) -> None:
    answer = await erase(api, "nobody@example.test")
    assert answer.status_code == 200, answer.text
    assert answer.json()["counts"] == ZEROS
    assert answer.json()["calendar_removals"] == 0


async def test_erasure_leaves_other_customers_of_the_tenant_untouched(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    await booking_of(db, shop, ADA)
    grace = await booking_of(db, shop, GRACE)
    tenant = tenant_of(api)
    before = await traces(db, tenant, "Grace Hopper")
    assert (await erase(api, ADA_EMAIL)).status_code == 200
    assert await customer_of(db, grace) == GRACE
    assert await traces(db, tenant, "Grace Hopper") == before
    assert await traces(db, tenant, "grace@example.test") != nowhere()


async def test_erasure_leaves_the_same_customer_of_another_tenant_untouched(
    api: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    async with fresh_tenant(app) as other:
        theirs = ((await staff(other))["id"], (await service(other))["id"])
        booking = await booking_of(db, theirs, ADA)
        before = await traces(db, tenant_of(other), "Lovelace")
        answer = await erase(api, ADA_EMAIL)
        assert answer.status_code == 200 and answer.json()["counts"] == ZEROS
        assert await customer_of(db, booking) == ADA
        assert await traces(db, tenant_of(other), "Lovelace") == before


async def test_a_live_booking_refuses_the_erasure_with_409_and_changes_nothing(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    done = await booking_of(db, shop, ADA)
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    live = await booking_of(db, shop, ADA, status="confirmed", start=future)
    held = await booking_of(
        db, shop, ADA, status="pending_payment", start=future + timedelta(hours=2)
    )
    before = await traces(db, tenant_of(api), "Lovelace")

    error = assert_error(await erase(api, ADA_EMAIL), 409, "customer_has_live_bookings")

    assert sorted(error["details"]["booking_ids"]) == sorted([str(live), str(held)])
    assert await customer_of(db, done) == ADA
    assert await traces(db, tenant_of(api), "Lovelace") == before


async def test_a_confirmed_booking_whose_time_has_passed_still_refuses_the_erasure(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    """Its workflow runs until it completes it, and a no-show would still be told."""
    late = await booking_of(db, shop, ADA, status="confirmed")
    error = assert_error(await erase(api, ADA_EMAIL), 409, "customer_has_live_bookings")
    assert error["details"]["booking_ids"] == [str(late)]


async def test_a_queued_message_of_an_erased_customer_is_never_sent(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    booking = await booking_of(db, shop, ADA, queued=True)
    assert (await erase(api, ADA_EMAIL)).status_code == 200
    messages = (await api.get(f"/v1/bookings/{booking}/notifications")).json()["items"]
    email = next(m for m in messages if m["channel"] == "email")
    assert email["status"] == "failed"
    assert "erased" in email["last_error"]


async def test_erasure_asks_for_a_written_calendar_event_to_be_removed(
    api: httpx.AsyncClient,
    app: FastAPI,
    db: AsyncSession,
    shop: tuple[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Its title at the provider still holds the name, and an erased booking is never
    shown (renamed) again: the event goes."""
    written = await booking_of(db, shop, ADA, calendar="written")
    await booking_of(db, shop, ADA, calendar="deleted")  # off its calendar already
    asked: list[tuple[str, bool]] = []

    async def request_export(_: object, queue: str, booking_id: str, *, remove: bool) -> None:
        asked.append((booking_id, remove))

    async def temporal() -> object:
        return object()

    monkeypatch.setattr("api.routes.customers.request_export", request_export)
    ctx: AppContext = app.state.ctx
    monkeypatch.setattr(ctx, "temporal", temporal)

    answer = await erase(api, ADA_EMAIL)

    assert answer.status_code == 200, answer.text
    assert answer.json()["calendar_removals"] == 1
    assert asked == [(str(written), True)]


async def test_an_unreachable_temporal_leaves_the_erasure_done_and_asks_for_a_repeat(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    booking = await booking_of(db, shop, ADA, calendar="written")
    error = assert_error(await erase(api, ADA_EMAIL), 503, "calendar_unavailable")
    assert error["details"]["counts"]["bookings"] == 1
    assert (await customer_of(db, booking))["name"] == error["details"]["pseudonym"]
    # A repeat finds the event still on its calendar, and asks again.
    assert_error(await erase(api, ADA_EMAIL), 503, "calendar_unavailable")


async def test_erasure_and_export_need_a_key(app: FastAPI) -> None:
    async with client_for(app) as anonymous:
        assert_error(await erase(anonymous, ADA_EMAIL), 401, "unauthorized")
        answer = await anonymous.get("/v1/customers/export", params={"email": ADA_EMAIL})
        assert_error(answer, 401, "unauthorized")


async def test_a_publishable_key_may_neither_erase_nor_export(
    api: httpx.AsyncClient, app: FastAPI
) -> None:
    made = await api.post("/v1/api-keys", json={"kind": "publishable", "name": "site"})
    assert made.status_code == 201, made.text
    async with client_for(app, made.json()["api_key"]) as page:
        assert_error(await erase(page, ADA_EMAIL), 403, "forbidden")
        answer = await page.get("/v1/customers/export", params={"email": ADA_EMAIL})
        assert_error(answer, 403, "forbidden")


async def test_the_operator_key_may_neither_erase_nor_export(
    operator: httpx.AsyncClient,
) -> None:
    """Which tenant's customer would it be? Erasure is a tenant's act, under its key."""
    assert_error(await erase(operator, ADA_EMAIL), 401, "unauthorized")


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"email": ""},
        {"email": "not-an-email"},
        {"email": "a@b"},
        {"email": "x" * 250 + "@e.co"},
    ],
)
async def test_a_missing_or_invalid_email_is_422(
    api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    for answer in (
        await api.delete("/v1/customers", params=params),
        await api.get("/v1/customers/export", params=params),
    ):
        error = assert_error(answer, 422, "validation_error")
        assert error["details"][0]["field"] == "query.email"


async def test_erasing_a_pseudonyms_address_is_422(api: httpx.AsyncClient) -> None:
    """It would give a pseudonym of a pseudonym."""
    error = assert_error(
        await erase(api, "erased-0123456789abcdef@erased.invalid"), 422, "validation_error"
    )
    assert "pseudonym" in error["message"]


async def test_a_refused_email_is_not_echoed_in_the_error(api: httpx.AsyncClient) -> None:
    answer = await api.delete("/v1/customers", params={"email": "ada lovelace@example"})
    assert answer.status_code == 422
    assert "lovelace" not in answer.text.lower()


async def test_no_log_line_of_an_erasure_or_export_holds_the_email(
    api: httpx.AsyncClient,
    db: AsyncSession,
    shop: tuple[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Answered, refused (a live booking, a bad address) and failed (Temporal away)."""
    await booking_of(db, shop, ADA, calendar="written")
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    await booking_of(db, shop, GRACE, status="confirmed", start=future)
    caplog.set_level(logging.DEBUG)
    await exported(api, ADA_EMAIL)
    assert (await erase(api, ADA_EMAIL)).status_code == 503
    assert (await erase(api, GRACE["email"])).status_code == 409
    assert (await erase(api, "ada lovelace@example")).status_code == 422
    # (The test's own HTTP client logs each URL it asks for, the address in it: the API's
    # lines are the ones that count here; docs/security.md#erasure-and-export says why an
    # integrator's and a proxy's logs hold it.)
    lines = "\n".join(
        r.getMessage() + (r.exc_text or "") for r in caplog.records if r.name != "httpx"
    ).lower()
    for trace in (*ADA_TRACES, "grace@", "Hopper"):
        assert trace.lower() not in lines, trace


# --- Export ------------------------------------------------------------------------------


async def test_export_lists_the_customers_bookings_with_history_and_messages(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    first = await booking_of(db, shop, ADA, start=PAST - timedelta(days=1))
    second = await booking_of(db, shop, {**ADA, "email": ADA_EMAIL}, status="cancelled")
    await booking_of(db, shop, GRACE)

    answer = await api.get("/v1/customers/export", params={"email": ADA_EMAIL.upper()})

    assert answer.status_code == 200, answer.text
    assert answer.headers["cache-control"] == "no-store"
    body = answer.json()
    assert [b["id"] for b in body["bookings"]] == [str(first), str(second)]  # oldest first
    booking = body["bookings"][0]
    assert booking["customer"] == ADA
    assert booking["status"] == "completed" and booking["metadata"]["crm_note"]
    assert [e["type"] for e in booking["history"]] == ["side_effect.failed"]
    assert sorted(m["channel"] for m in booking["notifications"]) == ["email", "sms"]
    assert {m["recipient"] for m in booking["notifications"]} == {ADA["email"], ADA["phone"]}


async def test_export_of_an_unknown_customer_is_empty(api: httpx.AsyncClient) -> None:
    assert (await exported(api, "nobody@example.test"))["bookings"] == []


async def test_export_of_another_tenants_customer_is_empty(
    api: httpx.AsyncClient, app: FastAPI, db: AsyncSession
) -> None:
    async with fresh_tenant(app) as other:
        theirs = ((await staff(other))["id"], (await service(other))["id"])
        await booking_of(db, theirs, ADA)
        assert len((await exported(other, ADA_EMAIL))["bookings"]) == 1
    assert (await exported(api, ADA_EMAIL))["bookings"] == []


async def test_export_after_erasure_is_empty(
    api: httpx.AsyncClient, db: AsyncSession, shop: tuple[str, str]
) -> None:
    await booking_of(db, shop, ADA)
    assert (await erase(api, ADA_EMAIL)).status_code == 200
    assert (await exported(api, ADA_EMAIL))["bookings"] == []


# --- A real booking's life ---------------------------------------------------------------


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> AsyncIterator[FastAPI]:
    async with live_app(settings, temporal_dev_server, "customers-e2e") as app:
        yield app


async def test_a_real_bookings_copies_of_its_customer_are_all_erased(
    live: FastAPI, db: AsyncSession, settings: Settings
) -> None:
    """Made, refused erasure while confirmed, cancelled, exported, then erased: whatever
    the engine itself wrote about the customer is gone."""
    async with fresh_tenant(live) as shop:
        await open_all_day(shop)
        await service(shop, code="free")
        slot = (await first_slots(shop, "free"))[0]
        made = await shop.post(
            "/v1/bookings",
            json={"allocation_token": slot["allocation_token"], "customer": ADA},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        assert made.status_code == 201, made.text
        booking = made.json()["id"]
        refused = assert_error(await erase(shop, ADA_EMAIL), 409, "customer_has_live_bookings")
        assert refused["details"]["booking_ids"] == [booking]

        cancelled = await shop.post(f"/v1/bookings/{booking}/cancel", json={"reason": "moving"})
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled"
        [mine] = (await exported(shop, ADA_EMAIL))["bookings"]
        assert [e["type"] for e in mine["history"]][:1] == ["booking.confirmed"]
        assert {m["kind"] for m in mine["notifications"]} >= {"confirmed", "cancelled"}

        tenant = uuid.UUID(tenant_of(shop))
        assert (await audit_verdict(settings, tenant)).ok  # the saga's changes, signed
        answer = await erase(shop, ADA_EMAIL)

        assert answer.status_code == 200, answer.text
        assert (await audit_verdict(settings, tenant)).ok  # and the erasure breaks nothing
        counts = answer.json()["counts"]
        assert counts["bookings"] == 1 and counts["idempotency_records"] == 1
        assert counts["notifications"] >= 2 and counts["webhook_events"] >= 2
        for trace in ADA_TRACES:
            assert await traces(db, tenant_of(shop), trace) == nowhere(), trace
