"""Webhook endpoints and their deliveries over HTTP (api/routes/webhook_endpoints.py,
docs/webhooks.md). Endpoints point at a public literal address, which needs no DNS and
passes whatever WEBHOOK_ALLOW_PRIVATE_TARGETS says; the tests of that setting build an
app with it set explicitly. Deliveries are inserted directly: nothing here sends
webhooks."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.context import AppContext
from contract import WEBHOOK_EVENTS, delivery_task_queue, delivery_workflow_id
from db.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint, WebhookEvent
from settings import Settings
from tests.support.api import assert_error, create
from tests.support.clients import ADMIN_KEY, client_for, fresh_tenant, new_tenant_client, tenant_of
from tests.support.db import EVERY_TENANT

URL = "https://93.184.215.14/holdfast"
PUBLIC_FIELDS = {
    "id",
    "url",
    "events",
    "status",
    "description",
    "failing_since",
    "disabled_at",
    "created_at",
    "updated_at",
}


async def endpoint(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    return await create(
        client, "/v1/webhook-endpoints", {"url": URL, "events": ["booking.confirmed"], **body}
    )


@pytest.fixture(scope="module")
async def strict_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The API with private targets refused, as in production (the default)."""
    application = create_app(settings.model_copy(update={"webhook_allow_private_targets": False}))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def strict(strict_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(strict_app) as client:
        yield client


async def stored(db: AsyncSession, endpoint_id: str) -> WebhookEndpoint:
    row = await db.get(WebhookEndpoint, uuid.UUID(endpoint_id), populate_existing=True)
    assert row is not None
    return row


# Rows made here are marked dispatched: a dispatcher another test runs leaves them alone.
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


async def insert_delivery(
    db: AsyncSession,
    api: httpx.AsyncClient,
    endpoint_id: str,
    *,
    type: str = "booking.confirmed",
    created_at: datetime | None = None,
    attempts: Sequence[tuple[int | None, str | None]] = (),
    status: str = "failed",
) -> uuid.UUID:
    tenant = uuid.UUID(tenant_of(api))
    event = WebhookEvent(
        id=uuid.uuid4(),
        tenant_id=tenant,
        type=type,
        payload={"type": type, "timestamp": "2026-03-01T12:00:00Z", "data": {}},
        dispatched_at=NOW,
    )
    db.add(event)
    await db.flush()
    delivery = WebhookDelivery(
        id=uuid.uuid4(),
        tenant_id=tenant,
        endpoint_id=uuid.UUID(endpoint_id),
        event_id=event.id,
        dispatched_at=NOW,
        status=status,
        attempts=len(attempts),
        last_status_code=attempts[-1][0] if attempts else None,
        last_error=attempts[-1][1] if attempts else None,
        **({"created_at": created_at} if created_at else {}),
    )
    db.add(delivery)
    await db.flush()
    start = datetime(2026, 3, 1, 12, tzinfo=UTC)
    for i, (code, error) in enumerate(attempts):
        db.add(
            WebhookAttempt(
                delivery_id=delivery.id,
                at=start + timedelta(seconds=2**i),
                status_code=code,
                latency_ms=100 + i,
                error=error,
            )
        )
    await db.commit()
    return delivery.id


async def test_create_answers_201_with_the_secret(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/v1/webhook-endpoints",
        json={"url": URL, "events": ["booking.confirmed", "booking.cancelled"]},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == PUBLIC_FIELDS | {"secret"}
    assert created["secret"].startswith("whsec_")
    assert created["url"] == URL and created["status"] == "enabled"
    assert created["events"] == ["booking.confirmed", "booking.cancelled"]
    assert created["description"] == "" and created["failing_since"] is None


async def test_list_and_get_never_show_the_secret(api: httpx.AsyncClient) -> None:
    first = await endpoint(api, description="CRM")
    second = await endpoint(api, events=["*"])
    fetched = (await api.get(f"/v1/webhook-endpoints/{first['id']}")).json()
    assert set(fetched) == PUBLIC_FIELDS
    assert fetched == {k: v for k, v in first.items() if k != "secret"}
    page = (await api.get("/v1/webhook-endpoints")).json()
    assert [e["id"] for e in page["items"]] == [first["id"], second["id"]]
    assert page["next_cursor"] is None
    assert all("secret" not in e for e in page["items"])
    assert page["items"][1]["events"] == ["*"]


async def test_list_pages_with_a_cursor(api: httpx.AsyncClient) -> None:
    made = [(await endpoint(api))["id"] for _ in range(3)]
    first = (await api.get("/v1/webhook-endpoints", params={"limit": 2})).json()
    rest = (
        await api.get("/v1/webhook-endpoints", params={"limit": 2, "cursor": first["next_cursor"]})
    ).json()
    assert [e["id"] for e in first["items"] + rest["items"]] == made
    assert rest["next_cursor"] is None


@pytest.mark.parametrize(
    ("events", "says"),
    [
        (["booking.teleported"], "unknown event type 'booking.teleported'"),
        (["*", "booking.confirmed"], "stands alone"),
        ([], "at least 1 item"),
        (["booking.confirmed"] * 51, "at most 50 items"),
    ],
)
async def test_events_are_checked(api: httpx.AsyncClient, events: list[str], says: str) -> None:
    response = await api.post("/v1/webhook-endpoints", json={"url": URL, "events": events})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"].startswith("events")
    assert says in error["message"]


async def test_an_unknown_event_lists_the_allowed_ones(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/webhook-endpoints", json={"url": URL, "events": ["nope"]})
    message = assert_error(response, 422, "validation_error")["message"]
    assert all(e in message for e in WEBHOOK_EVENTS)


async def test_events_are_kept_once_each(api: httpx.AsyncClient) -> None:
    created = await endpoint(api, events=["booking.held", "booking.held", "payment.captured"])
    assert created["events"] == ["booking.held", "payment.captured"]


async def test_description_is_at_most_500_characters(api: httpx.AsyncClient) -> None:
    assert (await endpoint(api, description="d" * 500))["description"] == "d" * 500
    response = await api.post(
        "/v1/webhook-endpoints",
        json={"url": URL, "events": ["*"], "description": "d" * 501},
    )
    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5/hook",
    ],
)
async def test_private_urls_are_refused_when_the_setting_is_off(
    strict: httpx.AsyncClient, url: str
) -> None:
    response = await strict.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]})
    error = assert_error(response, 422, "validation_error")
    assert error["message"].startswith("url: ") and "not a public address" in error["message"]
    assert error["details"] == [
        {
            "field": "url",
            "message": error["message"].removeprefix("url: "),
            "type": "target_refused",
        }
    ]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://93.184.215.14/hook", "http:// or https://"),
        ("https://user:pw@93.184.215.14/", "user name or password"),
        ("https://93.184.215.14:0/", "port"),
        ("https://93.184.215.14/" + "a" * 2048, "2048 characters"),
    ],
)
async def test_bad_urls_are_refused(api: httpx.AsyncClient, url: str, says: str) -> None:
    response = await api.post("/v1/webhook-endpoints", json={"url": url, "events": ["*"]})
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "url" and says in error["message"]


