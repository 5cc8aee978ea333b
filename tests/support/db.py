"""Direct inserts for states the catalogue API cannot create yet (bookings, calendars)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy.dialects.postgresql import Range
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from api.context import AppContext
from db import audit, calendar_connections, external_busy
from db.models import Allocation, Booking, CalendarConnection, ExternalBusy, Resource
from db.sessions import SessionFactory
from db.tenancy import across_tenants
from encryption import Keyring
from settings import Settings


async def insert_booking(
    db: AsyncSession,
    resource_ids: list[str],
    service_id: str,
    start: datetime,
    end: datetime,
    *,
    before: int = 0,
    after: int = 0,
    status: str = "confirmed",
    hold_expires_at: datetime | None = None,
    seat: int = 0,
) -> uuid.UUID:
    """A booking with one allocation per resource (on `seat`) over the buffer-widened
    span."""
    first = await db.get(Resource, uuid.UUID(resource_ids[0]))
    assert first is not None
    booking = Booking(
        tenant_id=first.tenant_id,
        service_id=uuid.UUID(service_id),
        status="pending_payment" if status == "held" else status,
        start_at=start,
        end_at=end,
        hold_expires_at=hold_expires_at,
        resource_ids=[uuid.UUID(r) for r in resource_ids],
        customer={"name": "Test"},
        workflow_id="booking-test",
    )
    db.add(booking)
    await db.flush()
    span = Range(start - timedelta(minutes=before), end + timedelta(minutes=after), bounds="[)")
    for rid in resource_ids:
        db.add(
            Allocation(
                tenant_id=first.tenant_id,
                booking_id=booking.id,
                resource_id=uuid.UUID(rid),
                span=span,
                status=status,
                hold_expires_at=hold_expires_at,
                seat=seat,
            )
        )
    await db.commit()
    return booking.id


async def insert_external_busy(
    db: AsyncSession, resource_id: str, start: datetime, end: datetime
) -> None:
    resource = await db.get(Resource, uuid.UUID(resource_id))
    assert resource is not None
    db.add(
        ExternalBusy(
            tenant_id=resource.tenant_id,
            resource_id=resource.id,
            source="google",
            external_id=uuid.uuid4().hex,
            span=Range(start, end, bounds="[)"),
        )
    )
    await db.flush()
    await external_busy.merge(db, resource.id)
    await db.commit()


APP_PASSWORD = "test-app-role-password"  # the application role's (tests/conftest.py)
AUDIT_KEY = "test-audit-key-0123456789abcdef0123456789"  # the suite's AUDIT_KEY
TEST_KEYS = "test-1:" + "A" * 43 + "="  # the suite's ENCRYPTION_KEYS (tests/conftest.py)


async def insert_connection(
    db: AsyncSession, resource_id: str, calendar_id: str = "ada@example.com"
) -> CalendarConnection:
    """A Google connection with no workflow behind it, for the database's own rules."""
    resource = await db.get(Resource, uuid.UUID(resource_id))
    assert resource is not None
    row = await calendar_connections.create(
        db,
        Keyring.parse(TEST_KEYS),
        tenant_id=resource.tenant_id,
        resource_id=resource.id,
        provider="google",
        calendar_id=calendar_id,
        credentials={"key": {}, "subject": None},
        import_busy=True,
        export_events=True,
    )
    await db.commit()
    return row


# What a test's own sessions on the app's engine act for: every tenant, as the operator.
EVERY_TENANT = across_tenants("test")


def every_tenant(ctx: AppContext) -> SessionFactory:
    """Sessions on the app's engine that see every tenant's rows."""
    return lambda: ctx.sessions(EVERY_TENANT)


async def audit_verdict(settings: Settings, tenant_id: uuid.UUID) -> audit.VerifyResult:
    """What `holdfast audit verify` says of a tenant's log, read as the tables' owner."""
    engine = create_async_engine(settings.async_database_url)
    try:
        async with engine.connect() as conn:
            return await audit.verify(conn, tenant_id, AUDIT_KEY)
    finally:
        await engine.dispose()
