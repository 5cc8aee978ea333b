"""Security headers on every answer (docs/security.md#headers): nothing the API sends may
be sniffed into another type, framed, or leak the page's address onward, and nothing is
kept by a cache unless its route says so (`Cache-Control` of its own, such as the ICS
feed's): API answers carry tenants' data and, at times, secrets (a new key, a payment's
client secret, a webhook secret). JSON answers also forbid any active content. Over
https, browsers are told to stay on https."""

from __future__ import annotations

from starlette.types import Scope

from api.middleware import Headers, ResponseHeaders

_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
_JSON_ONLY = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
_FRAMES = (b"content-security-policy", b"frame-ancestors 'none'")
_NO_STORE = (b"cache-control", b"no-store")
_HSTS = (b"strict-transport-security", b"max-age=31536000")


class SecurityHeaders(ResponseHeaders):
    def extra(self, scope: Scope, headers: Headers) -> Headers:
        names = {name.lower() for name, _ in headers}
        added = [h for h in _ALWAYS if h[0] not in names]
        if b"content-security-policy" not in names:
            json = any(
                n.lower() == b"content-type" and v.startswith(b"application/json")
                for n, v in headers
            )
            added.append(_JSON_ONLY if json else _FRAMES)
        if b"cache-control" not in names:
            added.append(_NO_STORE)
        if scope.get("scheme") == "https":
            added.append(_HSTS)
        return added
