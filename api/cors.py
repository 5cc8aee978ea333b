"""CORS for publishable keys (docs/security.md#api-keys). A browser's preflight carries
no key, so it is answered for any origin, naming what a booking page sends; the request
itself is then refused unless its key allows its origin (api/auth.py), and only an
allowed origin's page may read the answer."""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

from api.auth import CORS_ORIGIN_STATE
from api.middleware import Headers, ResponseHeaders
from contract import BOOKING_TOKEN_HEADER

_PREFLIGHT = [
    (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
    (
        b"access-control-allow-headers",
        f"Authorization, Content-Type, Idempotency-Key, {BOOKING_TOKEN_HEADER}".encode(),
    ),
    (b"access-control-max-age", b"600"),
    (b"vary", b"Origin"),
]
_EXPOSED = b"RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Retry-After"


def _header(scope: Scope, name: bytes) -> bytes | None:
    return next((v for k, v in scope.get("headers", []) if k == name), None)


class KeyCors(ResponseHeaders):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        origin = _header(scope, b"origin")
        preflight = (
            scope["method"] == "OPTIONS"
            and scope["path"].startswith("/v1/")
            and origin is not None
            and _header(scope, b"access-control-request-method") is not None
        )
        if not preflight:
            await super().http(scope, receive, send)
            return
        assert origin is not None
        headers = [(b"access-control-allow-origin", origin), *_PREFLIGHT]
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})

    def extra(self, scope: Scope, headers: Headers) -> Headers:
        state = scope.get("state", {})
        origin = state.get(CORS_ORIGIN_STATE)
        if not isinstance(origin, str):
            return []
        return [
            (b"access-control-allow-origin", origin.encode()),
            (b"access-control-expose-headers", _EXPOSED),
            (b"vary", b"Origin"),
        ]
