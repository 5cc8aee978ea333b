"""Liveness and readiness probes."""

import asyncio

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.context import AppContext
from api.deps import Ctx
from api.errors import error_response

router = APIRouter(tags=["health"])
_PROBE_SECONDS = 2.0


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _database(ctx: AppContext) -> None:
    async with ctx.engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _temporal(ctx: AppContext) -> None:
    client = await ctx.temporal()
    await client.service_client.check_health()


@router.get(
    "/readyz",
    summary="Database and Temporal are reachable",
    responses={503: {"description": "A dependency is unreachable."}},
)
async def readyz(ctx: Ctx) -> JSONResponse:
    checks: dict[str, str] = {}
    for name, probe in (("database", _database), ("temporal", _temporal)):
        try:
            await asyncio.wait_for(probe(ctx), _PROBE_SECONDS)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            checks[name] = f"unavailable: {type(exc).__name__}"
    if all(v == "ok" for v in checks.values()):
        return JSONResponse({"status": "ready", "checks": checks})
    return error_response(503, "not_ready", "a dependency is unreachable", checks)
