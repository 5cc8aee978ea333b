"""Credentials at rest: sealed under the first key, opened by any, bound to their row."""

from __future__ import annotations

import pytest

from db.encryption import Keyring, KeyringError, new_key

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
