"""Email over SMTP with an async client (aiosmtplib). One connection per message: the
messages of a booking are few and far between, and a fresh connection cannot carry a
half-finished earlier transaction."""

from __future__ import annotations

import logging
from email.message import EmailMessage

import aiosmtplib

from settings import Settings

log = logging.getLogger("holdfast.smtp")


class MailRefused(Exception):
    """The server refused the message for good (a 5xx answer): retrying cannot help."""


class Mailer:
    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("SMTP_HOST is not set")
        password = settings.smtp_password.get_secret_value() if settings.smtp_password else None
        self._options = {
            "hostname": settings.smtp_host,
            "port": settings.smtp_port,
            "username": settings.smtp_username,
            "password": password,
            "start_tls": settings.smtp_starttls,
            "timeout": settings.smtp_timeout_seconds,
        }
        self.sender = settings.mail_from

    async def send(self, message: EmailMessage) -> str:
        """Returns the server's acceptance (its queue id, as it words it). Once the server
        has accepted the message, a failure to say goodbye does not fail the send: the
        message is on its way, and a retry would only send it twice."""
        smtp = aiosmtplib.SMTP(**self._options)  # type: ignore[arg-type]
        await smtp.connect()
        try:
            _, accepted = await smtp.send_message(message, sender=self.sender)
        except aiosmtplib.SMTPRecipientsRefused as err:
            raise MailRefused(f"recipient refused: {err.recipients}") from err
        except aiosmtplib.SMTPResponseException as err:
            if 500 <= err.code < 600:
                raise MailRefused(f"{err.code} {err.message}") from err
            raise
        finally:
            try:
                await smtp.quit()
            except aiosmtplib.SMTPException as err:
                log.info("SMTP goodbye failed after the send: %s", err)
        return accepted
