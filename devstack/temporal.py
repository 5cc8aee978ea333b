"""The Temporal dev server with its Web UI, persisted to SQLite under `.data/`."""

from __future__ import annotations

import subprocess
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from devstack.binaries import SEARCH_ATTRIBUTES, venv_binary

_TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}


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


async def register_search_attributes(client: Client) -> None:
    """Add Holdfast's custom search attributes where missing (a server not started by
    `make run`, or the time-skipping test server, which cannot list them)."""
    for name, kind in SEARCH_ATTRIBUTES.items():
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=client.namespace, search_attributes={name: _TYPES[kind]}
                )
            )
        except RPCError as err:
            if err.status != RPCStatusCode.ALREADY_EXISTS and "already exists" not in str(err):
                raise
