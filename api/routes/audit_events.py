"""A tenant's audit log (docs/security.md#audit-log), read with a secret key: a page at a
time, or whole as NDJSON for a SIEM. The log is only read here: the database's trigger
writes every entry, and the application role may not write one at all."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import Db, Paging, TenantId
from api.pagination import Page, decode_cursor, encode_cursor, invalid_cursor
from db import audit
from db.audit import AuditEntry, ObjectType

router = APIRouter(prefix="/v1/audit-events", tags=["audit log"])

NDJSON = "application/x-ndjson"
TypeFilter = Annotated[
    ObjectType | None, Query(description="Only changes to this table (`bookings`, ...).")
]
IdFilter = Annotated[
    str | None, Query(min_length=1, max_length=100, description="Only changes to this object.")
]


def _after(cursor: str | None) -> int:
    if cursor is None:
        return 0
    (seq,) = decode_cursor(cursor, 1)
    if not seq.isdigit() or len(seq) > 18:  # a bigint, as the API gave it
        raise invalid_cursor()
    return int(seq)


@router.get("", summary="List audit events, oldest first")
async def list_events(
    tenant: TenantId,
    db: Db,
    page: Paging,
    object_type: TypeFilter = None,
    object_id: IdFilter = None,
) -> Page[AuditEntry]:
    entries, last = await audit.read_page(
        db,
        tenant,
        limit=page.limit,
        after_seq=_after(page.cursor),
        object_type=object_type,
        object_id=object_id,
    )
    return Page(items=entries, next_cursor=None if last is None else encode_cursor(str(last)))


@router.get(
    "/export",
    summary="Export audit events as NDJSON",
    description="Every entry, one JSON object a line, oldest first, as the list shows it. "
    "A SIEM that keeps what it read resumes with `after_seq`, the last `seq` it holds.",
    response_class=StreamingResponse,
    responses={200: {"content": {NDJSON: {}}}},
)
async def export(
    tenant: TenantId,
    db: Db,
    object_type: TypeFilter = None,
    object_id: IdFilter = None,
    after_seq: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
) -> StreamingResponse:
    entries = audit.entries(
        db, tenant, after_seq=after_seq, object_type=object_type, object_id=object_id
    )
    return StreamingResponse(audit.ndjson(entries), media_type=NDJSON)
