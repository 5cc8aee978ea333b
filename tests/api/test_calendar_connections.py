"""Calendar connections over HTTP (api/routes/calendar_connections.py,
docs/calendars.md#connections): what a create request must look like, which tenant sees
what, and that a credential, once given, is never shown again nor stored in clear.

Most tests run on the suite's app, which has no Temporal: a valid create answers
`503 workflow_unavailable` there, and the connection is not stored. The tests of what a
created connection shows run on a live stack with the Google and Outlook stand-ins
(tests/support/calendars.py); the sync itself is tests/e2e/test_calendars.py's."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.context import AppContext
from db.models import CalendarConnection
from settings import Settings
from tests.support.api import assert_error, staff
from tests.support.calendars import Calendars, Google, Outlook, calendar_settings
from tests.support.clients import fresh_tenant
from tests.support.db import EVERY_TENANT, insert_connection
from tests.support.live import live_app

QUEUE = "calendar-connections-api"
UNKNOWN = "0190a2f4-6a2b-7c3d-8e4f-5a6b7c8d9e0f"
pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")

GOOGLE_KEY: dict[str, Any] = {
    "type": "service_account",
    "project_id": "clinic",
    "private_key_id": "0123abcd",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIE...\n-----END PRIVATE KEY-----\n",
    "client_email": "holdfast@clinic.iam.gserviceaccount.com",
    "token_uri": "https://oauth2.googleapis.com/token",
}
MICROSOFT_APP: dict[str, Any] = {
    "tenant_id": "7f1c2d3e-0000-4000-8000-000000000001",
    "client_id": "0a1b2c3d-0000-4000-8000-000000000002",
    "client_secret": "s3cr3t~value",
}


def google(**over: Any) -> dict[str, Any]:
    return {
        "provider": "google",
        "calendar_id": "ada@clinic.test",
        "credentials": GOOGLE_KEY,
        **over,
    }


def microsoft(**over: Any) -> dict[str, Any]:
    return {
        "provider": "microsoft",
        "calendar_id": "ada@clinic.test",
        "credentials": MICROSOFT_APP,
        **over,
    }


def path(resource: str, connection: str | None = None) -> str:
    base = f"/v1/resources/{resource}/calendar-connections"
    return f"{base}/{connection}" if connection else base


@pytest.fixture
async def resource(api: httpx.AsyncClient) -> str:
    made: str = (await staff(api))["id"]
    return made


async def listed(client: httpx.AsyncClient, resource: str) -> list[dict[str, Any]]:
    answer = await client.get(path(resource))
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def refused(
    api: httpx.AsyncClient, resource: str, body: dict[str, Any], field: str
) -> dict[str, Any]:
    """A 422 whose message names `field`, and nothing stored."""
    error = assert_error(await api.post(path(resource), json=body), 422, "validation_error")
    assert field in error["message"], error
    assert await listed(api, resource) == []
    return error


# --- Validation ------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["client_email", "private_key", "token_uri", "type"])
async def test_a_google_key_missing_a_field_is_422_naming_it(
    api: httpx.AsyncClient, resource: str, field: str
) -> None:
    key = {k: v for k, v in GOOGLE_KEY.items() if k != field}
    await refused(api, resource, google(credentials=key), f"credentials.{field}")


@pytest.mark.parametrize(
    "token_uri",
    [
        "http://169.254.169.254/latest/meta-data",
        "https://internal.example/token",
        "http://oauth2.googleapis.com/token",
    ],
)
async def test_a_google_key_whose_token_uri_is_not_googles_is_422(
    api: httpx.AsyncClient, resource: str, token_uri: str
) -> None:
    """The worker POSTs to it: a key must not lead it into the private network."""
    key = {**GOOGLE_KEY, "token_uri": token_uri}
    error = await refused(api, resource, google(credentials=key), "credentials.token_uri")
    assert error["details"][0]["field"] == "credentials.token_uri"


async def test_a_google_key_of_another_type_than_service_account_is_422(
    api: httpx.AsyncClient, resource: str
) -> None:
    key = {**GOOGLE_KEY, "type": "authorized_user"}
    await refused(api, resource, google(credentials=key), "credentials.type")


@pytest.mark.parametrize("field", ["tenant_id", "client_id", "client_secret"])
async def test_a_microsoft_app_missing_a_field_is_422_naming_it(
    api: httpx.AsyncClient, resource: str, field: str
) -> None:
    app = {k: v for k, v in MICROSOFT_APP.items() if k != field}
    await refused(api, resource, microsoft(credentials=app), f"credentials.{field}")


async def test_a_microsoft_app_with_an_extra_field_is_422_naming_it(
    api: httpx.AsyncClient, resource: str
) -> None:
    app = {**MICROSOFT_APP, "certificate": "-----BEGIN CERTIFICATE-----"}
    await refused(api, resource, microsoft(credentials=app), "credentials.certificate")


async def test_google_credentials_on_a_microsoft_connection_are_422(
    api: httpx.AsyncClient, resource: str
) -> None:
    await refused(api, resource, microsoft(credentials=GOOGLE_KEY), "credentials.")


async def test_a_subject_on_a_microsoft_connection_is_422(
    api: httpx.AsyncClient, resource: str
) -> None:
    await refused(api, resource, microsoft(subject="ada@clinic.test"), "subject")


async def test_an_unknown_provider_is_422_naming_provider(
    api: httpx.AsyncClient, resource: str
) -> None:
    error = await refused(api, resource, google(provider="apple"), "provider")
    assert [d["field"] for d in error["details"]] == ["provider"]


@pytest.mark.parametrize("field", ["import_busy", "export_events"])
@pytest.mark.parametrize("value", ["true", 1, None])
async def test_a_flag_that_is_not_a_json_boolean_is_422(
    api: httpx.AsyncClient, resource: str, field: str, value: Any
) -> None:
    error = await refused(api, resource, google(**{field: value}), field)
    assert [d["field"] for d in error["details"]] == [field]


async def test_an_unknown_top_level_field_is_422(api: httpx.AsyncClient, resource: str) -> None:
    await refused(api, resource, google(password="hunter2"), "password")


async def test_an_empty_calendar_id_is_422(api: httpx.AsyncClient, resource: str) -> None:
    await refused(api, resource, google(calendar_id=""), "calendar_id")


# --- Without Temporal --------------------------------------------------------------------


async def test_a_valid_create_without_temporal_is_503_and_stores_nothing(
    api: httpx.AsyncClient, resource: str
) -> None:
    assert_error(await api.post(path(resource), json=google()), 503, "workflow_unavailable")
    assert await listed(api, resource) == []


async def test_a_calendar_whose_connection_was_deleted_can_be_connected_again(
    api: httpx.AsyncClient, app: FastAPI, resource: str
) -> None:
    """The deleted row lingers until its workflow removes it; it does not count as the
    calendar's live connection (so the answer is the missing workflow's, not 409)."""
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        row = await insert_connection(db, resource, "ada@clinic.test")
    assert (await api.delete(path(resource, str(row.id)))).status_code == 204
    assert_error(await api.post(path(resource), json=google()), 503, "workflow_unavailable")


async def test_without_encryption_keys_a_create_is_503_calendars_unavailable(
    settings: Settings,
) -> None:
    keyless = create_app(settings.model_copy(update={"encryption_keys": SecretStr("")}))
    async with keyless.router.lifespan_context(keyless), fresh_tenant(keyless) as client:
        where = (await staff(client))["id"]
        answer = await client.post(path(where), json=google())
        assert_error(answer, 503, "calendars_unavailable")
        assert await listed(client, where) == []


# --- Tenants and ids ---------------------------------------------------------------------


@pytest.fixture
async def foreign_resource(app: FastAPI) -> str:
    async with fresh_tenant(app) as other:
        made: str = (await staff(other))["id"]
        return made


async def test_connecting_another_tenants_resource_is_404(
    api: httpx.AsyncClient, foreign_resource: str
) -> None:
    assert_error(await api.post(path(foreign_resource), json=google()), 404, "not_found")


async def test_listing_another_tenants_resource_is_404(
    api: httpx.AsyncClient, foreign_resource: str
) -> None:
    assert_error(await api.get(path(foreign_resource)), 404, "not_found")


async def test_another_tenants_connection_is_404_on_get(
    api: httpx.AsyncClient, app: FastAPI, foreign_resource: str
) -> None:
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        row = await insert_connection(db, foreign_resource)
    assert_error(await api.get(path(foreign_resource, str(row.id))), 404, "not_found")


async def test_a_connection_asked_for_under_another_resource_is_404(
    api: httpx.AsyncClient, app: FastAPI, resource: str
) -> None:
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        row = await insert_connection(db, resource)
    other = (await staff(api, name="Dr Bea"))["id"]
    assert_error(await api.get(path(other, str(row.id))), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("DELETE", ""), ("POST", "/sync")],
    ids=["get", "delete", "sync"],
)
async def test_an_unknown_connection_id_is_404(
    api: httpx.AsyncClient, resource: str, method: str, suffix: str
) -> None:
    answer = await api.request(method, path(resource, UNKNOWN) + suffix)
    assert_error(answer, 404, "not_found")


async def test_an_unknown_resource_is_404_on_list(api: httpx.AsyncClient) -> None:
    assert_error(await api.get(path(UNKNOWN)), 404, "not_found")


async def test_a_resource_without_connections_lists_none(
    api: httpx.AsyncClient, resource: str
) -> None:
    answer = await api.get(path(resource))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"items": [], "next_cursor": None}


async def test_syncing_a_deleted_connection_is_409_connection_disabled(
    api: httpx.AsyncClient, app: FastAPI, resource: str
) -> None:
    ctx: AppContext = app.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        row = await insert_connection(db, resource)
    assert (await api.delete(path(resource, str(row.id)))).status_code == 204
    answer = await api.post(path(resource, str(row.id)) + "/sync")
    assert_error(answer, 409, "connection_disabled")


# --- Live: what a created connection shows and stores ------------------------------------


@pytest.fixture(scope="module")
async def live(
    settings: Settings, temporal_dev_server: WorkflowEnvironment, stand_ins: tuple[Google, Outlook]
) -> AsyncIterator[FastAPI]:
    configured = calendar_settings(settings, *stand_ins)
    async with live_app(configured, temporal_dev_server, QUEUE) as app:
        yield app


@pytest.fixture
async def tenant(live: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with fresh_tenant(live) as client:
        yield client


def secrets_of(credentials: dict[str, Any]) -> list[str]:
    """The credential's secret parts, as text that must never show."""
    if "private_key" in credentials:
        body = "".join(credentials["private_key"].splitlines()[1:-1])
        return [credentials["private_key_id"], body[100:164], body[-64:]]
    return [credentials["client_secret"]]


