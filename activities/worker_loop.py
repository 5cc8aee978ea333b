"""Database work from a sync activity's thread, run on the worker's own event loop and
connection pool. Sync activities hold blocking clients (Stripe, Twilio) on a thread
pool; their short database steps stay async."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class WorkerLoop:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def run(self, step: Coroutine[Any, Any, T], timeout: float = 20) -> T:
        """Blocks this thread until `step` is done on the worker's loop."""
        if _on_loop(self._loop):
            step.close()
            raise RuntimeError("WorkerLoop.run blocks: call it from an activity thread")
        return asyncio.run_coroutine_threadsafe(step, self._loop).result(timeout=timeout)


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # no loop runs in this thread
        return False
