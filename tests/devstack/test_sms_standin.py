"""The local Twilio stand-in answers the twilio client as Twilio does and keeps each
message it accepts as a JSON file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from twilio.base.exceptions import TwilioRestException  # type: ignore[import-untyped, unused-ignore]
from twilio.rest import Client  # type: ignore[import-untyped, unused-ignore]

from activities.sms_providers import TwilioSms
from devstack.sms import SENT, build_app, new_account_sid
from devstack.stand_in import serve

TOKEN = "test-auth-token"
SID = new_account_sid()


def _listing(folder: Path) -> list[Path]:
    return sorted(folder.iterdir())


@pytest.fixture
async def standin(tmp_path: Path) -> AsyncIterator[tuple[web.Application, str]]:
    app = build_app(SID, TOKEN, tmp_path)
    runner = await serve(app, port=0)
    host, port = runner.addresses[0][:2]
    yield app, f"http://{host}:{port}"
    await runner.cleanup()


async def test_a_message_from_the_twilio_client_is_one_json_file(
    standin: tuple[web.Application, str], tmp_path: Path
) -> None:
    app, base = standin
    sms = TwilioSms(SID, TOKEN, "+15005550006", base)
    sid = await asyncio.to_thread(sms.send, "+49 151 2345678", "See you at 9:00", "n-1")

    [message] = app[SENT]
    [kept] = _listing(tmp_path)
    assert json.loads(kept.read_text()) == message
    assert kept.name.endswith(f"Z-{sid}.json")
    assert message["sid"] == sid and sid.startswith("SM") and len(sid) == 34
    assert message["status"] == "queued" and message["account_sid"] == SID
    assert (message["to"], message["from"]) == ("+49 151 2345678", "+15005550006")
    assert message["body"] == "See you at 9:00"
    assert message["uri"] == f"/2010-04-01/Accounts/{SID}/Messages/{sid}.json"


async def test_wrong_credentials_are_refused(
    standin: tuple[web.Application, str], tmp_path: Path
) -> None:
    app, base = standin
    async with httpx.AsyncClient(base_url=base, auth=(SID, "not-the-token")) as client:
        answer = await client.post(
            f"/2010-04-01/Accounts/{SID}/Messages.json",
            data={"To": "+4915123456789", "From": "+15005550006", "Body": "Hi"},
        )
    assert answer.status_code == 401
    assert answer.json() == {
        "code": 20003,
        "message": "Authenticate",
        "more_info": "https://www.twilio.com/docs/errors/20003",
        "status": 401,
    }
    assert app[SENT] == [] and _listing(tmp_path) == []


async def test_a_message_without_a_recipient_is_a_twilio_error(
    standin: tuple[web.Application, str],
) -> None:
    app, base = standin
    client = Client(SID, TOKEN)
    client.api.base_url = base
    client.http_client.session.trust_env = False
    with pytest.raises(TwilioRestException) as refused:
        await asyncio.to_thread(client.messages.create, to="", from_="+15005550006", body="Hi")
    assert (refused.value.status, refused.value.code) == (400, 21604)
    assert app[SENT] == []
