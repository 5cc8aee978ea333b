"""Bookings: create (update-with-start of the booking workflow), read from PostgreSQL,
and change through the workflow's updates (docs/api.md#bookings, docs/lifecycle.md)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from api.auth import booking_access_token
from api.booking_gateway import (
    Update,
    booking_temporal,
    start_booking,
    temporal_client,
    update_booking,
)
from api.booking_requests import (
    BookingCreate,
    CancelBody,
    RescheduleBody,
    choose_slot,
    reserved_slot,
)
from api.booking_views import (
    BookingOut,
    History,
    HistoryItem,
    Notifications,
    booking_view,
    booking_views,
    notification_view,
    owned_booking,
)
from api.context import AppContext
from api.deps import (
    AnyKey,
    BookingCaller,
    BookingReader,
    Ctx,
    Db,
    Paging,
    TenantId,
    TenantOrOperator,
)
from api.errors import ApiError, invalid, unavailable
from api.idempotency import reserve_key
from api.pagination import Page, fetch_page
from api.series_payments import stop_if_nothing_left
from api.types import Instant
from contract import (
    ActorRequest,
    BookingRequest,
    BookingStatus,
    CancelRequest,
    RescheduleRequest,
)
from db.idempotency import Reservation, store_response
from db.models import Booking, BookingEvent, Notification
from db.repository import owned
from db.services import terms_of
from db.tenancy import Tenancy
from workflows.booking import BookingWorkflow

router = APIRouter(prefix="/v1/bookings", tags=["bookings"])


@router.get("/{booking_id}", summary="Get a booking (a publishable key: with its access token)")
async def get(booking_id: uuid.UUID, who: BookingReader, db: Db) -> BookingOut:
    return await booking_view(db, (await owned_booking(db, who, booking_id)).id)


@router.get("", summary="List bookings; filter with metadata.KEY=VALUE too")
async def list_bookings(
    request: Request,
    tenant: TenantId,
    db: Db,
    page: Paging,
    status: BookingStatus | None = None,
    resource_id: uuid.UUID | None = None,
    from_: Annotated[Instant | None, Query(alias="from")] = None,
    to: Instant | None = None,
) -> Page[BookingOut]:
    stmt = owned(Booking, tenant)
    if status is not None:
        stmt = stmt.where(Booking.status == status)
    if resource_id is not None:
        stmt = stmt.where(Booking.resource_ids.contains([resource_id]))  # GIN-indexed @>
    if from_ is not None:
        stmt = stmt.where(Booking.start_at >= from_)
    if to is not None:
        stmt = stmt.where(Booking.start_at < to)
    wanted = {
        k.removeprefix("metadata."): v
        for k, v in request.query_params.items()
        if k.startswith("metadata.") and len(k) > len("metadata.")
    }
    if wanted:
        stmt = stmt.where(Booking.meta.contains(wanted))  # jsonb @>, served by the GIN index
    result = await fetch_page(db, stmt, Booking.id, page, lambda row: row)
    return Page(items=await booking_views(db, result.items), next_cursor=result.next_cursor)


@router.get("/{booking_id}/history", summary="The booking's audit events, oldest first")
async def history(booking_id: uuid.UUID, tenant: TenantId, db: Db) -> History:
    await owned_booking(db, tenant, booking_id)
    rows = (
        await db.scalars(
            select(BookingEvent)
            .where(BookingEvent.booking_id == booking_id)
            .order_by(BookingEvent.at, BookingEvent.id)
        )
    ).all()
    return History(
        items=[HistoryItem(at=r.at, type=r.type, actor=r.actor, data=r.data) for r in rows]
    )


@router.get(
    "/{booking_id}/notifications", summary="The booking's emails and text messages, oldest first"
)
async def notifications(booking_id: uuid.UUID, tenant: TenantId, db: Db) -> Notifications:
    await owned_booking(db, tenant, booking_id)
    rows = (
        await db.scalars(
            select(Notification)
            .where(Notification.booking_id == booking_id)
            .order_by(Notification.created_at, Notification.id)
        )
    ).all()
    return Notifications(items=[notification_view(r) for r in rows])


# ---- creating ----------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    summary="Book a slot (Idempotency-Key required)",
    response_model=BookingOut,
    responses={
        409: {"description": "slot_unavailable"},
        422: {"description": "idempotency_key_reused, invalid token"},
    },
)
async def create(
    http: Request,
    body: BookingCreate,
    who: AnyKey,
    db: Db,
    ctx: Ctx,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JSONResponse:
    assert who.tenant_id is not None
    tenant = who.tenant_id
    reservation = await reserve_key(db, tenant, idempotency_key, body)
    assert idempotency_key is not None
    if reservation.response_status is not None:
        return await _replay(http, db, reservation)
    try:
        if reservation.fresh:
            service, slot = await choose_slot(db, ctx, tenant, body, body.service)
        else:
            service, slot = await reserved_slot(db, ctx, tenant, body, reservation.booking_id)
        request = BookingRequest(
            booking_id=str(reservation.booking_id),
            tenant_id=str(tenant),
            terms=terms_of(service),
            slot=slot,
            customer=body.customer.model_dump(exclude_unset=True, exclude_none=True),
            metadata=body.metadata,
            idempotency_key=idempotency_key,
        )
        await db.commit()  # the reservation; the connection goes back while the workflow claims
        client = await temporal_client(ctx)
        state = await start_booking(client, ctx.settings.temporal_task_queue, request)
    except ApiError as err:
        if err.status < 500:  # a decided answer: repeats get the same
            payload = {"error": {"code": err.code, "message": err.message, "details": err.details}}
            await store_response(db, tenant, idempotency_key, err.status, payload)
        raise
    async with ctx.autocommit(Tenancy(tenant, who.actor)) as reader:
        row = await reader.get(Booking, reservation.booking_id)
        if row is None or state.status == "failed":  # not stored: the outcome may change
            raise unavailable("booking_failed", state.error or "the booking could not be made")
        views = await booking_views(reader, [row], {service.id: service}, calendars=False)
        answer = views[0].model_dump(mode="json")
    # Stored after the reply goes out: a repeat meanwhile joins the same booking anyway.
    remember = BackgroundTask(_remember, ctx, Tenancy(tenant, who.actor), idempotency_key, answer)
    token = booking_access_token(http, reservation.booking_id)
    return JSONResponse({**answer, "access_token": token}, status_code=201, background=remember)


async def _remember(ctx: AppContext, acting: Tenancy, key: str, answer: dict[str, Any]) -> None:
    """Stored without the client secret, which the booking row keeps only while needed,
    and without the access token, which a replay derives again."""
    if answer.get("payment"):
        answer = {**answer, "payment": {**answer["payment"], "client_secret": None}}
    assert acting.tenant_id is not None
    async with ctx.autocommit(acting) as db:
        await store_response(db, acting.tenant_id, key, 201, answer)


async def _replay(request: Request, db: AsyncSession, stored: Reservation) -> JSONResponse:
    """The first answer again, with the booking's access token, and with the client
    secret while the booking still awaits payment (the stored answer holds neither)."""
    assert stored.response_status is not None
    body = stored.response_body or {}
    if stored.response_status == 201 and stored.booking_id is not None:
        body = {**body, "access_token": booking_access_token(request, stored.booking_id)}
    if stored.response_status == 201 and body.get("payment"):
        row = await db.get(Booking, stored.booking_id)
        pending = row is not None and row.status == BookingStatus.PENDING_PAYMENT
        secret = row.payment_client_secret if row is not None and pending else None
        body = {**body, "payment": {**body["payment"], "client_secret": secret}}
    return JSONResponse(body, status_code=stored.response_status)


# ---- changing -------------------------------------------------------------------------------


async def _update(
    db: AsyncSession, ctx: AppContext, booking: Booking, method: Update, arg: object
) -> BookingOut:
    await db.commit()  # hand the connection back while the workflow works
    client, queue = await booking_temporal(ctx)
    await update_booking(client, queue, str(booking.id), booking.status, method, arg)
    return await booking_view(db, booking.id)


@router.post("/{booking_id}/cancel", summary="Cancel: refund per policy, free the resources")
async def cancel(
    booking_id: uuid.UUID, body: CancelBody, who: BookingCaller, db: Db, ctx: Ctx
) -> BookingOut:
    booking = await owned_booking(db, who, booking_id)
    series = booking.series_id
    cancelled = await _update(
        db, ctx, booking, BookingWorkflow.cancel, CancelRequest(reason=body.reason, actor=who.actor)
    )
    if series is not None:  # its series' one payment may have nothing left to pay for
        client, _ = await booking_temporal(ctx)
        await stop_if_nothing_left(db, client, series)
    return cancelled


@router.post(
    "/{booking_id}/reschedule",
    summary="Move atomically to another slot",
    responses={409: {"description": "slot_unavailable: nothing changed"}},
)
async def reschedule(
    booking_id: uuid.UUID, body: RescheduleBody, who: BookingCaller, db: Db, ctx: Ctx
) -> BookingOut:
    booking = await owned_booking(db, who, booking_id)
    service, slot = await choose_slot(
        db, ctx, booking.tenant_id, body, body.service or str(booking.service_id), ignore=booking.id
    )
    if service.id != booking.service_id:
        raise invalid("invalid_allocation_token", "the slot is for another service")
    return await _update(
        db, ctx, booking, BookingWorkflow.reschedule, RescheduleRequest(slot=slot, actor=who.actor)
    )


@router.post("/{booking_id}/no-show", summary="Mark a started booking as a no-show")
async def no_show(booking_id: uuid.UUID, who: TenantOrOperator, db: Db, ctx: Ctx) -> BookingOut:
    booking = await owned_booking(db, who, booking_id)
    return await _update(db, ctx, booking, BookingWorkflow.no_show, ActorRequest(who.actor))


@router.post("/{booking_id}/mark-paid", summary="Settle the payment (pay at venue)")
async def mark_paid(booking_id: uuid.UUID, who: TenantOrOperator, db: Db, ctx: Ctx) -> BookingOut:
    booking = await owned_booking(db, who, booking_id)
    return await _update(db, ctx, booking, BookingWorkflow.mark_paid, ActorRequest(who.actor))
