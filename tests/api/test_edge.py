"""The API's edge (api/edge.py): input PostgreSQL cannot store, and ambiguous JSON, are
refused with 422 before any route runs; everything else reaches the routes unchanged."""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from pydantic import BaseModel, SecretStr

from api.app import create_app
from api.edge import MAX_BODY
from settings import Settings
from tests.support.api import assert_error
from tests.support.clients import client_for
from tests.support.stripe import WEBHOOK_SECRET, sign

ID = "0190a2f4-6a2b-7c3d-8e4f-5a6b7c8d9e0f"
NUL = "x\u0000"
JSON = {"Content-Type": "application/json"}
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
PATH_VALUES = {
    "tenant_id": ID,
    "location_id": ID,
    "resource_id": ID,
    "time_off_id": ID,
    "booking_id": ID,
    "series_id": ID,
    "entry_id": ID,
    "endpoint_id": ID,
    "delivery_id": ID,
    "connection_id": ID,
    "key_id": ID,
    "service": "physio-60",
    "name": "book.js",
    "slug": "clinic",
    "service_code": "physio-60",
}

RESOURCE: dict[str, Any] = {
    "kind": "staff",
    "name": "Dr Ada",
    "tags": ["physio"],
    "location_id": ID,
    "timezone": "Europe/Berlin",
    "weekly_hours": {"mon": [["09:00", "17:00"]]},
    "date_overrides": [{"date": "2026-12-24", "hours": [["09:00", "12:00"]]}],
    "capacity": 1,
}
SERVICE: dict[str, Any] = {
    "code": "physio-60",
    "name": "Physiotherapy",
    "timezone": "Europe/Berlin",
    "duration_minutes": 60,
    "buffer_before_minutes": 5,
    "buffer_after_minutes": 5,
    "slot_interval_minutes": 60,
    "min_notice_minutes": 0,
    "max_advance_days": 90,
    "price": {"amount": 6500, "currency": "EUR"},
    "hold_seconds": 300,
    "retry_declined_payment": False,
    "requirements": [
        {"kind": "staff", "tags_any": ["physio"], "tags_all": ["senior"], "resource_ids": [ID]}
    ],
    "cancellation": {"free_until_hours_before": 24, "late_refund_percent": 50},
    "reminders_minutes_before": [60],
    "seats_per_booking": 1,
    "offer_minutes": 15,
    "series_payment": "per_occurrence",
}
SLOT: dict[str, Any] = {
    "service": "physio-60",
    "start": "2027-03-01T09:00:00+01:00",
    "resource_ids": [ID],
}
TOKEN_SLOT: dict[str, Any] = {"allocation_token": "v1.token", "service": "physio-60"}
CUSTOMER: dict[str, Any] = {
    "name": "Grace",
    "email": "grace@example.com",
    "phone": "+49 30 1234",
    "sms_opt_in": True,
    "locale": "de-DE",
    "timezone": "Europe/Berlin",
}
MAIL_SETTINGS: dict[str, Any] = {
    "mail_sender_name": "Clinic Mitte",
    "mail_reply_to": "desk@clinic.example",
    "contact_email": "ops@clinic.example",
}
METADATA: dict[str, Any] = {"source": "web", "labels": ["a"], "nested": {"k": "v"}}
STRIPE_EVENT: dict[str, Any] = {
    "id": "evt_1",
    "type": "payment_intent.succeeded",
    "data": {"object": {"id": "pi_1", "object": "payment_intent", "metadata": {"k": "v"}}},
}

