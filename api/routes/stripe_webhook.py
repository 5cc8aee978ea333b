"""Stripe's webhook (docs/api.md#payments): a signed event is recorded once, in the same transaction
as its mark on the booking's history, then handed to the booking's workflow as a signal.
An event of a series paid once (docs/series.md#payment) goes to the series' workflow.

A repeated delivery finds its event recorded and processed, and does nothing more. If the
signal cannot be sent, the answer is 503 and Stripe delivers again; the event, recorded
but not processed, is signalled then (the workflow ignores an event id it has seen)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import stripe
from fastapi import APIRouter, Header, Request
from pydantic import BaseModel
from sqlalchemy import select, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from api.booking_gateway import signal_payment_event
from api.deps import Ctx, Operator, Paging
from api.edge import read_bounded
from api.errors import ApiError
from api.pagination import (
    Page,
    decode_cursor,
    encode_cursor,
    invalid_cursor,
)
from contract import EventType, series_workflow_id, workflow_id_for
from contract import PaymentEvent as PaymentSignal
from db.history import add_event
from db.models import Booking, BookingSeries, PaymentEvent
from db.tenancy import across_tenants
from settings import Settings

router = APIRouter(tags=["payments"])

MAX_BODY = 256 * 1024  # Stripe's events are a few KB
# What each event means to a booking (the signal's kind; `recorded`: history only), and
# how it enters the booking's history (docs/lifecycle.md#history), told apart from the
# saga's own steps by its actor, `stripe`. Any other type is answered and ignored.
MEANINGS = {
    "payment_intent.amount_capturable_updated": ("authorized", EventType.PAYMENT_AUTHORIZED),
    "payment_intent.succeeded": ("authorized", EventType.PAYMENT_CAPTURED),
    "payment_intent.payment_failed": ("failed", EventType.PAYMENT_FAILED),
    "payment_intent.canceled": ("canceled", EventType.PAYMENT_CANCELLED),
    "charge.refunded": ("recorded", EventType.PAYMENT_REFUNDED),
}


def _rejected(message: str) -> ApiError:
    return ApiError(400, "invalid_webhook", message)


async def _body(request: Request) -> bytes:
    if "content-length" not in request.headers:
        raise _rejected("the body is missing or too large")
    body = await read_bounded(request, MAX_BODY)
    if body is None:
        raise _rejected("the body is too large")
    return body


def _verified(body: bytes, signature: str | None, settings: Settings) -> dict[str, Any]:
    """The event, if a current secret signed exactly this body recently (several secrets,
    comma-separated, while one is being rotated; Stripe signs with each of its own)."""
    configured = settings.stripe_webhook_secret.get_secret_value().split(",")
    secrets = [secret.strip() for secret in configured if secret.strip()]
    if not secrets:
        raise ApiError(503, "webhook_not_configured", "STRIPE_WEBHOOK_SECRET is not set")
    if not signature:
        raise _rejected("the Stripe-Signature header is missing")
    try:
        payload = body.decode()
    except UnicodeDecodeError as exc:
        raise _rejected("the body is not UTF-8") from exc
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(
                payload, signature, secret, settings.stripe_webhook_tolerance_seconds
            )
            break
        except stripe.SignatureVerificationError:
            continue
    else:
        raise _rejected("the signature does not match, or is too old")
    try:
        event: dict[str, Any] = json.loads(payload)
    except ValueError as exc:
        raise _rejected("the body is not JSON") from exc
    data = event.get("data") if isinstance(event, dict) else None
    if not (
        isinstance(data, dict)
        and isinstance(data.get("object"), dict)
        and isinstance(event.get("id"), str)
        and isinstance(event.get("type"), str)
    ):
        raise _rejected("the body is not a Stripe event")
    return event


async def _booking(db: AsyncSession, obj: dict[str, Any], intent_id: str | None) -> Booking | None:
    """The booking a payment belongs to: named in the intent's metadata, or known from an
    earlier event of the same intent (charges carry the intent, not our metadata)."""
    named = (obj.get("metadata") or {}).get("booking_id")
    if not named and intent_id:
        named = await _known_payer(db, PaymentEvent.booking_id, intent_id)
    # Locked: its history entry adds to its version.
    booking = await _payer(db, Booking, named, lock=True)
    if booking is None or (booking.payment or {}).get("intent_id") not in (None, intent_id):
        return None
    return booking


async def _series(
    db: AsyncSession, obj: dict[str, Any], intent_id: str | None
) -> BookingSeries | None:
    """A series paid once, found as a booking is (its intent names `series_id`)."""
    named = (obj.get("metadata") or {}).get("series_id")
    if not named and intent_id:
        named = await _known_payer(db, PaymentEvent.series_id, intent_id)
    series = await _payer(db, BookingSeries, named, lock=False)
    if series is None or (series.payment or {}).get("intent_id") not in (None, intent_id):
        return None
    return series


async def _known_payer(db: AsyncSession, column: Any, intent_id: str) -> Any:
    return await db.scalar(
        select(column).where(PaymentEvent.intent_id == intent_id, column.is_not(None)).limit(1)
    )


P = TypeVar("P", Booking, BookingSeries)


async def _payer(db: AsyncSession, model: type[P], named: object, *, lock: bool) -> P | None:
    try:
        return await db.get(model, uuid.UUID(str(named)), with_for_update=lock) if named else None
    except ValueError:
        return None


@router.post("/v1/webhooks/stripe", summary="Stripe's webhook (signed)", include_in_schema=True)
async def stripe_webhook(
    request: Request,
    ctx: Ctx,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> dict[str, Any]:
    event = _verified(await _body(request), stripe_signature, ctx.settings)
    meaning = MEANINGS.get(event["type"])
    if meaning is None:
        return {"received": True, "ignored": True}
    kind, entry = meaning
    obj = event["data"]["object"]
    intent_id = (
        obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    )
    # Across tenants: the event names its booking by the payment's id, not its tenant.
    async with ctx.sessions(across_tenants(f"stripe:{event['id']}")) as db:
        booking = await _booking(db, obj, intent_id)
        series = None if booking is not None else await _series(db, obj, intent_id)
        payer = _workflow_of(booking, series)
        outcome = "unknown_booking" if payer is None else kind
        stored = await db.scalar(
            insert(PaymentEvent)
            .values(
                id=event["id"],
                type=event["type"],
                intent_id=intent_id,
                booking_id=booking.id if booking else None,
                series_id=series.id if series else None,
                outcome=outcome,
                payload=_without_secret(event),
            )
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(PaymentEvent.id)
        )
        if stored is None:  # a repeat: done already, unless its signal was not sent
            seen = await db.get(PaymentEvent, event["id"])
            known = seen is not None and (seen.booking_id or seen.series_id)
            if seen is None or seen.processed_at is not None or not known:
                return {"received": True, "duplicate": True}
        if booking is not None:
            await add_event(
                db,
                booking,
                f"stripe:{event['id']}",
                entry,
                "stripe",
                {"event_id": event["id"], "type": event["type"], "intent_id": intent_id},
                announce=False,
            )
        if payer is None or kind == "recorded":
            await _processed(db, event["id"])
            await db.commit()
            return {"received": True}
        await db.commit()
        error = obj.get("last_payment_error") or {}
        await signal_payment_event(
            ctx,
            payer,
            PaymentSignal(event["id"], kind, str(intent_id), str(error.get("message") or "")),
        )
        await _processed(db, event["id"])
        await db.commit()
    return {"received": True}


def _workflow_of(booking: Booking | None, series: BookingSeries | None) -> str | None:
    if booking is not None:
        return workflow_id_for(str(booking.id))
    return series_workflow_id(str(series.id)) if series is not None else None


def _without_secret(event: dict[str, Any]) -> dict[str, Any]:
    """The event as kept for operators: an intent's client secret is the paying
    customer's alone."""
    obj = event["data"]["object"]
    if "client_secret" not in obj:
        return event
    trimmed = {k: v for k, v in obj.items() if k != "client_secret"}
    return {**event, "data": {**event["data"], "object": trimmed}}


