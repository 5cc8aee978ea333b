"""Tenants, managed with the operator key; a tenant reads and sets its own message
settings (docs/notifications.md#sender)."""

import uuid
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from api.deps import Db, Operator, Paging, TenantOrOperator
from api.errors import ApiError, not_found, refused_by
from api.pagination import Page, fetch_page
from api.types import Name
from db.models import Tenant
from db.tenants import create_tenant, issue_api_key

router = APIRouter(prefix="/v1/tenants", tags=["tenants"])


EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
SLUG = r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$"


class MailSettings(BaseModel):
    """How the tenant's messages are signed and answered, and where notices go."""

    model_config = ConfigDict(extra="forbid")
    mail_sender_name: str | None = Field(
        default=None, min_length=1, max_length=200, description="The From name; default the name."
    )
    mail_reply_to: str | None = Field(
        default=None, max_length=254, pattern=EMAIL, description="Where customers' replies go."
    )
    contact_email: str | None = Field(
        default=None,
        max_length=254,
        pattern=EMAIL,
        description="Operational notices, such as a webhook endpoint disabled.",
    )


Slug = Annotated[
    str,
    Field(
        pattern=SLUG,
        max_length=63,
        description="Names the tenant in its booking page's address, "
        "`/book/{slug}/{service code}` (docs/booking-page.md): lower-case letters, digits "
        "and inner hyphens.",
    ),
]


class TenantIn(MailSettings):
    name: Name
    slug: Slug | None = None


class TenantPatch(MailSettings):
    name: Name | None = None
    slug: Slug | None = None


class TenantOut(BaseModel):
    id: uuid.UUID
    name: str
    slug: str | None
    mail_sender_name: str | None
    mail_reply_to: str | None
    contact_email: str | None
    created_at: datetime


class TenantCreated(TenantOut):
    api_key: str


class ApiKeyCreated(BaseModel):
    api_key: str


def _out(tenant: Tenant) -> TenantOut:
    return TenantOut(
        id=tenant.id,
        name=tenant.name,
        slug=tenant.slug,
        mail_sender_name=tenant.mail_sender_name,
        mail_reply_to=tenant.mail_reply_to,
        contact_email=tenant.contact_email,
        created_at=tenant.created_at,
    )


@router.post("", status_code=201, summary="Create a tenant and its first API key")
async def create(body: TenantIn, _: Operator, db: Db) -> TenantCreated:
    tenant, key = await create_tenant(db, body.name)
    for field, value in body.model_dump(exclude={"name"}).items():
        setattr(tenant, field, value)
    with _unique_slug(body.slug):
        await db.commit()
    await db.refresh(tenant)
    return TenantCreated(**_out(tenant).model_dump(), api_key=key)


def _unique_slug(slug: str | None) -> AbstractContextManager[None]:
    return refused_by(
        "uq_tenants_slug", ApiError(409, "slug_taken", f"another tenant has the slug {slug!r}")
    )


@router.get("", summary="List tenants")
async def list_tenants(_: Operator, db: Db, page: Paging) -> Page[TenantOut]:
    return await fetch_page(db, select(Tenant), Tenant.id, page, _out)


async def _visible(db: Db, who: TenantOrOperator, tenant_id: uuid.UUID) -> Tenant:
    tenant = await db.get(Tenant, tenant_id)
    if tenant is None or who.tenant_id not in (None, tenant_id):
        raise not_found("tenant")
    return tenant


@router.get("/{tenant_id}", summary="Get a tenant (the operator, or the tenant itself)")
async def get(tenant_id: uuid.UUID, who: TenantOrOperator, db: Db) -> TenantOut:
    return _out(await _visible(db, who, tenant_id))


@router.patch("/{tenant_id}", summary="Change a tenant's name or message settings")
async def patch(
    tenant_id: uuid.UUID, body: TenantPatch, who: TenantOrOperator, db: Db
) -> TenantOut:
    tenant = await _visible(db, who, tenant_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        if field == "name" and value is None:
            continue
        setattr(tenant, field, value)
    with _unique_slug(body.slug):
        await db.commit()
    await db.refresh(tenant)
    return _out(tenant)


@router.post("/{tenant_id}/api-keys", status_code=201, summary="Issue another API key")
async def add_key(tenant_id: uuid.UUID, _: Operator, db: Db) -> ApiKeyCreated:
    if await db.get(Tenant, tenant_id) is None:
        raise not_found("tenant")
    _row, key = await issue_api_key(db, tenant_id)
    await db.commit()
    return ApiKeyCreated(api_key=key)
