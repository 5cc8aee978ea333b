"""A customer's data, by email, for a tenant's secret key (docs/security.md#erasure-and-export):
export everything the engine holds about them, or erase it, every copy rewritten to a
stable pseudonym. The data work is in db/customers.py; here, the key, the order of the
commits, and the calendars.

Nothing here logs: the address is personal data, and it rides in the query string."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, Field
from temporalio.service import RPCError

from activities.calendar import request_export
from api.booking_views import (
    BookingOut,
    HistoryItem,
    NotificationOut,
    booking_views,
    notification_view,
)
from api.context import AppContext
from api.deps import Actor, Ctx, Db, TenantId
from api.errors import ApiError
from contract import delivery_task_queue
from db import customers
from db.tenancy import across_tenants

router = APIRouter(prefix="/v1/customers", tags=["customers"])

# A Temporal that answers nothing is a 503, not a request left hanging.
TEMPORAL_TIMEOUT_SECONDS = 10


def _not_a_pseudonym(email: str) -> str:
    if customers.is_erased_address(email):
        raise ValueError(f"an address in {customers.ERASED_DOMAIN} is a pseudonym already")
    return email


# As a booking's `customer.email` takes it (api/booking_requests.py), matched in any case.
# A validation error names the field and the rule, never the value.
Email = Annotated[
    str,
    Query(
        min_length=3,
        max_length=254,
        pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
        description="The customer's email address, in any case.",
        examples=["ada@example.com"],
    ),
    AfterValidator(_not_a_pseudonym),
]


class ExportedBooking(BookingOut):
    history: list[HistoryItem] = Field(description="Its audit events, oldest first.")
    notifications: list[NotificationOut] = Field(
        description="Its emails and text messages, oldest first."
    )


class CustomerExport(BaseModel):
    email: str
    bookings: list[ExportedBooking] = Field(description="Oldest first.")


class ErasureCounts(BaseModel):
    """Rows rewritten in each place: erasing again counts zeros."""

    bookings: int
    notifications: int
    booking_events: int
    idempotency_records: int
    webhook_events: int
    calendar_events: int
    payment_events: int


class ErasureOut(BaseModel):
    pseudonym: str = Field(
        description="`erased-<16 hex>`: the same for the same address in this tenant, "
        "always. The name is now this, the email `<pseudonym>@erased.invalid`."
    )
    email: str = Field(description="The pseudonym's address, `<pseudonym>@erased.invalid`.")
    counts: ErasureCounts
    calendar_removals: int = Field(
        description="Bookings whose events were asked off the connected calendars they "
        "were written to (docs/security.md#erasure-and-export)."
    )


@router.get(
    "/export",
    summary="Everything held about a customer: their bookings, history and messages",
)
async def export(email: Email, tenant: TenantId, db: Db) -> CustomerExport:
    found = await customers.export(db, tenant, email)
    views = await booking_views(db, found.bookings)
    return CustomerExport(
        email=email,
        bookings=[
            ExportedBooking(
                **view.model_dump(),
                history=[
                    HistoryItem(at=e.at, type=e.type, actor=e.actor, data=e.data)
                    for e in found.events[view.id]
                ],
                notifications=[notification_view(n) for n in found.notifications[view.id]],
            )
            for view in views
        ],
    )


@router.delete(
    "",
    summary="Erase a customer: every copy of their data becomes a stable pseudonym",
    responses={
        409: {"description": "customer_has_live_bookings: nothing changed"},
        503: {"description": "calendar_unavailable: erased; repeat to clear the calendars"},
    },
)
async def erase(email: Email, tenant: TenantId, actor: Actor, db: Db, ctx: Ctx) -> ErasureOut:
    secret = ctx.settings.token_secret.get_secret_value().encode()
    pseudonym = customers.pseudonym_of(secret, tenant, email)
    try:
        done = await customers.erase(db, tenant, email, pseudonym, actor)
    except customers.LiveBookings as live:
        raise ApiError(
            409,
            "customer_has_live_bookings",
            "the customer has bookings that are pending payment or confirmed: cancel them "
            "(or let them end) first; nothing was erased",
            {"booking_ids": [str(b) for b in live.booking_ids]},
        ) from None
    # Stripe's events first, in a session of their own (only one acting across tenants
    # sees them), then the tenant's rows: if the second commit fails, the customer's
    # bookings still carry the address, and a repeat does it all again.
    if done.booking_ids:
        async with ctx.sessions(across_tenants(f"erasure:{actor}")) as payments:
            done.counts["payment_events"] = await customers.scrub_payment_events(
                payments, done.booking_ids, done.intent_ids, done.scrubber
            )
            await payments.commit()
    await db.commit()
    answer = ErasureOut(
        pseudonym=pseudonym,
        email=customers.erased_address(pseudonym),
        counts=ErasureCounts(**done.counts),
        calendar_removals=len(done.on_calendars),
    )
    await _off_calendars(ctx, done.on_calendars, answer)
    return answer


async def _off_calendars(ctx: AppContext, booking_ids: list[uuid.UUID], answer: ErasureOut) -> None:
    """Ask each booking's export workflow to take its events off the calendars: an event
    written before keeps the real name in its title at the provider, and an erased
    booking is never confirmed, so it is never shown (renamed) again. After the commit,
    as the export reads the booking; if Temporal cannot take it, the erasure stands and a
    repeat, which finds the events still on their calendars, asks again."""
    if not booking_ids:
        return
    queue = delivery_task_queue(ctx.settings.temporal_task_queue)
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT_SECONDS):
            client = await ctx.temporal()
            for booking_id in booking_ids:
                await request_export(client, queue, str(booking_id), remove=True)
    except (RPCError, RuntimeError, TimeoutError) as err:  # RuntimeError: no connection
        raise ApiError(
            503,
            "calendar_unavailable",
            "the customer's data is erased, but their events could not yet be taken off "
            "the connected calendars: repeat the request",
            answer.model_dump(mode="json"),
        ) from err