# Valid example bodies of every write route (None: the route takes no body). Each must
# name every field of its body model at least once, so a new field gets a case too.
CASES: dict[tuple[str, str], list[dict[str, Any]] | None] = {
    ("POST", "/v1/tenants"): [{"name": "Clinic", "slug": "clinic", **MAIL_SETTINGS}],
    ("PATCH", "/v1/tenants/{tenant_id}"): [{"name": "Clinic", "slug": "clinic", **MAIL_SETTINGS}],
    ("POST", "/v1/tenants/{tenant_id}/api-keys"): None,
    ("POST", "/v1/api-keys"): [
        {"kind": "publishable", "name": "site", "allowed_origins": ["https://book.example.com"]}
    ],
    ("DELETE", "/v1/api-keys/{key_id}"): None,
    ("DELETE", "/v1/customers"): None,
    ("POST", "/v1/locations"): [{"name": "Mitte", "timezone": "Europe/Berlin"}],
    ("PATCH", "/v1/locations/{location_id}"): [{"name": "Mitte", "timezone": "Europe/Berlin"}],
    ("POST", "/v1/resources"): [RESOURCE],
    ("PATCH", "/v1/resources/{resource_id}"): [
        {**{k: v for k, v in RESOURCE.items() if k != "kind"}, "active": True}
    ],
    ("POST", "/v1/resources/{resource_id}/time-off"): [
        {"start": "2026-03-02T09:00:00+01:00", "end": "2026-03-02T12:00:00Z", "reason": "off"}
    ],
    ("DELETE", "/v1/resources/{resource_id}/time-off/{time_off_id}"): None,
    ("POST", "/v1/services"): [SERVICE],
    ("PATCH", "/v1/services/{service}"): [
        {**{k: v for k, v in SERVICE.items() if k != "code"}, "active": True}
    ],
    ("POST", "/v1/availability/query"): [
        {
            "service": "physio-60",
            "range_start": "2027-03-01T00:00:00+01:00",
            "range_end": "2027-03-02T00:00:00+01:00",
            "timezone": "Europe/Berlin",
            "resource_ids": [ID],
            "ignore_booking_id": ID,
            "limit": 10,
        }
    ],
    ("POST", "/v1/bookings"): [
        {**SLOT, "customer": CUSTOMER, "metadata": METADATA},
        {**TOKEN_SLOT, "customer": CUSTOMER},
    ],
    ("POST", "/v1/bookings/{booking_id}/cancel"): [{"reason": "ill"}],
    ("POST", "/v1/booking-series"): [
        {
            "service": "physio-60",
            "start": "2027-03-01T09:00:00+01:00",
            "rrule": "FREQ=WEEKLY;COUNT=6",
            "resource_ids": [ID],
            "customer": CUSTOMER,
            "metadata": METADATA,
            "policy": "skip_conflicts",
        }
    ],
    ("POST", "/v1/waitlist"): [
        {
            "service": "physio-60",
            "range_start": "2027-03-01T09:00:00+01:00",
            "range_end": "2027-03-01T17:00:00+01:00",
            "customer": CUSTOMER,
            "resource_ids": [ID],
        }
    ],
    ("DELETE", "/v1/waitlist/{entry_id}"): None,
    ("POST", "/v1/waitlist/{entry_id}/accept"): None,
    ("POST", "/v1/waitlist/{entry_id}/decline"): None,
    ("POST", "/v1/booking-series/{series_id}/cancel"): [
        {"scope": "this_and_future", "booking_id": ID, "reason": "moved away"}
    ],
    ("POST", "/v1/bookings/{booking_id}/reschedule"): [SLOT, TOKEN_SLOT],
    ("POST", "/v1/bookings/{booking_id}/no-show"): None,
    ("POST", "/v1/bookings/{booking_id}/mark-paid"): None,
    ("POST", "/v1/booking-series/{series_id}/mark-paid"): None,
    ("POST", "/v1/webhook-endpoints"): [
        {"url": "https://hooks.example.com/x", "events": ["*"], "description": "CRM"}
    ],
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): [
        {
            "url": "https://hooks.example.com/x",
            "events": ["booking.confirmed"],
            "description": "CRM",
            "status": "enabled",
        }
    ],
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"): None,
    ("POST", "/v1/webhook-endpoints/{endpoint_id}/rotate-secret"): None,
    ("POST", "/v1/webhook-deliveries/{delivery_id}/retry"): None,
    ("POST", "/v1/resources/{resource_id}/calendar-connections"): [
        {
            "provider": "google",
            "calendar_id": "ada@example.com",
            "credentials": {
                "type": "service_account",
                "client_email": "sync@project.iam.gserviceaccount.com",
                "private_key": "-----BEGIN PRIVATE KEY-----",
                "token_uri": "https://oauth2.googleapis.com/token",
            },
            "subject": "ada@example.com",
            "import_busy": True,
            "export_events": False,
        }
    ],
    ("DELETE", "/v1/resources/{resource_id}/calendar-connections/{connection_id}"): None,
    ("POST", "/v1/resources/{resource_id}/calendar-connections/{connection_id}/sync"): None,
    ("POST", "/v1/resources/{resource_id}/calendar-feed"): None,
    ("DELETE", "/v1/resources/{resource_id}/calendar-feed"): None,
    ("POST", "/codec/decode"): None,
    ("POST", "/codec/encode"): None,
    ("POST", "/codec/login"): None,
    ("POST", "/v1/webhooks/google-calendar"): None,
    ("POST", "/v1/webhooks/microsoft-graph"): None,
    # The exception: the edge leaves the webhook's signed bytes alone, so its route,
    # not the edge, refuses them; as their signature does not match, with a 400.
    ("POST", "/v1/webhooks/stripe"): [STRIPE_EVENT],
}
UNCHECKED = {("POST", "/v1/webhooks/stripe")}
# Calendar pushes are left alone too: they carry no data we store. Google's from no known
# channel is 404; Graph's without its `value` list is 400.
PUSHES = {
    ("POST", "/v1/webhooks/google-calendar"): 404,
    ("POST", "/v1/webhooks/microsoft-graph"): 400,
}
# A route that takes no body refuses a NUL in one all the same: no route runs first.
STRAY_BODY = {"unused": {"deep": ["x"]}}


