"""The API's side of booking workflows: start one with update-with-start (so the claim is
answered synchronously), send it updates, and turn their failures into API errors."""

from __future__ import annotations

from typing import Any, cast

from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.workflow import UpdateMethodMultiParam

from api.context import AppContext
from api.errors import ApiError, slot_unavailable
from contract import (
    BOOKING_START,
    BOOKING_STATUS,
    SERVICE_CODE,
    TENANT_ID,
    BookingRequest,
    BookingState,
    ClaimPhase,
    Failure,
    PaymentEvent,
    workflow_id_for,
)
from workflows.booking import BookingWorkflow


def _summary(request: BookingRequest) -> tuple[str, str]:
    """What operators see in the Temporal UI: no personal data, just the booking."""
    slot = request.slot
    summary = f"{request.terms.name} · {slot.start:%Y-%m-%d %H:%M} UTC"
    details = "\n\n".join(
        [
            f"**Booking** `{request.booking_id}` (tenant `{request.tenant_id}`)",
            f"**Service** {request.terms.name} (`{request.terms.code}`)",
            f"**When** {slot.start.isoformat()} → {slot.end.isoformat()}",
            f"**Resources** {', '.join(f'`{r}`' for r in slot.resource_ids)}",
        ]
    )
    return summary, details


async def start_booking(client: Client, task_queue: str, request: BookingRequest) -> BookingState:
    """Start the booking's workflow and wait for its claim. A repeat for the same booking
    (same idempotency key) joins the running workflow and gets the same answer."""
    summary, details = _summary(request)
    operation = WithStartWorkflowOperation(
        BookingWorkflow.run,
        request,
        id=workflow_id_for(request.booking_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(BOOKING_STATUS, ClaimPhase.CLAIMING),
                SearchAttributePair(TENANT_ID, request.tenant_id),
                SearchAttributePair(SERVICE_CODE, request.terms.code),
                SearchAttributePair(BOOKING_START, request.slot.start),
            ]
        ),
        static_summary=summary,
        static_details=details,
    )
    try:
        return cast(
            BookingState,
            await client.execute_update_with_start_workflow(
                BookingWorkflow.claim,
                start_workflow_operation=operation,
            ),
        )
    except WorkflowUpdateFailedError as err:
        raise _api_error(err) from err
    except (WorkflowAlreadyStartedError, RPCError) as err:
        if isinstance(err, RPCError) and err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        # The booking's workflow has already finished: its result is the answer.
        handle = client.get_workflow_handle(
            workflow_id_for(request.booking_id), result_type=BookingState
        )
        state: BookingState = await handle.result()
        if state.status == ClaimPhase.REJECTED:
            raise slot_unavailable() from err
        return state


# An update method of BookingWorkflow taking one argument.
Update = UpdateMethodMultiParam[[Any, Any], Any]


async def run_update(handle: WorkflowHandle[Any, Any], method: Update, arg: object) -> BookingState:
    """Typed wrapper: the SDK types an async update's result as its coroutine."""
    return cast(BookingState, await handle.execute_update(method, arg))


async def update_booking(
    client: Client,
    booking_id: str,
    status: str,
    method: Update,
    arg: object,
) -> BookingState:
    handle = client.get_workflow_handle(workflow_id_for(booking_id))
    try:
        return await run_update(handle, method, arg)
    except WorkflowUpdateFailedError as err:
        raise _api_error(err) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # the workflow has finished
            raise ApiError(409, "invalid_state", f"the booking is {status}") from err
        raise


async def signal_payment_event(ctx: AppContext, booking_id: str, event: PaymentEvent) -> None:
    """A finished booking has nothing left to pay: the event stays recorded. Temporal out
    of reach is a 503, so Stripe delivers the event again."""
    try:
        client = await ctx.temporal()
        handle = client.get_workflow_handle(workflow_id_for(booking_id))
        await handle.signal(BookingWorkflow.payment_event, event)
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise ApiError(503, "workflow_unavailable", "try again") from err
    except RuntimeError as err:  # the client could not connect
        raise ApiError(503, "workflow_unavailable", "try again") from err


def _api_error(err: WorkflowUpdateFailedError) -> ApiError:
    """An update's failure as the API answers it. A step's failure arrives wrapped (the
    update failed with an ActivityError whose cause is the step's ApplicationError)."""
    cause: BaseException = err.cause or err
    while isinstance(cause, FailureError) and not isinstance(cause, ApplicationError):
        if cause.cause is None:  # a timeout or cancellation: its own words
            break
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        if cause.type == Failure.SLOT_UNAVAILABLE:
            return slot_unavailable()
        if cause.type == Failure.INVALID_STATE:
            return ApiError(409, "invalid_state", cause.message)
        if cause.type == Failure.DATA_REFUSED:
            return ApiError(422, "data_refused", cause.message)
        return ApiError(503, "booking_failed", cause.message)
    return ApiError(503, "booking_failed", str(cause))
