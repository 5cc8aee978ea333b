"""Customer emails and operator notices as MIME messages, ready for SMTP.

A message is a pure function of its facts and sender, down to the MIME boundaries (derived
from the message id): a retried send is byte-identical, and its Message-ID lets receivers
drop the duplicate. Bodies are quoted-printable, so no relay needs 8BITMIME."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr

from notifications.facts import MessageFacts, Sender, message_id_header
from notifications.ics import INVITATION_METHODS, invitation
from notifications.locale import TEMPLATES, Wording, wording

OPERATOR_KIND = "operator_notice"


def compose_email(facts: MessageFacts, sender: Sender) -> EmailMessage:
    """text/plain and text/html alternatives in the customer's language, and the calendar
    invitation (ics.INVITATION_METHODS) for the kinds that change the customer's calendar."""
    words = wording(facts)
    message = _headed(
        message_id=facts.message_id,
        written_at=facts.written_at,
        sender=sender,
        display_name=sender.name or facts.tenant_name,
        to=formataddr((_line(facts.customer_name), facts.customer_email)),
        subject=words.subject,
    )
    message["X-Holdfast-Booking"] = facts.booking_id
    message["X-Holdfast-Kind"] = facts.kind
    message["Auto-Submitted"] = "auto-generated"
    layout = _layout(words, _line(facts.tenant_name))
    message.set_content(
        TEMPLATES.get_template("layout/email.txt").render(layout), cte="quoted-printable"
    )
    message.add_alternative(
        TEMPLATES.get_template("layout/email.html").render(layout),
        subtype="html",
        cte="quoted-printable",
    )
    method = INVITATION_METHODS.get(facts.kind)
    if method is not None:
        message.add_attachment(
            invitation(facts, sender.address),
            maintype="text",
            subtype="calendar",
            filename="invite.ics",
            params={"method": method, "charset": "utf-8"},
        )
    _finish(message, facts.message_id, words.language)
    return message


def compose_operator_email(
    *,
    message_id: str,
    written_at: datetime,
    to: str,
    sender: Sender,
    tenant_name: str,
    subject: str,
    body: str,
) -> EmailMessage:
    """A plain-text notice to a tenant's contact about its account, in English: the
    reader is an integrator reading API paths, not a customer."""
    message = _headed(
        message_id=message_id,
        written_at=written_at,
        sender=sender,
        display_name=sender.name or tenant_name,
        to=_line(to),
        subject=_line(subject),
    )
    message["X-Holdfast-Kind"] = OPERATOR_KIND
    message["Auto-Submitted"] = "auto-generated"
    footer = f"This is an automatic notice from Holdfast about {_line(tenant_name)}."
    message.set_content(f"{body.strip()}\n\n{footer}\n", cte="quoted-printable")
    _finish(message, message_id, "en")
    return message


def _headed(
    *,
    message_id: str,
    written_at: datetime,
    sender: Sender,
    display_name: str,
    to: str,
    subject: str,
) -> EmailMessage:
    """The headers every message shares. The SMTP policy encodes non-ASCII names
    (RFC 2047) and ends lines with CRLF."""
    if written_at.tzinfo is None or written_at.utcoffset() is None:
        raise ValueError("written_at must be aware: it is the message's Date")
    message = EmailMessage(policy=policy.SMTP)
    message["Message-ID"] = message_id_header(message_id)
    message["Date"] = format_datetime(written_at.astimezone(UTC))
    message["From"] = formataddr((_line(display_name), sender.address))
    message["To"] = to
    if sender.reply_to:
        message["Reply-To"] = _line(sender.reply_to)
    message["Subject"] = subject
    return message


def _layout(words: Wording, tenant_name: str) -> dict[str, object]:
    return {
        "language": words.language,
        "subject": words.subject,
        "greeting": words.greeting,
        "paragraphs": words.paragraphs,
        "details": words.details,
        "sign_off": words.sign_off,
        "tenant_name": tenant_name,
        "footer": words.footer,
    }


def _finish(message: EmailMessage, message_id: str, language: str) -> None:
    """Content-Language last: setting or adding content clears the Content-* headers of the
    message it goes into. Boundaries from the message id instead of random ones, so the
    bytes are the same on every compose; "=_" cannot occur in quoted-printable or base64
    text, so no part's content can contain a boundary. MIME-Version belongs on the message
    only (the email package also puts it on the parts it adds)."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:32]
    multiparts = (part for part in message.walk() if part.is_multipart())
    for depth, part in enumerate(multiparts):
        part.set_boundary(f"=_holdfast_{depth}_{digest}")
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]
    message["Content-Language"] = language


def _line(text: str) -> str:
    """A header must be one line: a line break in a name would start a new header."""
    return " ".join(text.split())
