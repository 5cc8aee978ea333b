"""Services: what can be booked, for how long, needing which resources, at what price."""

import uuid
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import AnyKey, Db, Paging, TenantId
from api.errors import ApiError, not_found, refused_by
from api.pagination import Page, fetch_page
from api.slots import find_service
from api.types import Currency, JsonBool, JsonInt, Name, Tags, TimeZoneName
from contract import SeriesPayment
from db.models import Resource, Service, Tenant
from db.repository import apply_changes, missing_owned, owned, save

router = APIRouter(prefix="/v1/services", tags=["services"])
Minutes = Annotated[JsonInt, Field(ge=0, le=1440)]


class Money(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: JsonInt = Field(ge=1, le=100_000_000, description="Minor units (cents).")
    currency: Currency


class RequirementIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["staff", "room", "asset"]
    tags_any: Tags = []
    tags_all: Tags = []
    resource_ids: Annotated[list[uuid.UUID], Field(max_length=500)] = []


class Cancellation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    free_until_hours_before: JsonInt = Field(default=24, ge=0, le=8760)
    late_refund_percent: JsonInt = Field(default=0, ge=0, le=100)


def _reminders(values: list[int]) -> list[int]:
    return sorted(set(values), reverse=True)


Reminders = Annotated[
    list[Annotated[JsonInt, Field(ge=1, le=525_600)]],
    Field(max_length=10),
    AfterValidator(_reminders),
]
Requirements = Annotated[list[RequirementIn], Field(min_length=1, max_length=10)]
OfferMinutes = Annotated[
    JsonInt,
    Field(
        ge=1,
        le=10080,
        description="How long a waitlist offer holds its slot before it goes to the next "
        "in line (docs/waitlist.md).",
    ),
]
SeriesPaid = Annotated[
    SeriesPayment,
    Field(
        description="How a priced series is paid: `per_occurrence`, each occurrence as a "
        "booking, or `per_series`, one payment for all (docs/series.md#payment).",
    ),
]
Seats = Annotated[
    JsonInt,
    Field(
        ge=1,
        le=1000,
        description="Seats each booking takes on every resource of capacity > 1 "
        "(docs/capacity.md).",
    ),
]


class ServiceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    name: Name
    timezone: TimeZoneName
    duration_minutes: JsonInt = Field(ge=1, le=1440)
    buffer_before_minutes: Minutes = 0
    buffer_after_minutes: Minutes = 0
    slot_interval_minutes: JsonInt = Field(default=15, ge=1, le=1440)
    min_notice_minutes: JsonInt = Field(default=0, ge=0, le=525_600)
    max_advance_days: JsonInt = Field(default=90, ge=1, le=730)
    price: Money | None = None
    hold_seconds: JsonInt = Field(default=300, ge=5, le=86400)
    retry_declined_payment: JsonBool = Field(
        default=False,
        description="A declined card leaves the booking held, so the customer can try "
        "another until the hold expires; otherwise the booking fails at once.",
    )
    requirements: Requirements
    cancellation: Cancellation = Cancellation()
    reminders_minutes_before: Reminders = []
    seats_per_booking: Seats = 1
    offer_minutes: OfferMinutes = 15
    series_payment: SeriesPaid = SeriesPayment.PER_OCCURRENCE


class ServicePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    timezone: TimeZoneName | None = None
    duration_minutes: JsonInt | None = Field(default=None, ge=1, le=1440)
    buffer_before_minutes: Minutes | None = None
    buffer_after_minutes: Minutes | None = None
    slot_interval_minutes: JsonInt | None = Field(default=None, ge=1, le=1440)
    min_notice_minutes: JsonInt | None = Field(default=None, ge=0, le=525_600)
    max_advance_days: JsonInt | None = Field(default=None, ge=1, le=730)
    price: Money | None = None
    hold_seconds: JsonInt | None = Field(default=None, ge=5, le=86400)
    retry_declined_payment: JsonBool | None = None
    requirements: Requirements | None = None
    cancellation: Cancellation | None = None
    reminders_minutes_before: Reminders | None = None
    seats_per_booking: Seats | None = None
    offer_minutes: OfferMinutes | None = None
    series_payment: SeriesPaid | None = None
    active: JsonBool | None = None


class ServiceOut(BaseModel):
    id: uuid.UUID
    code: str
    name: str
    timezone: str
    duration_minutes: int
    buffer_before_minutes: int
    buffer_after_minutes: int
    slot_interval_minutes: int
    min_notice_minutes: int
    max_advance_days: int
    price: Money | None
    hold_seconds: int
    retry_declined_payment: bool
    requirements: list[RequirementIn]
    cancellation: Cancellation
    reminders_minutes_before: list[int]
    seats_per_booking: int
    offer_minutes: int
    series_payment: SeriesPayment
    active: bool
    created_at: datetime
    updated_at: datetime


def _price(row: Service) -> Money | None:
    if row.price_amount is None or row.price_currency is None:
        return None
    # As stored, not checked again: a code refused today may have been taken before.
    return Money.model_construct(amount=row.price_amount, currency=row.price_currency)


def service_out(row: Service) -> ServiceOut:
    price = _price(row)
    return ServiceOut(
        id=row.id,
        code=row.code,
        name=row.name,
        timezone=row.timezone,
        duration_minutes=row.duration_minutes,
        buffer_before_minutes=row.buffer_before_minutes,
        buffer_after_minutes=row.buffer_after_minutes,
        slot_interval_minutes=row.slot_interval_minutes,
        min_notice_minutes=row.min_notice_minutes,
        max_advance_days=row.max_advance_days,
        price=price,
        hold_seconds=row.hold_seconds,
        retry_declined_payment=row.retry_declined_payment,
        requirements=[RequirementIn.model_validate(r) for r in row.requirements],
        cancellation=Cancellation.model_validate(row.cancellation),
        reminders_minutes_before=list(row.reminders_minutes_before),
        seats_per_booking=row.seats_per_booking,
        offer_minutes=row.offer_minutes,
        series_payment=SeriesPayment(row.series_payment),
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _columns(body: ServiceIn | ServicePatch) -> dict[str, Any]:
    """Fields sent, as columns: `price` splits in two and `null` clears it (a free service)."""
    data = body.model_dump(mode="json", exclude_unset=isinstance(body, ServicePatch))
    if "price" in data:
        price = data.pop("price")
        data["price_amount"] = price and price["amount"]
        data["price_currency"] = price and price["currency"]
    return {k: v for k, v in data.items() if v is not None or k.startswith("price_")}


async def _check_requirements(
    db: AsyncSession, tenant: uuid.UUID, requirements: list[RequirementIn]
) -> None:
    wanted = list({rid for req in requirements for rid in req.resource_ids})
    missing = sorted(str(rid) for rid in await missing_owned(db, Resource, tenant, wanted))
    if missing:
        raise not_found("resource", {"field": "requirements.resource_ids", "ids": missing})


def _unique_code(code: str | None) -> AbstractContextManager[None]:
    return refused_by(
        "uq_services_tenant_id_code",
        ApiError(409, "service_code_taken", f"a service with code {code!r} exists"),
    )


@router.post("", status_code=201, summary="Create a service")
async def create(body: ServiceIn, tenant: TenantId, db: Db) -> ServiceOut:
    await _check_requirements(db, tenant, body.requirements)
    service = Service(tenant_id=tenant, **_columns(body))
    db.add(service)
    with _unique_code(body.code):
        await db.commit()
    await db.refresh(service)
    return service_out(service)


@router.get("", summary="List services")
async def list_services(
    tenant: TenantId,
    db: Db,
    page: Paging,
    active: bool | None = None,
) -> Page[ServiceOut]:
    stmt = owned(Service, tenant)
    if active is not None:
        stmt = stmt.where(Service.active.is_(active))
    return await fetch_page(db, stmt, Service.id, page, service_out)


class PublicServiceOut(BaseModel):
    """What a booking page shows of a bookable service: no resources, no policies."""

    id: uuid.UUID
    code: str
    name: str
    timezone: str
    duration_minutes: int
    price: Money | None
    tenant_slug: str | None = Field(
        description="The tenant's slug: a booking page checks its address names this tenant."
    )


@router.get(
    "/{service}",
    summary="Get a service by id or code",
    description="A publishable key reads a bookable service's public face only (name, "
    "duration, price, its tenant's slug), for a booking page (docs/booking-page.md); an "
    "inactive service is 404 to it.",
)
async def get(service: str, who: AnyKey, db: Db) -> ServiceOut | PublicServiceOut:
    assert who.tenant_id is not None
    row = await find_service(db, who.tenant_id, service)
    if not who.publishable:
        return service_out(row)
    if not row.active:
        raise not_found("service")
    tenant = await db.get(Tenant, who.tenant_id)
    return PublicServiceOut(
        id=row.id,
        code=row.code,
        name=row.name,
        timezone=row.timezone,
        duration_minutes=row.duration_minutes,
        price=_price(row),
        tenant_slug=tenant.slug if tenant else None,
    )


@router.patch("/{service}", summary="Update a service (only the fields sent)")
async def patch(service: str, body: ServicePatch, tenant: TenantId, db: Db) -> ServiceOut:
    row = await find_service(db, tenant, service)
    if body.requirements is not None:
        await _check_requirements(db, tenant, body.requirements)
    apply_changes(row, _columns(body))
    return service_out(await save(db, row))
