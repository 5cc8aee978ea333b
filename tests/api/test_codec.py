"""The payload codec endpoint (docs/security.md#temporal-payloads): it opens and seals
Temporal payloads for operators only, with the operator key or a session cookie from
`/codec/login`, and answers CORS for the Temporal UI's origin alone."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload

from api.app import create_app
from encryption import Keyring, PayloadEncryption
from settings import Settings
from tests.support.api import assert_error
from tests.support.clients import ADMIN_KEY, client_for
from tests.support.db import TEST_KEYS

UI = "http://127.0.0.1:8233"
PLAIN = Payload(metadata={"encoding": b"json/plain"}, data=b'{"name": "Ada Lovelace"}')


def _wire(payload: Payload) -> dict[str, object]:
    """A payload in Temporal's remote codec JSON (bytes as base64)."""
    return {
        "metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
        "data": base64.b64encode(payload.data).decode(),
    }


async def _sealed() -> dict[str, object]:
    [sealed] = await PayloadEncryption(Keyring.parse(TEST_KEYS)).encode([PLAIN])
    return {"payloads": [_wire(sealed)]}


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(app) as client:
        yield client


async def test_an_operator_decodes_sealed_payloads(operator: httpx.AsyncClient) -> None:
    answer = await operator.post("/codec/decode", json=await _sealed())
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"payloads": [_wire(PLAIN)]}
    assert answer.headers["cache-control"] == "no-store"


async def test_encode_then_decode_gives_the_payload_back(operator: httpx.AsyncClient) -> None:
    sealed = await operator.post("/codec/encode", json={"payloads": [_wire(PLAIN)]})
    [wired] = sealed.json()["payloads"]
    assert base64.b64decode(wired["metadata"]["encoding"]) == b"binary/encrypted"
    opened = await operator.post("/codec/decode", json=sealed.json())
    assert opened.json() == {"payloads": [_wire(PLAIN)]}


async def test_without_the_operator_key_the_codec_is_401(
    anonymous: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    assert_error(await anonymous.post("/codec/decode", json=await _sealed()), 401, "unauthorized")
    assert_error(await api.post("/codec/decode", json=await _sealed()), 401, "unauthorized")


async def test_a_session_from_the_login_form_opens_payloads(
    anonymous: httpx.AsyncClient,
) -> None:
    signed_in = await anonymous.post(
        "/codec/login",
        content=f"key={ADMIN_KEY}",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert signed_in.status_code == 200, signed_in.text
    cookie = signed_in.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/codec" in cookie
    answer = await anonymous.post("/codec/decode", json=await _sealed())
    assert answer.status_code == 200, answer.text


async def test_a_wrong_key_gets_no_session(anonymous: httpx.AsyncClient) -> None:
    refused = await anonymous.post(
        "/codec/login",
        content="key=guess",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_error(refused, 401, "unauthorized")
    assert "set-cookie" not in refused.headers


async def test_a_forged_session_cookie_is_401(anonymous: httpx.AsyncClient) -> None:
    anonymous.cookies.set("holdfast_codec", "99999999999.deadbeef", path="/codec")
    assert_error(await anonymous.post("/codec/decode", json=await _sealed()), 401, "unauthorized")


async def test_the_ui_origin_is_answered_cors_and_no_other(anonymous: httpx.AsyncClient) -> None:
    asked = {"Access-Control-Request-Method": "POST"}
    allowed = await anonymous.options("/codec/decode", headers={"Origin": UI, **asked})
    assert allowed.headers["access-control-allow-origin"] == UI
    assert allowed.headers["access-control-allow-credentials"] == "true"
    other = await anonymous.options(
        "/codec/decode", headers={"Origin": "https://evil.example", **asked}
    )
    assert "access-control-allow-origin" not in other.headers


async def test_a_body_that_is_not_payloads_is_400(operator: httpx.AsyncClient) -> None:
    answer = await operator.post("/codec/decode", json={"payloads": "nope"})
    assert_error(answer, 400, "invalid_payloads")


async def test_without_encryption_keys_the_codec_is_503(settings: Settings) -> None:
    plain = create_app(settings.model_copy(update={"encryption_keys": SecretStr("")}))
    async with plain.router.lifespan_context(plain), client_for(plain, ADMIN_KEY) as operator:
        answer = await operator.post("/codec/decode", json=await _sealed())
    assert_error(answer, 503, "codec_unavailable")
