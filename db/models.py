"""Typed SQLAlchemy models. The migration in `db/migrations` creates exactly this schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import (
    ARRAY,
    JSONB,
    TSTZMULTIRANGE,
    TSTZRANGE,
    ExcludeConstraint,
    Range,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contract import (
    LIVE_ALLOCATION_STATUSES,
    AllocationStatus,
    ApiKeyKind,
    BookingStatus,
    CalendarProvider,
    Channel,
    ConnectionStatus,
    DeliveryStatus,
    EndpointStatus,
    ExportStatus,
    NotificationStatus,
    SeriesPayment,
    SeriesPolicy,
    WaitlistStatus,
)
from db.ids import new_id


def sql_list(values: Iterable[str]) -> str:
    """A SQL list of string literals, in a stable order: `('a', 'b')`. For the enums of
    contract.py, so constraints and queries spell their statuses as the code does."""
    return "(" + ", ".join(f"'{v}'" for v in sorted(values)) + ")"


# Statuses under which an allocation occupies its resource: the exclusion constraint and
# every availability query use this one list (contract.py).
LIVE_ALLOCATIONS_SQL = sql_list(LIVE_ALLOCATION_STATUSES)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {
        dict[str, Any]: JSONB,
        list[Any]: JSONB,
        datetime: DateTime(timezone=True),
        date: Date,
        Range[datetime]: TSTZRANGE,
    }


def _id() -> Mapped[uuid.UUID]:
    return mapped_column(primary_key=True, default=new_id)


def _tenant_fk() -> Mapped[uuid.UUID]:
    return mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))


def _created_at() -> Mapped[datetime]:
    return mapped_column(server_default=func.now())


class Tenant(Base):
    __tablename__ = "tenants"

    id: Mapped[uuid.UUID] = _id()
    name: Mapped[str] = mapped_column(String(200))
    # Its booking page's address, /book/{slug}/{service code} (docs/booking-page.md).
    slug: Mapped[str | None] = mapped_column(String(63), unique=True)
    # How its messages are signed and answered (docs/notifications.md#sender), and where
    # operational notices (a disabled webhook endpoint) go.
    mail_sender_name: Mapped[str | None] = mapped_column(String(200))
    mail_reply_to: Mapped[str | None] = mapped_column(String(254))
    contact_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = _created_at()


class ApiKey(Base):
    """Tenant keys, stored as SHA-256 digests: they are random, so a slow hash adds nothing."""

    __tablename__ = "api_keys"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16), server_default="secret")  # ApiKeyKind
    name: Mapped[str] = mapped_column(String(200), server_default="")
    allowed_origins: Mapped[list[str]] = mapped_column(ARRAY(String(200)), server_default="{}")
    created_at: Mapped[datetime] = _created_at()
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        CheckConstraint(f"kind IN {sql_list(ApiKeyKind)}", name="kind"),
        Index(None, "tenant_id", "id"),
    )


class Location(Base):
    __tablename__ = "locations"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (Index(None, "tenant_id", "id"),)


class Resource(Base):
    __tablename__ = "resources"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    location_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("locations.id", ondelete="RESTRICT")
    )
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), server_default="{}")
    timezone: Mapped[str] = mapped_column(String(64))
    weekly_hours: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    date_overrides: Mapped[list[Any]] = mapped_column(server_default="[]")
    # Every busy time imported from its calendars (external_busy), merged: what a claim
    # checks, and the row a sync rewrites so a racing claim waits for it (db/bookings.py).
    calendar_busy: Mapped[list[Range[datetime]]] = mapped_column(
        TSTZMULTIRANGE, server_default="{}"
    )
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    # Seats: how many bookings it serves at once (docs/capacity.md).
    capacity: Mapped[int] = mapped_column(Integer, server_default="1")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint("kind IN ('staff', 'room', 'asset')", name="kind"),
        CheckConstraint("capacity BETWEEN 1 AND 1000", name="capacity"),
        Index(None, "tenant_id", "id"),
        Index(None, "tenant_id", "kind"),
        Index("ix_resources_tags", "tags", postgresql_using="gin"),
    )


class TimeOff(Base):
    __tablename__ = "time_off"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    span: Mapped[Range[datetime]]
    reason: Mapped[str] = mapped_column(Text, server_default="")
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        Index("ix_time_off_resource_span", "resource_id", "span", postgresql_using="gist"),
    )


class CalendarConnection(Base):
    """A resource's Google or Outlook calendar (docs/calendars.md). `credentials` is
    sealed (db/encryption.py) and never leaves the worker; `sync_cursor` is the
    provider's sync token or delta link, valid for the window ending at `window_end`;
    `channel` is the live push subscription, its token sealed too."""

    __tablename__ = "calendar_connections"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))
    calendar_id: Mapped[str] = mapped_column(String(255))
    credentials: Mapped[str] = mapped_column(Text)
    import_busy: Mapped[bool] = mapped_column(server_default=text("true"))
    export_events: Mapped[bool] = mapped_column(server_default=text("true"))
    status: Mapped[str] = mapped_column(String(24), server_default=ConnectionStatus.SYNCING)
    last_synced_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sync_cursor: Mapped[str | None] = mapped_column(Text)
    window_end: Mapped[datetime | None]
    channel_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    channel: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"provider IN {sql_list(CalendarProvider)}", name="provider"),
        CheckConstraint(f"status IN {sql_list(ConnectionStatus)}", name="status"),
        Index(None, "tenant_id", "resource_id"),
        # One live connection per calendar of a resource; a deleted one may linger.
        Index(
            "uq_calendar_connections_live_calendar",
            "resource_id",
            "provider",
            "calendar_id",
            unique=True,
            postgresql_where=text(f"status <> '{ConnectionStatus.DISABLED}'"),
        ),
    )


class ExternalBusy(Base):
    """Busy time imported from a resource's external calendar (Google, Outlook), one
    row per event of its connection."""

    __tablename__ = "external_busy"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id", ondelete="CASCADE"))
    connection_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="CASCADE")
    )
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    span: Mapped[Range[datetime]]
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        UniqueConstraint("connection_id", "external_id"),
        Index("ix_external_busy_resource_span", "resource_id", "span", postgresql_using="gist"),
    )


class CalendarEvent(Base):
    """A booking's event on one connected calendar, as exported (docs/calendars.md#export):
    the provider's id, the generation its deterministic id used, and a digest of what it
    shows (a repeat that would show the same writes nothing)."""

    __tablename__ = "calendar_events"

    booking_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE"), primary_key=True
    )
    connection_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("calendar_connections.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    status: Mapped[str] = mapped_column(String(24), server_default=ExportStatus.PENDING)
    external_id: Mapped[str | None] = mapped_column(String(255))
    generation: Mapped[int] = mapped_column(Integer, server_default="0")
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"status IN {sql_list(ExportStatus)}", name="status"),
        Index(None, "connection_id", "external_id"),
    )


class CalendarFeed(Base):
    """A resource's read-only ICS feed: the SHA-256 of its token (shown once)."""

    __tablename__ = "calendar_feeds"

    resource_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = _created_at()


