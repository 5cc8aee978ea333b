"""TwilioSms through the local Twilio stand-in: the real twilio client and HTTP, what it
answers turned into a provider id, a lasting refusal or a transient error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from activities.sms_providers import SmsRefused, TwilioSms, create_sms
from devstack.sms import build_app, new_account_sid
from devstack.stand_in import serve
from settings import Settings
from tests.support.stripe import free_port

TOKEN = "test-auth-token"
SID = new_account_sid()
FROM = "+15005550006"


@pytest.fixture
async def base() -> AsyncIterator[str]:
    runner = await serve(build_app(SID, TOKEN), port=0)
    host, port = runner.addresses[0][:2]
    yield f"http://{host}:{port}"
    await runner.cleanup()


async def test_send_returns_the_message_sid(base: str) -> None:
    sid = await asyncio.to_thread(
        TwilioSms(SID, TOKEN, FROM, base).send, "+4915123456789", "Booked.", "n-1"
    )
    assert sid.startswith("SM") and len(sid) == 34


async def test_a_message_twilio_refuses_is_refused_for_good(base: str) -> None:
    sms = TwilioSms(SID, TOKEN, FROM, base)
    with pytest.raises(SmsRefused) as refused:
        await asyncio.to_thread(sms.send, "", "Booked.", "n-1")  # no recipient: 400 21604
    assert str(refused.value) == "Twilio answered HTTP 400 (error 21604)"


async def test_a_refusal_does_not_quote_the_number(base: str) -> None:
    sms = TwilioSms(SID, TOKEN, FROM, base)
    with pytest.raises(SmsRefused) as refused:
        await asyncio.to_thread(sms.send, "+15005550001", "Booked.", "n-1")  # invalid
    assert "5550001" not in str(refused.value) and "21211" in str(refused.value)


async def test_an_unreachable_twilio_is_a_transient_error() -> None:
    sms = TwilioSms(SID, TOKEN, FROM, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(Exception) as failed:
        await asyncio.to_thread(sms.send, "+4915123456789", "Booked.", "n-1")
    assert not isinstance(failed.value, SmsRefused)


async def test_wrong_credentials_are_an_error_to_retry_once_fixed(base: str) -> None:
    sms = TwilioSms(SID, "not-the-token", FROM, base)
    with pytest.raises(RuntimeError, match=r"HTTP 401 \(error 20003\)"):
        await asyncio.to_thread(sms.send, "+4915123456789", "Booked.", "n-1")


def test_without_an_account_there_is_no_sms_provider() -> None:
    assert create_sms(Settings(twilio_account_sid=None, _env_file=None)) is None


def test_with_an_account_the_provider_is_twilio() -> None:
    configured = Settings(
        twilio_account_sid=SID, twilio_auth_token=TOKEN, twilio_from=FROM, _env_file=None
    )
    assert isinstance(create_sms(configured), TwilioSms)
