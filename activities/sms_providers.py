"""Text messages: the provider interface the SMS activity calls, and Twilio behind it.

Twilio's message create takes no idempotency key, so an SMS is not deduplicated the way
an email is (by its Message-ID): a message Twilio accepted is never sent again by us, but
if the acceptance itself is lost (the connection drops after Twilio took the message), the
activity's retry sends it a second time."""

from __future__ import annotations

import logging
from typing import Protocol

import requests
from twilio.base.exceptions import (  # type: ignore[import-untyped, unused-ignore]
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped, unused-ignore]
from twilio.rest import Client  # type: ignore[import-untyped, unused-ignore]

from settings import Settings

log = logging.getLogger("holdfast.sms")

TIMEOUT_SECONDS = 10.0
TWILIO_API = "https://api.twilio.com"


class SmsRefused(Exception):
    """The provider refused the message for good (bad number, 4xx): retrying cannot help."""


class SmsProvider(Protocol):
    def send(self, to: str, body: str, message_id: str) -> str:
        """Hands one text to the provider and returns the provider's id for it. Blocking
        (call it from a thread-pool activity). Raises SmsRefused when the provider refuses
        it for good; any other exception is transient (retry)."""
        ...


class TwilioSms:
    """SMS through Twilio's Messages API with the official client: one attempt per call
    (no retries inside: the activity retries), 10 s to connect and 10 s to answer.

    `api_base` replaces https://api.twilio.com (`make run`'s stand-in). The real Twilio
    is called with the environment's proxy and CA settings, as requests does by default;
    a replacement address (a local stand-in) without them."""

    def __init__(
        self, account_sid: str, auth_token: str, from_: str, api_base: str | None = None
    ) -> None:
        http = TwilioHttpClient(timeout=TIMEOUT_SECONDS)
        session: requests.Session = http.session
        session.trust_env = not api_base
        self._client = Client(account_sid, auth_token, http_client=http)
        if api_base:
            # The Api domain's address: every api.twilio.com resource is built on it. Edge
            # and region (TWILIO_EDGE, TWILIO_REGION) would rewrite its host name.
            self._client.api.base_url = api_base.rstrip("/")
            self._client.edge = self._client.region = None
        self._from = from_

    def send(self, to: str, body: str, message_id: str) -> str:
        """Twilio has no idempotency key for a message: `message_id` goes nowhere but
        our log, and a lost acceptance can repeat an SMS (see the module's docstring)."""
        try:
            message = self._client.messages.create(to=to, from_=self._from, body=body)
        except (TwilioRestException, TwilioServiceException) as refused:
            # Twilio's own message may quote the number: keep it out of the history.
            what = f"Twilio answered HTTP {refused.status} (error {refused.code})"
            # Refused for this message. Not a wrong account or token (401, 403), which an
            # operator fixes while the message waits, nor a rate limit (429).
            if 400 <= refused.status < 500 and refused.status not in (401, 403, 429):
                raise SmsRefused(what) from None
            raise RuntimeError(what) from None
        sid: str = message.sid
        log.info("message %s handed to Twilio as %s", message_id, sid)
        return sid


def create_sms(settings: Settings) -> SmsProvider | None:
    """None without TWILIO_ACCOUNT_SID: no text messages then."""
    if not settings.twilio_account_sid:
        return None
    token = settings.twilio_auth_token.get_secret_value() if settings.twilio_auth_token else ""
    if not token or not settings.twilio_from:
        raise ValueError("TWILIO_ACCOUNT_SID is set: TWILIO_AUTH_TOKEN and TWILIO_FROM must be too")
    return TwilioSms(
        settings.twilio_account_sid, token, settings.twilio_from, settings.twilio_api_base
    )