class Service(Base):
    __tablename__ = "services"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64))
    duration_minutes: Mapped[int] = mapped_column(Integer)
    buffer_before_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    buffer_after_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    slot_interval_minutes: Mapped[int] = mapped_column(Integer)
    min_notice_minutes: Mapped[int] = mapped_column(Integer, server_default="0")
    max_advance_days: Mapped[int] = mapped_column(Integer)
    price_amount: Mapped[int | None]
    price_currency: Mapped[str | None] = mapped_column(String(3))
    hold_seconds: Mapped[int] = mapped_column(Integer, server_default="300")
    retry_declined_payment: Mapped[bool] = mapped_column(server_default=text("false"))
    seats_per_booking: Mapped[int] = mapped_column(Integer, server_default="1")
    offer_minutes: Mapped[int] = mapped_column(Integer, server_default="15")  # waitlist offers
    series_payment: Mapped[str] = mapped_column(String(16), server_default="per_occurrence")
    requirements: Mapped[list[Any]]
    cancellation: Mapped[dict[str, Any]]
    reminders_minutes_before: Mapped[list[int]] = mapped_column(ARRAY(Integer), server_default="{}")
    active: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint("hold_seconds BETWEEN 5 AND 86400", name="hold_seconds"),
        CheckConstraint("seats_per_booking BETWEEN 1 AND 1000", name="seats_per_booking"),
        CheckConstraint("offer_minutes BETWEEN 1 AND 10080", name="offer_minutes"),
        CheckConstraint(f"series_payment IN {sql_list(SeriesPayment)}", name="series_payment"),
        CheckConstraint("(price_amount IS NULL) = (price_currency IS NULL)", name="price_complete"),
    )


