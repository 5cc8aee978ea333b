"""A customer's data across the engine's tables, found by email: what an export shows and
what an erasure rewrites (docs/security.md#erasure-and-export).

A customer is not a row of their own: each booking carries its customer (`customer`, as
given when it was made), and copies of it travel into the booking's messages, history,
webhook events and the stored answer to its Idempotency-Key. Erasure rewrites every copy
to a stable pseudonym, in the caller's one transaction, so nothing is ever half-erased;
Stripe's events, which no tenant's session may see, are scrubbed through a session acting
across tenants (`scrub_payment_events`), limited to this tenant's bookings.

Pure database work: the route checks the key, orders the commits and asks the calendars.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from contract import LIVE_STATUSES, ExportStatus, NotificationStatus
from db.history import event_id
from db.models import (
    Booking,
    BookingEvent,
    CalendarEvent,
    IdempotencyRecord,
    Notification,
    PaymentEvent,
    WebhookEvent,
)

# Reserved by RFC 2606: no mail to it is ever delivered, and no real customer has it.
ERASED_DOMAIN = "erased.invalid"
# The booking history's entry for an erasure: outside the webhook vocabulary (receivers
# learn nothing they could not already see), but it adds to the booking's version, so a
# subscribed ICS feed (SEQUENCE) shows the pseudonym in place of the name.
ERASED_EVENT = "customer.erased"
# Where a Stripe event holds what the paying customer typed in (a charge's
# `billing_details`, an intent's `receipt_email` and `shipping`): removed whole, wherever
# they appear in the event.
STRIPE_PERSONAL = frozenset(
    {"billing_details", "receipt_email", "email", "name", "phone", "shipping"}
)
# The places an erasure rewrites, in the order its answer lists them.
PLACES = (
    "bookings",
    "notifications",
    "booking_events",
    "idempotency_records",
    "webhook_events",
    "calendar_events",
    "payment_events",
)
_NOT_SENT = "not sent: the customer's data was erased"
# Export rows still show on a calendar (or may: pending, failed) unless deleted.
_OFF_CALENDAR = (ExportStatus.DELETED, ExportStatus.DELETED_BY_HAND)


def pseudonym_of(secret: bytes, tenant_id: uuid.UUID, email: str) -> str:
    """`erased-<16 hex>`: an HMAC under TOKEN_SECRET of the tenant and the lowercased
    address, so the same customer of the same tenant always gets the same pseudonym
    (two erasures, two bookings agree) while nobody without the secret can tell whose it
    is, nor link one customer across tenants. The `customer-pseudonym:` prefix keeps
    these MACs apart from the secret's other uses (access tokens, allocation tokens)."""
    message = f"customer-pseudonym:{tenant_id}:{email.strip().lower()}".encode()
    return "erased-" + hmac.new(secret, message, hashlib.sha256).hexdigest()[:16]


def erased_address(pseudonym: str) -> str:
    return f"{pseudonym}@{ERASED_DOMAIN}"


def is_erased_address(email: str) -> bool:
    """A pseudonym's address: erasing it again would give a pseudonym of a pseudonym."""
    return email.strip().lower().endswith("@" + ERASED_DOMAIN)


class LiveBookings(Exception):
    """The customer has bookings whose workflows still run (pending payment, confirmed):
    those hold the customer in Temporal state and would still message the real address,
    so nothing is erased until they are cancelled or have ended."""

    def __init__(self, booking_ids: list[uuid.UUID]) -> None:
        super().__init__(f"{len(booking_ids)} live bookings")
        self.booking_ids = booking_ids


