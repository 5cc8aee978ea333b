"""Secrets at rest (calendar credentials): AES-256-GCM under keys from the
`ENCRYPTION_KEYS` setting (docs/calendars.md#credentials).

Each sealed value names the key that sealed it, so keys rotate without a migration: put
the new key first (it seals), keep the old ones after it (they still open), and re-seal
at leisure. The row's own id is bound in as associated data, so a sealed value copied
onto another row does not open there.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

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

    def seal(self, value: dict[str, Any], context: str) -> str:
        nonce = os.urandom(_NONCE)
        data = json.dumps(value, separators=(",", ":")).encode()
        sealed = self.keys[self.current].encrypt(nonce, data, context.encode())
        return f"{self.current}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, sealed: str, context: str) -> dict[str, Any]:
        kid, _, encoded = sealed.partition(":")
        key = self.keys.get(kid)
        if key is None:
            raise KeyringError(f"no encryption key {kid!r} to open this value")
        raw = base64.b64decode(encoded)
        try:
            data = key.decrypt(raw[:_NONCE], raw[_NONCE:], context.encode())
        except InvalidTag:
            raise KeyringError(f"the value does not open with key {kid!r}") from None
        value: dict[str, Any] = json.loads(data)
        return value


def new_key() -> str:
    """A fresh key for the setting (`make run` writes one under .data/)."""
    return base64.b64encode(os.urandom(32)).decode()