class BookingSeries(Base):
    """A recurring booking (docs/series.md): its occurrences are bookings pointing here."""

    __tablename__ = "booking_series"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id", ondelete="RESTRICT"))
    start_at: Mapped[datetime]
    rrule: Mapped[str] = mapped_column(Text)
    policy: Mapped[str] = mapped_column(String(32))
    # Occurrences not booked: [{"start": iso, "reason": code}].
    skipped: Mapped[list[Any]] = mapped_column(server_default="[]")
    workflow_id: Mapped[str] = mapped_column(String(100))
    # Paid once (docs/series.md#payment): the series' payment, and while it awaits
    # payment the card's client secret for the paying customer's browser.
    payment: Mapped[dict[str, Any] | None]
    payment_client_secret: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"policy IN {sql_list(SeriesPolicy)}", name="policy"),
        Index(None, "tenant_id"),
    )


class Booking(Base):
    __tablename__ = "bookings"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(String(24))
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    hold_expires_at: Mapped[datetime | None]
    # The resources it uses now (allocations keep the history across reschedules).
    resource_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), server_default="{}")
    series_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("booking_series.id", ondelete="SET NULL")
    )
    customer: Mapped[dict[str, Any]]
    # `metadata` is reserved on declarative classes, hence the attribute name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", server_default="{}")
    payment: Mapped[dict[str, Any] | None]
    # Only while the booking awaits payment: the paying customer's browser needs it.
    payment_client_secret: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, server_default="1")
    source: Mapped[str] = mapped_column(String(32), server_default="api")
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    workflow_id: Mapped[str] = mapped_column(String(100))
    # Per side-effect step (notification, calendar, webhook): its last outcome, so a step
    # that failed for good is visible on the booking.
    side_effects: Mapped[dict[str, Any]] = mapped_column(server_default="{}")
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(
            f"status IN {sql_list(BookingStatus)}",
            name="status",
        ),
        CheckConstraint("end_at > start_at", name="ordered"),
        Index(None, "tenant_id", "start_at"),
        Index(None, "tenant_id", "status", "start_at"),
        Index(None, "series_id", postgresql_where=text("series_id IS NOT NULL")),
        Index("ix_bookings_resource_ids", "resource_ids", postgresql_using="gin"),
        Index(
            "ix_bookings_metadata",
            "metadata",
            postgresql_using="gin",
            postgresql_ops={"metadata": "jsonb_path_ops"},
        ),
    )


class Allocation(Base):
    """One resource held or used by one booking, over the booking's buffer-widened span."""

    __tablename__ = "allocations"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id", ondelete="RESTRICT"))
    span: Mapped[Range[datetime]]
    status: Mapped[str] = mapped_column(String(16))
    hold_expires_at: Mapped[datetime | None]
    # Which of the resource's seats (below its capacity: a trigger, migration 0012), and
    # the group session sharing a resource of capacity 1 (docs/capacity.md).
    seat: Mapped[int] = mapped_column(Integer, server_default="0")
    group_session: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"status IN {sql_list(AllocationStatus)}", name="status"),
        CheckConstraint("status <> 'held' OR hold_expires_at IS NOT NULL", name="held_has_expiry"),
        CheckConstraint("seat >= 0", name="seat"),
        # The guarantee: two live allocations of one seat of a resource never overlap,
        # unless one session shares it.
        ExcludeConstraint(
            ("resource_id", "="),
            ("seat", "="),
            ("span", "&&"),
            (text("coalesce(group_session, id)"), "<>"),
            name="ex_allocations_no_overlap",
            using="gist",
            where=text(f"status IN {LIVE_ALLOCATIONS_SQL}"),
        ),
        Index(None, "booking_id"),
    )


