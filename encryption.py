"""Secrets at rest, under keys from the `ENCRYPTION_KEYS` setting: AES-256-GCM, for
calendar credentials in PostgreSQL (docs/calendars.md#credentials) and for every payload
Temporal keeps (docs/security.md#temporal-payloads).

Each sealed value names the key that sealed it, so keys rotate without a migration: put
the new key first (it seals), keep the old ones after it (they still open). Associated
data binds a value to where it belongs (a credential to its row), so a sealed value moved
elsewhere does not open there.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

_NONCE = 12


class KeyringError(ValueError):
    """The setting is malformed, or a sealed value cannot be opened with it."""


@dataclass(frozen=True)
class Keyring:
    keys: dict[str, AESGCM]
    current: str

    @classmethod
    def parse(cls, setting: str) -> Keyring:
        """`id:base64,id:base64,...`; the first key seals."""
        keys: dict[str, AESGCM] = {}
        for entry in filter(None, (e.strip() for e in setting.split(","))):
            kid, _, encoded = entry.partition(":")
            try:
                raw = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raw = b""
            if not kid or len(raw) != 32:
                raise KeyringError(f"encryption key {kid!r} is not `id:<32 bytes base64>`")
            keys[kid] = AESGCM(raw)
        if not keys:
            raise KeyringError("ENCRYPTION_KEYS is empty: set at least one key")
        return cls(keys, next(iter(keys)))

    def seal_bytes(self, data: bytes, context: bytes) -> tuple[str, bytes]:
        """(the sealing key's id, nonce + ciphertext)."""
        nonce = os.urandom(_NONCE)
        return self.current, nonce + self.keys[self.current].encrypt(nonce, data, context)

    def open_bytes(self, kid: str, sealed: bytes, context: bytes) -> bytes:
        key = self.keys.get(kid)
        if key is None:
            raise KeyringError(f"no encryption key {kid!r} to open this value")
        try:
            return key.decrypt(sealed[:_NONCE], sealed[_NONCE:], context)
        except InvalidTag:
            raise KeyringError(f"the value does not open with key {kid!r}") from None

    def seal(self, value: dict[str, Any], context: str) -> str:
        """A JSON object as text: `<key id>:<base64>`."""
        data = json.dumps(value, separators=(",", ":")).encode()
        kid, sealed = self.seal_bytes(data, context.encode())
        return f"{kid}:{base64.b64encode(sealed).decode()}"

    def open(self, sealed: str, context: str) -> dict[str, Any]:
        kid, _, encoded = sealed.partition(":")
        value: dict[str, Any] = json.loads(
            self.open_bytes(kid, base64.b64decode(encoded), context.encode())
        )
        return value


def new_key() -> str:
    """A fresh key for the setting (`make run` writes one under .data/)."""
    return base64.b64encode(os.urandom(32)).decode()


ENCRYPTED = b"binary/encrypted"
KEY_ID = "encryption-key-id"
# Bound into every sealed payload: a sealed credential is no payload, nor the reverse.
_PAYLOAD = b"holdfast:temporal-payload"


class PayloadEncryption(PayloadCodec):
    """Temporal's history holds every workflow's input, result, signal, update and
    activity argument, and its UI shows them: each payload is sealed whole (its encoding
    metadata included) before it leaves the process, and opened when it comes back.
    Payloads that are not sealed (histories written before this codec) pass through, so
    old histories still replay."""

    def __init__(self, keyring: Keyring) -> None:
        self._keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]

    def seal(self, payload: Payload) -> Payload:
        kid, sealed = self._keyring.seal_bytes(payload.SerializeToString(), _PAYLOAD)
        return Payload(metadata={"encoding": ENCRYPTED, KEY_ID: kid.encode()}, data=sealed)

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED:
            return payload
        kid = payload.metadata.get(KEY_ID, b"").decode()
        return Payload.FromString(self._keyring.open_bytes(kid, payload.data, _PAYLOAD))
