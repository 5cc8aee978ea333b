"""The booking contract, at the bottom of the layers: every other package imports it, it
imports none of them. Statuses, the history's event vocabulary, the failure types that
cross the workflow boundary, the search attributes, and the values a booking's workflow
takes and answers with (plain dataclasses, serialised by the pydantic data converter).

The statuses and events are described in docs/lifecycle.md; the API's view of them in
docs/api.md#bookings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError


class BookingStatus(StrEnum):
    """What the API shows of a booking (docs/lifecycle.md#statuses)."""

    PENDING_PAYMENT = "pending_payment"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    NO_SHOW = "no_show"
    FAILED = "failed"


class ClaimPhase(StrEnum):
    """A workflow's status before a booking exists, never stored or shown by the API:
    `claiming` until the claim answers, `rejected` when the slot was taken."""

    CLAIMING = "claiming"
    REJECTED = "rejected"


# A booking that holds its resources and can still be cancelled or moved.
LIVE_STATUSES = frozenset({BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED})


class WaitlistStatus(StrEnum):
    """A waitlist entry (docs/waitlist.md). `offered` is stored until the offer ends: an
    offer that lapsed reads as `expired`, from its booking."""

    WAITING = "waiting"
    OFFERED = "offered"
    BOOKED = "booked"  # accepted
    DECLINED = "declined"
    EXPIRED = "expired"
    LEFT = "left"


class SeriesPolicy(StrEnum):
    """What a booking series does when some occurrence is taken (docs/series.md)."""

    ALL_OR_NOTHING = "all_or_nothing"  # book every occurrence, or none
    SKIP_CONFLICTS = "skip_conflicts"  # book the free ones, list the rest


class SeriesPayment(StrEnum):
    """How a priced service's series is paid (docs/series.md#payment)."""

    PER_OCCURRENCE = "per_occurrence"  # each occurrence is paid as a single booking
    PER_SERIES = "per_series"  # one payment for every occurrence, taken by the series


class AllocationStatus(StrEnum):
    """A booking's claim on one resource. Only live ones take part in the exclusion
    constraint that makes a double booking impossible."""

    HELD = "held"
    CONFIRMED = "confirmed"
    RELEASED = "released"


LIVE_ALLOCATION_STATUSES = frozenset({AllocationStatus.HELD, AllocationStatus.CONFIRMED})


class EventType(StrEnum):
    """The booking history's vocabulary, the one outgoing webhooks use
    (docs/lifecycle.md#history)."""

    BOOKING_HELD = "booking.held"
    BOOKING_CONFIRMED = "booking.confirmed"
    BOOKING_RESCHEDULED = "booking.rescheduled"
    BOOKING_CANCELLED = "booking.cancelled"
    BOOKING_EXPIRED = "booking.expired"
    BOOKING_FAILED = "booking.failed"
    BOOKING_NO_SHOW = "booking.no_show"
    BOOKING_COMPLETED = "booking.completed"
    BOOKING_REMINDER = "booking.reminder"  # a reminder went out (notices only)
    PAYMENT_REQUESTED = "payment.requested"
    PAYMENT_AUTHORIZED = "payment.authorized"
    PAYMENT_FAILED = "payment.failed"
    PAYMENT_CAPTURED = "payment.captured"
    PAYMENT_CANCELLED = "payment.cancelled"
    PAYMENT_REFUNDED = "payment.refunded"
    SIDE_EFFECT_FAILED = "side_effect.failed"
    # Someone deleted the booking's event in their own calendar (docs/calendars.md).
    CALENDAR_EVENT_DELETED = "booking.calendar_event_deleted"
    # A waiting entry was offered a slot: the booking held for it (docs/waitlist.md).
    WAITLIST_OFFERED = "waitlist.offered"

    @classmethod
    def entered(cls, status: str) -> EventType:
        """The event of a booking entering `status`."""
        return cls(f"booking.{status}")


class Failure(StrEnum):
    """`ApplicationError.type`s that cross the workflow boundary; the API maps them to
    its error codes (api/booking_gateway.py)."""

    SLOT_UNAVAILABLE = "SlotUnavailable"
    INVALID_STATE = "InvalidState"
    HOLD_LOST = "HoldLost"
    CLAIM_FAILED = "ClaimFailed"
    PAYMENT_FAILED = "PaymentFailed"
    PAYMENT_DECLINED = "PaymentDeclined"
    PAYMENT_REFUSED = "PaymentRequestRefused"
    REFUND_FAILED = "RefundFailed"
    DATA_REFUSED = "DataRefused"


def failure(kind: Failure, message: str) -> ApplicationError:
    """A failure retrying cannot change, raised fresh each time (an exception object
    carries its traceback and cause, so it is never shared)."""
    return ApplicationError(message, type=kind, non_retryable=True)


def is_failure(err: BaseException, kind: Failure) -> bool:
    """Whether `err` is of `kind`: an ActivityError's cause, or a local activity's own
    error (raised as it is, its own cause being whatever the activity chained)."""
    return any(
        isinstance(e, ApplicationError) and e.type == kind
        for e in (err, getattr(err, "cause", None))
    )


# Custom search attributes, declared once: the workflow sets them, `make run` and the test
# servers register them, docker-compose.yml lists them (a test checks it). They hold no
# personal data.
BOOKING_STATUS = SearchAttributeKey.for_keyword("BookingStatus")
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
SERVICE_CODE = SearchAttributeKey.for_keyword("ServiceCode")
BOOKING_START = SearchAttributeKey.for_datetime("BookingStart")
SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[Any], ...] = (
    BOOKING_STATUS,
    TENANT_ID,
    SERVICE_CODE,
    BOOKING_START,
)


