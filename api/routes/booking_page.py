"""The reference booking page (docs/booking-page.md): static files the API process serves
at `/book/{tenant slug}/{service code}`. The page itself talks only to the public API,
with a publishable key; all the server adds is where Stripe.js comes from. Its policy
lets scripts and connections reach this origin and Stripe.js' own only: a booking page
takes card details, so nothing injected may run."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from api.deps import Ctx
from api.errors import not_found
from api.static_pages import CACHED, StaticPage
from db.models import Tenant
from db.tenancy import across_tenants

router = APIRouter(include_in_schema=False)
PAGE = StaticPage("book", ("book.js", "book.css"))


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
    return PAGE.asset(name)


@router.get("/book/{slug}/{service_code}")
async def page(slug: str, service_code: str, ctx: Ctx) -> Response:
    """The same page for every tenant and service: it reads both from its address. An
    unknown slug is a 404 here; an unknown service, the page says so itself."""
    async with ctx.sessions(across_tenants("booking-page")) as db:
        known = await db.scalar(select(Tenant.id).where(Tenant.slug == slug))
    if known is None:
        raise not_found("booking page")
    return PAGE.html(*_stripe_origins(ctx.settings.stripe_js_url))


# What Stripe.js itself loads and calls (Stripe's documented Content-Security-Policy):
# its scripts and frames, its API, and the 3-D Secure pages it frames.
STRIPE_ORIGINS = (
    "https://js.stripe.com",
    "https://*.js.stripe.com",
    "https://api.stripe.com",
    "https://hooks.stripe.com",
)


def _stripe_origins(stripe_js_url: str) -> tuple[str, ...]:
    """Stripe's own origins for the real Stripe.js; a stand-in's one origin otherwise."""
    parts = urlsplit(stripe_js_url)
    if parts.netloc == "js.stripe.com":
        return STRIPE_ORIGINS
    return (f"{parts.scheme}://{parts.netloc}",)
