"""FastAPI dependency aliases, declared once: routes name what they need by type
(`db: Db`, `tenant: TenantId`) and stay thin."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import (
    Principal,
    actor,
    any_key_tenant,
    booking_caller,
    booking_reader,
    operator,
    principal,
    tenant_id,
)
from api.context import AppContext, across_tenants_as, context, session
from api.pagination import PageParams, page_params

# One database session per request; routes commit explicitly.
Db = Annotated[AsyncSession, Depends(session)]
# What the API process holds: settings, engine, Temporal client, token signer.
Ctx = Annotated[AppContext, Depends(context)]
# `?limit=&cursor=` of a list.
Paging = Annotated[PageParams, Depends(page_params)]
# The operator key (tenant administration).
Operator = Annotated[None, Depends(operator)]
# A tenant's secret key: the tenant it names.
TenantId = Annotated[uuid.UUID, Depends(tenant_id)]
# Either: the tenant, or the operator acting for any tenant.
TenantOrOperator = Annotated[Principal, Depends(principal)]
# A tenant's key of either kind, publishable included (availability, booking).
AnyKey = Annotated[Principal, Depends(any_key_tenant)]
# The operator, a secret key, or a publishable key with the booking's access token.
BookingCaller = Annotated[Principal, Depends(booking_caller)]
# The same without the operator: who may read a booking.
BookingReader = Annotated[Principal, Depends(booking_reader)]
# The explicit cross-tenant path of a route answering to what it is given, not a key.
CalendarPush = Annotated[None, Depends(across_tenants_as("calendar-push"))]
CalendarFeedToken = Annotated[None, Depends(across_tenants_as("calendar-feed"))]
# Who is calling, as the audit log records them (after the key dependency above).
Actor = Annotated[str, Depends(actor)]
