"""A resource's calendar connections (docs/calendars.md#connections): Google or Outlook
calendars whose busy time blocks its slots and which show its bookings. The credential
is sealed before it is stored and never shown again; each connection is one long-running
workflow, which this router starts, asks to sync, and stops."""

import asyncio
import logging
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from sqlalchemy.exc import IntegrityError
from temporalio.client import (
    RPCTimeoutOrCancelledError,
    WorkflowUpdateFailedError,
    WorkflowUpdateStage,
)
from temporalio.service import RPCError, RPCStatusCode

from api.booking_gateway import TEMPORAL_RPC_SECONDS, taken
from api.context import AppContext
from api.deps import Ctx, Db, TenantId
from api.errors import ApiError, not_found, workflow_unavailable
from api.lookup import owned_or_404
from api.pagination import Page
from api.types import JsonBool
from contract import (
    CalendarProvider,
    ConnectionInput,
    ConnectionStatus,
    connection_workflow_id,
    delivery_task_queue,
)
from db import calendar_connections as connections
from db.models import CalendarConnection, Resource
from encryption import Keyring, KeyringError
from notifications.targets import TargetRefused, check_token_uri

router = APIRouter(tags=["calendars"])
log = logging.getLogger("holdfast.api")

CONNECTION_WORKFLOW = "CalendarConnection"
TEMPORAL_RPC_TIMEOUT = timedelta(seconds=10)
SYNC_TIMEOUT = timedelta(seconds=60)


class GoogleKey(BaseModel):
    """A service-account key as Google's console downloads it; its own `token_uri` is
    where tokens come from."""

    model_config = ConfigDict(extra="allow")
    type: Literal["service_account"]
    client_email: Annotated[str, Field(min_length=3, max_length=320)]
    private_key: Annotated[str, Field(min_length=1, max_length=10_000)]
    token_uri: Annotated[str, Field(min_length=1, max_length=2000)]


class MicrosoftApp(BaseModel):
    """An Entra ID app registration allowed to read and write calendars (client
    credentials)."""

    model_config = ConfigDict(extra="forbid")
    tenant_id: Annotated[str, Field(min_length=1, max_length=100)]
    client_id: Annotated[str, Field(min_length=1, max_length=100)]
    client_secret: Annotated[str, Field(min_length=1, max_length=2000)]


class ConnectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    provider: CalendarProvider
    calendar_id: Annotated[
        str,
        Field(
            min_length=1,
            max_length=255,
            description="Google: the calendar's id (often an email address). Microsoft: "
            "the user's id or principal name (their default calendar).",
        ),
    ]
    credentials: dict[str, Any] = Field(
        description="Google: a service-account key (JSON object). Microsoft: "
        "`{tenant_id, client_id, client_secret}`. Stored encrypted, never returned."
    )
    subject: Annotated[str, Field(min_length=3, max_length=320)] | None = Field(
        default=None,
        description="Google only: the user the service account acts as (domain-wide delegation).",
    )
    import_busy: JsonBool = True
    export_events: JsonBool = True

    @field_validator("subject")
    @classmethod
    def _subject_is_googles(cls, subject: str | None, info: ValidationInfo) -> str | None:
        if subject and info.data.get("provider") != CalendarProvider.GOOGLE:
            raise ValueError("subject applies to Google connections only")
        return subject

    def sealed(self) -> dict[str, Any]:
        """What is sealed: Google's key with its subject, or Microsoft's app; a 422
        naming the field (`credentials.<field>`) when they do not fit the provider."""
        google = self.provider == CalendarProvider.GOOGLE
        try:
            (GoogleKey if google else MicrosoftApp).model_validate(self.credentials)
        except ValidationError as exc:
            details = [
                {
                    "field": ".".join(["credentials", *(str(p) for p in e["loc"])]),
                    "message": e["msg"],
                    "type": e["type"],
                }
                for e in exc.errors()
            ]
            first = details[0]
            raise ApiError(
                422, "validation_error", f"{first['field']}: {first['message']}", details
            ) from None
        return {"key": self.credentials, "subject": self.subject} if google else self.credentials

    def check_token_uri(self, api_base: str) -> None:
        if self.provider != CalendarProvider.GOOGLE:
            return
        try:
            check_token_uri(str(self.credentials["token_uri"]), api_base)
        except TargetRefused as exc:
            field = "credentials.token_uri"
            details = [{"field": field, "message": str(exc), "type": "target_refused"}]
            raise ApiError(422, "validation_error", f"{field}: {exc}", details) from exc


class ConnectionOut(BaseModel):
    id: uuid.UUID
    resource_id: uuid.UUID
    provider: CalendarProvider
    calendar_id: str
    import_busy: bool
    export_events: bool
    status: ConnectionStatus
    last_synced_at: datetime | None
    last_error: str | None
    created_at: datetime


def _out(row: CalendarConnection) -> ConnectionOut:
    return ConnectionOut.model_validate(connections.view(row))


def _keyring(ctx: AppContext) -> Keyring:
    try:
        return Keyring.parse(ctx.settings.encryption_keys.get_secret_value())
    except KeyringError as exc:
        raise ApiError(
            503, "calendars_unavailable", "calendar connections need ENCRYPTION_KEYS set"
        ) from exc


async def _connection(
    db: Db, tenant: uuid.UUID, resource_id: uuid.UUID, connection_id: uuid.UUID
) -> CalendarConnection:
    found = await connections.find(db, tenant, resource_id, connection_id)
    if found is None:
        raise not_found("calendar connection")
    return found


