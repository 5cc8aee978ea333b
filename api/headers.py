"""Security headers on every answer (docs/security.md#headers): nothing the API sends may
be sniffed into another type, framed, or leak the page's address onward, and nothing is
kept by a cache unless its route says so (`Cache-Control` of its own, such as the ICS
feed's): API answers carry tenants' data and, at times, secrets (a new key, a payment's
client secret, a webhook secret). JSON answers also forbid any active content. Over
https, browsers are told to stay on https."""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from api.middleware import HttpMiddleware

_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_JSON_ONLY = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_FRAMES = (b"content-security-policy", b"frame-ancestors 'none'")
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        https = scope.get("scheme") == "https"

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in _ALWAYS if h[0] not in names]
                if b"content-security-policy" not in names:
                    json = any(
                        n.lower() == b"content-type" and v.startswith(b"application/json")
                        for n, v in headers
                    )
                    headers.append(_JSON_ONLY if json else _FRAMES)
                if b"cache-control" not in names:
                    headers.append(_NO_STORE)
                if https:
                    headers.append(_HSTS)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)