# The booking workflow's type, for those that start one by name (activities/waitlist.py).
BOOKING_WORKFLOW_TYPE = "Booking"


def booking_search_attributes(request: BookingRequest) -> TypedSearchAttributes:
    """What a booking's workflow starts with, however it is started (the API, a series,
    a waitlist offer), so operators find every booking alike (docs/lifecycle.md)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(BOOKING_STATUS, ClaimPhase.CLAIMING),
            SearchAttributePair(TENANT_ID, request.tenant_id),
            SearchAttributePair(SERVICE_CODE, request.terms.code),
            SearchAttributePair(BOOKING_START, request.slot.start),
        ]
    )


def workflow_id_for(booking_id: str) -> str:
    """One workflow per booking, found by the booking's id (docs/lifecycle.md)."""
    return f"booking-{booking_id}"


@dataclass(frozen=True)
class ServiceTerms:
    """The service as it was when booked: later edits don't change a running booking."""

    service_id: str
    code: str
    name: str
    buffer_before_minutes: int
    buffer_after_minutes: int
    price_amount: int | None
    currency: str | None
    hold_seconds: int
    free_until_hours_before: int
    late_refund_percent: int
    reminders_minutes_before: list[int]
    retry_declined_payment: bool = False
    seats_per_booking: int = 1  # on each resource of capacity > 1 (docs/capacity.md)

    @property
    def priced(self) -> bool:
        return self.price_amount is not None


@dataclass(frozen=True)
class Slot:
    """The time and resources a booking holds (the engine's offers are `FreeSlot`s)."""

    start: datetime
    end: datetime
    resource_ids: list[str]

    def widened(self, terms: ServiceTerms) -> tuple[datetime, datetime]:
        """The span the allocations occupy: the service time plus its buffers."""
        return (
            self.start - timedelta(minutes=terms.buffer_before_minutes),
            self.end + timedelta(minutes=terms.buffer_after_minutes),
        )


@dataclass(frozen=True)
class BookingRequest:
    """The workflow's input; the API builds it from a verified allocation token."""

    booking_id: str
    tenant_id: str
    terms: ServiceTerms
    slot: Slot
    customer: dict[str, Any]
    metadata: dict[str, Any]
    idempotency_key: str
    actor: str = "api"
    series_id: str | None = None  # an occurrence of a booking series (docs/series.md)
    offer: WaitlistOffer | None = None  # held for a waitlist entry (docs/waitlist.md)
    held_until: datetime | None = None  # claimed already, held until then (a series')
    paid_by_series: bool = False  # paid with its series' one payment (docs/series.md)


@dataclass(frozen=True)
class WaitlistOffer:
    """A booking held for a waitlist entry until it is accepted or `until` passes."""

    entry_id: str
    until: datetime


@dataclass(frozen=True)
class WaitlistRequest:
    """A waitlist entry's workflow input: who waits for which service, when."""

    entry_id: str
    tenant_id: str
    service_id: str
    range_end: datetime | None = None  # past it, the entry has nothing left to wait for


def waitlist_workflow_id(entry_id: str) -> str:
    return f"waitlist-{entry_id}"


@dataclass(frozen=True)
class SkippedOccurrence:
    """An occurrence of a series that was not booked, and why (an error code)."""

    start: datetime
    reason: str


