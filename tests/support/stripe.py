"""Stripe in tests: the local stand-in, a stripe HTTP client that records what we send,
webhook payloads signed exactly as Stripe signs them, and a live stack whose stand-in
sends its own webhooks to the API over HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import requests
import stripe
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from activities.stripe_payments import StripePayments
from devstack import simulate_payment
from devstack.localstripe import serve
from settings import Settings
from tests.support.live import live_app, served

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


@dataclass
class Stack:
    app: FastAPI
    stripe_base: str
    recorded: RecordingHTTPClient
    customer: stripe.StripeClient
    store: Path  # where the stand-in keeps its state
    api_base: str = ""  # the API over HTTP, as the stand-in (and a browser) reach it


@dataclass(frozen=True)
class StandIn:
    """The suite's one localstripe (its app is a process-wide singleton)."""

    base: str
    store: Path  # where it keeps its state


@asynccontextmanager
async def stripe_stand_in(store: Path) -> AsyncIterator[StandIn]:
    port = free_port()
    runner = await serve(port, store)
    try:
        yield StandIn(f"http://127.0.0.1:{port}", store)
    finally:
        await runner.cleanup()


@asynccontextmanager
async def stripe_stack(
    settings: Settings,
    server: WorkflowEnvironment,
    stand_in: StandIn,
    task_queue: str,
    cards: Callable[[stripe.StripeClient], StripePayments] = StripePayments,
) -> AsyncIterator[Stack]:
    """The API and its workers with `cards` talking to the stand-in, which is told to
    send its webhooks to this API (served over HTTP for it)."""
    base, recorded = stand_in.base, RecordingHTTPClient()
    configured = settings.model_copy(
        update={"stripe_webhook_secret": SecretStr(f"whsec_old,{WEBHOOK_SECRET}")}
    )
    async with (
        live_app(configured, server, task_queue, cards=cards(stripe_client(base, recorded))) as app,
        served(app) as api_base,
        httpx.AsyncClient(base_url=base) as config,
    ):
        registered = await config.post(
            "/_config/webhooks/holdfast",
            data={"url": f"{api_base}/v1/webhooks/stripe", "secret": WEBHOOK_SECRET},
        )
        registered.raise_for_status()
        yield Stack(app, base, recorded, stripe_client(base), stand_in.store, api_base)
