"""Which tenant's rows a database session sees, and who its changes are recorded as
(docs/security.md#row-level-security).

Row-level security shows the application role the rows of the tenant a transaction names
in `holdfast.tenant_id`, or every tenant's when it has `holdfast.all_tenants` on (the
explicit cross-tenant path: the worker, the operator's routes, providers' webhooks, which
find their tenant from what they carry); with neither, no rows at all. A session says
what it acts for in its `info`: each transaction it begins sets the tenant, the
cross-tenant switch and the actor (the audit log's) first. A single statement on an
autocommit session sets them for the connection instead; every session sets all three as
it begins, so none inherits another's.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session, SessionTransaction

_INFO = "tenancy"
_SET = (
    "SELECT set_config('holdfast.tenant_id', %(tenant)s, %(local)s),"
    " set_config('holdfast.all_tenants', %(all)s, %(local)s),"
    " set_config('holdfast.actor', %(actor)s, %(local)s)"
)


@dataclass(frozen=True)
class Tenancy:
    """A tenant (None: none, unless `all_tenants`) and the actor its changes are recorded
    as: `key:<id>`, `operator`, `stripe:<event id>`, `workflow:<id>/<step>`."""

    tenant_id: uuid.UUID | None
    actor: str
    all_tenants: bool = False


def across_tenants(actor: str) -> Tenancy:
    return Tenancy(None, actor, all_tenants=True)


NOBODY = Tenancy(None, "anonymous")
# A session that only calls the owner's functions, which answer on their own terms (the
# rate-limit buckets): it sets nothing, sparing the round trip; nothing it runs reads a
# setting another session left on the connection.
FUNCTIONS_ONLY = Tenancy(None, "functions")
# A session's tenancy, or where to find it when its first transaction begins (an API
# request's, known once its key is checked).
TenancySource = Tenancy | Callable[[], Tenancy]


def tenancy_info(source: TenancySource) -> dict[str, Any]:
    """The `info` of a session acting as `source` says."""
    return {_INFO: source}


class TenantSession(Session):
    """A session whose transactions set their tenancy as they begin."""


@event.listens_for(TenantSession, "after_begin")
def _set_tenancy(session: Session, _: SessionTransaction, connection: Connection) -> None:
    source: TenancySource = session.info.get(_INFO, NOBODY)
    tenancy = source() if callable(source) else source
    if tenancy is FUNCTIONS_ONLY:
        return
    autocommit = connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
    connection.exec_driver_sql(
        _SET,
        {
            "tenant": str(tenancy.tenant_id) if tenancy.tenant_id else "",
            "all": "on" if tenancy.all_tenants else "",
            "actor": tenancy.actor,
            "local": not autocommit,
        },
    )