@dataclass(frozen=True)
class SeriesRequest:
    """The series workflow's input (docs/series.md): its occurrences, each a booking's
    own request, and those the API already found taken."""

    series_id: str
    tenant_id: str
    service_id: str
    start: datetime
    rrule: str
    policy: str  # SeriesPolicy
    occurrences: list[BookingRequest]
    skipped: list[SkippedOccurrence] = field(default_factory=list)
    paid_once: bool = False  # SeriesPayment.PER_SERIES, for a priced service

    @property
    def terms(self) -> ServiceTerms:
        return self.occurrences[0].terms


@dataclass
class SeriesState:
    """What the series workflow answers: the bookings it made, the occurrences it did not,
    and the series' one payment (paid once)."""

    series_id: str
    booking_ids: list[str] = field(default_factory=list)
    skipped: list[SkippedOccurrence] = field(default_factory=list)
    error: str | None = None
    payment: Payment | None = None


@dataclass(frozen=True)
class SeriesShare:
    """What a series paid once tells each occurrence: its share of the captured payment,
    or why there is none (the payment failed)."""

    payment: Payment | None
    paid_by: str = "system"
    failure: str = ""


# The Stripe webhook's signal, by one name on every payer's workflow (a booking's, or a
# series' paid once), so the webhook need not know which kind it reaches.
PAYMENT_EVENT_SIGNAL = "payment_event"


def series_workflow_id(series_id: str) -> str:
    return f"series-{series_id}"


@dataclass(frozen=True)
class Payment:
    """A booking's payment as the workflow knows it. The card's client secret is not
    here: only the paying customer's browser needs it, so it goes from the payment step
    straight to the booking row while the booking awaits payment."""

    provider: str
    status: str
    amount: int
    currency: str
    intent_id: str | None = None
    captured_amount: int = 0
    refunded_amount: int = 0


@dataclass(frozen=True)
class PaymentEvent:
    """What the Stripe webhook tells a booking: `kind` is `authorized` (the card is held
    for capture), `failed` (declined) or `canceled` (the intent can no longer be paid)."""

    event_id: str
    kind: str
    intent_id: str
    message: str = ""


@dataclass
class BookingState:
    """What the `state` query returns and every update answers with. `status` is a
    BookingStatus, or a ClaimPhase before the booking exists."""

    booking_id: str
    status: str
    slot: Slot
    hold_expires_at: datetime | None = None
    payment: Payment | None = None
    side_effects: dict[str, str] = field(default_factory=dict)
    reminders_sent: list[int] = field(default_factory=list)
    version: int = 1
    error: str | None = None


@dataclass(frozen=True)
class CancelRequest:
    reason: str = ""
    actor: str = "api"


@dataclass(frozen=True)
class RescheduleRequest:
    slot: Slot
    actor: str = "api"


@dataclass(frozen=True)
class ActorRequest:
    """For updates that carry nothing but who asked (no-show, mark-paid)."""

    actor: str = "api"


@dataclass(frozen=True)
class Notice:
    """A message about a booking for its customer and webhook subscribers. `kind` is the
    event (confirmed, reminder, cancelled, ...); `key` tells repeats of a kind apart (the
    booking version, a reminder's offset)."""

    tenant_id: str
    booking_id: str
    kind: str
    key: str
    booking: dict[str, Any]

    @classmethod
    def of(
        cls,
        request: BookingRequest,
        slot: Slot,
        status: str,
        payment: Payment | None,
        kind: str,
        key: str = "",
    ) -> Notice:
        """The notice of `kind` about the booking as it is: its slot, status and payment."""
        booking = {
            "id": request.booking_id,
            "status": status,
            "service": request.terms.code,
            "start": slot.start.isoformat(),
            "end": slot.end.isoformat(),
            "resource_ids": slot.resource_ids,
            "customer": request.customer,
            "metadata": request.metadata,
            "payment": None if payment is None else asdict(payment),
        }
        return cls(request.tenant_id, request.booking_id, kind, key or kind, booking)


# ---- messages to customers and webhook receivers (docs/notifications.md) --------------


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"


# What each channel tells the customer (docs/notifications.md#what-is-sent): every change
# of a booking by email; by text message only what must not be missed. `completed` tells
# the customer nothing.
MESSAGE_KINDS = (
    "offered",
    "held",
    "confirmed",
    "reminder",
    "rescheduled",
    "cancelled",
    "expired",
    "failed",
    "no_show",
)
SMS_KINDS = ("confirmed", "reminder", "rescheduled", "cancelled")