class PaymentEvent(Base):
    """Each Stripe webhook event, recorded once (its id is the key): a repeated delivery
    finds it and has no second effect. `outcome` tells operators what it did, including
    events for bookings we do not know."""

    __tablename__ = "payment_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    intent_id: Mapped[str | None] = mapped_column(String(255))
    booking_id: Mapped[uuid.UUID | None]
    series_id: Mapped[uuid.UUID | None]  # a series' one payment (docs/series.md#payment)
    outcome: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]]
    received_at: Mapped[datetime] = _created_at()
    processed_at: Mapped[datetime | None]

    __table_args__ = (Index(None, "intent_id"), Index(None, "outcome", "received_at"))


class IdempotencyRecord(Base):
    """The first response to an Idempotency-Key, replayed for repeats of the same request."""

    __tablename__ = "idempotency_records"

    tenant_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    # The booking id reserved by the first request, so a repeat joins the same workflow.
    booking_id: Mapped[uuid.UUID | None]
    response_status: Mapped[int | None]
    response_body: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = _created_at()


class BookingEvent(Base):
    """The audit trail behind `GET /v1/bookings/{id}/history`. Ids are deterministic where
    a retried activity writes them, so a retry records nothing twice."""

    __tablename__ = "booking_events"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    booking_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("bookings.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(server_default=func.now())
    type: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str] = mapped_column(String(64))
    data: Mapped[dict[str, Any]] = mapped_column(server_default="{}")

    __table_args__ = (Index(None, "booking_id", "at"),)


class Notification(Base):
    """One email or text message, written once per deterministic id in the transaction of
    what it tells (the hand-off to delivery, docs/notifications.md). `dispatched_at` is
    set once its delivery workflow runs; until then the dispatcher picks it up."""

    __tablename__ = "notifications"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE")
    )
    channel: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(64))
    recipient: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), server_default=NotificationStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    provider_id: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    dispatched_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"channel IN {sql_list(Channel)}", name="channel"),
        CheckConstraint(f"status IN {sql_list(NotificationStatus)}", name="status"),
        Index(None, "booking_id", "created_at"),
        Index(
            "ix_notifications_undispatched",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
        Index("ix_notifications_queued", "created_at", postgresql_where=text("status = 'queued'")),
    )


class WebhookEvent(Base):
    """An event for webhook receivers, written in the transaction of the change it tells,
    with its whole body (`{type, timestamp, data}`) as of that moment. The dispatcher fans
    it out to the subscribed endpoints (`dispatched_at`)."""

    __tablename__ = "webhook_events"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="CASCADE")
    )
    type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = _created_at()
    dispatched_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ix_webhook_events_undispatched",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
    )


class WebhookEndpoint(Base):
    """A tenant's receiver. `previous_secret` still signs until `previous_secret_until`,
    so a receiver can roll over to a rotated secret; `failing_since` is the start of an
    unbroken run of failed attempts, and three days of it disable the endpoint."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    url: Mapped[str] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(ARRAY(Text))
    description: Mapped[str] = mapped_column(Text, server_default="")
    secret: Mapped[str] = mapped_column(Text)
    previous_secret: Mapped[str | None] = mapped_column(Text)
    previous_secret_until: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), server_default=EndpointStatus.ENABLED)
    failing_since: Mapped[datetime | None]
    disabled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"status IN {sql_list(EndpointStatus)}", name="status"),
        Index(None, "tenant_id", "id"),
    )


class WebhookDelivery(Base):
    """One event for one endpoint; its id is derived from both, so it is made once.
    `dispatched_at` is set once its delivery workflow runs (as for notifications)."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    endpoint_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE")
    )
    event_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), server_default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    dispatched_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"status IN {sql_list(DeliveryStatus)}", name="status"),
        Index(None, "endpoint_id", "id"),
        Index(None, "event_id"),
        Index(
            "ix_webhook_deliveries_pending",
            "created_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index(
            "ix_webhook_deliveries_undispatched",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL"),
        ),
    )


