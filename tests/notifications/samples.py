"""One booking's facts to vary per test, and the parts of a composed email read back as a
receiver would, from its bytes."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from notifications.facts import MessageFacts, Sender

START = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)  # 10:00 in Berlin, a Monday
# Babel's punctuation, spelled out for the linter: en dash, typographic apostrophe.
DASH, APOSTROPHE = "\u2013", "\u2019"
SENDER = Sender("bookings@holdfast.example")
PAID = {
    "provider": "stripe",
    "status": "captured",
    "amount": 5000,
    "currency": "EUR",
    "captured_amount": 5000,
    "refunded_amount": 0,
}
_BASE = MessageFacts(
    kind="confirmed",
    message_id="5f0c7a52-3b8e-4d7f-9a61-0c2b9e4d1a77",
    written_at=datetime(2027, 2, 20, 8, 30, tzinfo=UTC),
    booking_id="b7e1c1de-8d2a-4a0e-9d55-6a1f2e3c4b5d",
    version=3,
    locale="en",
    timezone="Europe/Berlin",
    customer_name="Anna Schmidt",
    customer_email="anna@example.org",
    tenant_name="Riverside Physio",
    service_name="Sports massage",
    start=START,
    end=START + timedelta(minutes=45),
    resources=["Dr Ada", "Room 1"],
)


def facts(**changes: Any) -> MessageFacts:
    return replace(_BASE, **changes)


def received(message: EmailMessage) -> EmailMessage:
    return message_from_bytes(message.as_bytes(), policy=policy.default)


def text_and_html(message: EmailMessage) -> tuple[str, str]:
    parsed = received(message)
    bodies = {
        part.get_content_type(): str(part.get_content())
        for part in parsed.walk()
        if part.get_content_maintype() == "text" and not part.is_attachment()
    }
    return bodies["text/plain"], bodies["text/html"]


def attachments(message: EmailMessage) -> list[EmailMessage]:
    return [part for part in received(message).walk() if part.is_attachment()]


def flat(text: str) -> str:
    """Line breaks and Babel's narrow spaces as plain spaces, so phrases compare simply."""
    return " ".join(text.split())
