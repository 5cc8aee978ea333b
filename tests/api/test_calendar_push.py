"""Pushes from calendar providers (api/routes/calendar_push.py,
docs/calendars.md#freshness): Google's watch channels and Microsoft Graph's
subscriptions, against channels stored directly on connection rows.

The suite's app has no Temporal, so a push that counts answers `503` (the prompt to sync
cannot be handed on, and the provider retries): that 503 is how these tests see that a
push tried to prompt a sync. A push that does not count answers without trying: `404`
from Google's route, `202` from Graph's, which takes a batch."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from db import calendar_connections
from db.calendar_connections import channel_token_digest
from db.models import CalendarConnection
from tests.support.api import assert_error, staff
from tests.support.clients import client_for
from tests.support.db import insert_connection

GOOGLE = "/v1/webhooks/google-calendar"
GRAPH = "/v1/webhooks/microsoft-graph"
TOKEN = "tok-0123456789"


@dataclass
class Channel:
    connection: uuid.UUID
    id: str
    token: str = TOKEN


@pytest.fixture
async def provider(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The provider calling: no API key."""
    async with client_for(app) as client:
        yield client


@pytest.fixture
async def channel(api: httpx.AsyncClient, db: AsyncSession) -> Channel:
    """A connection with an open push channel whose token is TOKEN."""
    resource = (await staff(api))["id"]
    row = await insert_connection(db, resource)
    opened = Channel(row.id, f"ch-{uuid.uuid4().hex}")
    expires = datetime.now(UTC) + timedelta(days=7)
    await calendar_connections.save_channel(
        db,
        row.id,
        {
            "id": opened.id,
            "resource_id": "r",
            "expires_at": expires.isoformat(),
            "token_digest": channel_token_digest(opened.token),
        },
    )
    await db.commit()
    return opened


async def stored(db: AsyncSession, connection: uuid.UUID) -> CalendarConnection:
    row = await db.get(CalendarConnection, connection, populate_existing=True)
    assert row is not None
    return row


async def disabled(db: AsyncSession, channel: Channel) -> None:
    await calendar_connections.disable(db, await stored(db, channel.connection))
    await db.commit()


def google_push(channel_id: str, token: str, state: str = "exists") -> dict[str, str]:
    return {
        "X-Goog-Channel-ID": channel_id,
        "X-Goog-Channel-Token": token,
        "X-Goog-Resource-State": state,
        "X-Goog-Resource-ID": "r",
        "X-Goog-Message-Number": "2",
    }


def notice(subscription: str, client_state: str, **extra: Any) -> dict[str, Any]:
    return {
        "subscriptionId": subscription,
        "clientState": client_state,
        "changeType": "updated",
        "resource": "Users/ada/Events/AAMk",
        "tenantId": "7f1c2d3e-0000-4000-8000-000000000001",
        **extra,
    }


# --- Google ------------------------------------------------------------------------------


async def test_a_google_push_with_the_channels_token_prompts_a_sync(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GOOGLE, headers=google_push(channel.id, channel.token))
    assert_error(answer, 503, "workflow_unavailable")