class WebhookAttempt(Base):
    """One HTTP request of a delivery: when, the answer's status code (None: no answer),
    how long it took, and what went wrong."""

    __tablename__ = "webhook_attempts"

    id: Mapped[uuid.UUID] = _id()
    delivery_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("webhook_deliveries.id", ondelete="CASCADE")
    )
    at: Mapped[datetime] = _created_at()
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "delivery_id", "at"),)


class RateLimit(Base):
    """A token bucket of the rate limits (db/rate_limits.py). UNLOGGED: nothing in it is
    worth WAL."""

    __tablename__ = "rate_limits"
    __table_args__ = {"prefixes": ["UNLOGGED"]}

    bucket: Mapped[str] = mapped_column(Text, primary_key=True)
    tokens: Mapped[float] = mapped_column(Double)
    refilled_at: Mapped[datetime]
    allowed: Mapped[bool]


class AuditEvent(Base):
    """An entry of the tamper-evident audit log (docs/security.md#audit-log). Only the
    database's trigger writes them (db/migrations/versions/0011_audit_log.py): what
    changed, by whom, as column names and keyed digests, never values; each entry's
    `hash` chains it to the one before in its tenant's log, and `hmac` signs it under
    AUDIT_KEY, which the database never holds (db/audit.py verifies both)."""

    __tablename__ = "audit_events"

    id: Mapped[uuid.UUID] = mapped_column(
        primary_key=True, server_default=text("gen_random_uuid()")
    )
    # No foreign key: the log outlives what it tells of, its tenant included.
    tenant_id: Mapped[uuid.UUID]
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(server_default=func.clock_timestamp())
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    object_type: Mapped[str] = mapped_column(Text)
    object_id: Mapped[str | None] = mapped_column(Text)
    changed: Mapped[list[str]] = mapped_column(ARRAY(Text))
    before_digest: Mapped[str | None] = mapped_column(Text)
    after_digest: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(Text)
    hash: Mapped[str] = mapped_column(Text)
    hmac: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        CheckConstraint("action IN ('delete', 'insert', 'update')", name="action"),
        UniqueConstraint("tenant_id", "seq"),
        Index(None, "tenant_id", "object_type", "object_id", "seq"),
    )


class AuditHead(Base):
    """The last entry of a tenant's audit log: what makes deleting the newest entries
    visible, and the row each new entry locks to take the next `seq`."""

    __tablename__ = "audit_heads"

    tenant_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(Text)


class WaitlistEntry(Base):
    """Someone waiting for a service in a range of time (docs/waitlist.md); served in
    join order (`created_at`, then the time-ordered id)."""

    __tablename__ = "waitlist_entries"

    id: Mapped[uuid.UUID] = _id()
    tenant_id: Mapped[uuid.UUID] = _tenant_fk()
    service_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("services.id", ondelete="CASCADE"))
    range_start: Mapped[datetime]
    range_end: Mapped[datetime]
    resource_ids: Mapped[list[uuid.UUID]] = mapped_column(ARRAY(Uuid), server_default="{}")
    customer: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), server_default=WaitlistStatus.WAITING)
    # The offer: a booking held for the entry until `offer_expires_at`.
    booking_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id", ondelete="SET NULL")
    )
    offer_expires_at: Mapped[datetime | None]
    workflow_id: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = _created_at()
    updated_at: Mapped[datetime] = _created_at()

    __table_args__ = (
        CheckConstraint(f"status IN {sql_list(WaitlistStatus)}", name="status"),
        CheckConstraint("range_end > range_start", name="range"),
        Index(None, "tenant_id", "status", "created_at"),
    )
