"""Tenant-scoped lookups and keyset pages shared by every catalogue endpoint."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from db.models import Base

M = TypeVar("M", bound=Base)


async def get_owned(
    session: AsyncSession, model: type[M], tenant_id: uuid.UUID, obj_id: uuid.UUID
) -> M | None:
    """The object if it exists *and* belongs to the tenant: others' objects look absent."""
    obj = await session.get(model, obj_id)
    if obj is None or getattr(obj, "tenant_id", None) != tenant_id:
        return None
    return obj


async def missing_owned(
    session: AsyncSession, model: type[Base], tenant_id: uuid.UUID, ids: list[uuid.UUID]
) -> list[uuid.UUID]:
    """Those of `ids` that are not the tenant's objects (absent or another's), in the order
    given: one query for the lot."""
    if not ids:
        return []
    column: Any = model.id  # type: ignore[attr-defined]
    tenant: Any = model.tenant_id  # type: ignore[attr-defined]
    found = set(
        (await session.scalars(select(column).where(tenant == tenant_id, column.in_(ids)))).all()
    )
    return [i for i in ids if i not in found]


async def keyset_page(
    session: AsyncSession, stmt: Select[M], id_column: Any, limit: int, after: uuid.UUID | None
) -> tuple[list[M], uuid.UUID | None]:
    """One page ordered by id, and the id to continue after (None on the last page)."""
    if after is not None:
        stmt = stmt.where(id_column > after)
    rows = list((await session.scalars(stmt.order_by(id_column).limit(limit + 1))).all())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, getattr(rows[-1], "id")  # noqa: B009
    return rows, None


def owned(model: type[M], tenant_id: uuid.UUID) -> Select[M]:
    return select(model).where(getattr(model, "tenant_id") == tenant_id)  # noqa: B009


async def save(session: AsyncSession, obj: M) -> M:
    """Commit and reload server-side values (timestamps, defaults) for the response."""
    await session.commit()
    await session.refresh(obj)
    return obj


def apply_changes(obj: Base, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(obj, name, value)
    setattr(obj, "updated_at", func.now())  # noqa: B010
