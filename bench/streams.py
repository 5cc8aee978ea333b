"""What open live-availability streams cost the API (docs/capacity.md#live-availability):
its CPU at idle with and without 100 streams, and a free booking's POST p50 with the 100
streams open, each told of every booking (they all watch the booked range)."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from bench.cpu import cpu_seconds

STREAMS, IDLE_SECONDS, BOOKINGS = 100, 10.0, 40
API = "API"


@dataclass
class StreamFigures:
    idle_cpu_percent: float  # of one core, the API with no stream open
    streams_cpu_percent: float  # the same with STREAMS open
    post_p50_ms: float  # a free booking's POST with STREAMS open, each hearing it
    events: int  # slots.changed events the streams received meanwhile


async def _idle_cpu_percent(pgdata: Path) -> float:
    before = cpu_seconds(str(pgdata)).get(API, 0.0)
    await asyncio.sleep(IDLE_SECONDS)
    return (cpu_seconds(str(pgdata)).get(API, 0.0) - before) / IDLE_SECONDS * 100


async def stream_costs(
    api: httpx.AsyncClient, pgdata: Path, book: Callable[[], Awaitable[None]]
) -> StreamFigures:
    idle = await _idle_cpu_percent(pgdata)
    start = datetime.now(UTC)
    params = {
        "service": "free",
        "range_start": start.isoformat(),
        "range_end": (start + timedelta(days=60)).isoformat(),
    }
    events = 0
    opened = asyncio.Semaphore(0)

    async def listen(client: httpx.AsyncClient) -> None:
        nonlocal events
        async with client.stream("GET", "/v1/availability/stream", params=params) as answer:
            answer.raise_for_status()
            opened.release()
            async for line in answer.aiter_lines():
                events += line.startswith("event: slots.changed")

    async with AsyncExitStack() as stack:
        # One connection per stream, as browsers hold them.
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=api.base_url, headers=api.headers, timeout=None)
            )
            for _ in range(STREAMS)
        ]
        listeners = [asyncio.create_task(listen(c)) for c in clients]
        for _ in range(STREAMS):
            await asyncio.wait_for(opened.acquire(), 30)
        await asyncio.sleep(2)  # every stream's listener is up
        streaming = await _idle_cpu_percent(pgdata)
        samples = []
        for _ in range(BOOKINGS):
            began = time.perf_counter()
            await book()
            samples.append((time.perf_counter() - began) * 1000)
        await asyncio.sleep(1)  # the last booking's events arrive
        for listener in listeners:
            listener.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
    return StreamFigures(idle, streaming, statistics.median(samples), events)


def show(figures: StreamFigures, free_p50_ms: float) -> None:
    extra = figures.streams_cpu_percent - figures.idle_cpu_percent
    print(f"Live availability: {STREAMS} open streams on the API, {IDLE_SECONDS:g} s idle each")
    print(
        f"  API CPU at idle: {figures.idle_cpu_percent:5.2f}% of a core without streams, "
        f"{figures.streams_cpu_percent:5.2f}% with: {extra:+.2f} points   (target < 5)"
    )
    print(
        f"  free booking POST p50 with the streams open: {figures.post_p50_ms:7.1f} ms, "
        f"without {free_p50_ms:7.1f} ms: {figures.post_p50_ms / free_p50_ms:.2f}x   "
        f"({figures.events} events heard for {BOOKINGS} bookings)"
    )
