"""Allocation tokens: a slot offer, signed so a client can hand it back but not forge it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass

_VERSION = 1


class TokenError(ValueError):
    """`code` is `invalid_allocation_token` or `allocation_token_expired`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class AllocationGrant:
    tenant_id: str
    service_id: str
    start: int
    end: int
    resource_ids: tuple[str, ...]
    expires_at: int


class TokenSigner:
    """HMAC-SHA256 over the compact JSON payload; keyed once, copied per token (hot path)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token secret must be at least 16 bytes")
        self._mac = hmac.new(secret, digestmod=hashlib.sha256)

    def _sign(self, body: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(body)
        return mac.digest()

    def issue(self, grant: AllocationGrant) -> str:
        payload = [
            _VERSION,
            grant.tenant_id,
            grant.service_id,
            grant.start,
            grant.end,
            list(grant.resource_ids),
            grant.expires_at,
        ]
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        return f"{body.decode()}.{_b64(self._sign(body)).decode()}"

    def read(self, token: str, *, now: int) -> AllocationGrant:
        """Verify the signature first, then the payload, then the expiry."""
        body, _, signature = token.encode().partition(b".")
        try:
            valid = hmac.compare_digest(_unb64(signature), self._sign(body))
            payload = json.loads(_unb64(body)) if valid else None
        except ValueError:
            valid = False
        if not valid or not isinstance(payload, list) or payload[:1] != [_VERSION]:
            raise TokenError("invalid_allocation_token", "allocation token is invalid")
        try:
            _, tenant_id, service_id, start, end, resource_ids, expires_at = payload
            grant = AllocationGrant(
                str(tenant_id),
                str(service_id),
                int(start),
                int(end),
                tuple(str(r) for r in resource_ids),
                int(expires_at),
            )
        except (TypeError, ValueError) as exc:
            raise TokenError("invalid_allocation_token", "allocation token is invalid") from exc
        if now >= grant.expires_at:
            raise TokenError("allocation_token_expired", "allocation token has expired")
        return grant


def _b64(raw: bytes) -> bytes:
    return base64.urlsafe_b64encode(raw).rstrip(b"=")


def _unb64(text: bytes) -> bytes:
    return base64.urlsafe_b64decode(text + b"=" * (-len(text) % 4))
