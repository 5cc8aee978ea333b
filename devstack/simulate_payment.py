"""Try the card flow of `make run` by hand: pay a held booking as its customer would, with
a test card on the local Stripe stand-in, and deliver the webhook Stripe would send.

    python -m devstack.simulate_payment <booking id> [--decline]

localstripe sends `payment_intent.payment_failed` (a declined card) by itself but not
`payment_intent.amount_capturable_updated` (a card held for capture), so that one is
signed here with the webhook secret, exactly as Stripe signs."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from typing import Any

import httpx
import stripe

from devstack.secrets import signing_secret
from settings import get_settings

LOCAL_STRIPE = "http://127.0.0.1:8420"
LOCAL_STRIPE_KEY = "sk_test_holdfast_local"
LOCAL_STRIPE_PUBLISHABLE_KEY = "pk_test_holdfast_local"  # the booking page's Stripe.js
STRIPE_JS = "/js.stripe.com/v3/"  # where Stripe.js is, on the stand-in
VISA, DECLINED = "4242424242424242", "4000000000000341"


def pay(customer: stripe.StripeClient, intent_id: str, card: str) -> None:
    """What Stripe.js does in the customer's browser: attach a card and confirm."""
    method = customer.v1.payment_methods.create(
        {"type": "card", "card": {"number": card, "exp_month": 12, "exp_year": 2034, "cvc": "123"}}
    )
    customer.v1.payment_intents.update(intent_id, {"payment_method": method.id})
    with contextlib.suppress(stripe.CardError):  # declined: Stripe tells the webhook
        customer.v1.payment_intents.confirm(intent_id)


def intent_event(
    type_: str, intent_id: str, booking_id: str, event_id: str | None = None, payer: str = "booking"
) -> dict[str, Any]:
    """`payer` "series": the intent of a series paid once, which names its series."""
    return {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "type": type_,
        "data": {
            "object": {
                "id": intent_id,
                "object": "payment_intent",
                "metadata": {f"{payer}_id": booking_id},
            }
        },
    }


def sign(body: bytes, secret: str, at: int | None = None) -> str:
    """Stripe's scheme: `t=<unix time>,v1=HMAC-SHA256(secret, "<t>.<body>")`."""
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("booking_id")
    parser.add_argument("--decline", action="store_true", help="pay with a declined card")
    args = parser.parse_args()
    settings = get_settings()
    data = settings.data_dir
    api_key = (data / "demo-api-key").read_text().strip()
    secret = signing_secret((data / "stripe-webhook-secret").read_text())
    api = httpx.Client(
        base_url=f"http://{settings.api_host}:{settings.api_port}",
        headers={"Authorization": f"Bearer {api_key}"},
    )
    booking = api.get(f"/v1/bookings/{args.booking_id}").raise_for_status().json()
    if booking["status"] != "pending_payment" or not (booking["payment"] or {}).get("intent_id"):
        raise SystemExit(f"booking {args.booking_id} awaits no card payment ({booking['status']})")
    intent_id = booking["payment"]["intent_id"]
    customer = stripe.StripeClient(
        LOCAL_STRIPE_KEY, base_addresses={"api": settings.stripe_api_base or LOCAL_STRIPE}
    )
    pay(customer, intent_id, DECLINED if args.decline else VISA)
    if not args.decline:
        body = json.dumps(
            intent_event("payment_intent.amount_capturable_updated", intent_id, booking["id"])
        ).encode()
        api.post(
            "/v1/webhooks/stripe",
            content=body,
            headers={"Stripe-Signature": sign(body, secret), "Content-Type": "application/json"},
        ).raise_for_status()
    for _ in range(40):
        status = api.get(f"/v1/bookings/{args.booking_id}").json()["status"]
        if status != "pending_payment":
            break
        time.sleep(0.25)
    print(f"booking {args.booking_id}: {status}")


if __name__ == "__main__":
    main()
