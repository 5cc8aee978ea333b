"""Bookings: create (update-with-start of the booking workflow), read from PostgreSQL,
and change through the workflow's updates (docs/api.md#bookings, docs/lifecycle.md)."""

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.background import BackgroundTask

from api.booking_gateway import Update, start_booking, update_booking
from api.context import AppContext
from api.deps import Ctx, Db, Paging, TenantId, TenantOrOperator
from api.errors import ApiError, invalid, not_found
from api.pagination import Page, fetch_page
from api.slots import bookable, check_pinned, find_service, slot_at
from api.types import Instant
from contract import (
    ActorRequest,
    BookingRequest,
    BookingStatus,
    CancelRequest,
    RescheduleRequest,
    ServiceTerms,
    Slot,
)
from db.idempotency import Reservation, reserve, store_response
from db.models import Booking, BookingEvent, Resource, Service
from db.repository import owned
from scheduling.engine import FreeSlot
from scheduling.tokens import TokenError
from workflows.booking import BookingWorkflow

router = APIRouter(prefix="/v1/bookings", tags=["bookings"])


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: str | None = Field(default=None, pattern=r"^\+?[0-9][0-9 ()./-]{5,24}$")


def _small_json(value: dict[str, Any]) -> dict[str, Any]:
    if len(json.dumps(value)) > 16_384:
        raise ValueError("metadata must be at most 16 KiB of JSON")
    return value


class SlotChoice(BaseModel):
    """Either a token from `POST /v1/availability/query`, or a service and start."""

    model_config = ConfigDict(extra="forbid")
    allocation_token: str | None = Field(default=None, max_length=4096)
    service: str | None = Field(default=None, description="Service id or code.")
    start: Instant | None = None
    resource_ids: Annotated[list[uuid.UUID], Field(max_length=20)] = []

    @model_validator(mode="after")
    def _one_way(self) -> "SlotChoice":
        if (self.allocation_token is None) == (self.start is None):
            raise ValueError("send either allocation_token, or service and start")
        return self


class BookingCreate(SlotChoice):
    customer: Customer
    metadata: Annotated[dict[str, Any], Field(default={})] = {}

    @model_validator(mode="after")
    def _checks(self) -> "BookingCreate":
        _small_json(self.metadata)
        if self.start is not None and self.service is None:
            raise ValueError("service is required with start")
        return self


class RescheduleBody(SlotChoice):
    pass


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class ResourceRef(BaseModel):
    id: uuid.UUID
    kind: str
    name: str


class PaymentOut(BaseModel):
    provider: str
    status: str
    intent_id: str | None
    client_secret: str | None = Field(
        description="For Stripe.js, only while the booking is pending_payment."
    )
    amount: int
    currency: str
    captured_amount: int
    refunded_amount: int


class BookingOut(BaseModel):
    id: uuid.UUID
    status: BookingStatus
    service: dict[str, str]
    start: datetime
    end: datetime
    resources: list[ResourceRef]
    hold_expires_at: datetime | None
    workflow_id: str
    payment: PaymentOut | None
    customer: dict[str, Any]
    metadata: dict[str, Any]
    side_effects: dict[str, str]
    version: int
    created_at: datetime
    updated_at: datetime


class HistoryItem(BaseModel):
    at: datetime
    type: str
    actor: str
    data: dict[str, Any]


class History(BaseModel):
    items: list[HistoryItem]


# ---- reading ---------------------------------------------------------------------------


async def _views(
    db: AsyncSession, rows: list[Booking], known: dict[uuid.UUID, Service] | None = None
) -> list[BookingOut]:
    """Bookings with their resources and services: at most two queries for the whole list
    (one if the caller already holds the services)."""
    resource_ids = {r for row in rows for r in row.resource_ids}
    resources = {
        r.id: r
        for r in (await db.scalars(select(Resource).where(Resource.id.in_(resource_ids)))).all()
    }
    services = dict(known or {})
    missing = {row.service_id for row in rows} - set(services)
    if missing:
        found = await db.scalars(select(Service).where(Service.id.in_(missing)))
        services.update((s.id, s) for s in found.all())
    out = []
    for row in rows:
        service = services[row.service_id]
        tz = ZoneInfo(service.timezone)
        out.append(
            BookingOut(
                id=row.id,
                status=row.status,
                service={"id": str(service.id), "code": service.code},
                start=row.start_at.astimezone(tz),
                end=row.end_at.astimezone(tz),
                resources=[
                    ResourceRef(id=r, kind=resources[r].kind, name=resources[r].name)
                    for r in row.resource_ids
                    if r in resources
                ],
                hold_expires_at=row.hold_expires_at and row.hold_expires_at.astimezone(tz),
                workflow_id=row.workflow_id,
                payment=_payment(row),
                customer=row.customer,
                metadata=row.meta,
                side_effects=row.side_effects,
                version=row.version,
                created_at=row.created_at,
                updated_at=row.updated_at,
            )
        )
    return out


