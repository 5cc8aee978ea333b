"""Push from calendar providers (docs/calendars.md#freshness): Google's watch channels and
Microsoft Graph's subscriptions say "something changed" and the connection's workflow
syncs. A push carries no data we trust; it only prompts a sync, and only when it carries
the channel's token (Google's `X-Goog-Channel-Token`, Graph's `clientState`), compared
in constant time with the digest stored when the channel was opened."""

import hmac
import json
from datetime import timedelta

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import PlainTextResponse
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.service import RPCError

from api.booking_gateway import reaching_temporal
from api.context import AppContext
from api.deps import CalendarPush, Ctx, Db
from api.edge import read_bounded
from api.errors import ApiError, workflow_unavailable
from contract import ConnectionStatus, connection_workflow_id
from db import calendar_connections as connections
from db.models import CalendarConnection

router = APIRouter(tags=["calendars"])

TEMPORAL_RPC_TIMEOUT = timedelta(seconds=5)
MAX_BODY = 1_000_000


async def _channel(db: AsyncSession, channel_id: str, token: str) -> CalendarConnection | None:
    """The live connection whose channel this is, if the token matches."""
    row = await connections.by_channel(db, channel_id)
    if row is None or row.channel is None or row.status == ConnectionStatus.DISABLED:
        return None
    digest = connections.channel_token_digest(token)
    return row if hmac.compare_digest(digest, row.channel["token_digest"]) else None


async def _prompt(ctx: AppContext, row: CalendarConnection) -> None:
    """Bounded (api/booking_gateway.py): the provider waits only seconds for an answer."""
    unreachable = "the push could not be handed on"
    try:
        async with reaching_temporal(unreachable):
            client = await ctx.temporal()
            handle = client.get_workflow_handle(connection_workflow_id(str(row.id)))
            await handle.signal("pushed", rpc_timeout=TEMPORAL_RPC_TIMEOUT)
    except RPCError as err:  # the provider retries a failed push
        raise workflow_unavailable(unreachable) from err


def _not_notifications() -> ApiError:
    return ApiError(400, "invalid_notification", 'expected {"value": [...]}')


@router.post(
    "/v1/webhooks/google-calendar",
    summary="Google Calendar push notifications",
    description="A watch channel's notice that its calendar changed.",
    response_class=Response,
)
async def google_calendar(
    _: CalendarPush,
    db: Db,
    ctx: Ctx,
    channel_id: str = Header(default="", alias="X-Goog-Channel-ID", max_length=255),
    token: str = Header(default="", alias="X-Goog-Channel-Token", max_length=512),
    state: str = Header(default="exists", alias="X-Goog-Resource-State", max_length=32),
) -> Response:
    row = await _channel(db, channel_id, token)
    if row is None:
        raise ApiError(404, "not_found", "no such channel")
    if state != "sync":  # "sync" only opens the channel: nothing changed yet
        await _prompt(ctx, row)
    return Response(status_code=200)


@router.post(
    "/v1/webhooks/microsoft-graph",
    summary="Microsoft Graph change and lifecycle notifications",
    description="Answers Graph's `validationToken` handshake; each notification whose "
    "`clientState` matches prompts a sync of its connection.",
    response_model=None,
    response_class=Response,
    status_code=202,
    responses={200: {"description": "The handshake", "content": {"text/plain": {"schema": {}}}}},
)
async def microsoft_graph(
    request: Request,
    _: CalendarPush,
    db: Db,
    ctx: Ctx,
    validation_token: str | None = Query(default=None, alias="validationToken", max_length=1024),
) -> Response:
    if validation_token is not None:  # Graph checks the address before subscribing
        # Echoed as Graph requires; as plain text the browser must not sniff.
        return PlainTextResponse(validation_token, headers={"X-Content-Type-Options": "nosniff"})
    body = await read_bounded(request, MAX_BODY)
    if body is None:  # read no further than the bound: the edge leaves these bodies alone
        raise ApiError(413, "payload_too_large", "notification body too large")
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise _not_notifications() from exc
    notices = payload.get("value") if isinstance(payload, dict) else None
    if not isinstance(notices, list):
        raise _not_notifications()
    prompted: set[str] = set()
    for notice in notices:
        if not isinstance(notice, dict):
            continue
        row = await _channel(
            db, str(notice.get("subscriptionId", "")), str(notice.get("clientState", ""))
        )
        if row is None:
            continue
        lifecycle = notice.get("lifecycleEvent")
        if lifecycle == "subscriptionRemoved":  # Graph dropped it: the sync opens a new one
            await connections.save_channel(db, row.id, None)
            await db.commit()
        elif lifecycle == "reauthorizationRequired":  # renewed by the sync it prompts
            await connections.channel_due(db, row.id)
            await db.commit()
        if str(row.id) not in prompted:  # a burst prompts each connection once
            prompted.add(str(row.id))
            await _prompt(ctx, row)
    return Response(status_code=202)
