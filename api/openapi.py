"""The OpenAPI document, told what FastAPI cannot see: every error a route can answer, in
the one shape every error has (api/errors.py, docs/api.md#errors).

FastAPI documents each route's success and a 422 in its own `HTTPValidationError` shape,
which ours is not. The errors come from the route's dependencies (its key, its paging, its
database) and from the edge (api/edge.py), so they are read here from each route's
dependency tree, once, as the document is generated: a new route is documented by the
same rules as the others without anyone remembering to. What a route refuses for reasons
of its own (a taken slot, a code in use) is listed in `ROUTE_ERRORS` below, checked
against the routes as the app is made, so that an entry cannot outlive its route.
tests/api/test_schema_fuzz.py holds the document to what the API answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from api import auth
from api.context import context, session
from api.edge import MAX_BODY
from api.pagination import page_params

ERROR_REF = {"$ref": "#/components/schemas/Error"}
ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "description": "Every error, from every route (docs/api.md#errors). An unexpected fault "
    "answers `500 internal_error` in the same shape.",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {
                    "type": "string",
                    "description": "Stable, for programs: branch on it.",
                    "examples": ["slot_unavailable"],
                },
                "message": {"type": "string", "description": "A sentence for people."},
                "details": {
                    "description": "`null`, or structure: for `validation_error` a list of "
                    "`{field, message, type}`, one per problem; for a 404 caused by an id "
                    "in the body, the field (and the ids not found).",
                },
            },
        }
    },
}

# Keys checked through `auth._caller`: each request takes a token of its key's bucket
# (429), reads the database (503), and a publishable key may be refused (403).
_KEYED = {auth.principal, auth.tenant_id, auth.any_key_tenant, auth.booking_caller}
# Any key check at all: 401 without the right key.
_AUTH = {*_KEYED, auth.operator, auth.booking_reader}
_DATABASE = {context, session}

_GENERIC = {
    400: "`invalid_cursor`: a cursor this API did not return.",
    401: "`unauthorized`: no key, an unknown or revoked one, or the wrong kind of key.",
    403: "`forbidden`: a publishable key where it may not go, or without the booking's "
    "access token; `origin_not_allowed`: from a page whose origin the key does not allow.",
    404: "`not_found`: no such object in the key's tenant (another tenant's included).",
    413: f"`payload_too_large`: a request body over {MAX_BODY // 1024} KiB.",
    422: "`validation_error`: the body, the path, a header or a query parameter breaks a "
    "rule; `details` lists each problem as `{field, message, type}`.",
    429: "`rate_limited`: the key used its minute's worth of requests, or its address sent "
    "too many refused keys; `Retry-After` says when to try again.",
    503: "A dependency is out of reach: `database_unavailable` (PostgreSQL), or "
    "`workflow_unavailable` (Temporal) where the route calls it; try again, after "
    "`Retry-After` when it is given.",
}

_WORKFLOW = "`workflow_unavailable`: Temporal cannot be reached; try again."
_BOOKING_WORKFLOW = (
    "`booking_failed`: the booking's workflow could not complete the request; " + _WORKFLOW
)
_INVALID_STATE = "`invalid_state`: the booking's status does not allow this."
_TOKEN = (
    "`invalid_allocation_token`, `allocation_token_expired`: an allocation token forged or "
    "altered, another tenant's or service's, or too old."
)

# What routes refuse for reasons of their own, beside what their dependencies give (and
# what their decorators declare): "METHOD /path" -> {status: description}.
ROUTE_ERRORS: dict[str, dict[int, str]] = {
    "GET /readyz": {503: "`not_ready`: `details` holds each check's result."},
    "POST /v1/api-keys": {422: "`invalid_request`: `allowed_origins` on a secret key."},
    "POST /v1/availability/query": {
        404: "`not_found`: the service, a pinned resource, or `ignore_booking_id`.",
        409: "`service_inactive`: the service is not bookable.",
        422: "`range_too_long`, `resource_not_usable`: docs/api.md#availability.",
    },
    "GET /v1/availability/stream": {
        404: "`not_found`: the service.",
        409: "`service_inactive`: the service is not bookable.",
        422: "`range_too_long`: docs/api.md#availability.",
        429: "Also `too_many_streams`: the key holds AVAILABILITY_STREAMS_PER_KEY streams.",
    },
    "POST /v1/resources": {404: "`not_found`: `location_id` names no location of the tenant."},
    "PATCH /v1/resources/{resource_id}": {
        404: "Also `location_id`.",
        409: "`capacity_in_use`: live bookings hold seats the new capacity would remove.",
    },
    "POST /v1/services": {
        404: "`not_found`: a requirement's resource (`details.ids`).",
        409: "`service_code_taken`: another service of the tenant has this code.",
    },
    "PATCH /v1/services/{service}": {404: "Also a requirement's resource (`details.ids`)."},
    "POST /v1/bookings": {
        400: "`idempotency_key_required`: no Idempotency-Key header.",
        404: "`not_found`: the service, or a pinned resource.",
        409: "`service_inactive`: the service is not bookable.",
        422: _TOKEN + " `data_refused`: the database refused what the booking would store.",
        503: _BOOKING_WORKFLOW + " Repeat with the same Idempotency-Key.",
    },
    "POST /v1/bookings/{booking_id}/cancel": {409: _INVALID_STATE, 503: _BOOKING_WORKFLOW},
    "POST /v1/booking-series": {
        400: "`idempotency_key_required`: no Idempotency-Key header.",
        404: "`not_found`: the service, or a pinned resource.",
        409: "`slot_unavailable`: an occurrence is taken (`details.taken`), or every one "
        "is. `service_inactive`: the service is not bookable.",
        422: "`invalid_rrule`: docs/series.md. `idempotency_key_reused`.",
        503: _BOOKING_WORKFLOW + " Repeat with the same Idempotency-Key.",
    },
    "GET /v1/booking-series/{series_id}": {404: "`not_found`: no such series."},
    "POST /v1/waitlist": {
        404: "`not_found`: the service, or a pinned resource.",
        409: "`service_inactive`: the service is not bookable.",
        422: "`range_too_long`: docs/api.md#availability.",
        503: _BOOKING_WORKFLOW,
    },
    "GET /v1/waitlist/{entry_id}": {404: "`not_found`: no such entry."},
    "DELETE /v1/waitlist/{entry_id}": {
        404: "`not_found`: no such entry.",
        409: "`invalid_state`: the entry is no longer waiting.",
        503: _BOOKING_WORKFLOW,
    },
    "POST /v1/waitlist/{entry_id}/accept": {
        404: "`not_found`: no such entry.",
        409: "`invalid_state`: no open offer.",
        503: _BOOKING_WORKFLOW,
    },
    "POST /v1/waitlist/{entry_id}/decline": {
        404: "`not_found`: no such entry.",
        409: "`invalid_state`: no open offer.",
        503: _BOOKING_WORKFLOW,
    },
    "POST /v1/booking-series/{series_id}/cancel": {
        404: "`not_found`: no such series, or `booking_id` is not one of its bookings.",
        409: _INVALID_STATE,
        503: _BOOKING_WORKFLOW,
    },
    "POST /v1/bookings/{booking_id}/reschedule": {
        404: "Also the service, or a pinned resource.",
        409: _INVALID_STATE + " `service_inactive`: the service is not bookable.",
        422: _TOKEN,
        503: _BOOKING_WORKFLOW,
    },
    "POST /v1/bookings/{booking_id}/no-show": {409: _INVALID_STATE, 503: _BOOKING_WORKFLOW},
    "POST /v1/bookings/{booking_id}/mark-paid": {409: _INVALID_STATE, 503: _BOOKING_WORKFLOW},
    "POST /v1/booking-series/{series_id}/mark-paid": {
        404: "`not_found`: no such series.",
        409: _INVALID_STATE + " The series is not paid once, or awaits no payment.",
        503: _BOOKING_WORKFLOW,
    },
    "POST /v1/tenants": {409: "`slug_taken`: another tenant has this slug."},
    "PATCH /v1/tenants/{tenant_id}": {409: "`slug_taken`: another tenant has this slug."},
    "POST /v1/resources/{resource_id}/calendar-connections": {
        409: "`already_connected`: this calendar is connected to the resource already.",
        503: "`calendars_unavailable`: no ENCRYPTION_KEYS are set. " + _WORKFLOW,
    },
    "POST /v1/resources/{resource_id}/calendar-connections/{connection_id}/sync": {
        409: "`connection_disabled`: the connection is being removed.",
        503: _WORKFLOW,
    },
    "POST /v1/webhook-deliveries/{delivery_id}/retry": {
        409: "`endpoint_disabled`: enable the endpoint to retry its deliveries.",
        503: _WORKFLOW + " The delivery stands as it stood.",
    },
    "POST /v1/webhooks/google-calendar": {404: "`not_found`: no live channel has this token."},
    "POST /v1/webhooks/microsoft-graph": {
        400: '`invalid_notification`: the body is not `{"value": [...]}`.',
        413: "`payload_too_large`: a body over 1 MB.",
        503: "`workflow_unavailable`: the push could not be handed on; Graph sends it again.",
    },
    "POST /v1/webhooks/stripe": {
        400: "`invalid_webhook`: no body, too large a body, or one that no current secret "
        "signed recently, or that is not a Stripe event.",
        503: "`webhook_not_configured`: STRIPE_WEBHOOK_SECRET is not set. "
        "`workflow_unavailable`: the event is recorded but its booking's workflow was not "
        "told; Stripe delivers it again.",
    },
}

_INT = {"type": "integer", "minimum": 0}
# Response headers, in components.headers: every answer to a key says where its rate
# limit stands (api/rate_limits.py); a 429, and a 503 of a dependency, when to retry.
HEADERS: dict[str, dict[str, Any]] = {
    "RateLimit-Limit": {"description": "Requests a minute this key may make.", "schema": _INT},
    "RateLimit-Remaining": {"description": "Requests left in this minute.", "schema": _INT},
    "RateLimit-Reset": {"description": "Seconds until the allowance is full.", "schema": _INT},
    "Retry-After": {"description": "Seconds to wait before trying again.", "schema": _INT},
}
_RATE_LIMIT = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")


def _refs(*names: str) -> dict[str, Any]:
    return {name: {"$ref": f"#/components/headers/{name}"} for name in names}


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dep in dependant.dependencies:
        if dep.call is not None:
            yield dep.call
        yield from _calls(dep)


def _params(dependant: Dependant) -> Iterator[str]:
    """Where the route takes input: `path`, `query`, `header`, `cookie`, `body`."""
    for kind in ("path", "query", "header", "cookie", "body"):
        if getattr(dependant, f"{kind}_params"):
            yield kind
    for dep in dependant.dependencies:
        yield from _params(dep)


def route_errors(route: Any) -> dict[int, str]:
    """The errors `route` (an APIRoute, or what stands for one) can answer, each with
    what it means there."""
    calls = set(_calls(route.dependant))
    given = set(_params(route.dependant))
    statuses: set[int] = set()
    if calls & _AUTH:
        statuses.add(401)
    if calls & _KEYED:
        statuses |= {403, 429, 503}
    if calls & _DATABASE:
        statuses.add(503)
    if page_params in calls:
        statuses.add(400)
    if "path" in given:
        statuses.add(404)
    if "body" in given:
        statuses.add(413)
    if given:
        statuses.add(422)
    return {status: _GENERIC[status] for status in sorted(statuses)}


def _merge(errors: dict[int, str], extra: dict[int, str]) -> None:
    for status, description in extra.items():
        errors[status] = f"{errors[status]}\n\n{description}" if status in errors else description


def _document(response: dict[str, Any], description: str, status: int, keyed: bool) -> None:
    response["description"] = description
    response["content"] = {"application/json": {"schema": ERROR_REF}}
    headers = _refs(*_RATE_LIMIT) if keyed or status == 429 else {}
    if status == 429:  # always said, with the bucket's state
        headers["Retry-After"] = {**HEADERS["Retry-After"], "required": True}
    elif status == 503:  # a dependency's: when it may be back (`not_ready` says none)
        headers.update(_refs("Retry-After"))
    if headers:
        response["headers"] = headers


def _declared(operation: dict[str, Any]) -> dict[int, str]:
    """Error responses a route's decorator declares, with their descriptions (FastAPI's
    own 422, in its shape, goes)."""
    found: dict[int, str] = {}
    for key, response in operation.get("responses", {}).items():
        if key.isdigit() and int(key) >= 400:
            description = response.get("description", "")
            if description and description != "Validation Error":
                found[int(key)] = description
    return found


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's routes as the document shows them: FastAPI 0.16x keeps an included router
    as one branch, which `iter_route_contexts` flattens (each context stands for its
    APIRoute); earlier versions copy every route into `app.routes`."""
    flatten = getattr(routing, "iter_route_contexts", None)
    for item in flatten(app.routes) if flatten is not None else app.routes:
        if isinstance(getattr(item, "original_route", item), APIRoute):
            yield item


