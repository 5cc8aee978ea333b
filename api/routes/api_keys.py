"""A tenant's API keys (docs/security.md#api-keys), managed with a secret key: issue a
secret or a publishable key (shown once), list them (prefix and last use only), revoke
one, which the very next request with it meets in every API process."""

import uuid
from datetime import datetime
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import Select, func, text

from api.deps import Db, Paging, TenantId
from api.errors import invalid, not_found
from api.pagination import Page, fetch_page
from api.types import Name
from contract import ApiKeyKind
from db.models import ApiKey
from db.repository import owned
from db.tenants import issue_api_key

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


def _origin(value: str) -> str:
    """A web origin as browsers send it: scheme, host and port, nothing else."""
    parts = urlsplit(value)
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
    ):
        raise ValueError("an origin is scheme://host[:port], such as https://book.example.com")
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


Origin = Annotated[str, Field(max_length=200), AfterValidator(_origin)]


class ApiKeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ApiKeyKind
    name: Name
    allowed_origins: list[Origin] = Field(
        default=[],
        max_length=20,
        description="Publishable keys only: the web origins whose pages may use the key. "
        "Without any, browsers may not use it at all (apps send no origin).",
    )


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    kind: ApiKeyKind
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    allowed_origins: list[str]
    created_at: datetime
    last_used_at: datetime | None = Field(
        description="About when the key was last used (kept by its rate limit, so it costs "
        "no write of its own)."
    )


class ApiKeyCreated(ApiKeyOut):
    api_key: str = Field(description="The key itself: shown only now, stored as a digest.")


def _out(row: ApiKey, last_used: datetime | None) -> ApiKeyOut:
    return ApiKeyOut(
        id=row.id,
        kind=ApiKeyKind(row.kind),
        name=row.name,
        prefix=row.prefix,
        allowed_origins=row.allowed_origins,
        created_at=row.created_at,
        last_used_at=last_used,
    )


def _live(tenant: uuid.UUID) -> Select[ApiKey]:
    return owned(ApiKey, tenant).where(ApiKey.revoked_at.is_(None))


@router.post("", status_code=201, summary="Issue an API key (shown once)")
async def create(body: ApiKeyIn, tenant: TenantId, db: Db) -> ApiKeyCreated:
    origins = list(dict.fromkeys(body.allowed_origins))
    if origins and body.kind != ApiKeyKind.PUBLISHABLE:
        raise invalid("invalid_request", "only publishable keys have allowed_origins")
    row, key = await issue_api_key(db, tenant, body.kind, body.name, origins)
    await db.commit()
    await db.refresh(row)
    return ApiKeyCreated(**_out(row, None).model_dump(), api_key=key)


@router.get("", summary="List the live API keys (prefix and last use only)")
async def list_keys(tenant: TenantId, db: Db, page: Paging) -> Page[ApiKeyOut]:
    rows = await fetch_page(db, _live(tenant), ApiKey.id, page, lambda row: row)
    used: dict[uuid.UUID, datetime] = dict(
        (
            await db.execute(
                text("SELECT key_id, last_used_at FROM holdfast_keys_last_used(:ids)"),
                {"ids": [r.id for r in rows.items]},
            )
        ).all()
    )
    return Page(items=[_out(r, used.get(r.id)) for r in rows.items], next_cursor=rows.next_cursor)


@router.delete("/{key_id}", status_code=204, summary="Revoke an API key, at once")
async def revoke(key_id: uuid.UUID, tenant: TenantId, db: Db) -> Response:
    row = await db.scalar(_live(tenant).where(ApiKey.id == key_id).with_for_update())
    if row is None:
        raise not_found("API key")
    row.revoked_at = func.now()
    await db.commit()
    return Response(status_code=204)
