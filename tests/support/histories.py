"""Save workflow histories for the replay test: `HOLDFAST_RECORD_HISTORIES=1 make test`
writes `tests/histories/<release>/*.json` from the scenarios that call `record`, for the
release in pyproject.toml. Each release keeps its own: bookings started on it may still
be running when the next one ships (docs/lifecycle.md#versioning)."""

from __future__ import annotations

import asyncio
import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

HISTORIES = Path(__file__).parent.parent / "histories"
RELEASE = version("holdfast")


async def record(handle: WorkflowHandle[Any, Any], name: str) -> None:
    if not os.environ.get("HOLDFAST_RECORD_HISTORIES"):
        return
    history = await handle.fetch_history()
    folder = HISTORIES / RELEASE
    await asyncio.to_thread(folder.mkdir, exist_ok=True)
    await asyncio.to_thread((folder / f"{name}.json").write_text, history.to_json())