def _unavailable(err: Exception) -> ApiError:
    log.warning("calendar connection workflow unreachable: %r", err)
    return workflow_unavailable("the connection's workflow is unreachable")


@router.post(
    "/v1/resources/{resource_id}/calendar-connections",
    status_code=201,
    summary="Connect a resource's Google or Outlook calendar",
    description="Answers at once with status `syncing`; the first sync follows. "
    "`POST .../sync` waits for one.",
)
async def create(
    resource_id: uuid.UUID, body: ConnectionIn, tenant: TenantId, db: Db, ctx: Ctx
) -> ConnectionOut:
    await owned_or_404(db, Resource, tenant, resource_id, "resource")
    credentials = body.sealed()
    body.check_token_uri(ctx.settings.google_calendar_api_base)
    keyring = _keyring(ctx)
    try:
        row = await connections.create(
            db,
            keyring,
            tenant_id=tenant,
            resource_id=resource_id,
            provider=body.provider,
            calendar_id=body.calendar_id,
            credentials=credentials,
            import_busy=body.import_busy,
            export_events=body.export_events,
        )
    except IntegrityError as exc:
        raise ApiError(
            409, "already_connected", "this calendar is already connected to the resource"
        ) from exc
    # Committed before its workflow starts (whose first sync reads the row); a
    # connection whose workflow could not start is removed again.
    await db.commit()
    try:
        async with asyncio.timeout(TEMPORAL_RPC_SECONDS):  # docs/api.md#errors
            client = await ctx.temporal()
            await client.start_workflow(
                CONNECTION_WORKFLOW,
                ConnectionInput(str(row.id), str(tenant)),
                id=connection_workflow_id(str(row.id)),
                task_queue=delivery_task_queue(ctx.settings.temporal_task_queue),
                static_summary=f"{row.provider} calendar of resource {resource_id}",
                rpc_timeout=TEMPORAL_RPC_TIMEOUT,
            )
    except (RPCError, RuntimeError, TimeoutError) as err:
        await connections.remove(db, row.id)
        await db.commit()
        raise _unavailable(err) from err
    return _out(row)


@router.get(
    "/v1/resources/{resource_id}/calendar-connections",
    summary="List a resource's calendar connections",
)
async def list_connections(resource_id: uuid.UUID, tenant: TenantId, db: Db) -> Page[ConnectionOut]:
    await owned_or_404(db, Resource, tenant, resource_id, "resource")
    rows = await connections.of_resource(db, tenant, resource_id)
    return Page(items=[_out(r) for r in rows], next_cursor=None)


@router.get(
    "/v1/resources/{resource_id}/calendar-connections/{connection_id}",
    summary="Get a calendar connection",
)
async def get(
    resource_id: uuid.UUID, connection_id: uuid.UUID, tenant: TenantId, db: Db
) -> ConnectionOut:
    return _out(await _connection(db, tenant, resource_id, connection_id))


@router.post(
    "/v1/resources/{resource_id}/calendar-connections/{connection_id}/sync",
    summary="Sync a calendar connection now",
    description="Answers once a sync has run, with the connection as it left it (a "
    "refused credential shows as `reauth_required`, a failed request in `last_error`).",
)
async def sync(
    resource_id: uuid.UUID, connection_id: uuid.UUID, tenant: TenantId, db: Db, ctx: Ctx
) -> ConnectionOut:
    row = await _connection(db, tenant, resource_id, connection_id)
    if row.status == ConnectionStatus.DISABLED:
        raise ApiError(409, "connection_disabled", "the connection is being removed")
    # Taken by the workflow as every update is (a prompt 503 without Temporal or a worker:
    # api/booking_gateway.py), then given the sync's own time.
    try:
        client = await ctx.temporal()
        handle = client.get_workflow_handle(connection_workflow_id(str(row.id)))
        start = handle.start_update(
            "sync_now", wait_for_stage=WorkflowUpdateStage.ACCEPTED, rpc_timeout=SYNC_TIMEOUT
        )
        queue = delivery_task_queue(ctx.settings.temporal_task_queue)
        update = await taken(client, queue, start, "try again")
        await update.result(rpc_timeout=SYNC_TIMEOUT)
    except (
        RPCError,
        RuntimeError,
        RPCTimeoutOrCancelledError,  # SYNC_TIMEOUT ran out
        WorkflowUpdateFailedError,
    ) as err:
        raise _unavailable(err) from err
    await db.refresh(row)
    return _out(row)


@router.delete(
    "/v1/resources/{resource_id}/calendar-connections/{connection_id}",
    status_code=204,
    summary="Disconnect a calendar",
    description="Its busy time stops blocking slots at once; events already written stay "
    "in the calendar.",
)
async def delete(
    resource_id: uuid.UUID, connection_id: uuid.UUID, tenant: TenantId, db: Db, ctx: Ctx
) -> Response:
    row = await _connection(db, tenant, resource_id, connection_id)
    await connections.disable(db, row)
    await db.commit()
    # The workflow stops the push channel and removes the row. Unreachable now, it finds
    # the connection disabled at its next sync and does the same then.
    try:
        async with asyncio.timeout(TEMPORAL_RPC_SECONDS):  # docs/api.md#errors
            client = await ctx.temporal()
            handle = client.get_workflow_handle(connection_workflow_id(str(row.id)))
            await handle.signal("disconnect", rpc_timeout=TEMPORAL_RPC_TIMEOUT)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # no workflow left to do it
            await connections.remove(db, row.id)
            await db.commit()
    except (RuntimeError, TimeoutError):  # Temporal unreachable
        pass
    return Response(status_code=204)