def _operations(app: FastAPI) -> Iterator[tuple[str, Any]]:
    for route in _api_routes(app):
        if route.include_in_schema:
            for method in sorted(route.methods):
                yield f"{method} {route.path_format}", route


def _check_route_errors(operations: dict[str, Any]) -> None:
    stale = set(ROUTE_ERRORS) - set(operations)
    if stale:
        raise RuntimeError(f"ROUTE_ERRORS names operations that do not exist: {sorted(stale)}")


def annotate(app: FastAPI, document: dict[str, Any]) -> None:
    """Add the Error schema and each operation's error responses to `document`."""
    operations = dict(_operations(app))
    _check_route_errors(operations)
    for name, route in operations.items():
        method, path = name.split(" ", 1)
        operation = document["paths"][path][method.lower()]
        errors = route_errors(route)
        _merge(errors, _declared(operation))
        _merge(errors, ROUTE_ERRORS.get(name, {}))
        keyed = bool(set(_calls(route.dependant)) & _KEYED)
        responses = operation.setdefault("responses", {})
        for status, description in sorted(errors.items()):
            _document(responses.setdefault(str(status), {}), description, status, keyed)
        if keyed:
            for key, response in responses.items():
                if key.startswith(("2", "3")):
                    response["headers"] = {**_refs(*_RATE_LIMIT), **response.get("headers", {})}
        operation["responses"] = dict(sorted(responses.items()))
    components = document.setdefault("components", {})
    components.setdefault("headers", {}).update(HEADERS)
    schemas = components.setdefault("schemas", {})
    schemas["Error"] = ERROR_SCHEMA
    _drop_unreferenced(document, schemas, ("HTTPValidationError", "ValidationError"))


def _drop_unreferenced(
    document: dict[str, Any], schemas: dict[str, Any], names: tuple[str, ...]
) -> None:
    """FastAPI's validation error schemas, once nothing refers to them."""
    for name in names:
        text = json.dumps({k: v for k, v in document.items() if k != "components"})
        text += json.dumps({k: v for k, v in schemas.items() if k not in names})
        if f'"#/components/schemas/{name}"' not in text:
            schemas.pop(name, None)


def install_openapi(app: FastAPI) -> None:
    """`app.openapi()` (and /openapi.json) answers the annotated document. Call it once
    every router is included: a stale ROUTE_ERRORS entry fails here, not in the docs."""
    _check_route_errors(dict(_operations(app)))
    generate = app.openapi
    annotated: list[dict[str, Any]] = []

    def openapi() -> dict[str, Any]:
        document = generate()  # FastAPI keeps it while the routes stay the same
        if not annotated or annotated[0] is not document:
            annotate(app, document)
            annotated[:] = [document]
        return document

    app.openapi = openapi  # type: ignore[method-assign]
