"""The Temporal dev server with its Web UI, persisted to SQLite under `.data/`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack.binaries import SEARCH_ATTRIBUTES, venv_binary


def start_dev_server(data_dir: Path, host: str, port: int, ui_port: int) -> subprocess.Popen[bytes]:
    args = [
        venv_binary("temporal"),
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(data_dir / "temporal.db"),
        "--namespace",
        "default",
        "--ui-disable-news-fetch",
        "--log-level",
        "error",
    ]
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    log = (data_dir / "temporal.log").open("ab")
    return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
