"""The operators' stack as docker-compose.yml ships it (Docker does not run here, so it
is checked by reading): Prometheus scraping the API and the worker, Grafana provisioned
with its datasource and the dashboard, and every metric the dashboard asks for one the
code registers (docs/operations.md#metrics)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import prometheus_client
import yaml  # type: ignore[import-untyped]  # (no stubs installed)
from prometheus_client import CollectorRegistry

import api.metrics  # noqa: F401  (registers the API's metrics)
from activities import metrics as worker_metrics

ROOT = Path(__file__).parents[1]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "holdfast.json"
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("_count", "_sum", "_created"),
    "gauge": ("",),
}


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _series(registry: CollectorRegistry) -> set[str]:
    """Every series name the registry's metrics can have, samples or not yet."""
    names: set[str] = set()
    for family in registry.collect():
        names |= {family.name + s for s in _SUFFIXES.get(family.type, ("",))}
    return names


def _queried() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    return {name for e in exprs for name in re.findall(r"\bholdfast_[a-z0-9_]+", e)}


def test_every_metric_the_dashboard_queries_is_registered() -> None:
    known = _series(prometheus_client.REGISTRY) | _series(worker_metrics.REGISTRY)
    missing = _queried() - known
    assert not missing, f"the dashboard queries metrics no code registers: {sorted(missing)}"


def test_the_dashboard_shows_each_area_of_the_contract() -> None:
    queried = _queried()
    for name in (
        "holdfast_bookings",
        "holdfast_http_request_seconds_bucket",
        "holdfast_http_requests_total",
        "holdfast_claims_total",
        "holdfast_holds_expired_total",
        "holdfast_saga_step_failures_total",
        "holdfast_payments_total",
        "holdfast_notifications_failed_total",
        "holdfast_webhook_deliveries_failed_total",
        "holdfast_notification_oldest_queued_seconds",
        "holdfast_webhook_oldest_pending_seconds",
        "holdfast_calendar_sync_lag_seconds",
    ):
        assert name in queried, name


def test_compose_runs_prometheus_and_grafana_on_pinned_images() -> None:
    services = _compose()["services"]
    for name, port in (("prometheus", "9090:9090"), ("grafana", "3000:3000")):
        service = services[name]
        image, _, tag = service["image"].partition(":")
        assert image in ("prom/prometheus", "grafana/grafana")
        assert re.fullmatch(r"v?\d+\.\d+\.\d+", tag), service["image"]
        assert port in service["ports"]
        for volume in service["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume


def test_prometheus_scrapes_the_api_and_the_workers_metrics_port() -> None:
    worker_env = _compose()["services"]["worker"]["environment"]
    port = int(worker_env["WORKER_METRICS_PORT"])
    config = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {
        target
        for job in config["scrape_configs"]
        for s in job["static_configs"]
        for target in s["targets"]
    }
    assert targets == {"api:8000", f"worker:{port}"}


def test_grafana_finds_the_prometheus_the_dashboard_names() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p.get("targets", [])}
    assert uids == {source["uid"]}
    [provider] = yaml.safe_load((provisioning / "dashboards" / "holdfast.yml").read_text())[
        "providers"
    ]
    grafana = _compose()["services"]["grafana"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in grafana["volumes"]
