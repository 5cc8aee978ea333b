"""What a booking request asks for: the bodies of create and reschedule, and the
service and slot they name, from a verified allocation token or found at a start
(docs/api.md#create-a-booking)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from api.context import AppContext
from api.errors import invalid
from api.slots import bookable, check_pinned, find_service, slot_at
from api.types import Instant, JsonBool, LanguageTag, PhoneNumber, TimeZoneName
from contract import (
    Slot,
)
from db.models import Booking, Service
from scheduling.engine import FreeSlot
from scheduling.tokens import TokenError


class Customer(BaseModel):
    """Who booked, and how their messages reach them (docs/notifications.md)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    phone: PhoneNumber | None = None
    sms_opt_in: JsonBool = False
    locale: LanguageTag = "en"
    timezone: TimeZoneName | None = Field(
        default=None, description="Where the customer reads times; default the service's."
    )

    @model_validator(mode="after")
    def _reachable_by_sms(self) -> Customer:
        if self.sms_opt_in and self.phone is None:
            raise ValueError("sms_opt_in needs a phone number")
        return self


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
    def _one_way(self) -> SlotChoice:
        if (self.allocation_token is None) == (self.start is None):
            raise ValueError("send either allocation_token, or service and start")
        return self


class BookingCreate(SlotChoice):
    customer: Customer
    metadata: Annotated[dict[str, Any], Field(default={})] = {}

    @model_validator(mode="after")
    def _checks(self) -> BookingCreate:
        _small_json(self.metadata)
        if self.start is not None and self.service is None:
            raise ValueError("service is required with start")
        return self


class RescheduleBody(SlotChoice):
    pass


class CancelBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


def slot_of(found: FreeSlot) -> Slot:
    return Slot(
        datetime.fromtimestamp(found.start, UTC),
        datetime.fromtimestamp(found.end, UTC),
        [r.id for r in found.resources],
    )


async def choose_slot(
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
    return service, slot_of(found)


async def reserved_slot(
    db: AsyncSession, ctx: AppContext, tenant: uuid.UUID, body: BookingCreate, booking_id: uuid.UUID
) -> tuple[Service, Slot]:
    """The slot for a repeat of an Idempotency-Key whose answer is not stored yet. If its
    booking exists, the repeat joins it as it stands (its token may have expired, and the
    slot is now its own); otherwise the slot is chosen again, ignoring its own booking."""
    existing = await db.get(Booking, booking_id)
    if existing is None:
        return await choose_slot(db, ctx, tenant, body, body.service, ignore=booking_id)
    service = await db.get(Service, existing.service_id)
    assert service is not None
    return service, Slot(
        existing.start_at, existing.end_at, [str(r) for r in existing.resource_ids]
    )
