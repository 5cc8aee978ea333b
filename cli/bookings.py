"""`holdfast bookings show ID`: a booking as the database holds it, as its workflow sees
it, and its history, side by side, and whether row and workflow agree: what an operator
looks at first when a customer says their booking is wrong. Read across tenants, as the
operator."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from typing import Annotated, Any

import typer
from sqlalchemy import select
from temporalio.client import Client
from temporalio.service import RPCError

from cli.common import fail, operator_sessions, temporal
from cli.stack import stack_settings
from contract import BOOKING_STATUS, BookingState
from db.models import Allocation, Booking, BookingEvent

app = typer.Typer(help="Bookings.", no_args_is_help=True, rich_markup_mode="markdown")

# What the row shows; customers' data stays out of an operator's terminal scrollback.
_ROW = ("id", "tenant_id", "status", "start_at", "end_at", "hold_expires_at", "version")


async def _workflow(client: Client | None, workflow_id: str) -> dict[str, Any]:
    if client is None:
        return {"error": "Temporal is not reachable"}
    handle = client.get_workflow_handle(workflow_id)
    try:
        described = await handle.describe()
    except RPCError as err:
        return {"id": workflow_id, "error": err.message}
    shown: dict[str, Any] = {
        "id": workflow_id,
        "execution": described.status.name if described.status else None,
        "published_status": described.typed_search_attributes.get(BOOKING_STATUS),
    }
    try:
        state = await handle.query("state", result_type=BookingState)
    except RPCError as err:  # closed past the worker's cache, or no worker polls
        shown["state_error"] = err.message
    else:
        shown["state"] = {
            k: v for k, v in dataclasses.asdict(state).items() if k not in ("slot", "payment")
        }
        shown["state"]["payment_status"] = state.payment.status if state.payment else None
    return shown


@app.command()
def show(booking_id: Annotated[uuid.UUID, typer.Argument(help="The booking's id.")]) -> None:
    """The row, the workflow's state and the history, side by side."""
    settings = stack_settings()

    async def run() -> dict[str, Any]:
        async with operator_sessions(settings) as sessions, sessions.transaction() as db:
            booking = await db.get(Booking, booking_id)
            if booking is None:
                fail(f"no booking {booking_id}")
            allocations = (
                await db.scalars(select(Allocation).where(Allocation.booking_id == booking_id))
            ).all()
            events = (
                await db.scalars(
                    select(BookingEvent)
                    .where(BookingEvent.booking_id == booking_id)
                    .order_by(BookingEvent.at, BookingEvent.id)
                )
            ).all()
        row: dict[str, Any] = {name: getattr(booking, name) for name in _ROW}
        row["payment_status"] = (booking.payment or {}).get("status")
        row["allocations"] = [
            {"resource_id": a.resource_id, "status": a.status, "span": str(a.span)}
            for a in allocations
        ]
        workflow = await _workflow(await temporal(settings), booking.workflow_id)
        return {
            "row": row,
            "workflow": workflow,
            "agree": workflow.get("published_status") == booking.status,
            "history": [{"at": e.at, "type": e.type, "actor": e.actor} for e in events],
        }

    print(json.dumps(asyncio.run(run()), default=str, indent=2))
