"""FastAPI dependency aliases, declared once: routes name what they need by type
(`db: Db`, `tenant: TenantId`) and stay thin."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import Principal, operator, principal, tenant_id
from api.context import AppContext, context, session
from api.pagination import PageParams, page_params

# One database session per request; routes commit explicitly.
Db = Annotated[AsyncSession, Depends(session)]
# What the API process holds: settings, engine, Temporal client, token signer.
Ctx = Annotated[AppContext, Depends(context)]
# `?limit=&cursor=` of a list.
Paging = Annotated[PageParams, Depends(page_params)]
# The operator key (tenant administration).
Operator = Annotated[None, Depends(operator)]
# A tenant's key: the tenant it names.
TenantId = Annotated[uuid.UUID, Depends(tenant_id)]
# Either: the tenant, or the operator acting for any tenant.
TenantOrOperator = Annotated[Principal, Depends(principal)]
