"""Allocation tokens: opaque, signed, expiring (docs/api.md)."""

from __future__ import annotations

import base64
import json

import pytest

from scheduling.tokens import AllocationGrant, TokenError, TokenSigner

SIGNER = TokenSigner(b"unit-test-secret-0123456789")
GRANT = AllocationGrant("tenant", "service", 1_000, 4_600, ("ann", "room-1"), expires_at=2_000)


def test_a_token_reads_back_as_the_grant_it_was_issued_for() -> None:
    assert SIGNER.read(SIGNER.issue(GRANT), now=1_500) == GRANT


def test_an_expired_token_is_rejected() -> None:
    with pytest.raises(TokenError) as caught:
        SIGNER.read(SIGNER.issue(GRANT), now=2_000)
    assert caught.value.code == "allocation_token_expired"


def test_a_tampered_payload_is_rejected() -> None:
    body, signature = SIGNER.issue(GRANT).split(".")
    payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    payload[5] = ["someone-else", "room-1"]
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    with pytest.raises(TokenError) as caught:
        SIGNER.read(f"{forged}.{signature}", now=1_500)
    assert caught.value.code == "invalid_allocation_token"


@pytest.mark.parametrize("token", ["", ".", "garbage", "a.b.c", "e30.AAAA", "!!!.???"])
def test_garbage_is_rejected(token: str) -> None:
    with pytest.raises(TokenError):
        SIGNER.read(token, now=1_500)


def test_a_token_signed_with_another_secret_is_rejected() -> None:
    other = TokenSigner(b"another-secret-0123456789")
    with pytest.raises(TokenError):
        SIGNER.read(other.issue(GRANT), now=1_500)


def test_a_one_character_change_to_the_signature_is_rejected() -> None:
    token = SIGNER.issue(GRANT)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(TokenError):
        SIGNER.read(flipped, now=1_500)
