"""Keys `make run` needs, taken from the settings (environment or `.env`) or kept under
`.data/` across runs."""

from __future__ import annotations

import secrets
from pathlib import Path

from pydantic import SecretStr


def persistent_secret(given: SecretStr | None, path: Path, prefix: str = "") -> str:
    """The configured value if set, else the one saved earlier, else a new one (saved).
    A configured value is saved too, so helper commands find the one in force."""
    if given is not None and given.get_secret_value():
        write_private(path, given.get_secret_value())
        return given.get_secret_value()
    if path.exists():
        saved = path.read_text().strip()
        if saved:
            return saved
    value = prefix + secrets.token_urlsafe(32)
    write_private(path, value)
    return value


def write_private(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value + "\n")
    path.chmod(0o600)
