"""The local Microsoft stand-in answers msal as Entra ID does and requests as Microsoft
Graph does, over TLS with a certificate trusted only through its file."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msal
import pytest
import requests
from aiohttp import web
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

from devstack.microsoft_graph import GRAPH, build_app, demo_app, post
from tests.support.microsoft_graph import (
    MicrosoftGraph,
    Receiver,
    asgi_deliver,
    microsoft_graph,
)

USER = "ada@contoso.test"
DAY = datetime(2031, 3, 3, tzinfo=UTC)


@pytest.fixture
async def graph(tmp_path: Path) -> AsyncIterator[MicrosoftGraph]:
    async with microsoft_graph(tmp_path) as standin:
        standin.add_user(USER)
        yield standin


def _session(graph: MicrosoftGraph) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.verify = graph.ca_file
    return session


def _msal_app(graph: MicrosoftGraph, credentials: dict[str, str]) -> Any:
    return msal.ConfidentialClientApplication(
        credentials["client_id"],
        client_credential=credentials["client_secret"],
        authority=f"{graph.authority_host}/{credentials['tenant_id']}",
        instance_discovery=False,
        azure_region=False,
        http_client=_session(graph),
    )


async def _token_result(graph: MicrosoftGraph, credentials: dict[str, str]) -> dict[str, Any]:
    def acquire() -> dict[str, Any]:
        result: dict[str, Any] = _msal_app(graph, credentials).acquire_token_for_client(
            scopes=["https://graph.microsoft.com/.default"]
        )
        return result

    return await asyncio.to_thread(acquire)


class GraphCaller:
    """requests against the stand-in's Graph with one app's token."""

    def __init__(self, graph: MicrosoftGraph, access_token: str) -> None:
        self._base = graph.graph_base
        self._session = _session(graph)
        self._session.headers["Authorization"] = f"Bearer {access_token}"

    async def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        url = path if path.startswith("https://") else f"{self._base}{path}"
        return await asyncio.to_thread(self._session.request, method, url, **kwargs)


@pytest.fixture
async def call(graph: MicrosoftGraph) -> GraphCaller:
    result = await _token_result(graph, graph.credentials())
    return GraphCaller(graph, result["access_token"])


def _event(start: datetime, hours: int = 1, **extra: Any) -> dict[str, Any]:
    def zoned(at: datetime) -> dict[str, str]:
        return {"dateTime": at.replace(tzinfo=None).isoformat(), "timeZone": "UTC"}

    return {"start": zoned(start), "end": zoned(start + timedelta(hours=hours))} | extra


def _window(days: int = 7) -> dict[str, str]:
    return {
        "startDateTime": DAY.isoformat(),
        "endDateTime": (DAY + timedelta(days=days)).isoformat(),
    }


# -- Entra ID ------------------------------------------------------------------------------


async def test_msal_gets_a_bearer_token_for_a_registered_app(graph: MicrosoftGraph) -> None:
    result = await _token_result(graph, graph.credentials())
    assert result["token_type"] == "Bearer" and result["access_token"]
    assert result["expires_in"] > 3000


async def test_a_wrong_secret_is_invalid_client_as_entra_id_answers(graph: MicrosoftGraph) -> None:
    credentials = graph.credentials() | {"client_secret": "not-the-secret"}
    result = await _token_result(graph, credentials)
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret")


async def test_an_app_not_in_the_tenant_is_unauthorized_client(graph: MicrosoftGraph) -> None:
    other_tenant = graph.credentials()["tenant_id"]
    credentials = graph.credentials() | {"tenant_id": other_tenant}
    result = await _token_result(graph, credentials)
    assert (result["error"], result["error_codes"]) == ("unauthorized_client", [700016])


async def test_a_revoked_app_gets_no_token(graph: MicrosoftGraph) -> None:
    credentials = graph.credentials()
    graph.revoke(credentials["client_id"])
    result = await _token_result(graph, credentials)
    assert result["error"] == "invalid_client"


async def test_msal_cannot_discover_an_unknown_tenant(graph: MicrosoftGraph) -> None:
    credentials = graph.credentials() | {"tenant_id": "00000000-0000-0000-0000-000000000000"}
    with pytest.raises(ValueError, match="Unable to get authority configuration"):
        await asyncio.to_thread(_msal_app, graph, credentials)


async def test_the_certificate_is_trusted_only_through_its_file(graph: MicrosoftGraph) -> None:
    session = _session(graph)
    session.verify = True
    with pytest.raises(requests.exceptions.SSLError):
        await asyncio.to_thread(session.get, f"{graph.graph_base}/subscriptions")


# -- Graph: the gate -----------------------------------------------------------------------


async def test_graph_wants_a_bearer_token(graph: MicrosoftGraph) -> None:
    answer = await asyncio.to_thread(_session(graph).get, f"{graph.graph_base}/users/{USER}/events")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


async def test_the_token_of_a_revoked_app_is_refused(graph: MicrosoftGraph) -> None:
    credentials = graph.credentials()
    caller = GraphCaller(graph, (await _token_result(graph, credentials))["access_token"])
    graph.revoke(credentials["client_id"])
    answer = await caller("GET", f"/users/{USER}/events")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "InvalidAuthenticationToken"


async def test_an_unknown_user_is_error_invalid_user(call: GraphCaller) -> None:
    answer = await call("GET", "/users/nobody@contoso.test/events")
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "ErrorInvalidUser"


async def test_an_injected_fault_answers_the_next_requests(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    graph.fail(2, 429, retry_after=7)
    first, second, third = [await call("GET", f"/users/{USER}/events") for _ in range(3)]
    assert (first.status_code, second.status_code, third.status_code) == (429, 429, 200)
    assert first.headers["Retry-After"] == "7"
    assert first.json()["error"]["code"] == "TooManyRequests"


async def test_a_stalled_request_is_carried_out_and_answered_late(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    graph.stall(1, 0.5)
    with pytest.raises(requests.exceptions.Timeout):
        await call("POST", f"/users/{USER}/events", json=_event(DAY), timeout=0.1)
    assert len(graph.events(USER)) == 1


# -- Graph: calendarView delta -------------------------------------------------------------


async def test_delta_pages_by_maxpagesize_then_gives_a_delta_link(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    for hour in range(3):
        await graph.add_event(USER, DAY + timedelta(hours=hour), DAY + timedelta(hours=hour + 1))
    prefer = {"Prefer": 'outlook.timezone="UTC", odata.maxpagesize=2'}
    first = await call("GET", f"/users/{USER}/calendarView/delta", params=_window(), headers=prefer)
    assert first.headers["Preference-Applied"].endswith("odata.maxpagesize=2")
    page = first.json()
    assert len(page["value"]) == 2 and "$skiptoken=" in page["@odata.nextLink"]
    last = (await call("GET", page["@odata.nextLink"], headers=prefer)).json()
    assert len(last["value"]) == 1 and "$deltatoken=" in last["@odata.deltaLink"]
    assert last["value"][0]["start"] == {
        "dateTime": "2031-03-03T02:00:00.0000000",
        "timeZone": "UTC",
    }


async def test_a_first_delta_needs_a_window(call: GraphCaller) -> None:
    answer = await call("GET", f"/users/{USER}/calendarView/delta")
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ErrorInvalidParameter"


async def test_a_delta_link_reports_changes_and_removals(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    kept = await graph.add_event(USER, DAY, DAY + timedelta(hours=1))
    gone = await graph.add_event(USER, DAY + timedelta(hours=2), DAY + timedelta(hours=3))
    first = (await call("GET", f"/users/{USER}/calendarView/delta", params=_window())).json()
    await graph.move_event(USER, kept, DAY + timedelta(hours=5), DAY + timedelta(hours=6))
    await graph.delete_event(USER, gone)
    changes = (await call("GET", first["@odata.deltaLink"])).json()["value"]
    assert [c["id"] for c in changes] == [kept, gone]
    assert changes[0]["start"]["dateTime"].startswith("2031-03-03T05:00:00")
    assert changes[1]["@removed"] == {"reason": "deleted"} and "start" not in changes[1]


async def test_an_expired_delta_link_is_gone(graph: MicrosoftGraph, call: GraphCaller) -> None:
    first = (await call("GET", f"/users/{USER}/calendarView/delta", params=_window())).json()
    graph.expire_delta_links(USER)
    answer = await call("GET", first["@odata.deltaLink"])
    assert answer.status_code == 410
    assert answer.json()["error"]["code"] == "SyncStateNotFound"


# -- Graph: events -------------------------------------------------------------------------


async def test_a_repeated_transaction_id_answers_the_event_it_created(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    body = _event(DAY, transactionId="tx-1", subject="Booked")
    first = await call("POST", f"/users/{USER}/events", json=body)
    again = await call("POST", f"/users/{USER}/events", json=body)
    assert (first.status_code, again.status_code) == (201, 201)
    assert first.json()["id"] == again.json()["id"]
    assert len(graph.events(USER)) == 1


async def test_events_are_found_by_an_extended_property(call: GraphCaller) -> None:
    pid = "String {8b0f5a51-3c56-4f4e-9a3e-6d1c2a7b9e40} Name holdfastBookingId"
    for value in ("b-1/k", "b-2/k"):
        prop = [{"id": pid, "value": value}]
        await call(
            "POST", f"/users/{USER}/events", json=_event(DAY, singleValueExtendedProperties=prop)
        )
    query = f"singleValueExtendedProperties/Any(ep: ep/id eq '{pid}' and ep/value eq 'b-2/k')"
    found = (await call("GET", f"/users/{USER}/events", params={"$filter": query})).json()
    assert len(found["value"]) == 1
    assert "singleValueExtendedProperties" not in found["value"][0]  # (only with $expand)


async def test_a_property_graph_does_not_know_is_refused(call: GraphCaller) -> None:
    answer = await call("POST", f"/users/{USER}/events", json=_event(DAY, colour="red"))
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "RequestBodyRead"


async def test_an_event_deleted_is_error_item_not_found(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    event_id = await graph.add_event(USER, DAY, DAY + timedelta(hours=1))
    assert (await call("DELETE", f"/users/{USER}/events/{event_id}")).status_code == 204
    for method in ("GET", "PATCH", "DELETE"):
        answer = await call(method, f"/users/{USER}/events/{event_id}", json={"subject": "x"})
        assert answer.status_code == 404
        assert answer.json()["error"]["code"] == "ErrorItemNotFound"


# -- Graph: subscriptions ------------------------------------------------------------------


def _subscription(expires_in: timedelta = timedelta(days=2), **extra: Any) -> dict[str, Any]:
    return {
        "changeType": "created,updated,deleted",
        "notificationUrl": "https://holdfast.test/hooks/graph",
        "lifecycleNotificationUrl": "https://holdfast.test/hooks/graph",
        "resource": f"/users/{USER}/events",
        "expirationDateTime": (datetime.now(UTC) + expires_in).isoformat(),
        "clientState": "secret-state",
    } | extra


async def test_a_subscription_is_made_after_its_url_echoes_the_validation_token(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    receiver = Receiver()
    graph.deliver_with(receiver)
    answer = await call("POST", "/subscriptions", json=_subscription())
    assert answer.status_code == 201
    assert receiver.validations == ["https://holdfast.test/hooks/graph"]
    [listed] = graph.subscriptions(USER)
    assert listed["id"] == answer.json()["id"] and listed["clientState"] == "secret-state"


async def test_a_url_that_does_not_echo_gets_no_subscription(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    graph.deliver_with(Receiver(validates=False))
    answer = await call("POST", "/subscriptions", json=_subscription())
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] == "ValidationError"
    assert graph.subscriptions(USER) == []


async def test_a_subscription_past_graphs_limit_is_refused(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    graph.deliver_with(Receiver())
    answer = await call("POST", "/subscriptions", json=_subscription(timedelta(days=8)))
    assert answer.status_code == 400


async def test_a_subscription_past_an_hour_needs_a_lifecycle_url(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    graph.deliver_with(Receiver())
    answer = await call("POST", "/subscriptions", json=_subscription(lifecycleNotificationUrl=None))
    assert answer.status_code == 400
    assert "lifecycleNotificationUrl" in answer.json()["error"]["message"]


async def test_a_change_through_graph_is_pushed_with_the_client_state(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    receiver = Receiver()
    graph.deliver_with(receiver)
    subscription = (await call("POST", "/subscriptions", json=_subscription())).json()
    event = (await call("POST", f"/users/{USER}/events", json=_event(DAY))).json()
    await graph.settled()
    [push] = receiver.pushes
    [change] = push["value"]
    assert change["subscriptionId"] == subscription["id"]
    assert change["clientState"] == "secret-state" and change["changeType"] == "created"
    assert change["resourceData"]["id"] == event["id"]


async def test_a_lifecycle_notification_goes_to_the_lifecycle_url(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    receiver = Receiver()
    graph.deliver_with(receiver)
    subscription = (await call("POST", "/subscriptions", json=_subscription())).json()
    assert await graph.lifecycle(subscription["id"], "subscriptionRemoved") == 202
    assert receiver.pushes[0]["value"][0]["lifecycleEvent"] == "subscriptionRemoved"
    assert graph.subscriptions(USER) == []


async def test_another_apps_subscription_cannot_be_renewed(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    graph.deliver_with(Receiver())
    subscription = (await call("POST", "/subscriptions", json=_subscription())).json()
    other = GraphCaller(graph, (await _token_result(graph, graph.credentials()))["access_token"])
    renewal = {"expirationDateTime": (datetime.now(UTC) + timedelta(days=3)).isoformat()}
    answer = await other("PATCH", f"/subscriptions/{subscription['id']}", json=renewal)
    assert answer.status_code == 404


async def test_the_default_deliver_posts_validation_as_text_and_pushes_as_json() -> None:
    seen: list[tuple[str, str, str]] = []

    async def receive(request: web.Request) -> web.Response:
        seen.append(
            (request.content_type, request.query.get("validationToken", ""), await request.text())
        )
        return web.Response(text=request.query.get("validationToken", ""))

    app = web.Application()
    app.router.add_post("/hooks", receive)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        url = f"http://{host}:{port}/hooks"
        assert await post(url, None, {"validationToken": "Validation: a b"}) == (
            200,
            "Validation: a b",
        )
        assert (await post(url, {"value": []}, {}))[0] == 200
    finally:
        await runner.cleanup()
    assert seen == [
        ("text/plain", "Validation: a b", ""),
        ("application/json", "", '{"value": []}'),
    ]


async def test_pushes_can_go_into_an_asgi_app_in_this_process(
    graph: MicrosoftGraph, call: GraphCaller
) -> None:
    received: list[dict[str, Any]] = []
    api = FastAPI()

    @api.post("/hooks/graph", response_class=PlainTextResponse)
    async def hook(request: Request, validationToken: str | None = None) -> str:
        if validationToken is None:
            received.append(await request.json())
        return validationToken or ""

    graph.deliver_with(asgi_deliver(api))
    assert (await call("POST", "/subscriptions", json=_subscription())).status_code == 201
    await graph.add_event(USER, DAY, DAY + timedelta(hours=1))
    assert received[0]["value"][0]["clientState"] == "secret-state"


# -- the command line ----------------------------------------------------------------------


def test_the_demo_app_keeps_its_credential_across_runs(tmp_path: Path) -> None:
    path = tmp_path / "app.json"
    first = demo_app(build_app()[GRAPH], path, "https://127.0.0.1:8428", USER)
    second_graph = build_app()[GRAPH]
    second = demo_app(second_graph, path, "https://127.0.0.1:8428", USER)
    assert second == first == json.loads(path.read_text())
    assert second["graph_base"] == "https://127.0.0.1:8428/v1.0"
    assert second_graph.apps[first["client_id"]].secret == first["client_secret"]
    assert USER in second_graph.mailboxes
    assert path.stat().st_mode & 0o077 == 0
