"""Keys `make run` needs, taken from the environment or kept under `.data/` across runs."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def persistent_secret(env_name: str, path: Path, prefix: str = "") -> str:
    """The environment's value if set, else the one saved earlier, else a new one (saved)."""
    given = os.environ.get(env_name)
    if given:
        return given
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