def _payment(row: Booking) -> PaymentOut | None:
    if not row.payment:
        return None
    pending = row.status == BookingStatus.PENDING_PAYMENT
    # (Merged, not passed twice: a row written before the secret had its own column may
    # still carry one in its JSON.)
    secret = row.payment_client_secret if pending else None
    return PaymentOut.model_validate({**row.payment, "client_secret": secret})


async def _view(db: AsyncSession, booking_id: uuid.UUID) -> BookingOut:
    row = await db.get(Booking, booking_id, populate_existing=True)
    assert row is not None
    return (await _views(db, [row]))[0]


async def _owned(
    db: AsyncSession, who: TenantOrOperator | uuid.UUID, booking_id: uuid.UUID
) -> Booking:
    tenant = who if isinstance(who, uuid.UUID) else who.tenant_id
    row = await db.get(Booking, booking_id)
    if row is None or (tenant is not None and row.tenant_id != tenant):
        raise not_found("booking")
    return row


@router.get("/{booking_id}", summary="Get a booking")
async def get(booking_id: uuid.UUID, tenant: TenantId, db: Db) -> BookingOut:
    return await _view(db, (await _owned(db, tenant, booking_id)).id)


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
    return Page(items=await _views(db, result.items), next_cursor=result.next_cursor)


@router.get("/{booking_id}/history", summary="The booking's audit events, oldest first")
async def history(booking_id: uuid.UUID, tenant: TenantId, db: Db) -> History:
    await _owned(db, tenant, booking_id)
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


# ---- creating ----------------------------------------------------------------------------


def _terms(service: Service) -> ServiceTerms:
    return ServiceTerms(
        service_id=str(service.id),
        code=service.code,
        name=service.name,
        buffer_before_minutes=service.buffer_before_minutes,
        buffer_after_minutes=service.buffer_after_minutes,
        price_amount=service.price_amount,
        currency=service.price_currency,
        hold_seconds=service.hold_seconds,
        free_until_hours_before=service.cancellation["free_until_hours_before"],
        late_refund_percent=service.cancellation["late_refund_percent"],
        reminders_minutes_before=list(service.reminders_minutes_before),
        retry_declined_payment=service.retry_declined_payment,
    )


def _slot(found: FreeSlot) -> Slot:
    return Slot(
        datetime.fromtimestamp(found.start, UTC),
        datetime.fromtimestamp(found.end, UTC),
        [r.id for r in found.resources],
    )


async def _choose(
    db: AsyncSession,
    ctx: AppContext,
    tenant: uuid.UUID,
    choice: SlotChoice,
    service_ref: str | None,
    ignore: uuid.UUID | None = None,
) -> tuple[Service, Slot]:
    """The service and slot a request asks for: from a verified token, or found at `start`."""
    if choice.allocation_token is not None:
        try:
            grant = ctx.signer.read(choice.allocation_token, now=int(datetime.now(UTC).timestamp()))
        except TokenError as exc:
            raise invalid(exc.code, str(exc)) from exc
        if grant.tenant_id != str(tenant):
            raise invalid("invalid_allocation_token", "allocation token is invalid")
        service = bookable(await find_service(db, tenant, grant.service_id))
        if service_ref is not None and service_ref not in (grant.service_id, service.code):
            raise invalid("invalid_allocation_token", "the token is for another service")
        return service, Slot(
            datetime.fromtimestamp(grant.start, UTC),
            datetime.fromtimestamp(grant.end, UTC),
            list(grant.resource_ids),
        )
    assert choice.start is not None and service_ref is not None
    service = bookable(await find_service(db, tenant, service_ref))
    await check_pinned(db, tenant, choice.resource_ids)
    found = await slot_at(
        db, tenant, service, choice.start, frozenset(str(r) for r in choice.resource_ids), ignore
    )
    return service, _slot(found)


async def _reserved_slot(
    db: AsyncSession, ctx: AppContext, tenant: uuid.UUID, body: BookingCreate, booking_id: uuid.UUID
) -> tuple[Service, Slot]:
    """The slot for a repeat of an Idempotency-Key whose answer is not stored yet. If its
    booking exists, the repeat joins it as it stands (its token may have expired, and the
    slot is now its own); otherwise the slot is chosen again, ignoring its own booking."""
    existing = await db.get(Booking, booking_id)
    if existing is None:
        return await _choose(db, ctx, tenant, body, body.service, ignore=booking_id)
    service = await db.get(Service, existing.service_id)
    assert service is not None
    return service, Slot(
        existing.start_at, existing.end_at, [str(r) for r in existing.resource_ids]
    )


