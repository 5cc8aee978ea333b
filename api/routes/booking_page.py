"""The reference booking page (docs/booking-page.md): static files the API process serves
at `/book/{tenant slug}/{service code}`. The page itself talks only to the public API,
with a publishable key; all the server adds is where Stripe.js comes from.

Its Content-Security-Policy allows scripts and connections to this origin and to Stripe.js'
own, and nothing else: a booking page takes card details, so nothing injected may run."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from api.deps import Ctx
from api.errors import not_found
from db.models import Tenant
from db.tenancy import across_tenants
from settings import Settings

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent.parent / "static" / "book"
ASSETS = {"book.js": "text/javascript; charset=utf-8", "book.css": "text/css; charset=utf-8"}
# The files change only with a deploy; a short cache keeps a reload quick.
CACHED = "public, max-age=300"


@cache
def _file(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _policy(settings: Settings) -> str:
    stripe = _origin(settings.stripe_js_url)
    return (
        "default-src 'none'; "
        f"script-src 'self' {stripe}; connect-src 'self' {stripe}; frame-src {stripe}; "
        "style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@router.get("/book/config.json")
async def config(ctx: Ctx) -> JSONResponse:
    """What the page cannot know by itself: where Stripe.js is, and Stripe's publishable
    key (neither is a secret)."""
    settings = ctx.settings
    body: dict[str, Any] = {
        "stripe_js": settings.stripe_js_url,
        "stripe_publishable_key": settings.stripe_publishable_key,
    }
    return JSONResponse(body, headers={"Cache-Control": CACHED})


@router.get("/book/assets/{name}")
async def asset(name: str) -> Response:
    if name not in ASSETS:
        raise not_found("file")
    return Response(_file(name), media_type=ASSETS[name], headers={"Cache-Control": CACHED})


@router.get("/book/{slug}/{service_code}")
async def page(slug: str, service_code: str, ctx: Ctx) -> Response:
    """The same page for every tenant and service: it reads both from its address. An
    unknown slug is a 404 here; an unknown service, the page says so itself."""
    async with ctx.sessions(across_tenants("booking-page")) as db:
        known = await db.scalar(select(Tenant.id).where(Tenant.slug == slug))
    if known is None:
        raise not_found("booking page")
    return Response(
        _file("index.html"),
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": _policy(ctx.settings), "Cache-Control": CACHED},
    )
