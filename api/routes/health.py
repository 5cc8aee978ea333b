"""Liveness and readiness probes (docs/api.md#health-readiness-and-metrics).

`/healthz` asks nothing of anyone: a process that answers is alive, and restarting it
cures no outage elsewhere. `/readyz` says whether this API can serve bookings: PostgreSQL
and Temporal reachable, and a worker polling each of the task queues the bookings need
(without one, every booking waits on a workflow nobody runs). Each check has its own
bound and all run at once, so the probe answers within PROBE_SECONDS whatever is down."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from temporalio.api.enums.v1 import TaskQueueType

from api.booking_gateway import worker_polls
from api.context import AppContext
from api.deps import Ctx
from api.errors import error_response
from contract import delivery_task_queue

router = APIRouter(tags=["health"])

PROBE_SECONDS = 2.0
_TASK_TYPES = {
    "workflow": TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    "activity": TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
}


class NotReady(Exception):
    """A check that reached its part and found it wanting; the message says how."""


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _database(ctx: AppContext) -> None:
    async with ctx.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _temporal(ctx: AppContext) -> None:
    client = await ctx.temporal()
    if not await client.service_client.check_health(timeout=timedelta(seconds=PROBE_SECONDS)):
        raise NotReady("Temporal's workflow service is not serving")


async def _workers(ctx: AppContext) -> None:
    """Both task queues, for both kinds of task: the booking queue's worker runs the
    saga, the delivery queue's its messages and calendar writes (worker.py)."""
    client = await ctx.temporal()
    booking_queue = ctx.settings.temporal_task_queue
    wanted = [
        (queue, kind)
        for queue in (booking_queue, delivery_task_queue(booking_queue))
        for kind in _TASK_TYPES
    ]
    polled = await asyncio.gather(
        *(worker_polls(client, queue, _TASK_TYPES[kind], PROBE_SECONDS) for queue, kind in wanted)
    )
    missing = [
        f"{q} ({kind} tasks)" for (q, kind), ok in zip(wanted, polled, strict=True) if not ok
    ]
    if missing:
        raise NotReady(f"no worker polls {', '.join(missing)}")


async def _check(probe: Callable[[AppContext], Awaitable[None]], ctx: AppContext) -> str:
    try:
        await asyncio.wait_for(probe(ctx), PROBE_SECONDS)
    except NotReady as exc:
        return f"unavailable: {exc}"
    except Exception as exc:  # any failure means "not ready"; its kind is reported
        return f"unavailable: {type(exc).__name__}"
    return "ok"


CHECKS = {"database": _database, "temporal": _temporal, "workers": _workers}


@router.get(
    "/readyz",
    summary="Database, Temporal and workers are there",
    responses={503: {"description": "not_ready: `details` names what is missing."}},
)
async def readyz(ctx: Ctx) -> JSONResponse:
    results = await asyncio.gather(*(_check(probe, ctx) for probe in CHECKS.values()))
    checks = dict(zip(CHECKS, results, strict=True))
    missing = [name for name, result in checks.items() if result != "ok"]
    if not missing:
        return JSONResponse({"status": "ready", "checks": checks})
    return error_response(503, "not_ready", f"not ready: {', '.join(missing)}", checks)
