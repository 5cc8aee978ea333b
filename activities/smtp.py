"""Email over SMTP with an async client (aiosmtplib). One connection per message: the
messages of a booking are few and far between, and a fresh connection cannot carry a
half-finished earlier transaction.

Errors leave without the server's own words, which often quote the address: an
activity's error goes into its workflow's history."""

from __future__ import annotations

import asyncio
import logging
from email.message import EmailMessage

import aiosmtplib

from settings import Settings

log = logging.getLogger("holdfast.smtp")


class MailRefused(Exception):
    """The server refused the message for good (a 5xx answer): retrying cannot help."""


class MailDeferred(Exception):
    """The server could not take the message now (a 4xx answer, a lost connection)."""


# The whole conversation, bounded below the sending step's own limit (60 s), so a slow
# server never has a second attempt race the first.
SEND_SECONDS = 45.0


class Mailer:
    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("SMTP_HOST is not set")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self._options = {
            "hostname": settings.smtp_host,
            "port": settings.smtp_port,
            "username": settings.smtp_username or None,
            "password": password or None,
            # Unset: when offered, but always when there are credentials to protect.
            "start_tls": (
                settings.smtp_starttls
                if settings.smtp_starttls is not None
                else (True if settings.smtp_username else None)
            ),
            "timeout": settings.smtp_timeout_seconds,
        }
        self.sender = settings.mail_from

    async def send(self, message: EmailMessage) -> str:
        """Returns the server's acceptance (its queue id, as it words it). Once the server
        has accepted the message, a failure to say goodbye does not fail the send: the
        message is on its way, and a retry would only send it twice."""
        smtp = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        async with asyncio.timeout(SEND_SECONDS):
            await smtp.connect()
            try:
                _, accepted = await smtp.send_message(message, sender=self.sender)
            except aiosmtplib.SMTPRecipientsRefused as err:
                code = min((r.code for r in err.recipients), default=0)
                raise _answered(code, "recipient refused") from None
            except aiosmtplib.SMTPResponseException as err:
                raise _answered(err.code, type(err).__name__) from None
            finally:
                try:
                    await smtp.quit()
                except aiosmtplib.SMTPException as err:
                    log.info("SMTP goodbye failed after the send: %s", type(err).__name__)
        return accepted


def _answered(code: int, what: str) -> Exception:
    """A refusal for good (5xx) or for now (anything else), in our words."""
    if 500 <= code < 600:
        return MailRefused(f"{what} ({code})")
    return MailDeferred(f"{what} ({code})")
