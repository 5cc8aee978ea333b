"""Tracing only when configured (tracing.py; docs/operations.md#tracing): without
OTEL_EXPORTER_OTLP_ENDPOINT the Temporal client carries the request ids and nothing
else, and no exporter is set up."""

from __future__ import annotations

from opentelemetry import trace
from temporalio.contrib.opentelemetry import TracingInterceptor

from settings import Settings
from tracing import ContextInterceptor, configure_tracing, temporal_interceptors


def test_without_an_endpoint_temporal_calls_carry_ids_and_no_spans(settings: Settings) -> None:
    [only] = temporal_interceptors(settings)
    assert isinstance(only, ContextInterceptor)


def test_without_an_endpoint_no_tracer_provider_is_set_up(settings: Settings) -> None:
    configure_tracing(settings, "api")
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def test_with_an_endpoint_temporal_calls_are_traced(settings: Settings) -> None:
    traced = settings.model_copy(update={"otel_exporter_otlp_endpoint": "http://collector:4318"})
    kinds = [type(i) for i in temporal_interceptors(traced)]
    assert kinds == [ContextInterceptor, TracingInterceptor]