async def connected(
    client: httpx.AsyncClient, calendar: Calendars, resource: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    body = calendar.connect(f"{uuid.uuid4().hex[:8]}@clinic.test")
    made = await client.post(path(resource), json=body)
    assert made.status_code == 201, made.text
    return made.json(), body


async def test_a_created_connection_never_shows_its_credentials(
    tenant: httpx.AsyncClient, calendar: Calendars
) -> None:
    where = (await staff(tenant))["id"]
    made, body = await connected(tenant, calendar, where)
    one = await tenant.get(path(where, made["id"]))
    assert one.status_code == 200, one.text
    shown = [made, one.json(), {"items": await listed(tenant, where)}]
    assert one.json()["id"] == made["id"] and made["status"] == "syncing"
    for view in shown:
        text = json.dumps(view)
        assert "credentials" not in text and "subject" not in text
        for secret in secrets_of(body["credentials"]):
            assert secret not in text, view


async def test_the_stored_credential_is_sealed_not_in_clear(
    tenant: httpx.AsyncClient, calendar: Calendars, live: FastAPI
) -> None:
    where = (await staff(tenant))["id"]
    made, body = await connected(tenant, calendar, where)
    ctx: AppContext = live.state.ctx
    async with ctx.sessions(EVERY_TENANT) as db:
        stored = await db.scalar(
            select(CalendarConnection.credentials).where(
                CalendarConnection.id == uuid.UUID(made["id"])
            )
        )
    assert stored is not None and stored.startswith("test-1:")
    for secret in secrets_of(body["credentials"]):
        assert secret not in stored
    credentials = body["credentials"]
    assert credentials.get("client_email", credentials.get("client_id")) not in stored


async def test_connecting_the_same_calendar_twice_to_one_resource_is_409(
    tenant: httpx.AsyncClient, calendar: Calendars
) -> None:
    where = (await staff(tenant))["id"]
    made, body = await connected(tenant, calendar, where)
    again = await tenant.post(path(where), json=body)
    assert_error(again, 409, "already_connected")
    assert [c["id"] for c in await listed(tenant, where)] == [made["id"]]


async def test_the_same_calendar_may_be_connected_to_two_resources(
    tenant: httpx.AsyncClient, calendar: Calendars
) -> None:
    first = (await staff(tenant))["id"]
    second = (await staff(tenant, name="Dr Bea"))["id"]
    _, body = await connected(tenant, calendar, first)
    also = await tenant.post(path(second), json=body)
    assert also.status_code == 201, also.text
