"""The Temporal dev server with its Web UI, persisted to SQLite under `.data/`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from contract import SEARCH_ATTRIBUTES
from devstack.binaries import venv_binary


def _indexed(key: SearchAttributeKey[Any]) -> IndexedValueType.ValueType:
    return IndexedValueType.ValueType(key.indexed_value_type)


def cli_search_attributes() -> list[str]:
    """The custom search attributes as the `temporal` CLI (and docker-compose.yml) name
    them: `BookingStatus=Keyword`, ..."""
    prefix = "INDEXED_VALUE_TYPE_"
    return [
        f"{key.name}={IndexedValueType.Name(_indexed(key)).removeprefix(prefix).title()}"
        for key in SEARCH_ATTRIBUTES
    ]


def dev_server_args(
    data_dir: Path, host: str, port: int, ui_port: int, codec_endpoint: str | None = None
) -> list[str]:
    """The command that starts the dev server, history kept in `data_dir/temporal.db`
    (so a restart of it loses nothing); `codec_endpoint`: where the UI asks to open
    sealed payloads (the API's /codec)."""
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
    for attribute in cli_search_attributes():
        args += ["--search-attribute", attribute]
    if codec_endpoint:
        args += ["--ui-codec-endpoint", codec_endpoint]
    return args


async def register_search_attributes(client: Client) -> None:
    """Add Holdfast's custom search attributes where missing (a server not started by
    `make run`, or the time-skipping test server, which cannot list them)."""
    for key in SEARCH_ATTRIBUTES:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(
                    namespace=client.namespace, search_attributes={key.name: _indexed(key)}
                )
            )
        except RPCError as err:
            if err.status != RPCStatusCode.ALREADY_EXISTS and "already exists" not in str(err):
                raise
