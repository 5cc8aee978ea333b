"""The one way tests wait for something that happens elsewhere (a worker, a webhook)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import uvicorn

T = TypeVar("T")


async def eventually(
    probe: Callable[[], Awaitable[T]],
    until: Callable[[T], bool],
    *,
    seconds: float = 10,
    every: float = 0.05,
) -> T:
    """Ask `probe` until its answer satisfies `until`, and return that answer; after
    `seconds`, fail showing the last answer."""
    deadline = time.monotonic() + seconds
    while True:
        answer = await probe()
        if until(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"still not there after {seconds} s: {answer!r}")
        await asyncio.sleep(every)


async def until_serving(server: uvicorn.Server) -> None:
    """uvicorn offers no event to wait on for its start."""

    async def started() -> bool:
        return bool(server.started)

    await eventually(started, bool, every=0.02)
