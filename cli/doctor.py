"""`holdfast doctor`: the invariant check (invariants.py) on a live database and its
Temporal, as the operator (docs/operations.md#invariants). Exit 0: every invariant holds;
1: something is broken (each finding on a line); 2: it could not check."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Annotated

import typer

from cli.common import operator_sessions, temporal
from cli.stack import stack_settings
from invariants import Report, check


def doctor(
    tenant: Annotated[
        uuid.UUID | None, typer.Option(help="Check one tenant only (default: all).")
    ] = None,
    settle: Annotated[
        int, typer.Option(help="Seconds a change may take before it counts as broken.")
    ] = 30,
) -> None:
    """Check Holdfast's invariants on the live system."""
    settings = stack_settings()

    async def run() -> Report:
        async with operator_sessions(settings) as sessions:
            client = await temporal(settings)
            return await check(sessions, client, tenant_id=tenant, settle=timedelta(seconds=settle))

    report = asyncio.run(run())
    for line in report.lines():
        print(line)
    raise typer.Exit(0 if report.ok else 1)
