"""The one place that builds the database engine and the Temporal client."""

from __future__ import annotations

import stripe
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from settings import Settings

# Workflow inputs and results carry timezone-aware datetimes; the pydantic converter keeps
# them typed on both sides.
DATA_CONVERTER = pydantic_data_converter


def create_engine(settings: Settings, *, pool_size: int = 10, pre_ping: bool = True) -> AsyncEngine:
    """`pre_ping` tests each connection as it leaves the pool: one more round trip, so a
    stale connection (after a database restart) never fails an API request. The worker
    goes without: a step that meets one fails and Temporal retries it."""
    return create_async_engine(
        settings.async_database_url,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=pre_ping,
    )


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


async def connect_temporal(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=DATA_CONVERTER,
    )
