"""Sending one notification (docs/notifications.md#delivery): the queued row is counted
and its facts gathered, the message is composed in the customer's language and time zone
and handed to the provider. The provider's acceptance is written at once (or, failing
that, by the workflow's record step), so a message accepted is never sent again; only an
acceptance lost on the way back (the connection dropping after the server took it)
repeats it, and then with the same Message-ID.

Email goes over async SMTP; text messages through a blocking client (Twilio), so that
activity is sync and runs on the worker's thread pool."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import metrics
from activities.refusals import refusals_are_final
from activities.sms_providers import SmsProvider, SmsRefused
from activities.smtp import Mailer, MailRefused
from activities.worker_loop import WorkerLoop
from contract import ENDPOINT_DISABLED, MessageInput
from db import notifications as rows
from db.sessions import Sessions
from notifications.email import compose_email, compose_operator_email
from notifications.facts import MessageFacts, Sender
from notifications.sms import sms_text

MESSAGE_REFUSED = "MessageRefused"
T = TypeVar("T")

log = logging.getLogger("holdfast.messages")


@dataclass(frozen=True)
class Sent:
    """The provider's acceptance, and whether the row says so already."""

    provider_id: str
    recorded: bool


@dataclass(frozen=True)
class MessageOutcome:
    """What became of a message: accepted (`provider_id`), or failed for good (`error`)."""

    notification_id: str
    provider_id: str | None
    error: str | None


def _refused(why: str) -> ApplicationError:
    return ApplicationError(why, type=MESSAGE_REFUSED, non_retryable=True)


class MessageActivities:
    def __init__(
        self,
        sessions: Sessions,
        loop: WorkerLoop,
        *,
        mailer: Mailer | None,
        sms: SmsProvider | None,
    ) -> None:
        self._db, self._loop = sessions, loop
        self._mailer, self._sms = mailer, sms

    @activity.defn(name="send_email")
    @metrics.counts_email
    async def send_email(self, message: MessageInput) -> Sent | None:
        """The server's acceptance, or None if the message was sent or given up before."""
        id_ = uuid.UUID(message.notification_id)
        outgoing = await self._take(id_)
        if outgoing is None:
            return None
        mailer = self._mailer
        if mailer is None:
            raise _refused("no mail server is configured (SMTP_HOST)")
        email = _composed(lambda: _compose(outgoing, mailer.sender))
        try:
            accepted = await mailer.send(email)
        except MailRefused as err:
            raise _refused(str(err)) from err
        except Exception as err:
            await self._note_error(id_, err)
            raise
        return Sent(accepted, await self._note_sent(id_, accepted))

    @activity.defn(name="send_sms")
    @metrics.counts_sms
    def send_sms(self, message: MessageInput) -> Sent | None:
        """The provider's message id, or None if it was sent or given up before."""
        id_ = uuid.UUID(message.notification_id)
        outgoing = self._loop.run(self._take(id_))
        if outgoing is None:
            return None
        if self._sms is None:
            raise _refused("no SMS provider is configured (TWILIO_ACCOUNT_SID)")
        row = outgoing.notification
        text = _composed(lambda: sms_text(_facts(outgoing)))
        try:
            sid = self._sms.send(row.recipient, text, message.notification_id)
        except SmsRefused as err:
            raise _refused(str(err)) from err
        except Exception as err:
            self._loop.run(self._note_error(id_, err))
            raise
        try:  # accepted: whatever happens now, this attempt must not fail (and send again)
            recorded = self._loop.run(self._note_sent(id_, sid))
        except Exception as err:
            log.warning("message %s accepted, not yet recorded: %s", id_, type(err).__name__)
            recorded = False
        return Sent(sid, recorded)

    @activity.defn(name="record_message")
    @metrics.counts_record
    @refusals_are_final
    async def record(self, outcome: MessageOutcome) -> None:
        id_ = uuid.UUID(outcome.notification_id)
        async with self._db.transaction() as db:
            if outcome.provider_id is not None:
                await rows.mark_sent(db, id_, outcome.provider_id)
            else:
                await rows.mark_error(db, id_, outcome.error or "failed", final=True)
            await db.commit()

    async def _take(self, id_: uuid.UUID) -> rows.Outgoing | None:
        async with self._db.transaction() as db:
            outgoing = await rows.take_for_sending(db, id_)
            await db.commit()
        return outgoing

    async def _note_sent(self, id_: uuid.UUID, provider_id: str) -> bool:
        """Whether it was written; if not, the workflow's record step writes it."""
        try:
            async with self._db.transaction() as db:
                await rows.mark_sent(db, id_, provider_id)
                await db.commit()
        except Exception as err:
            log.warning("message %s accepted, not yet recorded: %s", id_, type(err).__name__)
            return False
        return True

    async def _note_error(self, id_: uuid.UUID, err: BaseException) -> None:
        """Why this attempt failed, for the booking's notifications list; best effort."""
        try:
            async with self._db.transaction() as db:
                await rows.mark_error(db, id_, f"{type(err).__name__}: {err}", final=False)
                await db.commit()
        except Exception as db_err:
            log.warning("message %s: error not recorded: %s", id_, type(db_err).__name__)