async def test_private_urls_are_allowed_when_the_setting_is_on(settings: Settings) -> None:
    allowing = create_app(settings.model_copy(update={"webhook_allow_private_targets": True}))
    async with (
        allowing.router.lifespan_context(allowing),
        client_for(allowing, ADMIN_KEY) as operator,
        await new_tenant_client(allowing, operator) as tenant,
    ):
        for url in ("http://127.0.0.1:8000/hook", "http://localhost:8000/hook"):
            assert (await endpoint(tenant, url=url))["url"] == url


async def test_patch_changes_only_what_is_sent(api: httpx.AsyncClient) -> None:
    created = await endpoint(api, description="CRM")
    response = await api.patch(
        f"/v1/webhook-endpoints/{created['id']}",
        json={"events": ["booking.cancelled"], "url": "https://93.184.215.15/new"},
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert "secret" not in patched
    assert patched["events"] == ["booking.cancelled"]
    assert patched["url"] == "https://93.184.215.15/new" and patched["description"] == "CRM"
    assert patched["updated_at"] >= created["updated_at"]


async def test_patch_refuses_a_private_url_and_unknown_fields(strict: httpx.AsyncClient) -> None:
    created = await endpoint(strict)
    path = f"/v1/webhook-endpoints/{created['id']}"
    response = await strict.patch(path, json={"url": "http://127.0.0.1/"})
    assert "not a public address" in assert_error(response, 422, "validation_error")["message"]
    assert_error(await strict.patch(path, json={"secret": "whsec_x"}), 422, "validation_error")
    assert_error(await strict.patch(path, json={"status": "paused"}), 422, "validation_error")
    assert (await strict.get(path)).json()["url"] == URL


async def test_disable_and_reenable_forgets_the_failures(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    created = await endpoint(api)
    path = f"/v1/webhook-endpoints/{created['id']}"
    disabled = (await api.patch(path, json={"status": "disabled"})).json()
    assert disabled["status"] == "disabled" and disabled["disabled_at"] is not None
    since = datetime.now(UTC) - timedelta(days=3)
    await db.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == uuid.UUID(created["id"]))
        .values(failing_since=since)
    )
    await db.commit()
    assert (await api.get(path)).json()["failing_since"] is not None
    enabled = (await api.patch(path, json={"status": "enabled"})).json()
    assert enabled["status"] == "enabled"
    assert enabled["failing_since"] is None and enabled["disabled_at"] is None


