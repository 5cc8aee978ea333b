"""Webhook endpoints: where a tenant's events are sent, signed with the endpoint's secret
(docs/webhooks.md). The secret is shown only when it is made: on create and on rotate."""

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from api.booking_gateway import reaching_temporal
from api.context import AppContext
from api.deps import Ctx, Db, Paging, TenantId
from api.errors import ApiError, not_found, workflow_unavailable
from api.pagination import (
    Page,
    PageParams,
    decode_cursor,
    encode_cursor,
    fetch_page,
    invalid_cursor,
)
from contract import (
    WEBHOOK_EVENTS,
    DeliveryInput,
    DeliveryStatus,
    EndpointStatus,
    delivery_task_queue,
    delivery_workflow_id,
)
from db.models import WebhookEndpoint
from db.webhook_endpoints import (
    DeliveryKey,
    DeliveryView,
    create_endpoint,
    delete_endpoint,
    endpoints_of,
    get_delivery,
    get_endpoint,
    list_deliveries,
    reset_for_retry,
    restore_status,
    rotate_secret,
    update_endpoint,
)
from notifications.targets import MAX_URL_LENGTH, TargetRefused, check_url, resolve_target
from notifications.webhooks import new_secret

router = APIRouter(tags=["webhooks"])

# The delivery workflow's registered name (the worker hosts it), and its signal
# to attempt at once.
DELIVERY_WORKFLOW = "WebhookDelivery"
RETRY_NOW = "retry_now"
ALL_EVENTS = "*"
MAX_EVENTS = 50
# A Temporal that answers nothing is a 503 after this, not a request left hanging.
TEMPORAL_RPC_TIMEOUT = timedelta(seconds=10)


def _check_url(url: str) -> str:
    check_url(url)  # TargetRefused is a ValueError: a 422 naming the field
    return url


def _check_events(events: list[str]) -> list[str]:
    if events == [ALL_EVENTS]:
        return events
    if ALL_EVENTS in events:
        raise ValueError('"*" subscribes to every event and stands alone: send ["*"]')
    unknown = [e for e in events if e not in WEBHOOK_EVENTS]
    if unknown:
        raise ValueError(
            f'unknown event type {unknown[0]!r}; use ["*"] or any of: {", ".join(WEBHOOK_EVENTS)}'
        )
    return list(dict.fromkeys(events))  # once each, in the order given


Url = Annotated[
    str,
    Field(min_length=1, max_length=MAX_URL_LENGTH, examples=["https://example.com/holdfast"]),
    AfterValidator(_check_url),
]
Events = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=64)]],
    Field(
        min_length=1,
        max_length=MAX_EVENTS,
        description='Event types (docs/webhooks.md#events), or ["*"] for all of them.',
        examples=[["booking.confirmed", "booking.cancelled"]],
    ),
    AfterValidator(_check_events),
]
Description = Annotated[str, Field(max_length=500)]


class EndpointIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url
    events: Events
    description: Description = ""


class EndpointPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Url | None = None
    events: Events | None = None
    description: Description | None = None
    status: Literal["enabled", "disabled"] | None = Field(
        default=None,
        description="`enabled` again after an automatic disable forgets the failures.",
    )


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: uuid.UUID
    url: str
    events: list[str]
    status: EndpointStatus
    description: str
    failing_since: datetime | None = Field(
        description="Start of the current run of failed attempts; three days of it disable "
        "the endpoint."
    )
    disabled_at: datetime | None
    created_at: datetime
    updated_at: datetime


class EndpointWithSecret(EndpointOut):
    secret: str = Field(description="`whsec_...`: shown only on create and on rotate.")


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: datetime
    status_code: int | None = Field(description="None: no HTTP answer (see `error`).")
    latency_ms: int
    error: str | None


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    type: str
    status: DeliveryStatus
    attempt_count: int
    attempts: list[AttemptOut] = Field(description="Every attempt, oldest first.")
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


class RetryOut(BaseModel):
    id: uuid.UUID
    status: DeliveryStatus


def _delivery_out(view: DeliveryView) -> DeliveryOut:
    d = view.delivery
    return DeliveryOut(
        id=d.id,
        event_id=d.event_id,
        type=view.type,
        status=DeliveryStatus(d.status),
        attempt_count=d.attempts,
        attempts=[AttemptOut.model_validate(a) for a in view.attempts],
        last_status_code=d.last_status_code,
        last_error=d.last_error,
        created_at=d.created_at,
        delivered_at=d.delivered_at,
    )


async def _public_target(ctx: AppContext, url: str) -> None:
    """The create- and patch-time half of the SSRF guard; each attempt checks again."""
    try:
        await resolve_target(url, allow_private=ctx.settings.webhook_allow_private_targets)
    except TargetRefused as exc:
        details = [{"field": "url", "message": str(exc), "type": "target_refused"}]
        raise ApiError(422, "validation_error", f"url: {exc}", details) from exc


def _found(endpoint: WebhookEndpoint | None) -> WebhookEndpoint:
    if endpoint is None:
        raise not_found("webhook endpoint")
    return endpoint


