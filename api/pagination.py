"""Cursor pagination: ids are time-ordered UUIDs, so the cursor is the last id seen."""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import ApiError
from db.repository import M, keyset_page

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class PageParams(BaseModel):
    limit: int
    after: uuid.UUID | None


def encode_cursor(last_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(last_id.bytes).rstrip(b"=").decode()


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page.")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> PageParams:
    if cursor is None:
        return PageParams(limit=limit, after=None)
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return PageParams(limit=limit, after=uuid.UUID(bytes=raw))
    except (ValueError, binascii.Error) as exc:
        raise ApiError(400, "invalid_cursor", "cursor is not one this API returned") from exc


async def fetch_page(
    db: AsyncSession, stmt: Select[M], id_column: Any, params: PageParams, out: Callable[[M], T]
) -> Page[T]:
    rows, last = await keyset_page(db, stmt, id_column, params.limit, params.after)
    return Page(items=[out(r) for r in rows], next_cursor=last and encode_cursor(last))