async def _processed(db: AsyncSession, event_id: str) -> None:
    await db.execute(
        update(PaymentEvent)
        .where(PaymentEvent.id == event_id)
        .values(processed_at=datetime.now(UTC))
    )


class PaymentEventOut(BaseModel):
    id: str
    type: str
    intent_id: str | None
    booking_id: uuid.UUID | None
    outcome: str
    received_at: datetime
    processed_at: datetime | None


@router.get("/v1/payment-events", summary="Stripe events as received (operator key)")
async def payment_events(
    _: Operator,
    ctx: Ctx,
    page: Paging,
    outcome: str | None = None,
) -> Page[PaymentEventOut]:
    """Newest first; `outcome=unknown_booking` lists events no booking claimed."""
    newest_first = (PaymentEvent.received_at.desc(), PaymentEvent.id.desc())
    stmt = select(PaymentEvent).order_by(*newest_first).limit(page.limit + 1)
    if outcome is not None:
        stmt = stmt.where(PaymentEvent.outcome == outcome)
    if page.cursor is not None:
        at, event_id = decode_cursor(page.cursor, 2)
        try:
            after = (datetime.fromisoformat(at), event_id)
        except ValueError as exc:
            raise invalid_cursor() from exc
        stmt = stmt.where(tuple_(PaymentEvent.received_at, PaymentEvent.id) < after)
    async with ctx.sessions(across_tenants("operator")) as db:
        rows = list((await db.scalars(stmt)).all())
    last = rows[page.limit - 1] if len(rows) > page.limit else None
    return Page(
        items=[PaymentEventOut.model_validate(r, from_attributes=True) for r in rows[: page.limit]],
        next_cursor=last and encode_cursor(last.received_at.isoformat(), last.id),
    )