@dataclass(frozen=True)
class Scrubber:
    """Rewrites one customer's data in a stored JSON value or text: a `customer` object
    becomes the pseudonymous one, and any other mention of their address, names or phone
    numbers (an error quoting the recipient, metadata an integrator filled in) becomes
    the pseudonym (the address: the pseudonym's address)."""

    pseudonym: str
    email: str
    names: frozenset[str] = frozenset()
    phones: frozenset[str] = frozenset()
    _email: re.Pattern[str] = field(init=False, repr=False, compare=False)
    _others: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_email", re.compile(re.escape(self.email), re.IGNORECASE))
        # Whole words only, longest first, in the case given: a name is not replaced
        # inside another word, nor where it is a service code or a status ("test", "May").
        words = sorted({*self.names, *self.phones, *_digits(self.phones)}, key=len, reverse=True)
        alternatives = [rf"(?<![\w+]){re.escape(w)}(?!\w)" for w in words if len(w.strip()) > 1]
        others = re.compile("|".join(alternatives)) if alternatives else None
        object.__setattr__(self, "_others", others)

    @property
    def address(self) -> str:
        return erased_address(self.pseudonym)

    @property
    def customer(self) -> dict[str, Any]:
        """What a booking's customer becomes: the pseudonym as name and address, and
        nothing else (phone, language, time zone: gone, as nothing is sent any more)."""
        return {"name": self.pseudonym, "email": self.address}

    def text(self, value: str) -> str:
        value = self._email.sub(self.address, value)
        return self._others.sub(self.pseudonym, value) if self._others else value

    def json(self, value: Any, *, customers: bool = True) -> Any:
        """`customers`: a `customer` object is the booking's customer (rows of the
        customer's own bookings); off for the booking's metadata, which is the
        integrator's own and only has mentions replaced."""
        if isinstance(value, dict):
            return {
                k: (
                    dict(self.customer)
                    if customers and k == "customer" and isinstance(v, dict)
                    else self.json(v, customers=customers)
                )
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.json(v, customers=customers) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def stripe(self, value: Any) -> Any:
        """A Stripe event as stored: its personal fields emptied, mentions replaced."""
        if isinstance(value, dict):
            return {
                k: None if k in STRIPE_PERSONAL and v is not None else self.stripe(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.stripe(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value


def _digits(phones: Iterable[str]) -> set[str]:
    """A number as E.164 (`+4930123456`) and as its digits alone (`4930123456`), as a
    provider's error may quote it."""
    return {p.lstrip("+") for p in phones if p.startswith("+")}


def scrubber_for(pseudonym: str, email: str, bookings: Sequence[Booking]) -> Scrubber:
    """The names and numbers to look for: every one the customer gave on these bookings
    (one may have booked as "Ada" once and "Ada Lovelace" later)."""
    names, phones = set(), set()
    for b in bookings:
        customer = b.customer or {}
        if isinstance(customer.get("name"), str) and customer["name"] != pseudonym:
            names.add(customer["name"])
        if isinstance(customer.get("phone"), str):
            phones.add(customer["phone"])
    return Scrubber(pseudonym, email, frozenset(names), frozenset(phones))


async def customer_bookings(
    db: AsyncSession, tenant_id: uuid.UUID, emails: Iterable[str], *, lock: bool = False
) -> list[Booking]:
    """The tenant's bookings whose customer has any of these addresses, in any case,
    oldest first. `lock`: held FOR UPDATE (in id order, the order other writers lock a
    booking's rows in), so no change of theirs interleaves with an erasure. A scan of the
    tenant's bookings: erasures and exports are rare, an expression index on the address
    would cost every booking write."""
    wanted = sorted({e.strip().lower() for e in emails})
    stmt = select(Booking).where(
        Booking.tenant_id == tenant_id,
        func.lower(Booking.customer.op("->>")("email")).in_(wanted),
    )
    if lock:
        stmt = stmt.order_by(Booking.id).with_for_update()
        return list((await db.scalars(stmt)).all())
    return list((await db.scalars(stmt.order_by(Booking.start_at, Booking.id))).all())


@dataclass(frozen=True)
class CustomerRecords:
    """What the engine holds about one customer of one tenant, per booking."""

    bookings: list[Booking]
    events: dict[uuid.UUID, list[BookingEvent]]
    notifications: dict[uuid.UUID, list[Notification]]


async def export(db: AsyncSession, tenant_id: uuid.UUID, email: str) -> CustomerRecords:
    """The customer's bookings, each with its history and its messages, oldest first.
    Only the address as given (in any case): an erased customer's bookings carry a
    pseudonym and are nobody's any more."""
    bookings = await customer_bookings(db, tenant_id, [email])
    ids = [b.id for b in bookings]
    events: dict[uuid.UUID, list[BookingEvent]] = {i: [] for i in ids}
    notifications: dict[uuid.UUID, list[Notification]] = {i: [] for i in ids}
    if ids:
        for e in await db.scalars(
            select(BookingEvent)
            .where(BookingEvent.tenant_id == tenant_id, BookingEvent.booking_id.in_(ids))
            .order_by(BookingEvent.at, BookingEvent.id)
        ):
            events[e.booking_id].append(e)
        for n in await db.scalars(
            select(Notification)
            .where(Notification.tenant_id == tenant_id, Notification.booking_id.in_(ids))
            .order_by(Notification.created_at, Notification.id)
        ):
            assert n.booking_id is not None
            notifications[n.booking_id].append(n)
    return CustomerRecords(bookings, events, notifications)


@dataclass
class Erasure:
    """What one erasure rewrote, per place (rows changed: a repeat counts zeros), and
    what the caller still has to do outside this transaction: Stripe's events of
    `booking_ids` and `intent_ids`, and the calendars of `on_calendars`."""

    pseudonym: str
    scrubber: Scrubber
    booking_ids: list[uuid.UUID]
    intent_ids: list[str]
    on_calendars: list[uuid.UUID]
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PLACES, 0))


async def erase(
    db: AsyncSession, tenant_id: uuid.UUID, email: str, pseudonym: str, actor: str
) -> Erasure:
    """Rewrite the customer's data in every tenant table, in the caller's transaction
    (the caller commits). Raises LiveBookings, having changed nothing, if any of their
    bookings still runs.

    The bookings are found by the address and by the pseudonym's address, so erasing
    again finds what the first erasure rewrote: it changes nothing there, but it finishes
    what the first could not (a calendar that was unreachable, Stripe's events)."""
    bookings = await customer_bookings(db, tenant_id, [email, erased_address(pseudonym)], lock=True)
    live = [b.id for b in bookings if b.status in LIVE_STATUSES]
    if live:
        raise LiveBookings(live)
    scrub = scrubber_for(pseudonym, email, bookings)
    ids = [b.id for b in bookings]
    intents = sorted({str(i) for b in bookings if (i := (b.payment or {}).get("intent_id"))})
    done = Erasure(pseudonym, scrub, ids, intents, [])
    if not ids:
        return done
    counts = done.counts

    for b in bookings:
        customer, meta = scrub.customer, scrub.json(b.meta, customers=False)
        side_effects = scrub.json(b.side_effects)
        if (customer, meta, side_effects) != (b.customer, b.meta, b.side_effects):
            b.customer, b.meta, b.side_effects = customer, meta, side_effects
            b.updated_at = func.now()
            counts["bookings"] += 1

    for n in await db.scalars(
        select(Notification).where(
            Notification.tenant_id == tenant_id, Notification.booking_id.in_(ids)
        )
    ):
        recipient = scrub.address if n.channel == "email" else scrub.pseudonym
        payload = scrub.json(n.payload)
        last_error = scrub.text(n.last_error) if n.last_error else n.last_error
        status = n.status
        if status == NotificationStatus.QUEUED:  # its delivery finds nothing to send
            status, last_error = NotificationStatus.FAILED, _NOT_SENT
        if (recipient, payload, last_error, status) != (
            n.recipient,
            n.payload,
            n.last_error,
            n.status,
        ):
            n.recipient, n.payload, n.last_error, n.status = recipient, payload, last_error, status
            n.updated_at = func.now()
            counts["notifications"] += 1

    for model, column in _JSON_COPIES:
        counts[model.__tablename__] += await _scrub_json(db, model, column, tenant_id, ids, scrub)

    for c in await db.scalars(
        select(CalendarEvent).where(
            CalendarEvent.tenant_id == tenant_id, CalendarEvent.booking_id.in_(ids)
        )
    ):
        # The fingerprint is a digest of the title, which held the name: gone with it.
        last_error = scrub.text(c.last_error) if c.last_error else c.last_error
        if (None, last_error) != (c.fingerprint, c.last_error):
            c.fingerprint, c.last_error = None, last_error
            counts["calendar_events"] += 1
        if c.status not in _OFF_CALENDAR:
            done.on_calendars.append(c.booking_id)
    done.on_calendars[:] = sorted(set(done.on_calendars))

    await db.flush()
    for b in bookings:
        await _record(db, b, actor, pseudonym)
    return done


async def _record(db: AsyncSession, booking: Booking, actor: str, pseudonym: str) -> None:
    """The erasure in the booking's history, once per booking (a deterministic id, as
    for every step a retry may repeat); it adds to the version, as every entry does."""
    recorded = await db.scalar(
        insert(BookingEvent)
        .values(
            id=event_id(str(booking.id), "customer_erased"),
            tenant_id=booking.tenant_id,
            booking_id=booking.id,
            type=ERASED_EVENT,
            actor=actor,
            data={"pseudonym": pseudonym},
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(BookingEvent.id)
    )
    if recorded is not None:
        booking.version += 1


async def scrub_payment_events(
    db: AsyncSession, booking_ids: Sequence[uuid.UUID], intent_ids: Sequence[str], scrub: Scrubber
) -> int:
    """Empty the personal fields of the Stripe events of these bookings (by booking, or
    by their payment intents, for an event recorded before its booking was known). `db`
    acts across tenants, as only such a session sees this table, so the caller passes
    only its own tenant's bookings: nothing else is touched. Returns the rows changed."""
    if not booking_ids and not intent_ids:
        return 0
    conditions = []
    if booking_ids:
        conditions.append(PaymentEvent.booking_id.in_(list(booking_ids)))
    if intent_ids:
        conditions.append(PaymentEvent.intent_id.in_(list(intent_ids)))
    changed = 0
    for p in await db.scalars(
        select(PaymentEvent).where(or_(*conditions)).order_by(PaymentEvent.id).with_for_update()
    ):
        payload = scrub.stripe(p.payload)
        if payload != p.payload:
            p.payload = payload
            changed += 1
    await db.flush()
    return changed


# The JSON copies of a booking's customer: its history's data, the stored answer to its
# Idempotency-Key, its webhook events' payloads.
_JSON_COPIES: tuple[tuple[type[BookingEvent | IdempotencyRecord | WebhookEvent], str], ...] = (
    (BookingEvent, "data"),
    (IdempotencyRecord, "response_body"),
    (WebhookEvent, "payload"),
)


async def _scrub_json(
    db: AsyncSession,
    model: type[BookingEvent | IdempotencyRecord | WebhookEvent],
    column: str,
    tenant_id: uuid.UUID,
    booking_ids: Sequence[uuid.UUID],
    scrub: Scrubber,
) -> int:
    """Rewrite `column` of the bookings' rows of `model`; how many changed."""
    changed = 0
    rows = await db.scalars(
        select(model).where(model.tenant_id == tenant_id, model.booking_id.in_(booking_ids))
    )
    for row in rows:
        value = getattr(row, column)
        scrubbed = scrub.json(value) if value is not None else None
        if scrubbed != value:
            setattr(row, column, scrubbed)
            changed += 1
    return changed