async def test_a_google_push_without_a_resource_state_prompts_a_sync(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    headers = {"X-Goog-Channel-ID": channel.id, "X-Goog-Channel-Token": channel.token}
    assert_error(await provider.post(GOOGLE, headers=headers), 503, "workflow_unavailable")


async def test_a_google_push_with_a_wrong_token_is_404_and_prompts_nothing(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GOOGLE, headers=google_push(channel.id, "tok-wrong"))
    assert_error(answer, 404, "not_found")


async def test_a_google_push_without_a_token_is_404(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GOOGLE, headers={"X-Goog-Channel-ID": channel.id})
    assert_error(answer, 404, "not_found")


async def test_a_google_push_on_an_unknown_channel_is_404(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GOOGLE, headers=google_push("ch-unknown", channel.token))
    assert_error(answer, 404, "not_found")


async def test_googles_sync_message_with_the_right_token_is_200_without_prompting(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GOOGLE, headers=google_push(channel.id, channel.token, "sync"))
    assert answer.status_code == 200, answer.text


async def test_googles_sync_message_with_a_wrong_token_is_404(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GOOGLE, headers=google_push(channel.id, "tok-wrong", "sync"))
    assert_error(answer, 404, "not_found")


async def test_a_google_push_on_a_disabled_connections_channel_is_404(
    provider: httpx.AsyncClient, channel: Channel, db: AsyncSession
) -> None:
    await disabled(db, channel)
    answer = await provider.post(GOOGLE, headers=google_push(channel.id, channel.token))
    assert_error(answer, 404, "not_found")


async def test_a_google_push_on_a_closed_channel_is_404(
    provider: httpx.AsyncClient, channel: Channel, db: AsyncSession
) -> None:
    await calendar_connections.save_channel(db, channel.connection, None)
    await db.commit()
    answer = await provider.post(GOOGLE, headers=google_push(channel.id, channel.token))
    assert_error(answer, 404, "not_found")


# --- Microsoft Graph ---------------------------------------------------------------------


async def test_graphs_validation_handshake_echoes_the_token_as_plain_text(
    provider: httpx.AsyncClient,
) -> None:
    answer = await provider.post(f"{GRAPH}?validationToken=abc%20def")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "abc def"
    assert answer.headers["x-content-type-options"] == "nosniff"


async def test_a_graph_notice_with_a_wrong_client_state_is_202_and_ignored(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GRAPH, json={"value": [notice(channel.id, "tok-wrong")]})
    assert answer.status_code == 202, answer.text


async def test_a_graph_notice_without_a_client_state_is_202_and_ignored(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    body = {"value": [{"subscriptionId": channel.id, "changeType": "updated"}]}
    answer = await provider.post(GRAPH, json=body)
    assert answer.status_code == 202, answer.text


async def test_a_graph_notice_on_an_unknown_subscription_is_202_and_ignored(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GRAPH, json={"value": [notice("sub-unknown", channel.token)]})
    assert answer.status_code == 202, answer.text


async def test_a_graph_notice_with_the_right_client_state_prompts_a_sync(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    answer = await provider.post(GRAPH, json={"value": [notice(channel.id, channel.token)]})
    assert_error(answer, 503, "workflow_unavailable")


async def test_a_batch_prompts_for_its_one_good_notice_among_bad_ones(
    provider: httpx.AsyncClient, channel: Channel
) -> None:
    body = {
        "value": [
            "not a notice",
            notice("sub-unknown", channel.token),
            notice(channel.id, "tok-wrong"),
            notice(channel.id, channel.token),
        ]
    }
    assert_error(await provider.post(GRAPH, json=body), 503, "workflow_unavailable")


async def test_an_empty_graph_batch_is_202(provider: httpx.AsyncClient) -> None:
    answer = await provider.post(GRAPH, json={"value": []})
    assert answer.status_code == 202, answer.text


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"value"', b"42", b"null", b'{"value": 42}', b"not json", b""],
    ids=["list", "string", "number", "null", "value-not-a-list", "not-json", "empty"],
)
async def test_a_graph_body_that_is_not_an_object_with_a_value_list_is_400(
    provider: httpx.AsyncClient, body: bytes
) -> None:
    answer = await provider.post(GRAPH, content=body, headers={"Content-Type": "application/json"})
    assert_error(answer, 400, "invalid_notification")


async def test_a_subscription_removed_notice_clears_the_channel_then_prompts_a_sync(
    provider: httpx.AsyncClient, channel: Channel, db: AsyncSession
) -> None:
    removed = notice(channel.id, channel.token, lifecycleEvent="subscriptionRemoved")
    del removed["changeType"]
    answer = await provider.post(GRAPH, json={"value": [removed]})
    assert_error(answer, 503, "workflow_unavailable")
    row = await stored(db, channel.connection)
    assert row.channel is None and row.channel_id is None


async def test_a_reauthorization_required_notice_makes_the_channel_due_then_prompts_a_sync(
    provider: httpx.AsyncClient, channel: Channel, db: AsyncSession
) -> None:
    """Graph wants the subscription renewed now: the sync it prompts renews it."""
    due = notice(channel.id, channel.token, lifecycleEvent="reauthorizationRequired")
    del due["changeType"]
    answer = await provider.post(GRAPH, json={"value": [due]})
    assert_error(answer, 503, "workflow_unavailable")
    row = await stored(db, channel.connection)
    assert row.channel is not None and row.channel_id == channel.id
    assert datetime.fromisoformat(row.channel["expires_at"]) <= datetime.now(UTC)


async def test_a_subscription_removed_notice_with_a_wrong_client_state_keeps_the_channel(
    provider: httpx.AsyncClient, channel: Channel, db: AsyncSession
) -> None:
    removed = notice(channel.id, "tok-wrong", lifecycleEvent="subscriptionRemoved")
    answer = await provider.post(GRAPH, json={"value": [removed]})
    assert answer.status_code == 202, answer.text
    assert (await stored(db, channel.connection)).channel_id == channel.id


async def test_a_graph_notice_on_a_disabled_connections_subscription_is_202_and_ignored(
    provider: httpx.AsyncClient, channel: Channel, db: AsyncSession
) -> None:
    await disabled(db, channel)
    answer = await provider.post(GRAPH, json={"value": [notice(channel.id, channel.token)]})
    assert answer.status_code == 202, answer.text


async def test_a_subscription_removed_notice_on_a_disabled_connection_keeps_its_channel(
    provider: httpx.AsyncClient, channel: Channel, db: AsyncSession
) -> None:
    """Its workflow stops the channel itself when it removes the row."""
    await disabled(db, channel)
    removed = notice(channel.id, channel.token, lifecycleEvent="subscriptionRemoved")
    answer = await provider.post(GRAPH, json={"value": [removed]})
    assert answer.status_code == 202, answer.text
    assert (await stored(db, channel.connection)).channel_id == channel.id
