"""The `holdfast` command as an operator runs it: the installed script, in a process of
its own, configured by its environment alone."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from settings import Settings

HOLDFAST = Path(sys.executable).parent / "holdfast"


async def holdfast(
    tmp_path: Path, settings: Settings, *args: str, **env: str
) -> tuple[int, str, str]:
    """Run the command from a directory without a .env: only what it is given counts."""
    given = {
        "DATABASE_URL": settings.async_database_url,
        "AUDIT_KEY": settings.audit_key.get_secret_value(),
        "APP_DATABASE_PASSWORD": settings.app_database_password.get_secret_value(),
        **env,
    }
    process = await asyncio.create_subprocess_exec(
        str(HOLDFAST),
        *args,
        cwd=tmp_path,
        env={**os.environ, **given},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
