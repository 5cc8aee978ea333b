"""The log lines' shapes (logs.py; docs/operations.md#logs), without a stack."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest

import logs

RECORD = logging.LogRecord("holdfast.x", logging.WARNING, __file__, 1, "took %d ms", (5,), None)


@pytest.fixture
def root_handlers() -> Iterator[None]:
    root = logging.getLogger()
    kept, level = list(root.handlers), root.level
    yield
    root.handlers[:] = kept
    root.setLevel(level)
    logs.configure_logging("json", "test")  # as the suite's apps leave it


def test_a_json_line_names_the_ids_of_its_context() -> None:
    token = logs.begin(request_id="r-1", tenant_id="t-1")
    try:
        logs.annotate(workflow_id="booking-b-1", tenant_id="other")
        line = json.loads(logs.JsonFormatter("api").format(RECORD))
    finally:
        logs.end(token)
    assert line["message"] == "took 5 ms" and line["level"] == "WARNING"
    assert line["service"] == "api" and line["logger"] == "holdfast.x"
    assert (line["request_id"], line["tenant_id"]) == ("r-1", "t-1")  # never overwritten
    assert (line["workflow_id"], line["booking_id"]) == ("booking-b-1", "b-1")


def test_a_json_line_outside_any_request_has_no_ids() -> None:
    line = json.loads(logs.JsonFormatter("worker").format(RECORD))
    assert not {"request_id", "tenant_id", "booking_id", "workflow_id"} & set(line)


def test_configuring_again_replaces_the_handler_it_installed(root_handlers: None) -> None:
    logs.configure_logging("json", "api")
    logs.configure_logging("text", "worker")
    ours = [h for h in logging.getLogger().handlers if getattr(h, "_holdfast_handler", False)]
    assert len(ours) == 1
    assert ours[0].format(RECORD).endswith(" worker WARNING took 5 ms")
