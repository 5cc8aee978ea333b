"""What a customer message is rendered from. The facts are gathered once, when the message
is sent, and rendering is a pure function of them, so a resend is byte-identical."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class MessageFacts:
    """Everything one customer message says, gathered at send time."""

    kind: str  # one of contract.MESSAGE_KINDS
    message_id: str  # the notification's uuid; the Message-ID is derived from it
    written_at: datetime  # aware: the Date header and the ICS DTSTAMP
    booking_id: str
    version: int  # the booking's version: the ICS SEQUENCE
    locale: str  # BCP 47 as the customer sent it; unknown or invalid -> English
    timezone: str  # IANA zone the customer sees times in
    customer_name: str
    customer_email: str
    tenant_name: str
    service_name: str
    start: datetime  # aware
    end: datetime  # aware
    resources: list[str]  # resource names, e.g. ["Dr Ada", "Room 1"]
    previous_start: datetime | None = None  # rescheduled: the old time
    previous_end: datetime | None = None
    hold_expires_at: datetime | None = None  # held: when the hold runs out
    # provider ("stripe" | "pay_at_venue"), status, amount, currency (ISO 4217),
    # captured_amount, refunded_amount; amounts in minor units
    payment: dict[str, Any] | None = None
    reminder_minutes: int | None = None  # reminder: how long before the start


@dataclass(frozen=True)
class Sender:
    """Who a message is from: the From address is ours (MAIL_FROM), the name and the
    Reply-To are the tenant's, so replies reach the business and not Holdfast."""

    address: str
    name: str | None = None  # None: the tenant's name is the display name
    reply_to: str | None = None


def message_id_header(message_id: str) -> str:
    """Derived from the notification id, so a retried send carries the same Message-ID and
    receivers can drop the duplicate."""
    return f"<{message_id}@holdfast>"
