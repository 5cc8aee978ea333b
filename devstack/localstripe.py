"""The local Stripe stand-in: localstripe's aiohttp app, served on 127.0.0.1 only (its own
command listens on every interface), with what it lacks for our use added in front:
Stripe's Idempotency-Key replay, its store kept where we say (not /tmp), and a browser's
card payment as Stripe.js makes it (docs/booking-page.md#payment).

localstripe's own Stripe.js renders a card form but its `confirmCardPayment` only answers
3-D Secure: it cannot confirm an intent with a card, which is what a booking page does.
So the Stripe.js served here is localstripe's with that one call replaced: it posts the
card and the intent's client secret (with the publishable key, as the real one does) to
`/_holdfast/confirm_card_payment`, which attaches the card and confirms the intent. A
card held for capture then sends `payment_intent.amount_capturable_updated` to the
webhooks, as Stripe does (localstripe itself sends only some events).

`python -m devstack.localstripe --port 8420 --store .data/localstripe.pickle`"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import pickle
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from localstripe import server
from localstripe.errors import UserError
from localstripe.resources import Event, PaymentIntent, PaymentMethod, store
from localstripe.webhooks import schedule_webhook

from devstack.simulate_payment import STRIPE_JS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REPLAYED: dict[tuple[str, str], tuple[str, int, bytes]] = {}


@web.middleware
async def idempotency(request: web.Request, handler: Handler) -> web.StreamResponse:
    """As Stripe does: a POST repeating a key gets the first answer, not a second effect;
    the same key with other parameters is an error."""
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    body = await request.read()
    fingerprint = hashlib.sha256(request.path.encode() + b"\0" + body).hexdigest()
    account = request.headers.get("Authorization", "")
    seen = _REPLAYED.get((account, key))
    if seen is not None:
        if seen[0] != fingerprint:
            error = {
                "error": {
                    "type": "idempotency_error",
                    "message": "Keys for idempotent "
                    "requests can only be used with the same parameters.",
                }
            }
            return web.json_response(error, status=400)
        return web.Response(body=seen[2], status=seen[1], content_type="application/json")
    response = await handler(request)
    if isinstance(response, web.Response) and response.status < 500 and response.body:
        body_bytes = response.body if isinstance(response.body, bytes) else b""
        _REPLAYED[(account, key)] = (fingerprint, response.status, body_bytes)
    return response


CONFIRM_CARD_PAYMENT = "/_holdfast/confirm_card_payment"
_CONFIRM_IN_BROWSER = """
// Holdfast's stand-in: confirmCardPayment as Stripe.js does it (devstack/localstripe.py).
(function () {
  const fake = Stripe;
  Stripe = (apiKey) => {
    const stripe = fake(apiKey);
    stripe.confirmCardPayment = async (clientSecret, data) => {
      const element = data && data.payment_method && data.payment_method.card;
      const card = element && element.value ? element.value.card : {};
      const response = await fetch(`${LOCALSTRIPE_BASE_API}CONFIRM_CARD_PAYMENT`, {
        method: "POST",
        headers: {"Content-Type": "application/json"},
        body: JSON.stringify({key: apiKey, client_secret: clientSecret, card}),
      });
      const body = await response.json().catch(() => ({}));
      return response.ok ? {paymentIntent: body} : {error: body.error || {}};
    };
    return stripe;
  };
})();
""".replace("CONFIRM_CARD_PAYMENT", CONFIRM_CARD_PAYMENT)


@web.middleware
async def browser_payments(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Stripe.js with a working confirmCardPayment, and the call it makes."""
    if request.method == "GET" and request.path == STRIPE_JS:
        fake = await handler(request)
        assert isinstance(fake, web.Response) and fake.text is not None
        return web.Response(
            text=fake.text + _CONFIRM_IN_BROWSER, content_type="application/javascript"
        )
    if request.path == CONFIRM_CARD_PAYMENT:  # called from the booking page's origin
        if request.method == "OPTIONS":
            answer = web.Response(headers={"Access-Control-Allow-Headers": "Content-Type"})
        else:
            answer = _confirm_card_payment(await request.json())
        answer.headers["Access-Control-Allow-Origin"] = "*"
        return answer
    return await handler(request)


def _confirm_card_payment(data: dict[str, object]) -> web.Response:
    """What Stripe does for confirmCardPayment: the publishable key and the intent's own
    client secret allow attaching a card and confirming, nothing else."""
    secret, key, card = data.get("client_secret"), data.get("key"), data.get("card")
    if not (isinstance(secret, str) and isinstance(key, str) and key.startswith("pk_")):
        return _refused(UserError(401, "Unauthorized"))
    try:
        intent = PaymentIntent._api_retrieve(secret.split("_secret_")[0])
        if intent.client_secret != secret:
            raise UserError(401, "Unauthorized")
        fields = card if isinstance(card, dict) else {}
        method = PaymentMethod._api_create(
            type="card",
            card={k: str(fields.get(k, "")) for k in ("number", "exp_month", "exp_year", "cvc")},
        )
        PaymentIntent._api_update(intent.id, payment_method=method.id)
        intent = PaymentIntent._api_confirm(intent.id)
    except UserError as refused:  # a declined card: localstripe tells the webhook itself
        return _refused(refused)
    if intent.status == "requires_capture":
        schedule_webhook(Event("payment_intent.amount_capturable_updated", intent))
    return web.json_response(intent._export())


def _refused(error: UserError) -> web.Response:
    return web.json_response(error.body, status=error.code)


def _persisting(path: Path) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Saves the objects and the idempotent answers together, so a key retried after a
    restart still gets its first answer: one write at a time, each whole (a file
    renamed into place), so concurrent requests never leave an older state on disk."""
    saving = asyncio.Lock()

    @web.middleware
    async def persist(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            if request.method in ("POST", "DELETE"):
                async with saving:
                    state = (dict(store), _REPLAYED)
                    data = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
                    await asyncio.to_thread(_replace, path, data)

    return persist


def _replace(path: Path, data: bytes) -> None:
    partial = path.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(path)


def _load(path: Path) -> None:
    saved = pickle.loads(path.read_bytes())
    objects, replayed = saved if isinstance(saved, tuple) else (saved, {})
    store.clear()
    store.update(objects)
    _REPLAYED.clear()
    _REPLAYED.update(replayed)


def build_app(store_path: Path | None = None) -> web.Application:
    """localstripe's app (one per process) with our middlewares in place of its /tmp one.
    Its store also saves itself to /tmp on every change, secrets and all: not here."""
    store.dump_to_disk = lambda: None
    app: web.Application = server.app
    middlewares = [m for m in app.middlewares if m is not server.save_store_middleware]
    middlewares.insert(0, idempotency)
    middlewares.insert(0, browser_payments)
    if store_path is not None:
        if store_path.exists():
            _load(store_path)
        middlewares.insert(0, _persisting(store_path))  # outermost: after the replay's record
    app.middlewares[:] = middlewares
    return app


async def serve(port: int, store_path: Path | None = None) -> web.AppRunner:
    runner = web.AppRunner(build_app(store_path), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--store", type=Path, default=None)
    args = parser.parse_args()

    async def forever() -> None:
        await serve(args.port, args.store)
        await asyncio.Event().wait()

    asyncio.run(forever())


if __name__ == "__main__":
    main()
