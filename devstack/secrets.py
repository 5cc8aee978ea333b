"""Keys `make run` needs, taken from the settings (environment or `.env`) or kept under
`.data/` across runs."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import SecretStr

from encryption import new_key


def persistent_secret(given: SecretStr | None, path: Path, prefix: str = "") -> str:
    """The configured value if set, else the one saved earlier, else a new one (saved)."""
    if given is not None and given.get_secret_value():
        return given.get_secret_value()
    if path.exists():
        saved = path.read_text().strip()
        if saved:
            return saved
    value = prefix + secrets.token_urlsafe(32)
    write_private(path, value)
    return value


def signing_secret(configured: str) -> str:
    """Of webhook secrets listed while rotating (comma-separated), the one that signs."""
    return configured.split(",")[0].strip()


def write_private(path: Path, value: str) -> None:
    """Readable by the owner only, from the first byte."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its mode through O_CREAT
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")


def persistent_encryption_keys(given: SecretStr, path: Path) -> str:
    """ENCRYPTION_KEYS as configured, else the ones saved earlier, else a new key (saved):
    credentials sealed on one run must open on the next."""
    if given.get_secret_value():
        return given.get_secret_value()
    saved = path.read_text().strip() if path.exists() else ""
    if not saved:
        saved = f"local-1:{new_key()}"
        write_private(path, saved)
    return saved
