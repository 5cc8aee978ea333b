"""Stripe in tests: the local stand-in, a stripe HTTP client that records what we send,
and webhook payloads signed exactly as Stripe signs them."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

import httpx
import requests
import stripe

from devstack import simulate_payment

WEBHOOK_SECRET = "whsec_holdfast_tests"
API_KEY = "sk_test_holdfast"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RecordingHTTPClient(stripe.RequestsClient):
    """The stripe library's own HTTP client, noting each POST's path and idempotency key
    (and ignoring proxy settings from the environment: the stand-in is local)."""

    def __init__(self) -> None:
        session = requests.Session()
        session.trust_env = False
        super().__init__(session=session)
        self.posts: list[tuple[str, str | None]] = []

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        post_data: Any = None,
        *,
        _usage: list[str] | None = None,
    ) -> Any:  # (stripe types this str, RequestsClient returns bytes)
        if method.lower() == "post":
            self.posts.append((urlparse(url).path, (headers or {}).get("Idempotency-Key")))
        return super().request(method, url, headers, post_data)


def stripe_client(base: str, http_client: stripe.HTTPClient | None = None) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": base},
        http_client=http_client or RecordingHTTPClient(),
        max_network_retries=0,
    )


async def pay(customer: stripe.StripeClient, intent_id: str, card: str) -> None:
    await asyncio.to_thread(simulate_payment.pay, customer, intent_id, card)


def sign(body: bytes, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    return simulate_payment.sign(body, secret, at)


async def deliver(
    client: httpx.AsyncClient, event: dict[str, Any], **signing: Any
) -> httpx.Response:
    body = json.dumps(event).encode()
    return await client.post(
        "/v1/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": sign(body, **signing), "Content-Type": "application/json"},
    )
