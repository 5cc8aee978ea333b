"""Resources (staff, rooms, assets) with their working hours, and their time off."""

import uuid
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Db, Paging, TenantId
from api.errors import ApiError, not_found, refused_by
from api.lookup import owned_or_404
from api.pagination import Page, fetch_page
from api.types import (
    DayHoursJson,
    Instant,
    JsonBool,
    JsonInt,
    Name,
    Tag,
    Tags,
    TimeZoneName,
    WeeklyHoursJson,
)
from db.models import Location, Resource, TimeOff
from db.repository import apply_changes, get_owned, owned, save

router = APIRouter(prefix="/v1/resources", tags=["resources"])
Kind = Literal["staff", "room", "asset"]


class DateOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date
    hours: DayHoursJson = Field(description="Opening hours that day; empty means closed.")


def _unique_dates(overrides: list[DateOverride]) -> list[DateOverride]:
    seen = [o.date for o in overrides]
    if len(seen) != len(set(seen)):
        raise ValueError("each date may be overridden once")
    return sorted(overrides, key=lambda o: o.date)


Overrides = Annotated[list[DateOverride], Field(max_length=1000), AfterValidator(_unique_dates)]
Capacity = Annotated[
    JsonInt,
    Field(
        ge=1,
        le=1000,
        description="Bookings it serves at once: a class of 12, a room of 4 desks "
        "(docs/capacity.md).",
    ),
]


class ResourceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Kind
    name: Name
    tags: Tags = []
    location_id: uuid.UUID | None = None
    timezone: TimeZoneName
    weekly_hours: WeeklyHoursJson = {}
    date_overrides: Overrides = []
    capacity: Capacity = 1


class ResourcePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    tags: Tags | None = None
    location_id: uuid.UUID | None = None
    timezone: TimeZoneName | None = None
    weekly_hours: WeeklyHoursJson | None = None
    date_overrides: Overrides | None = None
    capacity: Capacity | None = None
    active: JsonBool | None = None


class ResourceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    kind: Kind
    name: str
    tags: list[str]
    location_id: uuid.UUID | None
    timezone: str
    weekly_hours: dict[str, list[list[str]]]
    date_overrides: list[DateOverride]
    capacity: int
    active: bool
    created_at: datetime
    updated_at: datetime


class TimeOffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Instant
    end: Instant
    reason: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _ordered(self) -> "TimeOffIn":
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class TimeOffOut(BaseModel):
    id: uuid.UUID
    resource_id: uuid.UUID
    start: datetime
    end: datetime
    reason: str
    created_at: datetime


def _stored(body: BaseModel) -> dict[str, Any]:
    """Fields the client sent, as stored; an explicit null only clears `location_id`."""
    data = body.model_dump(mode="json", exclude_unset=isinstance(body, ResourcePatch))
    if data.get("location_id") is not None:
        data["location_id"] = uuid.UUID(data["location_id"])
    return {k: v for k, v in data.items() if v is not None or k == "location_id"}


async def _owned(db: AsyncSession, tenant: uuid.UUID, resource_id: uuid.UUID) -> Resource:
    return await owned_or_404(db, Resource, tenant, resource_id, "resource")


async def _check_location(
    db: AsyncSession, tenant: uuid.UUID, location_id: uuid.UUID | None
) -> None:
    if location_id is not None:
        await owned_or_404(db, Location, tenant, location_id, "location", {"field": "location_id"})


@router.post("", status_code=201, summary="Create a resource")
async def create(body: ResourceIn, tenant: TenantId, db: Db) -> ResourceOut:
    data = _stored(body)
    await _check_location(db, tenant, data.get("location_id"))
    resource = Resource(tenant_id=tenant, **data)
    db.add(resource)
    return ResourceOut.model_validate(await save(db, resource))


@router.get("", summary="List resources")
async def list_resources(
    tenant: TenantId,
    db: Db,
    page: Paging,
    kind: Kind | None = None,
    tag: Annotated[list[Tag] | None, Query(description="Has every one of these tags.")] = None,
    location_id: uuid.UUID | None = None,
    active: bool | None = None,
) -> Page[ResourceOut]:
    stmt = owned(Resource, tenant)
    if kind is not None:
        stmt = stmt.where(Resource.kind == kind)
    if tag:
        stmt = stmt.where(Resource.tags.contains(tag))
    if location_id is not None:
        stmt = stmt.where(Resource.location_id == location_id)
    if active is not None:
        stmt = stmt.where(Resource.active.is_(active))
    return await fetch_page(db, stmt, Resource.id, page, ResourceOut.model_validate)


@router.get("/{resource_id}", summary="Get a resource")
async def get(resource_id: uuid.UUID, tenant: TenantId, db: Db) -> ResourceOut:
    return ResourceOut.model_validate(await _owned(db, tenant, resource_id))


@router.patch("/{resource_id}", summary="Update a resource (only the fields sent)")
async def patch(
    resource_id: uuid.UUID, body: ResourcePatch, tenant: TenantId, db: Db
) -> ResourceOut:
    resource = await _owned(db, tenant, resource_id)
    data = _stored(body)
    if "location_id" in data:
        await _check_location(db, tenant, data["location_id"])
    apply_changes(resource, data)
    in_use = ApiError(
        409,
        "capacity_in_use",
        "live bookings hold seats this capacity would remove; cancel or move them first",
    )
    with refused_by("resources_capacity_in_use", in_use):
        return ResourceOut.model_validate(await save(db, resource))


def _time_off_out(row: TimeOff) -> TimeOffOut:
    assert row.span.lower is not None and row.span.upper is not None
    return TimeOffOut(
        id=row.id,
        resource_id=row.resource_id,
        start=row.span.lower,
        end=row.span.upper,
        reason=row.reason,
        created_at=row.created_at,
    )


@router.post("/{resource_id}/time-off", status_code=201, summary="Add time off")
async def add_time_off(
    resource_id: uuid.UUID, body: TimeOffIn, tenant: TenantId, db: Db
) -> TimeOffOut:
    await _owned(db, tenant, resource_id)
    row = TimeOff(
        tenant_id=tenant,
        resource_id=resource_id,
        span=Range(body.start, body.end, bounds="[)"),
        reason=body.reason,
    )
    db.add(row)
    return _time_off_out(await save(db, row))


@router.get("/{resource_id}/time-off", summary="List time off")
async def list_time_off(
    resource_id: uuid.UUID,
    tenant: TenantId,
    db: Db,
    page: Paging,
) -> Page[TimeOffOut]:
    await _owned(db, tenant, resource_id)
    stmt = owned(TimeOff, tenant).where(TimeOff.resource_id == resource_id)
    return await fetch_page(db, stmt, TimeOff.id, page, _time_off_out)


@router.delete("/{resource_id}/time-off/{time_off_id}", status_code=204, summary="Delete time off")
async def delete_time_off(
    resource_id: uuid.UUID, time_off_id: uuid.UUID, tenant: TenantId, db: Db
) -> Response:
    row = await get_owned(db, TimeOff, tenant, time_off_id)
    if row is None or row.resource_id != resource_id:
        raise not_found("time off")
    await db.delete(row)
    await db.commit()
    return Response(status_code=204)
