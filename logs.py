"""Log lines as operators read them (docs/operations.md#logs): one JSON object per line,
each carrying what it is about (`request_id`, `tenant_id`, `booking_id`, `workflow_id`)
so one booking's story can be pulled out of the API's and the worker's logs together.

What a line is about lives in a context variable holding a small mutable record: the
API's middleware opens one per request (api/middleware.py), the key's dependency names
the tenant (api/context.act_as), and the Temporal interceptors (tracing.py) carry the
request id and the tenant on to the workflow and its activities. Mutable, so that a
field learnt deep inside a request (the booking's workflow, as it starts) is seen by the
middleware's closing line too.

Nothing here may log customer data, keys or tokens (tests/e2e/test_logs.py): the record
holds ids only, and the formatter adds nothing but the record's own message."""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from temporalio import activity, workflow

LogFormat = Literal["json", "text"]
BOOKING_WORKFLOW_PREFIX = "booking-"  # contract.workflow_id_for


@dataclass
class LogContext:
    request_id: str | None = None
    tenant_id: str | None = None
    booking_id: str | None = None
    workflow_id: str | None = None


_current: ContextVar[LogContext | None] = ContextVar("holdfast_log_context", default=None)


def begin(
    *,
    request_id: str | None = None,
    tenant_id: str | None = None,
    workflow_id: str | None = None,
) -> Token[LogContext | None]:
    """A fresh record for this task (a request, a workflow, an activity) and what follows
    it; returns the token to `end` it with."""
    context = LogContext(request_id, tenant_id, booking_of(workflow_id), workflow_id)
    return _current.set(context)


def end(token: Token[LogContext | None]) -> None:
    _current.reset(token)


def current() -> LogContext | None:
    return _current.get()


def annotate(**fields: object) -> None:
    """Fill in what the current record does not know yet (a later, nested fact never
    overwrites the request's own: an activity starting another workflow stays its own
    workflow's). Outside any record, nothing happens."""
    context = _current.get()
    if context is None:
        return
    for name, value in fields.items():
        if value is not None and getattr(context, name) is None:
            setattr(context, name, str(value))
    if context.booking_id is None:
        context.booking_id = booking_of(context.workflow_id)


def booking_of(workflow_id: str | None) -> str | None:
    """The booking a workflow id names, if it is a booking's."""
    if workflow_id and workflow_id.startswith(BOOKING_WORKFLOW_PREFIX):
        return workflow_id.removeprefix(BOOKING_WORKFLOW_PREFIX)
    return None


class JsonFormatter(logging.Formatter):
    """`{"time", "level", "logger", "message", ...ids}`: the ids from the context record
    and from the Temporal SDK's own extras on `workflow.logger` and `activity.logger`
    (workflow id and type, activity type, attempt)."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(fields_of(record))
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def fields_of(record: logging.LogRecord) -> dict[str, str]:
    """The ids a record is about: the context's, else the SDK's extras."""
    found: dict[str, str] = {}
    temporal: dict[str, Any] = {
        **(getattr(record, "temporal_workflow", None) or {}),
        **(getattr(record, "temporal_activity", None) or {}),
    }
    for key in ("workflow_id", "workflow_type", "activity_type", "attempt", "update_name"):
        if temporal.get(key) is not None:
            found[key] = str(temporal[key])
    context = _current.get()
    if context is not None:
        for key in ("request_id", "tenant_id", "booking_id", "workflow_id"):
            value = getattr(context, key)
            if value is not None:
                found.setdefault(key, value)
    booking = booking_of(found.get("workflow_id"))
    if booking is not None:
        found.setdefault("booking_id", booking)
    return found


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (as logging's last resort does), so
    a handler installed under a test runner's capture never writes to a closed stream."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _: TextIO) -> None:
        pass


_OURS = "_holdfast_handler"


def configure_logging(log_format: LogFormat, service: str, level: int = logging.INFO) -> None:
    """The process's root handler, in `log_format`; called again, it replaces its own
    handler (the API's factory may run more than once in a process). Uvicorn's loggers
    are sent to the root, so its lines come out in the same shape."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, _OURS, False)]:
        root.removeHandler(handler)
    handler = _Stderr()
    setattr(handler, _OURS, True)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(message)s"))
    root.addHandler(handler)
    if root.getEffectiveLevel() > level:  # never silences what is already enabled
        root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn = logging.getLogger(name)
        uvicorn.handlers.clear()
        uvicorn.propagate = True
    # In JSON the SDK's details are fields already; text keeps them in the message.
    on_message = log_format != "json"
    workflow.logger.workflow_info_on_message = on_message
    activity.logger.activity_info_on_message = on_message
