"""Cursor pagination. A cursor is opaque to clients: the sort key of the last item seen
(one or more strings, as URL-safe base64 of JSON), and a page continues after it."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.ext.asyncio import AsyncSession

from api.edge import unstorable
from api.errors import ApiError
from db.repository import M, keyset_page

T = TypeVar("T")


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None


class PageParams(BaseModel):
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=200, description="Items per page.")] = 50,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page.")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


def encode_cursor(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str, size: int) -> list[str]:
    """The key a cursor holds (`size` strings), or 400 for one this API did not give:
    also for strings PostgreSQL could not compare with (a NUL, a lone surrogate)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, binascii.Error, RecursionError) as exc:
        raise invalid_cursor() from exc
    if not (
        isinstance(key, list)
        and len(key) == size
        and all(isinstance(k, str) and unstorable(k) is None for k in key)
    ):
        raise invalid_cursor()
    return key


def invalid_cursor() -> ApiError:
    return ApiError(400, "invalid_cursor", "cursor is not one this API returned")


async def fetch_page(
    db: AsyncSession, stmt: Select[M], id_column: Any, params: PageParams, out: Callable[[M], T]
) -> Page[T]:
    """A page ordered by id (ids are time-ordered UUIDs)."""
    after = None
    if params.cursor is not None:
        (last_seen,) = decode_cursor(params.cursor, 1)
        try:
            after = uuid.UUID(last_seen)
        except ValueError as exc:
            raise invalid_cursor() from exc
    rows, last = await keyset_page(db, stmt, id_column, params.limit, after)
    return Page(items=[out(r) for r in rows], next_cursor=last and encode_cursor(str(last)))
