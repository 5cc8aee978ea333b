"""The local Twilio stand-in: the Messages API as the `twilio` client calls it
(`client.messages.create(to=, from_=, body=)`), sending nothing and keeping each accepted
message as one JSON file in a folder (`make run`: `.data/sms/`), named like the mail
stand-in's files.

It checks what Twilio checks first: HTTP basic auth (the account SID and auth token it was
started with), the account in the path, a `To` in E.164 (formatting characters aside),
a `From` (or `MessagingServiceSid`) and a `Body` (or media) of at most 1600 characters; and
it refuses Twilio's magic test numbers as Twilio's test credentials do (`To`
+15005550001 is invalid, ...0002 cannot be routed, ...0003 is international without
permission, ...0004 is blocked, ...0009 cannot receive SMS). Errors have Twilio's shape:
`{"code", "message", "more_info", "status"}`.

`python -m devstack.sms --host 127.0.0.1 --port 8426 --dir .data/sms --account-sid AC...
--auth-token ...` (the SID and token default to TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN
from the environment, which keeps the token out of `ps`)."""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import hmac
import json
import logging
import os
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from devstack.mail import file_stem, store_new

log = logging.getLogger("holdfast.sms")

API_VERSION = "2010-04-01"
SENT = web.AppKey("sent", list[dict[str, Any]])
_E164 = re.compile(r"\+[1-9]\d{1,14}")
_FORMATTING = re.compile(r"[\s().-]")
MAGIC_TO = {
    "+15005550001": (21211, "The 'To' number {to} is not a valid phone number."),
    "+15005550002": (21612, "The 'To' phone number: {to}, is not currently reachable."),
    "+15005550003": (21408, "Permission to send an SMS has not been enabled for {to}."),
    "+15005550004": (21610, "Attempt to send to unsubscribed recipient"),
    "+15005550009": (21614, "'To' number is not a valid mobile number"),
}


@dataclass(frozen=True)
class Account:
    sid: str
    auth_token: str
    directory: Path | None


ACCOUNT = web.AppKey("account", Account)


def new_account_sid() -> str:
    return "AC" + secrets.token_hex(16)


def error(status: int, code: int, message: str) -> web.Response:
    body = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if status == 401 else None
    return web.json_response(body, status=status, headers=headers)


def _authorized(request: web.Request) -> bool:
    account = request.app[ACCOUNT]
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        given = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, f"{account.sid}:{account.auth_token}".encode())


def _guarded(request: web.Request) -> web.Response | None:
    """The answer when the request may not go on: bad credentials or another account."""
    if not _authorized(request):
        return error(401, 20003, "Authenticate")
    if request.match_info["account_sid"] != request.app[ACCOUNT].sid:
        return error(404, 20404, f"The requested resource {request.path} was not found")
    return None


def _segments(body: str) -> int:
    """Roughly as carriers count: 160 GSM-7 characters (153 when split), else 70 (67)."""
    single, part = (160, 153) if body.isascii() else (70, 67)
    return 1 if len(body) <= single else -(-len(body) // part)


def _refusal(form: dict[str, Any]) -> web.Response | None:
    to = str(form.get("To", ""))
    body = str(form.get("Body", ""))
    if not to:
        return error(400, 21604, "A 'To' phone number is required.")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return error(400, 21603, "A 'From' phone number is required.")
    if not body and not form.get("MediaUrl") and not form.get("ContentSid"):
        return error(400, 21602, "Message body is required.")
    if len(body) > 1600:
        return error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    number = _FORMATTING.sub("", to.removeprefix("whatsapp:"))
    if not _E164.fullmatch(number):
        return error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if number in MAGIC_TO:
        code, message = MAGIC_TO[number]
        return error(400, code, message.format(to=to))
    return None


async def create_message(request: web.Request) -> web.Response:
    refused = _guarded(request)
    if refused is not None:
        return refused
    posted = await request.post()
    form: dict[str, Any] = {}
    for key in posted:
        values = [str(v) for v in posted.getall(key)]
        form[key] = values if len(values) > 1 or key == "MediaUrl" else values[0]
    refused = _refusal(form)
    if refused is not None:
        return refused
    account_sid, directory = request.app[ACCOUNT].sid, request.app[ACCOUNT].directory
    sid = "SM" + secrets.token_hex(16)
    now = format_datetime(datetime.now(UTC))
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
    body = str(form.get("Body", ""))
    media = form.get("MediaUrl", [])
    message = {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": body,
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From") or None,
        "messaging_service_sid": form.get("MessagingServiceSid") or None,
        "num_media": str(len(media)),
        "num_segments": str(_segments(body)),
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {
            "media": uri.removesuffix(".json") + "/Media.json",
        },
        "to": form["To"],
        "uri": uri,
    }
    if directory is not None:
        data = json.dumps(message, indent=2, ensure_ascii=False).encode() + b"\n"
        path = await asyncio.to_thread(store_new, directory, file_stem(sid), ".json", data)
        log.info("accepted %s: %s", sid, path)
    request.app[SENT].append(message)
    return web.json_response(message, status=201)


async def fetch_message(request: web.Request) -> web.Response:
    refused = _guarded(request)
    if refused is not None:
        return refused
    sid = request.match_info["sid"]
    found = next((m for m in request.app[SENT] if m["sid"] == sid), None)
    if found is None:
        return error(404, 20404, f"The requested resource {request.path} was not found")
    return web.json_response(found)


async def _not_found(request: web.Request) -> web.Response:
    return error(404, 20404, f"The requested resource {request.path} was not found")


def build_app(account_sid: str, auth_token: str, directory: Path | None = None) -> web.Application:
    """The stand-in for one account; `app[SENT]` lists the messages accepted, oldest first
    (those of this process: the files are what lasts)."""
    app = web.Application()
    app[ACCOUNT] = Account(account_sid, auth_token, directory)
    app[SENT] = []
    messages = f"/{API_VERSION}/Accounts/{{account_sid}}/Messages"
    app.router.add_post(f"{messages}.json", create_message)
    app.router.add_get(f"{messages}/{{sid}}.json", fetch_message)
    app.router.add_route("*", "/{tail:.*}", _not_found)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8426)
    parser.add_argument("--dir", type=Path, default=Path(".data/sms"))
    parser.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID"))
    parser.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN"))
    args = parser.parse_args()
    if not args.account_sid or not args.auth_token:
        parser.error("give --account-sid and --auth-token (or TWILIO_ACCOUNT_SID and _TOKEN)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sms %(levelname)s %(message)s")
    log.info("Twilio stand-in on http://%s:%d, keeping SMS in %s", args.host, args.port, args.dir)
    app = build_app(args.account_sid, args.auth_token, args.dir)
    web.run_app(app, host=args.host, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
