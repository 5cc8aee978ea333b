"""Save workflow histories for the replay test: `HOLDFAST_RECORD_HISTORIES=1 make test`
rewrites `tests/histories/*.json` from the scenarios that call `record`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle

HISTORIES = Path(__file__).parent.parent / "histories"


async def record(handle: WorkflowHandle[Any, Any], name: str) -> None:
    if not os.environ.get("HOLDFAST_RECORD_HISTORIES"):
        return
    history = await handle.fetch_history()
    await asyncio.to_thread((HISTORIES / f"{name}.json").write_text, history.to_json())
