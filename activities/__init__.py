"""Temporal activities: every side effect of a workflow, each idempotent.

`build_activities` gives `worker.py` the callables to register, bound to shared clients.
"""

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine


def build_activities(engine: AsyncEngine) -> Sequence[Callable[..., Any]]:
    del engine  # activities bind the engine once they exist
    return ()
