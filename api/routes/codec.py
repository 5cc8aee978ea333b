"""The payload codec endpoint for the Temporal UI (docs/security.md#temporal-payloads):
Temporal keeps every payload sealed, so the UI shows ciphertext until it asks this
endpoint to open them. Operators only: with the operator key as a bearer token (the
`temporal` CLI's `--codec-endpoint --codec-auth`), or with the session cookie that
`/codec/login` sets, which a browser sends with the UI's requests once the UI's codec
settings include credentials. Answered with CORS for the UI's origin only.

The wire format is Temporal's remote codec protocol: `{"payloads": [...]}` in protobuf
JSON, in and out."""

import hashlib
import hmac
import time
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import HTMLResponse
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payloads

from api.auth import bearer_is_operator, is_operator
from api.context import AppContext
from api.deps import Ctx
from api.errors import ApiError
from encryption import Keyring, KeyringError, PayloadEncryption

router = APIRouter(tags=["operations"], include_in_schema=False)

COOKIE = "holdfast_codec"
SESSION_SECONDS = 8 * 3600
_NO_STORE = {"Cache-Control": "no-store"}


def _session_mac(ctx: AppContext, expires: int) -> str:
    """Keyed by the token secret and bound to the operator key: a new key ends every
    session made with the old one."""
    admin = ctx.settings.admin_api_key
    operator = admin.get_secret_value() if admin else ""
    message = f"codec:{expires}:{hashlib.sha256(operator.encode()).hexdigest()}".encode()
    secret = ctx.settings.token_secret.get_secret_value().encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def _session_valid(ctx: AppContext, cookie: str | None) -> bool:
    expires, _, mac = (cookie or "").partition(".")
    if not expires.isdigit() or int(expires) < time.time():
        return False
    return hmac.compare_digest(mac, _session_mac(ctx, int(expires)))


def _cors(ctx: AppContext, origin: str | None) -> dict[str, str]:
    if origin is None or origin not in ctx.settings.codec_allowed_origins:
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Allow-Methods": "POST, OPTIONS",
        "Access-Control-Allow-Headers": "Authorization, Content-Type, X-Namespace",
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }


def _codec(ctx: AppContext) -> PayloadEncryption:
    try:
        return PayloadEncryption(Keyring.parse(ctx.settings.encryption_keys.get_secret_value()))
    except KeyringError as exc:
        raise ApiError(503, "codec_unavailable", "no ENCRYPTION_KEYS: payloads are plain") from exc


async def _payloads(request: Request) -> Payloads:
    try:
        return json_format.Parse(await request.body(), Payloads())
    except (json_format.ParseError, DecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_payloads", 'expected {"payloads": [...]}') from exc


async def _run(request: Request, ctx: AppContext, origin: str | None, *, decode: bool) -> Response:
    cors = _cors(ctx, origin)
    if not (bearer_is_operator(request) or _session_valid(ctx, request.cookies.get(COOKIE))):
        raise ApiError(401, "unauthorized", "the codec needs the operator key", headers=cors)
    codec, given = _codec(ctx), await _payloads(request)
    try:
        done = await (codec.decode if decode else codec.encode)(list(given.payloads))
    except KeyringError as exc:
        raise ApiError(422, "payload_refused", str(exc), headers=cors) from exc
    body = json_format.MessageToJson(Payloads(payloads=done))
    return Response(body, media_type="application/json", headers={**cors, **_NO_STORE})


@router.post("/codec/decode")
async def decode(
    request: Request, ctx: Ctx, origin: Annotated[str | None, Header()] = None
) -> Response:
    return await _run(request, ctx, origin, decode=True)


@router.post("/codec/encode")
async def encode(
    request: Request, ctx: Ctx, origin: Annotated[str | None, Header()] = None
) -> Response:
    return await _run(request, ctx, origin, decode=False)


@router.options("/codec/decode")
@router.options("/codec/encode")
async def preflight(ctx: Ctx, origin: Annotated[str | None, Header()] = None) -> Response:
    return Response(status_code=204, headers=_cors(ctx, origin))


_LOGIN = """<!doctype html><meta charset="utf-8"><title>Holdfast codec</title>
<form method="post" action="/codec/login">
<p>Operator key: <input type="password" name="key" autocomplete="off" required>
<button>Sign in</button></p></form>"""


@router.get("/codec/login")
async def login_form() -> HTMLResponse:
    return HTMLResponse(_LOGIN, headers=_NO_STORE)


@router.post("/codec/login")
async def login(request: Request, ctx: Ctx) -> HTMLResponse:
    """Sets the session cookie the Temporal UI's codec requests carry (same site as the
    UI under `make run`; HttpOnly, so no page script can read it). The form is read by
    hand: one urlencoded field needs no multipart parser."""
    form = parse_qs((await request.body()).decode("utf-8", "replace"), max_num_fields=5)
    key = (form.get("key") or [""])[0]
    if not is_operator(request, key):
        raise ApiError(401, "unauthorized", "that is not the operator key")
    expires = int(time.time()) + SESSION_SECONDS
    answer = HTMLResponse(
        "<!doctype html><p>Signed in: the Temporal UI can decode payloads for 8 hours.",
        headers=_NO_STORE,
    )
    answer.set_cookie(
        COOKIE,
        f"{expires}.{_session_mac(ctx, expires)}",
        max_age=SESSION_SECONDS,
        path="/codec",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer
