"""What operators read (docs/operations.md): the API's /metrics with the database's
state, the worker's own metrics endpoint, and the request id every answer carries."""

from __future__ import annotations

import re
import socket

import httpx

from activities import metrics as worker_metrics


async def test_metrics_list_the_business_gauges(api: httpx.AsyncClient) -> None:
    body = (await api.get("/metrics")).text
    for sample in (
        'holdfast_bookings{status="confirmed"}',
        'holdfast_bookings{status="expired"}',
        'holdfast_notification_oldest_queued_seconds{channel="email"}',
        "holdfast_webhook_oldest_pending_seconds ",
        'holdfast_calendar_sync_lag_seconds{provider="google"}',
        "holdfast_dispatch_backlog ",
    ):
        assert sample in body, sample


async def test_metrics_of_the_api_leave_the_workers_counters_to_the_worker(
    api: httpx.AsyncClient,
) -> None:
    """The API imports the activities too: their counters (always 0 here) must not
    stand beside the worker's real counts under the same names."""
    body = (await api.get("/metrics")).text
    assert "holdfast_claims_total" not in body


async def test_the_worker_serves_its_metrics_on_its_port() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = worker_metrics.serve(port, "127.0.0.1")
    assert server is not None
    try:
        async with httpx.AsyncClient() as client:
            answer = await client.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        server.shutdown()
        server.server_close()
    assert answer.status_code == 200
    for name in ("holdfast_claims_total", "holdfast_holds_expired_total", "process_cpu"):
        assert name in answer.text, name


def test_the_workers_metrics_are_not_served_without_a_port() -> None:
    assert worker_metrics.serve(None) is None


async def test_an_answer_echoes_the_request_id_it_was_given(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/resources", headers={"X-Request-Id": "checkout-7f3a:1"})
    assert answer.headers["x-request-id"] == "checkout-7f3a:1"


async def test_an_error_echoes_the_request_id_too(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/nowhere", headers={"X-Request-Id": "lost-1"})
    assert answer.status_code == 404 and answer.headers["x-request-id"] == "lost-1"


async def test_an_answer_without_a_usable_request_id_gets_a_fresh_one(
    api: httpx.AsyncClient,
) -> None:
    fresh = (await api.get("/v1/resources")).headers["x-request-id"]
    replaced = (await api.get("/v1/resources", headers={"X-Request-Id": "x" * 200})).headers
    odd = (await api.get("/v1/resources", headers={"X-Request-Id": 'a"b{c}'})).headers
    for given in (fresh, replaced["x-request-id"], odd["x-request-id"]):
        assert re.fullmatch(r"[0-9a-f]{32}", given), given
    assert fresh != replaced["x-request-id"]