def _request_hash(body: BookingCreate) -> str:
    canonical = json.dumps(body.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@router.post(
    "",
    status_code=201,
    summary="Book a slot (Idempotency-Key required)",
    responses={
        409: {"description": "slot_unavailable"},
        422: {"description": "idempotency_key_reused, invalid token"},
    },
)
async def create(
    body: BookingCreate,
    tenant: TenantId,
    db: Db,
    ctx: Ctx,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)] = None,
) -> JSONResponse:
    if not idempotency_key:
        raise ApiError(400, "idempotency_key_required", "send an Idempotency-Key header")
    request_hash = _request_hash(body)
    reservation = await reserve(db, tenant, idempotency_key, request_hash)
    if reservation.request_hash != request_hash:
        raise invalid(
            "idempotency_key_reused", "this Idempotency-Key was used with a different request"
        )
    if reservation.response_status is not None:
        return await _replay(db, reservation)
    try:
        if reservation.fresh:
            service, slot = await _choose(db, ctx, tenant, body, body.service)
        else:
            service, slot = await _reserved_slot(db, ctx, tenant, body, reservation.booking_id)
        request = BookingRequest(
            booking_id=str(reservation.booking_id),
            tenant_id=str(tenant),
            terms=_terms(service),
            slot=slot,
            customer=body.customer.model_dump(exclude_none=True),
            metadata=body.metadata,
            idempotency_key=idempotency_key,
        )
        await db.commit()  # the reservation; the connection goes back while the workflow claims
        state = await start_booking(await ctx.temporal(), ctx.settings.temporal_task_queue, request)
    except ApiError as err:
        if err.status < 500:  # a decided answer: repeats get the same
            payload = {"error": {"code": err.code, "message": err.message, "details": err.details}}
            await store_response(db, tenant, idempotency_key, err.status, payload)
        raise
    async with ctx.autocommit() as reader:
        row = await reader.get(Booking, reservation.booking_id)
        if row is None or state.status == "failed":  # not stored: the outcome may change
            raise ApiError(503, "booking_failed", state.error or "the booking could not be made")
        answer = (await _views(reader, [row], {service.id: service}))[0].model_dump(mode="json")
    # Stored after the reply goes out: a repeat meanwhile joins the same booking anyway.
    remember = BackgroundTask(_remember, ctx, tenant, idempotency_key, answer)
    return JSONResponse(answer, status_code=201, background=remember)


async def _remember(ctx: AppContext, tenant: uuid.UUID, key: str, answer: dict[str, Any]) -> None:
    """Stored without the client secret, which the booking row keeps only while needed."""
    if answer.get("payment"):
        answer = {**answer, "payment": {**answer["payment"], "client_secret": None}}
    async with ctx.autocommit() as db:
        await store_response(db, tenant, key, 201, answer)


async def _replay(db: AsyncSession, stored: Reservation) -> JSONResponse:
    """The first answer again, with the client secret while the booking still awaits
    payment (the stored answer never holds it)."""
    assert stored.response_status is not None
    body = stored.response_body or {}
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
    await update_booking(await ctx.temporal(), str(booking.id), booking.status, method, arg)
    return await _view(db, booking.id)


@router.post("/{booking_id}/cancel", summary="Cancel: refund per policy, free the resources")
async def cancel(
    booking_id: uuid.UUID, body: CancelBody, who: TenantOrOperator, db: Db, ctx: Ctx
) -> BookingOut:
    booking = await _owned(db, who, booking_id)
    return await _update(
        db, ctx, booking, BookingWorkflow.cancel, CancelRequest(reason=body.reason, actor=who.actor)
    )


@router.post(
    "/{booking_id}/reschedule",
    summary="Move atomically to another slot",
    responses={409: {"description": "slot_unavailable: nothing changed"}},
)
async def reschedule(
    booking_id: uuid.UUID, body: RescheduleBody, who: TenantOrOperator, db: Db, ctx: Ctx
) -> BookingOut:
    booking = await _owned(db, who, booking_id)
    service, slot = await _choose(
        db, ctx, booking.tenant_id, body, body.service or str(booking.service_id), ignore=booking.id
    )
    if service.id != booking.service_id:
        raise invalid("invalid_allocation_token", "the slot is for another service")
    return await _update(
        db, ctx, booking, BookingWorkflow.reschedule, RescheduleRequest(slot=slot, actor=who.actor)
    )


@router.post("/{booking_id}/no-show", summary="Mark a started booking as a no-show")
async def no_show(booking_id: uuid.UUID, who: TenantOrOperator, db: Db, ctx: Ctx) -> BookingOut:
    booking = await _owned(db, who, booking_id)
    return await _update(db, ctx, booking, BookingWorkflow.no_show, ActorRequest(who.actor))


@router.post("/{booking_id}/mark-paid", summary="Settle the payment (pay at venue)")
async def mark_paid(booking_id: uuid.UUID, who: TenantOrOperator, db: Db, ctx: Ctx) -> BookingOut:
    booking = await _owned(db, who, booking_id)
    return await _update(db, ctx, booking, BookingWorkflow.mark_paid, ActorRequest(who.actor))
