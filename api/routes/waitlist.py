"""The waitlist (docs/waitlist.md): wait for a service in a range of time; when time frees
up, the first entry in line is offered a slot, held for it as a booking, to accept or
decline."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncSession

from api.booking_gateway import (
    booking_temporal,
    leave_waitlist,
    occurrence_answer,
    start_waitlist_entry,
    update_booking,
)
from api.booking_requests import Customer
from api.booking_views import BookingOut, booking_views
from api.deps import Ctx, Db, TenantId
from api.errors import ApiError, not_found
from api.slots import bookable, check_pinned, check_query_days, find_service
from api.types import Instant
from contract import (
    ActorRequest,
    BookingStatus,
    CancelRequest,
    WaitlistRequest,
    WaitlistStatus,
    waitlist_workflow_id,
)
from db.ids import new_id
from db.models import Booking, WaitlistEntry
from workflows.booking import BookingWorkflow

router = APIRouter(prefix="/v1/waitlist", tags=["waitlist"])

# What an offer's booking tells of an entry still stored as `offered`.
_OFFER_ENDED = {
    BookingStatus.EXPIRED: WaitlistStatus.EXPIRED,
    BookingStatus.CANCELLED: WaitlistStatus.DECLINED,
    BookingStatus.FAILED: WaitlistStatus.EXPIRED,
    BookingStatus.CONFIRMED: WaitlistStatus.BOOKED,
    BookingStatus.COMPLETED: WaitlistStatus.BOOKED,
    BookingStatus.NO_SHOW: WaitlistStatus.BOOKED,
}


class WaitlistJoin(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, description="Service id or code.")
    range_start: Instant = Field(description="The earliest start the customer would take.")
    range_end: Instant = Field(description="Starts are before this instant.")
    customer: Customer
    resource_ids: Annotated[list[uuid.UUID], Field(max_length=20)] = Field(
        default=[], description="Only slots with these resources (a class, a therapist)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> WaitlistJoin:
        if self.range_end <= self.range_start:
            raise ValueError("range_end must be after range_start")
        return self


class WaitlistOut(BaseModel):
    id: uuid.UUID
    service_id: uuid.UUID
    range_start: datetime
    range_end: datetime
    resource_ids: list[uuid.UUID]
    customer: dict[str, Any]
    status: WaitlistStatus
    offer_expires_at: datetime | None
    booking: BookingOut | None = Field(
        description="The booking held for the entry once it is offered a slot."
    )
    created_at: datetime


async def _out(db: AsyncSession, entry: WaitlistEntry) -> WaitlistOut:
    booking = None
    status = WaitlistStatus(entry.status)
    if entry.booking_id is not None:
        row = await db.get(Booking, entry.booking_id, populate_existing=True)
        if row is not None:
            booking = (await booking_views(db, [row], calendars=False))[0]
            if status == WaitlistStatus.OFFERED:
                status = _OFFER_ENDED.get(BookingStatus(row.status), status)
    return WaitlistOut(
        id=entry.id,
        service_id=entry.service_id,
        range_start=entry.range_start,
        range_end=entry.range_end,
        resource_ids=list(entry.resource_ids),
        customer=entry.customer,
        status=status,
        offer_expires_at=entry.offer_expires_at,
        booking=booking,
        created_at=entry.created_at,
    )


async def _owned(db: AsyncSession, tenant: uuid.UUID, entry_id: uuid.UUID) -> WaitlistEntry:
    entry = await db.get(WaitlistEntry, entry_id, populate_existing=True)
    if entry is None or entry.tenant_id != tenant:
        raise not_found("waitlist entry")
    return entry


@router.post("", status_code=201, summary="Join the waitlist for a service")
async def join(body: WaitlistJoin, tenant: TenantId, db: Db, ctx: Ctx) -> WaitlistOut:
    check_query_days(ctx.settings.max_query_days, body.range_start, body.range_end)
    service = bookable(await find_service(db, tenant, body.service))
    await check_pinned(db, tenant, body.resource_ids)
    entry_id = new_id()
    entry = WaitlistEntry(
        id=entry_id,
        tenant_id=tenant,
        service_id=service.id,
        range_start=body.range_start,
        range_end=body.range_end,
        resource_ids=body.resource_ids,
        customer=body.customer.model_dump(exclude_unset=True, exclude_none=True),
        workflow_id=waitlist_workflow_id(str(entry_id)),
    )
    db.add(entry)
    await db.commit()  # in line from now; the connection goes back while it is asked
    request = WaitlistRequest(str(entry_id), str(tenant), str(service.id), body.range_end)
    try:
        client, queue = await booking_temporal(ctx)
        await start_waitlist_entry(client, request, queue)
    except ApiError:
        # No workflow serves it: out of line again, so it holds up nobody behind it.
        await _settle(db, tenant, entry_id, WaitlistStatus.LEFT)
        raise
    return await _out(db, await _owned(db, tenant, entry_id))


@router.get("/{entry_id}", summary="Get a waitlist entry (and its offer)")
async def get(entry_id: uuid.UUID, tenant: TenantId, db: Db) -> WaitlistOut:
    return await _out(db, await _owned(db, tenant, entry_id))


@router.delete("/{entry_id}", summary="Leave the waitlist (while waiting)")
async def leave(entry_id: uuid.UUID, tenant: TenantId, db: Db, ctx: Ctx) -> WaitlistOut:
    entry = await _owned(db, tenant, entry_id)
    if entry.status != WaitlistStatus.WAITING:
        raise _not_waiting(entry)
    await db.commit()
    await leave_waitlist(*await booking_temporal(ctx), str(entry_id))
    return await _out(db, await _owned(db, tenant, entry_id))


def _not_waiting(entry: WaitlistEntry) -> ApiError:
    hint = "; accept or decline its offer" if entry.status == WaitlistStatus.OFFERED else ""
    return ApiError(409, "invalid_state", f"the entry is {entry.status}{hint}")


async def _open_offer(db: AsyncSession, tenant: uuid.UUID, entry_id: uuid.UUID) -> Booking:
    entry = await _owned(db, tenant, entry_id)
    booking = None if entry.booking_id is None else await db.get(Booking, entry.booking_id)
    if entry.status != WaitlistStatus.OFFERED or booking is None:
        raise ApiError(409, "invalid_state", f"the entry is {entry.status}: no open offer")
    if booking.status != BookingStatus.PENDING_PAYMENT:
        raise ApiError(
            409, "invalid_state", f"the offer has ended: its booking is {booking.status}"
        )
    return booking


async def _settle(
    db: AsyncSession, tenant: uuid.UUID, entry_id: uuid.UUID, status: WaitlistStatus
) -> WaitlistOut:
    entry = await _owned(db, tenant, entry_id)
    entry.status, entry.updated_at = status, func.now()
    await db.commit()
    return await _out(db, entry)


@router.post("/{entry_id}/accept", summary="Accept the offer: book it (then pay as usual)")
async def accept(entry_id: uuid.UUID, tenant: TenantId, db: Db, ctx: Ctx) -> WaitlistOut:
    booking = await _open_offer(db, tenant, entry_id)
    await db.commit()  # the connection goes back while the booking's workflow works
    client, queue = await booking_temporal(ctx)
    await occurrence_answer(client, queue, str(booking.id))  # its workflow holds it now
    state = await update_booking(
        client, queue, str(booking.id), booking.status, BookingWorkflow.accept, ActorRequest("api")
    )
    if state.status not in (BookingStatus.CONFIRMED, BookingStatus.PENDING_PAYMENT):
        # The offer ended as it was accepted (it lapsed, or was declined, first).
        raise ApiError(409, "invalid_state", f"the offer has ended: its booking is {state.status}")
    return await _settle(db, tenant, entry_id, WaitlistStatus.BOOKED)


@router.post("/{entry_id}/decline", summary="Decline the offer: it goes to the next in line")
async def decline(entry_id: uuid.UUID, tenant: TenantId, db: Db, ctx: Ctx) -> WaitlistOut:
    booking = await _open_offer(db, tenant, entry_id)
    await db.commit()
    client, queue = await booking_temporal(ctx)
    await occurrence_answer(client, queue, str(booking.id))  # its workflow holds it now
    request = CancelRequest(reason="the waitlist offer was declined", actor="api")
    await update_booking(
        client, queue, str(booking.id), booking.status, BookingWorkflow.cancel, request
    )
    return await _settle(db, tenant, entry_id, WaitlistStatus.DECLINED)
