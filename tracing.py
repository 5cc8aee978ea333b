"""What follows a request into Temporal (docs/operations.md#logs): its request id and
tenant ride in a header of every workflow start, update and signal the API sends, and
of every activity and child a workflow starts, so the worker's lines about a booking
carry the request that began it. One interceptor, on the client (connections.py); the
worker takes it from the client, as it takes every client interceptor that is also a
worker one.

In a workflow the interceptor only reads headers and sets a context variable: no I/O,
no clock, nothing that changes the workflow's commands, so replay is unaffected. Headers
are payloads, made and read with Temporal's default payload converter (plain JSON, the
same in every process and inside the sandbox); one that cannot be read is ignored.

It also counts activities failing (activities/metrics.py): the one place that sees
every activity's error and knows whether Temporal will try it again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from temporalio import activity, workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import (
    Interceptor as ClientInterceptor,
)
from temporalio.client import (
    OutboundInterceptor,
    SignalWorkflowInput,
    StartWorkflowInput,
    StartWorkflowUpdateInput,
    StartWorkflowUpdateWithStartInput,
    WorkflowHandle,
    WorkflowUpdateHandle,
)
from temporalio.converter import PayloadConverter
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    ExecuteWorkflowInput,
    HandleSignalInput,
    HandleUpdateInput,
    Interceptor,
    StartActivityInput,
    StartChildWorkflowInput,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

import logs
from activities import metrics
from settings import Settings

HEADER = "holdfast-context"
_FIELDS = ("request_id", "tenant_id")

Headers = Mapping[str, Payload]


def _with_context(headers: Headers) -> Headers:
    """`headers` and the current request's id and tenant, if there is one."""
    context = logs.current()
    if context is None:
        return headers
    carried = {k: getattr(context, k) for k in _FIELDS if getattr(context, k) is not None}
    if not carried:
        return headers
    return {**headers, HEADER: PayloadConverter.default.to_payloads([carried])[0]}


def _carried(headers: Headers) -> dict[str, str]:
    payload = headers.get(HEADER)
    if payload is None:
        return {}
    try:
        found = PayloadConverter.default.from_payloads([payload], [dict])[0]
    except Exception:  # a header of another version or sender: the lines go without
        return {}
    if not isinstance(found, dict):
        return {}
    return {k: str(found[k]) for k in _FIELDS if found.get(k) is not None}


class ContextInterceptor(ClientInterceptor, Interceptor):
    """Give to `Client.connect(interceptors=...)`; workers on that client use it too."""

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        return _ClientOutbound(next)

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _ActivityInbound(next)

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return _WorkflowInbound


class _ClientOutbound(OutboundInterceptor):
    """Adds the header, and tells the request's record which workflow it reached (the
    API's line for a new booking then names it)."""

    async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
        logs.annotate(workflow_id=input.id)
        input.headers = _with_context(input.headers)
        return await super().start_workflow(input)

    async def start_workflow_update(
        self, input: StartWorkflowUpdateInput
    ) -> WorkflowUpdateHandle[Any]:
        logs.annotate(workflow_id=input.id)
        input.headers = _with_context(input.headers)
        return await super().start_workflow_update(input)

    async def start_update_with_start_workflow(
        self, input: StartWorkflowUpdateWithStartInput
    ) -> WorkflowUpdateHandle[Any]:
        logs.annotate(workflow_id=input.start_workflow_input.id)
        start, update = input.start_workflow_input, input.update_workflow_input
        start.headers = _with_context(start.headers)
        update.headers = _with_context(update.headers)
        return await super().start_update_with_start_workflow(input)

    async def signal_workflow(self, input: SignalWorkflowInput) -> None:
        logs.annotate(workflow_id=input.id)
        input.headers = _with_context(input.headers)
        await super().signal_workflow(input)


class _ActivityInbound(ActivityInboundInterceptor):
    """Each activity's record (it runs in a task, or a thread's copied context, of its
    own), and its failures counted."""

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        # Not reset: the activity's task (or thread context) ends with it, and the SDK's
        # own line about its failure, logged after this returns, carries the ids too.
        logs.begin(workflow_id=info.workflow_id, **_carried(input.headers))
        try:
            result = await super().execute_activity(input)
        except Exception as err:
            if metrics.count_failure(info, err):
                activity.logger.warning("failed for good (%s)", type(err).__name__)
            raise
        activity.logger.debug("done")
        return result


class _WorkflowInbound(WorkflowInboundInterceptor):
    """The run and each update and signal handler (tasks of their own) take the ids of
    the request that started or sent them. Deterministic: reads headers only."""

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        super().init(_WorkflowOutbound(outbound))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        _enter(input.headers)
        workflow.logger.info("started")  # the SDK drops it on replay
        return await super().execute_workflow(input)

    async def handle_signal(self, input: HandleSignalInput) -> None:
        _enter(input.headers)
        await super().handle_signal(input)

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        _enter(input.headers)
        workflow.logger.debug("update %s", input.update)
        return await super().handle_update_handler(input)


def _enter(headers: Headers) -> None:
    logs.begin(workflow_id=workflow.info().workflow_id, **_carried(headers))


class _WorkflowOutbound(WorkflowOutboundInterceptor):
    """Passes the ids on to what the workflow starts."""

    def start_activity(self, input: StartActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = _with_context(input.headers)
        return super().start_activity(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        input.headers = _with_context(input.headers)
        return super().start_local_activity(input)

    async def start_child_workflow(
        self, input: StartChildWorkflowInput
    ) -> workflow.ChildWorkflowHandle[Any, Any]:
        input.headers = _with_context(input.headers)
        return await super().start_child_workflow(input)


def temporal_interceptors(settings: Settings) -> list[ClientInterceptor]:
    """The client's interceptors (and so its workers'): the ids always; OpenTelemetry's
    spans of starts, updates, signals, workflows and activities only when an exporter is
    configured (`configure_tracing`)."""
    found: list[ClientInterceptor] = [ContextInterceptor()]
    if settings.otel_exporter_otlp_endpoint:
        from temporalio.contrib.opentelemetry import TracingInterceptor  # imports the SDK

        found.append(TracingInterceptor())
    return found


_configured = False


def configure_tracing(settings: Settings, service: str) -> None:
    """A tracer provider batching spans to OTLP/HTTP at OTEL_EXPORTER_OTLP_ENDPOINT (the
    collector's root; `/v1/traces` is added), once per process. Unset: nothing is
    imported or set up, and every span is the API's no-op."""
    global _configured
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint or _configured:
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"holdfast-{service}"}))
    exporter = OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True
