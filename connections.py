"""The one place that builds the database engine and the Temporal client (with its
data converter, which seals every payload)."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import stripe
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DataConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
)

from db.audit import connection_options
from encryption import Keyring, PayloadEncryption
from settings import Settings, to_psycopg_url
from tracing import temporal_interceptors


@functools.lru_cache(maxsize=1024)
def _adapter(type_hint: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_hint)


class _SharedAdapterJSON(PydanticJSONPlainPayloadConverter):
    """Pydantic JSON whose type adapters are shared by every converter instance. The SDK
    builds fresh converters for each workflow activation (and inside each workflow's
    sandbox), so a per-instance cache rebuilt the input's adapter, about 1 ms of schema
    generation, on every workflow task."""

    def from_payload(self, payload: Payload, type_hint: type | None = None) -> Any:
        hint = Any if type_hint is None else type_hint
        try:
            hash(hint)
        except TypeError:  # an unhashable hint: its adapter is built each time
            return TypeAdapter(hint).validate_json(payload.data)
        return _adapter(hint).validate_json(payload.data)


class PayloadConverter(CompositePayloadConverter):
    """The default converters, with pydantic JSON in place of plain JSON."""

    def __init__(self) -> None:
        super().__init__(
            *(
                _SharedAdapterJSON() if isinstance(c, JSONPlainPayloadConverter) else c
                for c in DefaultPayloadConverter.default_encoding_payload_converters
            )
        )


# Workflow inputs and results carry timezone-aware datetimes; pydantic keeps them typed on
# both sides.
DATA_CONVERTER = DataConverter(payload_converter_class=PayloadConverter)


def data_converter(settings: Settings) -> DataConverter:
    """DATA_CONVERTER with every payload sealed under ENCRYPTION_KEYS
    (docs/security.md#temporal-payloads): customers' names and emails never lie in clear
    in Temporal. Without keys (a deployment not yet given any) payloads stay plain."""
    keys = settings.encryption_keys.get_secret_value()
    if not keys:
        return DATA_CONVERTER
    return dataclasses.replace(DATA_CONVERTER, payload_codec=PayloadEncryption(Keyring.parse(keys)))


# How long a new connection to PostgreSQL may take, and how long a request waits for a
# pooled one, before it fails (a 503 `database_unavailable` from the API, a retried step
# in the worker; docs/api.md#errors). Without a connect timeout a database that accepts
# the socket and never answers holds each request for libpq's two minutes. 2 s is libpq's
# least (it applies to each address a host name resolves to). A database that refuses
# frees each connection at once, so the pool's wait only bounds overload: 200 bookings at
# once on a busy 2-CPU test machine wait seconds for a connection and must not be refused
# for it (tests/e2e/test_bookings.py).
DATABASE_CONNECT_SECONDS = 2
DATABASE_POOL_SECONDS = 10.0


def create_engine(settings: Settings, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """An engine of the application role: its sessions see the rows of the tenancy they
    act for (db/tenancy.py). `pre_ping` tests each connection as it leaves the pool:
    one more round trip, so a stale connection (after a database restart) never fails an
    API request. The worker goes without: a step that meets one fails and Temporal retries
    it."""
    return create_async_engine(
        settings.app_database_url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_timeout=DATABASE_POOL_SECONDS,
        pool_pre_ping=pre_ping,
        # Errors never quote their parameters: they hold customers' data and secrets, and
        # an activity's error goes into its workflow's history.
        hide_parameters=True,
        # Times leave the database in UTC whatever the server's own zone is, and the
        # audit trigger signs each entry (docs/security.md#audit-log).
        connect_args={
            "options": connection_options(settings),
            "connect_timeout": DATABASE_CONNECT_SECONDS,
        },
    )


def libpq_url(database_url: str) -> str:
    """The URL as libpq (a plain psycopg connection, the dispatcher's LISTEN) reads it."""
    return to_psycopg_url(database_url).replace("postgresql+psycopg://", "postgresql://", 1)


def create_stripe(settings: Settings) -> stripe.StripeClient | None:
    """None without a key: priced services are then paid at the venue."""
    key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else ""
    if not key:
        return None
    return stripe.StripeClient(
        key,
        base_addresses={"api": settings.stripe_api_base} if settings.stripe_api_base else None,
        max_network_retries=0,  # the activity retries, with the same idempotency key
    )


# How long the API waits for a connection to Temporal (api/context.py), its wait for
# another request's connect included. A reachable server answers well within it; one that
# accepts the socket and never answers would otherwise hold the request for as long as
# the socket allows (docs/api.md#errors).
TEMPORAL_CONNECT_SECONDS = 2.0


class TemporalUnreachable(RuntimeError):
    """No connection to Temporal: refused, failed, or not made in time. A RuntimeError,
    as the SDK's own failed connect is, so callers that caught that still catch this."""


async def connect_temporal(settings: Settings) -> Client:
    try:
        return await Client.connect(
            settings.temporal_address,
            namespace=settings.temporal_namespace,
            data_converter=data_converter(settings),
            # Request ids into workflows and activities, and spans if configured
            # (tracing.py); the workers on this client use them too.
            interceptors=temporal_interceptors(settings),
        )
    except RuntimeError as err:  # the SDK's "Failed client connect: ..."
        raise TemporalUnreachable(str(err)) from err