def _composed(compose: Callable[[], T]) -> T:
    """A message that cannot be composed (its payload or kind unknown to the templates)
    never will be: it fails at once rather than after a day of retries."""
    try:
        return compose()
    except (KeyError, ValueError, TypeError) as err:
        raise _refused(f"the message cannot be composed ({type(err).__name__})") from err


def _compose(outgoing: rows.Outgoing, address: str) -> EmailMessage:
    row, tenant = outgoing.notification, outgoing.tenant
    sender = Sender(address, tenant.mail_sender_name, tenant.mail_reply_to)
    if row.kind == ENDPOINT_DISABLED:
        return compose_operator_email(
            message_id=str(row.id),
            written_at=row.created_at,
            to=row.recipient,
            sender=sender,
            tenant_name=tenant.name,
            subject="Webhook endpoint disabled",
            body=(
                f"Your webhook endpoint {row.payload['url']} failed every delivery since "
                f"{row.payload['failing_since']} and has been disabled. Fix it, then enable "
                f"it again with PATCH /v1/webhook-endpoints/{row.payload['endpoint_id']} "
                '{"status": "enabled"}; failed deliveries can be sent again with '
                "POST /v1/webhook-deliveries/{id}/retry."
            ),
        )
    return compose_email(_facts(outgoing), sender)


def _facts(outgoing: rows.Outgoing) -> MessageFacts:
    """The message's facts: the booking as the notice saw it (its payload), the names
    and settings as they are now."""
    row, booking, service = outgoing.notification, outgoing.booking, outgoing.service
    if booking is None or service is None:
        raise _refused("the booking of this message no longer exists")
    seen: dict[str, Any] = row.payload["booking"]
    customer: dict[str, Any] = seen.get("customer", {})
    previous = row.payload.get("previous") or {}
    return MessageFacts(
        kind=row.kind,
        message_id=str(row.id),
        written_at=row.created_at,
        booking_id=str(booking.id),
        version=int(row.payload.get("version") or booking.version),
        locale=customer.get("locale") or "en",
        timezone=customer.get("timezone") or service.timezone,
        customer_name=customer.get("name", ""),
        customer_email=customer.get("email", ""),
        tenant_name=outgoing.tenant.name,
        service_name=service.name,
        start=datetime.fromisoformat(seen["start"]),
        end=datetime.fromisoformat(seen["end"]),
        resources=[outgoing.resource_names.get(r, r) for r in seen.get("resource_ids", [])],
        previous_start=_instant(previous.get("start")),
        previous_end=_instant(previous.get("end")),
        hold_expires_at=booking.hold_expires_at,
        payment=seen.get("payment"),
        reminder_minutes=row.payload.get("reminder_minutes"),
    )


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