async def test_delete_answers_204_then_404(api: httpx.AsyncClient) -> None:
    created = await endpoint(api)
    path = f"/v1/webhook-endpoints/{created['id']}"
    response = await api.delete(path)
    assert response.status_code == 204 and response.content == b""
    assert_error(await api.get(path), 404, "not_found")
    assert_error(await api.delete(path), 404, "not_found")


async def test_rotate_returns_a_new_secret_and_keeps_the_old_one_a_day(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    created = await endpoint(api)
    response = await api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret")
    assert response.status_code == 200, response.text
    rotated = response.json()
    assert set(rotated) == PUBLIC_FIELDS | {"secret"}
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != created["secret"]
    row = await stored(db, created["id"])
    assert row.secret == rotated["secret"] and row.previous_secret == created["secret"]
    assert row.previous_secret_until is not None
    left = row.previous_secret_until - datetime.now(UTC)
    assert timedelta(hours=23, minutes=59) < left <= timedelta(hours=24)
    again = (await api.post(f"/v1/webhook-endpoints/{created['id']}/rotate-secret")).json()
    row = await stored(db, created["id"])
    assert row.secret == again["secret"] and row.previous_secret == rotated["secret"]


async def test_another_tenants_endpoint_is_404(
    api: httpx.AsyncClient, app: FastAPI, operator: httpx.AsyncClient, db: AsyncSession
) -> None:
    created = await endpoint(api)
    delivery = await insert_delivery(db, api, created["id"])
    path = f"/v1/webhook-endpoints/{created['id']}"
    async with await new_tenant_client(app, operator, "Other") as other:
        assert_error(await other.get(path), 404, "not_found")
        assert_error(await other.patch(path, json={"description": "x"}), 404, "not_found")
        assert_error(await other.delete(path), 404, "not_found")
        assert_error(await other.post(f"{path}/rotate-secret"), 404, "not_found")
        assert_error(await other.get(f"{path}/deliveries"), 404, "not_found")
        retry = await other.post(f"/v1/webhook-deliveries/{delivery}/retry")
        assert_error(retry, 404, "not_found")
        assert (await other.get("/v1/webhook-endpoints")).json()["items"] == []
    assert (await api.get(path)).json()["description"] == ""


async def test_a_new_endpoint_has_no_deliveries(api: httpx.AsyncClient) -> None:
    created = await endpoint(api)
    response = await api.get(f"/v1/webhook-endpoints/{created['id']}/deliveries")
    assert response.status_code == 200, response.text
    assert response.json() == {"items": [], "next_cursor": None}


async def test_deliveries_come_newest_first_with_their_attempts(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    created = await endpoint(api)
    now = datetime.now(UTC)
    old = await insert_delivery(
        db,
        api,
        created["id"],
        created_at=now - timedelta(hours=2),
        attempts=[(None, "timeout"), (500, None), (302, "redirect not followed")],
    )
    mid = await insert_delivery(
        db, api, created["id"], type="booking.cancelled", created_at=now - timedelta(hours=1)
    )
    new = await insert_delivery(
        db, api, created["id"], created_at=now, attempts=[(200, None)], status="delivered"
    )
    path = f"/v1/webhook-endpoints/{created['id']}/deliveries"
    first = (await api.get(path, params={"limit": 2})).json()
    rest = (await api.get(path, params={"limit": 2, "cursor": first["next_cursor"]})).json()
    assert rest["next_cursor"] is None
    items = first["items"] + rest["items"]
    assert [d["id"] for d in items] == [str(new), str(mid), str(old)]
    latest, cancelled, failing = items
    assert set(latest) == {
        "id",
        "event_id",
        "type",
        "status",
        "attempt_count",
        "attempts",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    }
    assert latest["status"] == "delivered" and latest["attempt_count"] == 1
    assert cancelled["type"] == "booking.cancelled" and cancelled["attempts"] == []
    assert failing["attempt_count"] == 3 and failing["last_status_code"] == 302
    assert [(a["status_code"], a["error"], a["latency_ms"]) for a in failing["attempts"]] == [
        (None, "timeout", 100),
        (500, None, 101),
        (302, "redirect not followed", 102),
    ]
    assert failing["attempts"][0]["at"] < failing["attempts"][1]["at"]


async def test_a_cursor_the_api_did_not_give_is_400(api: httpx.AsyncClient) -> None:
    created = await endpoint(api)
    path = f"/v1/webhook-endpoints/{created['id']}/deliveries"
    assert_error(await api.get(path, params={"cursor": "bm9wZQ"}), 400, "invalid_cursor")


async def test_retrying_an_unknown_delivery_is_404(api: httpx.AsyncClient) -> None:
    response = await api.post(f"/v1/webhook-deliveries/{uuid.uuid4()}/retry")
    assert_error(response, 404, "not_found")


async def test_retrying_for_a_disabled_endpoint_is_409(
    api: httpx.AsyncClient, db: AsyncSession
) -> None:
    created = await endpoint(api)
    delivery = await insert_delivery(db, api, created["id"])
    await api.patch(f"/v1/webhook-endpoints/{created['id']}", json={"status": "disabled"})
    response = await api.post(f"/v1/webhook-deliveries/{delivery}/retry")
    assert_error(response, 409, "endpoint_disabled")


async def test_retry_without_temporal_is_503(api: httpx.AsyncClient, db: AsyncSession) -> None:
    """The test settings point Temporal at a closed port."""
    created = await endpoint(api)
    delivery = await insert_delivery(db, api, created["id"], attempts=[(500, None)])
    response = await api.post(f"/v1/webhook-deliveries/{delivery}/retry")
    assert_error(response, 503, "workflow_unavailable")


async def test_retry_starts_or_signals_the_delivery_workflow(
    settings: Settings, temporal_dev_server: WorkflowEnvironment
) -> None:
    """No worker serves this task queue: the workflow stays as started, so its history
    shows the start and each `retry_now` signal."""
    address = temporal_dev_server.client.service_client.config.target_host
    live = create_app(
        settings.model_copy(
            update={"temporal_address": address, "temporal_task_queue": "webhook-retry-test"}
        )
    )
    async with (
        live.router.lifespan_context(live),
        client_for(live, ADMIN_KEY) as operator,
        await new_tenant_client(live, operator) as api,
    ):
        ctx: AppContext = live.state.ctx
        created = await endpoint(api)
        async with ctx.sessions(EVERY_TENANT) as db:
            delivery = await insert_delivery(db, api, created["id"], attempts=[(500, None)])
        for _ in range(2):
            response = await api.post(f"/v1/webhook-deliveries/{delivery}/retry")
            assert response.status_code == 202, response.text
            assert response.json() == {"id": str(delivery), "status": "pending"}
        async with ctx.sessions(EVERY_TENANT) as db:
            row = await db.get(WebhookDelivery, delivery)
            assert row is not None and row.status == "pending" and row.attempts == 1
    handle = temporal_dev_server.client.get_workflow_handle(delivery_workflow_id(str(delivery)))
    try:
        described = await handle.describe()
        assert described.workflow_type == "WebhookDelivery"
        assert described.status == WorkflowExecutionStatus.RUNNING
        assert described.task_queue == delivery_task_queue("webhook-retry-test")
        signals = [
            e.workflow_execution_signaled_event_attributes.signal_name
            async for e in handle.fetch_history_events()
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
        ]
        assert signals == ["retry_now", "retry_now"]  # one run: started once, then signalled
    finally:
        await handle.terminate("test done")
