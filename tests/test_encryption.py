"""Sealed values: credentials at rest and Temporal payloads, sealed under the first key,
opened by any, each bound to where it belongs."""

from __future__ import annotations

import base64

import pytest
from temporalio.api.common.v1 import Payload

from encryption import Keyring, KeyringError, PayloadEncryption, new_key

OLD, NEW = f"old:{new_key()}", f"new:{new_key()}"
SECRET = {"client_secret": "s3cret", "tenant_id": "t"}


def test_a_sealed_value_opens_to_what_was_sealed_and_shows_nothing_of_it() -> None:
    keyring = Keyring.parse(OLD)
    sealed = keyring.seal(SECRET, "row-1")
    assert "s3cret" not in sealed and sealed.startswith("old:")
    assert keyring.open(sealed, "row-1") == SECRET


def test_a_rotated_keyring_seals_with_its_first_key_and_still_opens_the_old() -> None:
    before = Keyring.parse(OLD).seal(SECRET, "row-1")
    rotated = Keyring.parse(f"{NEW},{OLD}")
    assert rotated.open(before, "row-1") == SECRET
    assert rotated.seal(SECRET, "row-1").startswith("new:")


def test_a_value_moved_to_another_row_does_not_open() -> None:
    keyring = Keyring.parse(OLD)
    with pytest.raises(KeyringError, match="does not open"):
        keyring.open(keyring.seal(SECRET, "row-1"), "row-2")


def test_a_value_sealed_by_a_dropped_key_names_the_missing_key() -> None:
    sealed = Keyring.parse(OLD).seal(SECRET, "row-1")
    with pytest.raises(KeyringError, match="no encryption key 'old'"):
        Keyring.parse(NEW).open(sealed, "row-1")


@pytest.mark.parametrize("setting", ["", "k1", "k1:short", "k1:not base64!", ":" + new_key()])
def test_a_malformed_setting_is_refused(setting: str) -> None:
    with pytest.raises(KeyringError):
        Keyring.parse(setting)


async def test_a_payload_is_sealed_whole_and_opens_to_itself() -> None:
    codec = PayloadEncryption(Keyring.parse(NEW))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"name": "Grace Hopper"}')
    [sealed] = await codec.encode([plain])
    assert sealed.metadata["encoding"] == b"binary/encrypted"
    assert sealed.metadata["encryption-key-id"] == b"new"
    assert b"Grace" not in sealed.SerializeToString() and b"json/plain" not in sealed.data
    assert await codec.decode([sealed]) == [plain]


async def test_a_plain_payload_of_an_older_history_passes_through_decoding() -> None:
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    assert await PayloadEncryption(Keyring.parse(NEW)).decode([plain]) == [plain]


async def test_a_payload_sealed_by_an_earlier_key_opens_after_rotation() -> None:
    [sealed] = await PayloadEncryption(Keyring.parse(OLD)).encode([Payload(data=b"x")])
    [opened] = await PayloadEncryption(Keyring.parse(f"{NEW},{OLD}")).decode([sealed])
    assert opened.data == b"x"


def test_a_sealed_credential_does_not_open_as_a_payload() -> None:
    """Each use binds its own associated data."""
    keyring = Keyring.parse(NEW)
    sealed = keyring.seal(SECRET, "row-1")
    kid, _, encoded = sealed.partition(":")
    with pytest.raises(KeyringError):
        PayloadEncryption(keyring).open(
            Payload(
                metadata={"encoding": b"binary/encrypted", "encryption-key-id": kid.encode()},
                data=base64.b64decode(encoded),
            )
        )