def _after(page: PageParams) -> DeliveryKey | None:
    if page.cursor is None:
        return None
    created, ident = decode_cursor(page.cursor, 2)
    try:
        at, key = datetime.fromisoformat(created), uuid.UUID(ident)
    except ValueError as exc:
        raise invalid_cursor() from exc
    if at.tzinfo is None:
        raise invalid_cursor()
    return at, key


async def _retry_now(ctx: AppContext, delivery_id: str) -> None:
    """Signal-with-start: a running delivery workflow attempts at once; a finished one
    (delivered, or failed for good) runs again under the same id."""
    unreachable = "the retry could not start; try again"
    try:
        async with reaching_temporal(unreachable):  # bounded (api/booking_gateway.py)
            client = await ctx.temporal()
            await client.start_workflow(
                DELIVERY_WORKFLOW,
                DeliveryInput(delivery_id),
                id=delivery_workflow_id(delivery_id),
                task_queue=delivery_task_queue(ctx.settings.temporal_task_queue),
                start_signal=RETRY_NOW,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                rpc_timeout=TEMPORAL_RPC_TIMEOUT,
            )
    except RPCError as err:
        raise workflow_unavailable(unreachable) from err


@router.post("/v1/webhook-endpoints", status_code=201, summary="Create a webhook endpoint")
async def create(body: EndpointIn, tenant: TenantId, db: Db, ctx: Ctx) -> EndpointWithSecret:
    await _public_target(ctx, body.url)
    endpoint = await create_endpoint(
        db,
        tenant,
        url=body.url,
        events=body.events,
        description=body.description,
        secret=new_secret(),
    )
    return EndpointWithSecret.model_validate(endpoint)


@router.get("/v1/webhook-endpoints", summary="List webhook endpoints")
async def list_endpoints(tenant: TenantId, db: Db, page: Paging) -> Page[EndpointOut]:
    return await fetch_page(
        db, endpoints_of(tenant), WebhookEndpoint.id, page, EndpointOut.model_validate
    )


@router.get("/v1/webhook-endpoints/{endpoint_id}", summary="Get a webhook endpoint")
async def get(endpoint_id: uuid.UUID, tenant: TenantId, db: Db) -> EndpointOut:
    return EndpointOut.model_validate(_found(await get_endpoint(db, tenant, endpoint_id)))


@router.patch("/v1/webhook-endpoints/{endpoint_id}", summary="Update a webhook endpoint")
async def patch(
    endpoint_id: uuid.UUID, body: EndpointPatch, tenant: TenantId, db: Db, ctx: Ctx
) -> EndpointOut:
    _found(await get_endpoint(db, tenant, endpoint_id))
    if body.url is not None:
        await _public_target(ctx, body.url)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    return EndpointOut.model_validate(
        _found(await update_endpoint(db, tenant, endpoint_id, changes))
    )


@router.delete(
    "/v1/webhook-endpoints/{endpoint_id}", status_code=204, summary="Delete a webhook endpoint"
)
async def delete(endpoint_id: uuid.UUID, tenant: TenantId, db: Db) -> Response:
    if not await delete_endpoint(db, tenant, endpoint_id):
        raise not_found("webhook endpoint")
    return Response(status_code=204)


@router.post(
    "/v1/webhook-endpoints/{endpoint_id}/rotate-secret",
    summary="Rotate an endpoint's signing secret",
    description="A new secret signs from now on; the previous one also signs for 24 hours.",
)
async def rotate(endpoint_id: uuid.UUID, tenant: TenantId, db: Db) -> EndpointWithSecret:
    rotated = await rotate_secret(db, tenant, endpoint_id, new_secret())
    return EndpointWithSecret.model_validate(_found(rotated))


@router.get(
    "/v1/webhook-endpoints/{endpoint_id}/deliveries",
    summary="List an endpoint's deliveries, newest first, with their attempts",
)
async def deliveries(
    endpoint_id: uuid.UUID, tenant: TenantId, db: Db, page: Paging
) -> Page[DeliveryOut]:
    _found(await get_endpoint(db, tenant, endpoint_id))
    views, last = await list_deliveries(
        db, tenant, endpoint_id, limit=page.limit, after=_after(page)
    )
    return Page(
        items=[_delivery_out(v) for v in views],
        next_cursor=last and encode_cursor(last[0].isoformat(), str(last[1])),
    )


@router.post(
    "/v1/webhook-deliveries/{delivery_id}/retry",
    status_code=202,
    summary="Retry a webhook delivery now",
)
async def retry(delivery_id: uuid.UUID, tenant: TenantId, db: Db, ctx: Ctx) -> RetryOut:
    delivery = await get_delivery(db, tenant, delivery_id)
    if delivery is None:
        raise not_found("webhook delivery")
    endpoint = await get_endpoint(db, tenant, delivery.endpoint_id)
    if endpoint is not None and endpoint.status == EndpointStatus.DISABLED:
        raise ApiError(
            409, "endpoint_disabled", "the endpoint is disabled; enable it to retry deliveries"
        )
    was = delivery.status
    await reset_for_retry(db, delivery_id, tenant_id=tenant)
    try:
        await _retry_now(ctx, str(delivery_id))
    except ApiError:  # nothing will send it: it stands as it stood
        await restore_status(db, delivery_id, was)
        raise
    return RetryOut(id=delivery_id, status=DeliveryStatus.PENDING)
