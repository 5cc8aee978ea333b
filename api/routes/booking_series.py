"""Booking series: a recurring booking from an RFC 5545 rule (docs/series.md). Each
occurrence is an ordinary booking (cancel one, reschedule one, through /v1/bookings); the
series cancels all, or this and the future ones."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from api.auth import booking_access_token
from api.booking_gateway import (
    booking_temporal,
    occurrence_answer,
    series_created,
    start_series,
    update_booking,
    update_series,
)
from api.booking_requests import Customer, slot_of
from api.booking_views import BookingOut, PaymentOut, booking_views
from api.context import AppContext
from api.deps import Ctx, Db, TenantId, TenantOrOperator
from api.errors import ApiError, invalid, not_found
from api.idempotency import reserve_key
from api.series_payments import stop_if_nothing_left
from api.slots import bookable, check_pinned, find_service, slot_at
from api.types import Instant
from contract import (
    LIVE_STATUSES,
    ActorRequest,
    BookingRequest,
    BookingStatus,
    CancelRequest,
    SeriesPayment,
    SeriesPolicy,
    SeriesRequest,
    SkippedOccurrence,
)
from db.idempotency import store_response
from db.models import Booking, BookingSeries, Service
from db.series import occurrence_ids
from db.services import terms_of
from scheduling.engine import FreeSlot
from scheduling.recurrence import RuleError, occurrences
from workflows.booking import BookingWorkflow
from workflows.booking_series import BookingSeriesWorkflow

router = APIRouter(prefix="/v1/booking-series", tags=["booking series"])


class SeriesCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    service: str = Field(min_length=1, description="Service id or code.")
    start: Instant = Field(description="The first occurrence; its wall-clock time repeats.")
    rrule: str = Field(
        min_length=1,
        max_length=500,
        description="RFC 5545 RRULE, ending by COUNT or UNTIL (at most 52 occurrences), "
        "e.g. FREQ=WEEKLY;COUNT=6.",
    )
    resource_ids: Annotated[list[uuid.UUID], Field(max_length=20)] = []
    customer: Customer
    metadata: Annotated[dict[str, Any], Field(default={})] = {}
    policy: SeriesPolicy = SeriesPolicy.ALL_OR_NOTHING

    @model_validator(mode="after")
    def _small(self) -> SeriesCreate:
        if len(json.dumps(self.metadata)) > 16_384:
            raise ValueError("metadata must be at most 16 KiB of JSON")
        return self


class Skipped(BaseModel):
    start: datetime
    reason: str = Field(description="Why it was not booked: `slot_unavailable`.")


class SeriesOut(BaseModel):
    id: uuid.UUID
    service_id: uuid.UUID
    start: datetime
    rrule: str
    policy: SeriesPolicy
    bookings: list[BookingOut]
    skipped: list[Skipped]
    payment: PaymentOut | None = Field(
        description="Paid once (the service's `series_payment` is `per_series`): the one "
        "payment for every occurrence; each occurrence's own `payment` is its share, once "
        "captured. Null when each occurrence is paid as a booking."
    )
    created_at: datetime


class SeriesCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scope: Literal["all", "this_and_future"] = "all"
    booking_id: uuid.UUID | None = Field(
        default=None, description="With `this_and_future`: the first occurrence to cancel."
    )
    reason: str = Field(default="", max_length=500)

    @model_validator(mode="after")
    def _from(self) -> SeriesCancel:
        if (self.scope == "this_and_future") != (self.booking_id is not None):
            raise ValueError("booking_id goes with scope this_and_future, and only with it")
        return self


async def _slots(
    db: AsyncSession, tenant: uuid.UUID, service: Service, starts: list[datetime], pins: list[str]
) -> list[tuple[datetime, FreeSlot | None]]:
    """Each start's slot, or None when it is taken. Without pinned resources, the first
    free occurrence's resources are preferred for the rest (the same physio each week),
    and others taken when they are not free."""
    found: list[tuple[datetime, FreeSlot | None]] = []
    preferred = frozenset(pins)
    for start in starts:
        slot = await _slot_or_none(db, tenant, service, start, preferred)
        if slot is None and not pins and preferred:
            slot = await _slot_or_none(db, tenant, service, start, frozenset())
        if slot is not None and not preferred:
            preferred = frozenset(r.id for r in slot.resources)
        found.append((start, slot))
    return found


async def _slot_or_none(
    db: AsyncSession, tenant: uuid.UUID, service: Service, start: datetime, pins: frozenset[str]
) -> FreeSlot | None:
    try:
        return await slot_at(db, tenant, service, start, pins)
    except ApiError as err:
        if err.code != "slot_unavailable":
            raise
        return None


def _occurrence(
    series_id: uuid.UUID,
    index: int,
    tenant: uuid.UUID,
    service: Service,
    body: SeriesCreate,
    key: str,
    slot: FreeSlot,
    paid_once: bool,
) -> BookingRequest:
    return BookingRequest(
        booking_id=str(uuid.uuid5(series_id, str(index))),
        tenant_id=str(tenant),
        terms=terms_of(service),
        slot=slot_of(slot),
        customer=body.customer.model_dump(exclude_unset=True, exclude_none=True),
        metadata=body.metadata,
        idempotency_key=f"{key}#{index}",
        series_id=str(series_id),
        paid_by_series=paid_once,
    )


async def series_out(db: AsyncSession, http: Request, row: BookingSeries) -> dict[str, Any]:
    await db.refresh(row)  # its payment, as the series' workflow left it
    bookings = list(
        (
            await db.scalars(
                select(Booking)
                .where(Booking.series_id == row.id)
                .order_by(Booking.start_at)
                .execution_options(populate_existing=True)  # as the workflows left them
            )
        ).all()
    )
    views = await booking_views(db, bookings, calendars=False)
    out = SeriesOut(
        id=row.id,
        service_id=row.service_id,
        start=row.start_at,
        rrule=row.rrule,
        policy=SeriesPolicy(row.policy),
        bookings=views,
        skipped=[Skipped.model_validate(s) for s in row.skipped],
        payment=_payment_out(row),
        created_at=row.created_at,
    ).model_dump(mode="json")
    for booking in out["bookings"]:
        booking["access_token"] = booking_access_token(http, uuid.UUID(booking["id"]))
    return out


def _payment_out(row: BookingSeries) -> PaymentOut | None:
    """The client secret is on the row only while the series awaits its payment."""
    if row.payment is None:
        return None
    return PaymentOut.model_validate({**row.payment, "client_secret": row.payment_client_secret})


def _taken(starts: list[datetime]) -> ApiError:
    return ApiError(
        409,
        "slot_unavailable",
        "an occurrence of the series is taken; nothing was booked",
        {"taken": [s.isoformat() for s in starts]},
    )


@router.post(
    "",
    status_code=201,
    summary="Book a recurring series (Idempotency-Key required)",
    response_model=SeriesOut,
    responses={409: {"description": "slot_unavailable"}},
)
async def create(
    http: Request,
    body: SeriesCreate,
    tenant: TenantId,
    db: Db,
    ctx: Ctx,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JSONResponse:
    reservation = await reserve_key(db, tenant, idempotency_key, body)
    assert idempotency_key is not None
    if reservation.response_status is not None:
        return JSONResponse(reservation.response_body, status_code=reservation.response_status)
    series_id = reservation.booking_id
    try:
        if await db.get(BookingSeries, series_id) is None:
            request = await _series_request(db, tenant, body, series_id, idempotency_key)
            await db.commit()  # the reservation; the connection goes back while it claims
            await _start(ctx, request)
        else:  # a repeat after the series was claimed, its answer lost: join it
            booking_ids = [str(b) for b in await occurrence_ids(db, series_id)]
            await db.commit()
            await series_created(*await booking_temporal(ctx), str(series_id))
            await _answers(ctx, booking_ids)
    except ApiError as err:
        if err.status < 500:  # a decided answer: repeats get the same
            payload = {"error": {"code": err.code, "message": err.message, "details": err.details}}
            await store_response(db, tenant, idempotency_key, err.status, payload)
        raise
    row = await db.get(BookingSeries, series_id)
    assert row is not None
    answer = await series_out(db, http, row)
    stored = {**answer, "bookings": [_without_secrets(b) for b in answer["bookings"]]}
    if stored["payment"]:
        stored["payment"] = {**stored["payment"], "client_secret": None}
    await store_response(db, tenant, idempotency_key, 201, stored)
    return JSONResponse(answer, status_code=201)


def _without_secrets(booking: dict[str, Any]) -> dict[str, Any]:
    """A stored answer keeps neither the client secret nor the access token."""
    stored = {k: v for k, v in booking.items() if k != "access_token"}
    if stored.get("payment"):
        stored["payment"] = {**stored["payment"], "client_secret": None}
    return stored


async def _series_request(
    db: AsyncSession, tenant: uuid.UUID, body: SeriesCreate, series_id: uuid.UUID, key: str
) -> SeriesRequest:
    service = bookable(await find_service(db, tenant, body.service))
    await check_pinned(db, tenant, body.resource_ids)
    try:
        starts = occurrences(body.rrule, body.start, service.timezone)
    except RuleError as err:
        raise invalid("invalid_rrule", str(err)) from err
    slots = await _slots(db, tenant, service, starts, [str(r) for r in body.resource_ids])
    taken = [start for start, slot in slots if slot is None]
    if (taken and body.policy == SeriesPolicy.ALL_OR_NOTHING) or len(taken) == len(slots):
        raise _taken(taken)
    paid_once = service.price_amount is not None and (
        service.series_payment == SeriesPayment.PER_SERIES
    )
    return SeriesRequest(
        series_id=str(series_id),
        tenant_id=str(tenant),
        service_id=str(service.id),
        start=body.start,
        rrule=body.rrule,
        policy=body.policy,
        occurrences=[
            _occurrence(series_id, i, tenant, service, body, key, slot, paid_once)
            for i, (_, slot) in enumerate(slots)
            if slot is not None
        ],
        skipped=[SkippedOccurrence(start, "slot_unavailable") for start in taken],
        paid_once=paid_once,
    )


async def _start(ctx: AppContext, request: SeriesRequest) -> None:
    """The series' workflow claims and starts the occurrences; then each occurrence's
    own answer (a priced one's payment authorised) is awaited, as a booking's is."""
    state = await start_series(*await booking_temporal(ctx), request)
    await _answers(ctx, state.booking_ids)


async def _answers(ctx: AppContext, booking_ids: list[str]) -> None:
    client, queue = await booking_temporal(ctx)
    await asyncio.gather(*(occurrence_answer(client, queue, b) for b in booking_ids))


@router.get("/{series_id}", summary="Get a series and its bookings", response_model=SeriesOut)
async def get(http: Request, series_id: uuid.UUID, tenant: TenantId, db: Db) -> JSONResponse:
    return JSONResponse(await series_out(db, http, await _owned(db, tenant, series_id)))


async def _owned(db: AsyncSession, tenant: uuid.UUID | None, series_id: uuid.UUID) -> BookingSeries:
    """`tenant` None: the operator, acting for any tenant."""
    row = await db.get(BookingSeries, series_id)
    if row is None or (tenant is not None and row.tenant_id != tenant):
        raise not_found("booking series")
    return row


@router.post(
    "/{series_id}/mark-paid",
    summary="Settle a series' one payment (pay at venue)",
    response_model=SeriesOut,
)
async def mark_paid(
    http: Request, series_id: uuid.UUID, who: TenantOrOperator, db: Db, ctx: Ctx
) -> JSONResponse:
    """Every occurrence still held is confirmed with its share (docs/series.md#payment)."""
    row = await _owned(db, who.tenant_id, series_id)
    if row.payment is None:
        raise ApiError(409, "invalid_state", "the series is not paid once: mark its bookings")
    await db.commit()  # the connection goes back while the workflows settle
    client, queue = await booking_temporal(ctx)
    await update_series(
        client, queue, str(series_id), BookingSeriesWorkflow.mark_paid, ActorRequest(who.actor)
    )
    await _settled(db, series_id)
    return JSONResponse(await series_out(db, http, row))


async def _settled(db: AsyncSession, series_id: uuid.UUID, seconds: float = 10) -> None:
    """Each occurrence confirms on its own once the series has sent it its share: the
    answer waits (briefly) until none is left pending, so it shows them confirmed."""
    pending = select(Booking.id).where(
        Booking.series_id == series_id, Booking.status == BookingStatus.PENDING_PAYMENT
    )
    for _ in range(int(seconds / 0.05)):
        left = await db.scalar(pending.limit(1))
        await db.commit()  # each look sees what the workflows have committed since
        if left is None:
            return
        await asyncio.sleep(0.05)


@router.post(
    "/{series_id}/cancel",
    summary="Cancel all occurrences, or this one and those after it",
    response_model=SeriesOut,
)
async def cancel(
    http: Request, series_id: uuid.UUID, body: SeriesCancel, tenant: TenantId, db: Db, ctx: Ctx
) -> JSONResponse:
    row = await _owned(db, tenant, series_id)
    bookings = (
        await db.scalars(
            select(Booking).where(Booking.series_id == row.id).order_by(Booking.start_at)
        )
    ).all()
    cancelling = bookings
    if body.booking_id is not None:
        first = next((b for b in bookings if b.id == body.booking_id), None)
        if first is None:
            raise not_found("booking", {"field": "booking_id"})
        cancelling = [b for b in bookings if b.start_at >= first.start_at]
    live = [(str(b.id), b.status) for b in cancelling if b.status in LIVE_STATUSES]
    await db.commit()  # the connection goes back while the workflows cancel
    client, queue = await booking_temporal(ctx)
    request = CancelRequest(reason=body.reason, actor="api")
    await asyncio.gather(
        *(
            update_booking(client, queue, booking_id, status, BookingWorkflow.cancel, request)
            for booking_id, status in live
        )
    )
    await stop_if_nothing_left(db, client, row.id)
    return JSONResponse(await series_out(db, http, row))
