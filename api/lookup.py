"""Tenant-scoped lookups that answer 404 for a missing object or another tenant's."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from api.errors import not_found
from db.repository import M, get_owned


async def owned_or_404(
    db: AsyncSession,
    model: type[M],
    tenant: uuid.UUID,
    obj_id: uuid.UUID,
    what: str,
    details: Any = None,
) -> M:
    found = await get_owned(db, model, tenant, obj_id)
    if found is None:
        raise not_found(what, details)
    return found
