"""Tenants, managed with the operator key."""

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from api.deps import Db, Operator, Paging
from api.errors import not_found
from api.pagination import Page, fetch_page
from api.types import Name
from db.models import Tenant
from db.tenants import create_tenant, issue_api_key

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


class TenantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: Name


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: datetime


class TenantCreated(TenantOut):
    api_key: str


class ApiKeyCreated(BaseModel):
    api_key: str


def _out(tenant: Tenant) -> TenantOut:
    return TenantOut(id=tenant.id, name=tenant.name, created_at=tenant.created_at)


@router.post("", status_code=201, summary="Create a tenant and its first API key")
async def create(body: TenantIn, _: Operator, db: Db) -> TenantCreated:
    tenant, key = await create_tenant(db, body.name)
    await db.commit()
    await db.refresh(tenant)
    return TenantCreated(**_out(tenant).model_dump(), api_key=key)


@router.get("", summary="List tenants")
async def list_tenants(_: Operator, db: Db, page: Paging) -> Page[TenantOut]:
    return await fetch_page(db, select(Tenant), Tenant.id, page, _out)


@router.get("/{tenant_id}", summary="Get a tenant")
async def get(tenant_id: uuid.UUID, _: Operator, db: Db) -> TenantOut:
    tenant = await db.get(Tenant, tenant_id)
    if tenant is None:
        raise not_found("tenant")
    return _out(tenant)


@router.post("/{tenant_id}/api-keys", status_code=201, summary="Issue another API key")
async def add_key(tenant_id: uuid.UUID, _: Operator, db: Db) -> ApiKeyCreated:
    if await db.get(Tenant, tenant_id) is None:
        raise not_found("tenant")
    key = await issue_api_key(db, tenant_id)
    await db.commit()
    return ApiKeyCreated(api_key=key)