class NotificationStatus(StrEnum):
    """One email or text message: `queued` until the provider accepts it (`sent`), or
    until its retries run out (`failed`)."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"


class DeliveryStatus(StrEnum):
    """One webhook event for one endpoint: `pending` while it is being tried, then
    `delivered` (a 2xx answer) or `failed` (3 days of failures, or the endpoint is gone)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class EndpointStatus(StrEnum):
    ENABLED = "enabled"
    DISABLED = "disabled"


# ---- external calendars (docs/calendars.md) -------------------------------------------


class CalendarProvider(StrEnum):
    GOOGLE = "google"
    MICROSOFT = "microsoft"


class ConnectionStatus(StrEnum):
    """A calendar connection: `syncing` until its first sync, then `active`;
    `reauth_required` once the provider refuses its credential (it stays so until a sync
    succeeds again); `disabled` once deleted, while its workflow winds down."""

    ACTIVE = "active"
    SYNCING = "syncing"
    REAUTH_REQUIRED = "reauth_required"
    DISABLED = "disabled"


class ExportStatus(StrEnum):
    """A booking's event on one calendar: `pending` until written or deleted as the
    booking says, `deleted_by_hand` when someone removed it in their calendar, `failed`
    when the provider refused it for good."""

    PENDING = "pending"
    WRITTEN = "written"
    DELETED = "deleted"
    DELETED_BY_HAND = "deleted_by_hand"
    FAILED = "failed"


CONNECTION_BROKEN = "calendar_connection.broken"  # the webhook event of reauth_required


def connection_workflow_id(connection_id: str) -> str:
    """One long-running workflow per calendar connection: its syncs and push channel."""
    return f"calendar-connection-{connection_id}"


def export_workflow_id(booking_id: str) -> str:
    """One workflow per booking's calendar events, outside the booking's own lock: it
    keeps them matching the booking for as long as providers need (docs/calendars.md)."""
    return f"calendar-export-{booking_id}"


@dataclass(frozen=True)
class ConnectionInput:
    connection_id: str
    tenant_id: str


@dataclass(frozen=True)
class ExportRequest:
    """Make the booking's events match it; `remove` deletes them whatever the booking's
    row says yet (an undo runs before the booking's final status is written)."""

    booking_id: str
    remove: bool = False


# What outgoing webhooks carry (docs/webhooks.md#events): the booking changes a receiver
# acts on, and events of other objects.
WEBHOOK_EVENTS: tuple[str, ...] = (
    EventType.BOOKING_HELD,
    EventType.BOOKING_CONFIRMED,
    EventType.BOOKING_RESCHEDULED,
    EventType.BOOKING_CANCELLED,
    EventType.BOOKING_EXPIRED,
    EventType.BOOKING_FAILED,
    EventType.BOOKING_NO_SHOW,
    EventType.BOOKING_COMPLETED,
    EventType.PAYMENT_CAPTURED,
    EventType.PAYMENT_REFUNDED,
    EventType.CALENDAR_EVENT_DELETED,
    CONNECTION_BROKEN,
    EventType.WAITLIST_OFFERED,
)
ENDPOINT_DISABLED = "webhook_endpoint.disabled"  # the kind of the email that announces it


def delivery_task_queue(task_queue: str) -> str:
    """Messages and webhook deliveries have a task queue of their own beside the
    bookings', so a slow mail server or endpoint, holding its slots, never delays a
    booking's steps."""
    return f"{task_queue}-delivery"


def notification_workflow_id(notification_id: str) -> str:
    """One workflow per email or text message, found by the message's id."""
    return f"notification-{notification_id}"


def delivery_workflow_id(delivery_id: str) -> str:
    """One workflow per webhook delivery (an event for one endpoint)."""
    return f"webhook-delivery-{delivery_id}"


@dataclass(frozen=True)
class MessageInput:
    """A queued notification to send; everything else is in its row."""

    notification_id: str
    channel: str


@dataclass(frozen=True)
class DeliveryInput:
    """A webhook delivery to make. `first_retry` is the first wait after a failure; each
    later wait doubles, up to an hour, for 3 days (docs/webhooks.md#retries)."""

    delivery_id: str
    first_retry: timedelta = timedelta(seconds=1)


# ---- API keys (docs/security.md#api-keys) ---------------------------------------------


class ApiKeyKind(StrEnum):
    """Secret keys are for servers; publishable keys may sit in a browser or an app, so
    they only look up availability and make and manage their own bookings."""

    SECRET = "secret"
    PUBLISHABLE = "publishable"


KEY_PREFIXES = {ApiKeyKind.SECRET: "hf_sk_", ApiKeyKind.PUBLISHABLE: "hf_pk_"}
BOOKING_TOKEN_HEADER = "X-Booking-Token"