@pytest.fixture(scope="module")
async def edge_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """The app with a webhook secret, so the webhook's own answer is its 400."""
    configured = settings.model_copy(update={"stripe_webhook_secret": SecretStr(WEBHOOK_SECRET)})
    application = create_app(configured)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def anonymous(edge_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """No key at all: a refusal at the edge comes before authentication."""
    async with client_for(edge_app) as client:
        yield client


def _routes(app: FastAPI) -> Iterator[tuple[str, str, type[BaseModel] | None]]:
    for route in iter_route_contexts(app.routes):
        body_field = getattr(route, "body_field", None)
        model = body_field.field_info.annotation if body_field is not None else None
        for method in sorted(route.methods or ()):
            if method != "HEAD" and route.path is not None:
                yield method, route.path, model


def _string_leaves(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _string_leaves(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _string_leaves(item, (*path, i))


def _object_keys(value: Any, path: tuple[str | int, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield (*path, key)
            yield from _object_keys(item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _object_keys(item, (*path, i))


def _replaced(body: Any, path: tuple[Any, ...]) -> Any:
    changed = copy.deepcopy(body)
    node = changed
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = NUL
    return changed


def _renamed(body: Any, path: tuple[Any, ...]) -> Any:
    changed = copy.deepcopy(body)
    node = changed
    for step in path[:-1]:
        node = node[step]
    node[f"{path[-1]}\u0000"] = node.pop(path[-1])
    return changed


def _url(template: str, **override: str) -> str:
    return template.format_map({**PATH_VALUES, **override})


def _field(path: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in path)


async def _timed(client: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response:
    """Under 0.1 s; a slow first try (a pause of this shared machine, a collection) gets a
    second, which must be quick: the refusal itself never is slow."""
    for _ in range(2):
        started = time.perf_counter()
        response = await client.request(method, url, **kw)
        elapsed = time.perf_counter() - started
        if elapsed < 0.1:
            return response
    raise AssertionError(f"{method} {url} took {elapsed:.3f} s, twice")


async def refused_resource(api: httpx.AsyncClient, body: bytes) -> tuple[str, str]:
    """The field and error type of a resource body the edge refuses."""
    response = await api.post("/v1/resources", content=body, headers=JSON)
    detail = assert_error(response, 422, "validation_error")["details"][0]
    return detail["field"], detail["type"]


async def test_nul_in_any_body_string_key_path_or_query_of_any_route_is_a_quick_422(
    edge_app: FastAPI, anonymous: httpx.AsyncClient
) -> None:
    routes = list(_routes(edge_app))
    writes = {(m, p): model for m, p, model in routes if m in WRITE_METHODS}
    assert set(CASES) == set(writes), "every write route needs a case here (and no stale one)"
    for (method, template), model in writes.items():
        examples = CASES[(method, template)]
        if examples is None:
            assert model is None, f"{method} {template} takes a body: give an example"
            bodies = [STRAY_BODY]
        else:
            assert model is not None or (method, template) in UNCHECKED
            bodies = examples
            if model is not None:
                for example in examples:
                    model.model_validate(example)  # the example is a valid body
                sent = {key for example in examples for key in example}
                assert set(model.model_fields) <= sent, f"{method} {template}: add fields"
        for body in bodies:
            variants = [(_replaced(body, p), _field(p)) for p in _string_leaves(body)]
            variants += [
                (_renamed(body, p), _field((*p[:-1], f"{p[-1]}\\x00"))) for p in _object_keys(body)
            ]
            for variant, field in variants:
                if (method, template) in PUSHES:
                    response = await _timed(anonymous, method, _url(template), json=variant)
                    assert response.status_code == PUSHES[(method, template)], response.text
                    continue
                if (method, template) in UNCHECKED:
                    headers = {"Stripe-Signature": sign(b"other bytes")}
                    response = await _timed(
                        anonymous, method, _url(template), json=variant, headers=headers
                    )
                    assert_error(response, 400, "invalid_webhook")
                    continue
                response = await _timed(anonymous, method, _url(template), json=variant)
                error = assert_error(response, 422, "validation_error")
                assert error["details"][0]["field"] == field, (method, template, variant)
    for method, template, _ in routes:
        response = await _timed(anonymous, method, _url(template) + "?probe=x%00")
        error = assert_error(response, 422, "validation_error")
        assert error["details"][0]["field"] == "query.probe"
        for name in PATH_VALUES:
            if "{" + name + "}" in template:
                response = await _timed(anonymous, method, _url(template, **{name: "x%00"}))
                error = assert_error(response, 422, "validation_error")
                assert error["details"][0]["field"] == "path"


async def test_nul_deep_inside_free_form_metadata_names_its_path(
    anonymous: httpx.AsyncClient,
) -> None:
    body = {**SLOT, "customer": CUSTOMER, "metadata": {"a": {"b": ["ok", NUL]}}}
    error = assert_error(await anonymous.post("/v1/bookings", json=body), 422, "validation_error")
    assert error["details"] == [
        {
            "field": "metadata.a.b.1",
            "message": "must not contain NUL (\\u0000) characters",
            "type": "string_nul",
        }
    ]
    assert error["message"] == "metadata.a.b.1: must not contain NUL (\\u0000) characters"


async def test_nul_in_a_metadata_key_is_422_with_the_key_escaped(
    anonymous: httpx.AsyncClient,
) -> None:
    body = {**SLOT, "customer": CUSTOMER, "metadata": {"k\u0000": 1}}
    error = assert_error(await anonymous.post("/v1/bookings", json=body), 422, "validation_error")
    assert error["details"][0]["field"] == "metadata.k\\x00"


async def test_an_escaped_lone_surrogate_is_422(api: httpx.AsyncClient) -> None:
    body = b'{"kind": "staff", "name": "x\\ud800", "timezone": "UTC"}'
    assert await refused_resource(api, body) == ("name", "string_surrogate")


async def test_a_lone_surrogate_in_free_form_metadata_is_422(
    anonymous: httpx.AsyncClient,
) -> None:
    body = json.dumps({**SLOT, "customer": CUSTOMER, "metadata": {"k": "\udfff"}}).encode()
    response = await anonymous.post("/v1/bookings", content=body, headers=JSON)
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "metadata.k"


async def test_raw_surrogate_bytes_are_422(anonymous: httpx.AsyncClient) -> None:
    """Python's json reads UTF-8-encoded surrogates as surrogates; the edge does too."""
    body = b'{"name": "x\xed\xa0\x80"}'
    response = await anonymous.post("/v1/tenants", content=body, headers=JSON)
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "name"


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
async def test_nul_is_found_in_any_encoding_fastapi_reads(
    anonymous: httpx.AsyncClient, encoding: str
) -> None:
    body = json.dumps({"name": NUL}).encode(encoding)
    response = await anonymous.post("/v1/tenants", content=body, headers=JSON)
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "name"


async def test_escapes_and_surrogate_pairs_reach_the_route_unchanged(
    api: httpx.AsyncClient,
) -> None:
    name = "Zoë \u00e9 \U0001f600 \\u0000 \u20ac"
    body = json.dumps({"kind": "room", "name": name, "timezone": "UTC"}).encode()  # escaped
    assert b"\\ud83d\\ude00" in body and b"\\\\u0000" in body
    response = await api.post("/v1/resources", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == name


async def test_a_key_given_twice_is_422_naming_it(api: httpx.AsyncClient) -> None:
    body = b'{"kind": "staff", "name": "a", "name": "b", "timezone": "UTC"}'
    assert await refused_resource(api, body) == ("name", "json_duplicate_key")
    assert (await api.get("/v1/resources")).json()["items"] == []


async def test_a_key_given_twice_in_a_nested_object_is_422(api: httpx.AsyncClient) -> None:
    body = (
        b'{"kind": "staff", "name": "a", "timezone": "UTC",'
        b' "weekly_hours": {"mon": [], "tue": [], "mon": [["09:00", "17:00"]]}}'
    )
    response = await api.post("/v1/resources", content=body, headers=JSON)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "weekly_hours.mon"


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "9" * 31])
async def test_numbers_json_cannot_carry_are_422(anonymous: httpx.AsyncClient, number: str) -> None:
    body = f'{{"customer": {{"name": "a"}}, "metadata": {{"n": [1, {number}]}}}}'.encode()
    response = await anonymous.post("/v1/bookings", content=body, headers=JSON)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "metadata.n.1"


async def test_a_body_nested_too_deeply_is_422(anonymous: httpx.AsyncClient) -> None:
    body = b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = await anonymous.post("/v1/bookings", content=body, headers=JSON)
    assert assert_error(response, 422, "validation_error")["details"][0]["type"] == "json_depth"


async def test_a_body_that_is_not_text_is_422(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/v1/bookings", content=b'{"a": "\xff\xfe\xfd"}', headers=JSON)
    assert assert_error(response, 422, "validation_error")["details"][0]["type"] == "json_invalid"


async def test_an_escaped_backslash_before_u0000_is_plain_text(api: httpx.AsyncClient) -> None:
    """`"\\\\u0000"` is the six characters \\u0000, which PostgreSQL stores as they are."""
    body = b'{"kind": "staff", "name": "C:\\\\u0000", "timezone": "UTC"}'
    response = await api.post("/v1/resources", content=body, headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["name"] == "C:\\u0000"


async def test_a_body_that_is_not_json_is_left_to_fastapi(api: httpx.AsyncClient) -> None:
    response = await api.post("/v1/resources", content=b"{not json", headers=JSON)
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["type"] == "json_invalid"  # FastAPI's own answer


async def test_a_body_over_the_limit_is_413(anonymous: httpx.AsyncClient) -> None:
    body = b'{"name": "' + b"x" * MAX_BODY + b'"}'
    response = await anonymous.post("/v1/tenants", content=body, headers=JSON)
    assert_error(response, 413, "payload_too_large")


async def test_a_streamed_body_over_the_limit_is_413(anonymous: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(MAX_BODY // 65536 + 1):
            yield b" " * 65536

    response = await anonymous.post("/v1/tenants", content=chunks(), headers=JSON)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def test_a_body_of_exactly_the_limit_reaches_the_route(api: httpx.AsyncClient) -> None:
    body = json.dumps({"kind": "room", "name": "Big", "timezone": "UTC"}).encode()
    body = body.ljust(MAX_BODY)
    response = await api.post("/v1/resources", content=body, headers=JSON)
    assert response.status_code == 201, response.text


async def test_nul_in_a_path_segment_is_422(api: httpx.AsyncClient) -> None:
    error = assert_error(await api.get("/v1/services/free%00"), 422, "validation_error")
    assert error["details"][0]["field"] == "path"


async def test_nul_in_a_metadata_query_filter_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/bookings?metadata.k=v%00")
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "query.metadata.k"


async def test_nul_in_a_query_parameter_name_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/bookings?metadata.k%00=v")
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "query.metadata.k\\x00"


async def test_nul_in_the_payment_events_outcome_filter_is_422(
    operator: httpx.AsyncClient,
) -> None:
    response = await operator.get("/v1/payment-events?outcome=x%00")
    error = assert_error(response, 422, "validation_error")
    assert error["details"][0]["field"] == "query.outcome"


async def test_nul_in_a_cursor_parameter_is_422(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/resources?cursor=eyJhIjoxfQ%00")
    assert assert_error(response, 422, "validation_error")["details"][0]["field"] == "query.cursor"


def _cursor(*key: str) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).rstrip(b"=").decode()


@pytest.mark.parametrize(
    ("path", "key"),
    [
        ("/v1/resources", ["0190a2f4-6a2b-7c3d-8e4f-5a6b7c8d9e0f\u0000"]),
        ("/v1/payment-events", ["2026-01-01T00:00:00+00:00", "evt_\u0000"]),
        ("/v1/payment-events", ["2026-01-01T00:00:00+00:00", "evt_\ud800"]),
    ],
)
async def test_a_cursor_whose_key_holds_an_unstorable_string_is_400(
    api: httpx.AsyncClient, operator: httpx.AsyncClient, path: str, key: list[str]
) -> None:
    client = operator if path == "/v1/payment-events" else api
    response = await client.get(path, params={"cursor": _cursor(*key)})
    assert_error(response, 400, "invalid_cursor")


async def test_a_deeply_nested_cursor_is_400(api: httpx.AsyncClient) -> None:
    deep = base64.urlsafe_b64encode(b"[" * 5000 + b"]" * 5000).decode()
    assert_error(await api.get("/v1/resources", params={"cursor": deep}), 400, "invalid_cursor")


async def test_the_stripe_webhook_receives_its_signed_bytes_unchecked(
    anonymous: httpx.AsyncClient,
) -> None:
    """A key given twice would be refused anywhere else; here the signature decides."""
    body = b'{"id": "evt_x", "id": "evt_x", "type": "customer.created", "data": {"object": {}}}'
    response = await anonymous.post(
        "/v1/webhooks/stripe", content=body, headers={**JSON, "Stripe-Signature": sign(body)}
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"received": True, "ignored": True}


async def test_refusals_at_the_edge_are_counted_in_metrics(api: httpx.AsyncClient) -> None:
    before = _count((await api.get("/metrics")).text)
    await api.get("/v1/services/free%00")
    assert _count((await api.get("/metrics")).text) == before + 1


def _count(metrics: str) -> float:
    prefix = 'holdfast_http_requests_total{method="GET",route="unmatched",status="422"}'
    return sum(float(line.split()[-1]) for line in metrics.splitlines() if line.startswith(prefix))
