"""The operations console (docs/console.md): a static page the API process serves at
`/console`. It signs in with a tenant's secret key, kept in the tab's session storage,
and reads everything it shows from the same API the tenant's own code uses."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.deps import Ctx
from api.static_pages import CACHED, StaticPage

router = APIRouter(include_in_schema=False)
PAGE = StaticPage("console", ("console.js", "console.css"))


@router.get("/console")
async def page() -> Response:
    return PAGE.html()


@router.get("/console/assets/{name}")
async def asset(name: str) -> Response:
    return PAGE.asset(name)


@router.get("/console/config.json")
async def config(ctx: Ctx) -> JSONResponse:
    """Where a booking's workflow is shown: the Temporal UI and its namespace."""
    settings = ctx.settings
    body: dict[str, Any] = {
        "temporal_ui": settings.temporal_ui_url,
        "namespace": settings.temporal_namespace,
    }
    return JSONResponse(body, headers={"Cache-Control": CACHED})
