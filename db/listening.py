"""Waiting on a PostgreSQL LISTEN connection, as the worker's dispatchers do (dispatch.py,
waitlist_dispatch.py) and the API's live availability (api/live_availability.py)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg

# Sent by every transaction that takes or frees time (migration 0013).
SLOTS_CHANNEL = "holdfast_slots"


async def heard(
    listener: psycopg.AsyncConnection[Any], stop: asyncio.Event, seconds: float, linger: float = 0
) -> list[str]:
    """The payloads of the NOTIFYs heard within `seconds` (the first, and those arriving
    within `linger` after it), or none when `seconds` or `stop` came first."""
    payloads: list[str] = []
    waiter = asyncio.ensure_future(_collect(listener, payloads, seconds, linger))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (waiter, stopper):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiter  # a lost connection raises here, for the caller to reconnect
    return payloads


async def _collect(
    listener: psycopg.AsyncConnection[Any], into: list[str], seconds: float, linger: float
) -> None:
    async for notify in listener.notifies(timeout=seconds, stop_after=1):
        into.append(notify.payload)
    if into and linger:
        async for notify in listener.notifies(timeout=linger):
            into.append(notify.payload)


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
