"""The demo tenant `make run` seeds: a small physiotherapy and dermatology clinic."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from connections import create_engine
from contract import ApiKeyKind
from db.models import ApiKey, Location, Resource, Service, Tenant
from db.sessions import Sessions
from db.tenancy import across_tenants
from db.tenants import create_tenant, hash_key, issue_api_key
from settings import Settings

DEMO_TENANT = "Demo Clinic"
DEMO_SLUG = "demo-clinic"  # its booking page: /book/demo-clinic/<service code>
TZ = "Europe/Berlin"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def _hours(open_: str, close: str, *, saturday: bool = False) -> dict[str, list[list[str]]]:
    week = {d: [[open_, "12:30"], ["13:30", close]] for d in WEEKDAYS}
    if saturday:
        week["sat"] = [["09:00", "13:00"]]
    return week


STAFF: list[dict[str, Any]] = [
    {
        "name": "Dr Ada Weber",
        "tags": ["physio", "senior"],
        "weekly_hours": _hours("08:00", "17:00"),
    },
    {
        "name": "Ben Okafor",
        "tags": ["physio", "massage"],
        "weekly_hours": _hours("10:00", "19:00", saturday=True),
    },
    {"name": "Clara Jensen", "tags": ["massage"], "weekly_hours": _hours("09:00", "18:00")},
    {
        "name": "Dr Dana Roth",
        "tags": ["dermatology", "laser"],
        "weekly_hours": _hours("08:30", "16:30"),
    },
]
ROOMS: list[dict[str, Any]] = [
    {"name": "Treatment Room 1", "tags": ["treatment"]},
    {"name": "Treatment Room 2", "tags": ["treatment"]},
    {"name": "Laser Suite", "tags": ["laser"]},
]
DEVICES: list[dict[str, Any]] = [{"name": "Nd:YAG Laser", "tags": ["laser"]}]
SERVICES: list[dict[str, Any]] = [
    {
        "code": "physio-30",
        "name": "Physiotherapy check-up",
        "duration_minutes": 30,
        "slot_interval_minutes": 15,
        "requirements": [
            {"kind": "staff", "tags_any": ["physio"]},
            {"kind": "room", "tags_all": ["treatment"]},
        ],
    },
    {
        "code": "massage-60",
        "name": "Sports massage",
        "duration_minutes": 60,
        "buffer_after_minutes": 15,
        "slot_interval_minutes": 30,
        "price_amount": 6500,
        "price_currency": "EUR",
        "reminders_minutes_before": [1440, 60],
        "requirements": [
            {"kind": "staff", "tags_any": ["massage"]},
            {"kind": "room", "tags_all": ["treatment"]},
        ],
    },
    {
        "code": "laser-45",
        "name": "Laser skin treatment",
        "duration_minutes": 45,
        "buffer_before_minutes": 10,
        "buffer_after_minutes": 20,
        "slot_interval_minutes": 15,
        "min_notice_minutes": 240,
        "price_amount": 12000,
        "price_currency": "EUR",
        "hold_seconds": 900,
        "reminders_minutes_before": [2880, 120],
        "cancellation": {"free_until_hours_before": 48, "late_refund_percent": 50},
        "requirements": [
            {"kind": "staff", "tags_all": ["laser"]},
            {"kind": "room", "tags_all": ["laser"]},
            {"kind": "asset", "tags_all": ["laser"]},
        ],
    },
]


async def _catalogue(db: AsyncSession, tenant_id: uuid.UUID) -> None:
    location = Location(tenant_id=tenant_id, name="Holdfast Clinic Mitte", timezone=TZ)
    db.add(location)
    await db.flush()
    for kind, items in (("staff", STAFF), ("room", ROOMS), ("asset", DEVICES)):
        for item in items:
            db.add(
                Resource(
                    tenant_id=tenant_id,
                    location_id=location.id,
                    kind=kind,
                    timezone=TZ,
                    **{"weekly_hours": _hours("08:00", "19:00", saturday=True), **item},
                )
            )
    for spec in SERVICES:
        db.add(
            Service(
                tenant_id=tenant_id,
                timezone=TZ,
                max_advance_days=90,
                **{
                    "cancellation": {"free_until_hours_before": 24, "late_refund_percent": 0},
                    **spec,
                },
            )
        )


async def seed_demo(
    settings: Settings, saved_key: str, saved_publishable: str, origin: str
) -> tuple[str, str]:
    """Create the demo tenant once; return working keys for it, a secret one and a
    publishable one for its booking page at `origin`: the saved ones if still valid.
    As the application role, across tenants, as the operator would: its changes enter the
    audit log signed (docs/security.md#audit-log)."""
    engine = create_engine(settings, pool_size=1, pre_ping=False)
    try:
        async with Sessions.on(engine, across_tenants("operator")).transaction() as db:
            tenant_id = await db.scalar(select(Tenant.id).where(Tenant.name == DEMO_TENANT))
            if tenant_id is None:
                tenant, key = await create_tenant(db, DEMO_TENANT)
                tenant.slug = DEMO_SLUG
                tenant_id = tenant.id
                await _catalogue(db, tenant.id)
            else:
                key = await _valid(db, tenant_id, saved_key, ApiKeyKind.SECRET, origin)
                demo = await db.get(Tenant, tenant_id)
                if demo is not None and demo.slug is None:  # seeded before tenants had one
                    demo.slug = DEMO_SLUG
            publishable = await _valid(
                db, tenant_id, saved_publishable, ApiKeyKind.PUBLISHABLE, origin
            )
            await db.commit()
    finally:
        await engine.dispose()
    return key, publishable


async def _valid(
    db: AsyncSession, tenant_id: uuid.UUID, saved: str, kind: ApiKeyKind, origin: str
) -> str:
    """`saved` if it is still a live key of this kind (and origin) for the tenant, else a
    new one."""
    found = await db.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(saved), ApiKey.revoked_at.is_(None))
    )
    if (
        found is not None
        and found.tenant_id == tenant_id
        and found.kind == kind
        and (kind == ApiKeyKind.SECRET or origin in found.allowed_origins)
    ):
        return saved
    origins = [origin] if kind == ApiKeyKind.PUBLISHABLE else []
    _, key = await issue_api_key(db, tenant_id, kind, "demo booking page", origins)
    return key
