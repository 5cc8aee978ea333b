"""Locations: where resources are; resources at different locations never share a slot."""

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy.ext.asyncio import AsyncSession

from api.deps import Db, Paging, TenantId
from api.lookup import owned_or_404
from api.pagination import Page, fetch_page
from api.types import Name, TimeZoneName
from db.models import Location
from db.repository import apply_changes, owned, save

router = APIRouter(prefix="/v1/locations", tags=["locations"])


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name
    timezone: TimeZoneName


class LocationPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name | None = None
    timezone: TimeZoneName | None = None


class LocationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    name: str
    timezone: str
    created_at: datetime
    updated_at: datetime


async def _owned(db: AsyncSession, tenant: uuid.UUID, location_id: uuid.UUID) -> Location:
    return await owned_or_404(db, Location, tenant, location_id, "location")


@router.post("", status_code=201, summary="Create a location")
async def create(body: LocationIn, tenant: TenantId, db: Db) -> LocationOut:
    location = Location(tenant_id=tenant, **body.model_dump())
    db.add(location)
    return LocationOut.model_validate(await save(db, location))


@router.get("", summary="List locations")
async def list_locations(tenant: TenantId, db: Db, page: Paging) -> Page[LocationOut]:
    return await fetch_page(
        db, owned(Location, tenant), Location.id, page, LocationOut.model_validate
    )


@router.get("/{location_id}", summary="Get a location")
async def get(location_id: uuid.UUID, tenant: TenantId, db: Db) -> LocationOut:
    return LocationOut.model_validate(await _owned(db, tenant, location_id))


@router.patch("/{location_id}", summary="Update a location")
async def patch(
    location_id: uuid.UUID, body: LocationPatch, tenant: TenantId, db: Db
) -> LocationOut:
    location = await _owned(db, tenant, location_id)
    apply_changes(location, body.model_dump(exclude_unset=True, exclude_none=True))
    return LocationOut.model_validate(await save(db, location))
