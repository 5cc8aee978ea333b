"""The API's side of booking workflows: start one with update-with-start (so the claim is
answered synchronously), send it updates, and turn their failures into API errors.

Every call to Temporal from the API is bounded (docs/api.md#errors), as the SDK alone
retries an unreachable server for ten seconds and waits for ever for a worker that never
polls. Out of reach, the answer is a `503 workflow_unavailable` with `Retry-After`:

- connecting: TEMPORAL_CONNECT_SECONDS (connections.py);
- a call Temporal answers alone (a signal, a start): TEMPORAL_RPC_SECONDS;
- a call a worker must take (an update): if not answered within TEMPORAL_TAKE_SECONDS,
  Temporal is asked, within TEMPORAL_PROBE_SECONDS, whether a worker polls the task
  queue. Temporal silent, or no worker: 503 at once. A worker polling is only busy (a
  burst of bookings) and the call waits on;
- an update answered within TEMPORAL_ANSWER_SECONDS in all, as the workflow's steps (a
  payment, a refund) take their own time.

So an outage is answered within 6 s: 2 s to connect, or 3 s and a 1 s probe for a
client already connected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar, cast

from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
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
from api.errors import (
    TEMPORAL_UNREACHABLE,
    ApiError,
    slot_unavailable,
    unavailable,
    workflow_unavailable,
)
from connections import TemporalUnreachable
from contract import (
    PAYMENT_EVENT_SIGNAL,
    TENANT_ID,
    BookingRequest,
    BookingState,
    ClaimPhase,
    Failure,
    PaymentEvent,
    SeriesRequest,
    SeriesState,
    WaitlistRequest,
    booking_search_attributes,
    series_workflow_id,
    waitlist_workflow_id,
    workflow_id_for,
)
from workflows.booking import BookingWorkflow
from workflows.booking_series import BookingSeriesWorkflow
from workflows.waitlist_entry import WaitlistEntryWorkflow

T = TypeVar("T")

TEMPORAL_RPC_SECONDS = 4.0
TEMPORAL_TAKE_SECONDS = 3.0
TEMPORAL_PROBE_SECONDS = 1.0
# Longer than any one step of an update takes to fail (30 s), and than a burst of 200
# bookings for one slot takes to be claimed on a busy test machine, so slow work is
# answered, not abandoned; a worker lost mid-update still ends the wait.
TEMPORAL_ANSWER_SECONDS = 60.0
# A worker long-polls, and an idle one's newest poll began up to a minute ago (the
# server holds a poll that long); one not seen for longer has stopped.
POLLED_WITHIN = timedelta(seconds=90)

UNREACHABLE = "Temporal is unreachable"
NO_WORKER = "no worker polls the task queue"
NOT_TAKEN = "the booking service did not take the request in time"
NOT_ANSWERED = "the booking's workflow has not answered yet"
# What a client may do after each: a booking's workflow may have started, a change may
# still be made.
REPEAT_BOOKING = (
    "its workflow may have started: repeat the request with the same Idempotency-Key, "
    "which joins that booking"
)
READ_FIRST = "the change may still be made: read the booking before repeating it"


def _seconds(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


@asynccontextmanager
async def reaching_temporal(
    message: str, seconds: float | None = TEMPORAL_RPC_SECONDS
) -> AsyncIterator[None]:
    """The Temporal calls inside (connect included) within `seconds` (None: the caller
    bounds them); out of reach, or not done in time, they are `503 workflow_unavailable`
    saying `message`. Any other failure (an RPC Temporal answered with a refusal, an
    update that failed) passes through for the caller to map."""
    try:
        async with asyncio.timeout(seconds):
            yield
    # TimeoutError: this bound. The SDK turns the cancellation of an update's RPC (this
    # bound again) or its own deadline into RPCTimeoutOrCancelledError.
    except (TimeoutError, RPCTimeoutOrCancelledError, TemporalUnreachable) as err:
        raise workflow_unavailable(message) from err
    except RPCError as err:
        if err.status in TEMPORAL_UNREACHABLE:
            raise workflow_unavailable(message) from err
        if _not_ready(err):
            raise workflow_unavailable(NOT_READY) from err
        raise


# A workflow whose task keeps failing (a bug its worker hits, docs/lifecycle.md) takes
# no update until a fixed worker runs it: the change was not made, and may be asked again.
NOT_READY = (
    "the booking's workflow cannot take changes now (its worker is failing on it); "
    "nothing was changed: try again later"
)


def _not_ready(err: RPCError) -> bool:
    return err.status == RPCStatusCode.FAILED_PRECONDITION and any(
        detail.type_url.endswith("WorkflowNotReadyFailure") for detail in err.grpc_status.details
    )


async def temporal_client(ctx: AppContext) -> Client:
    """The client, or `503 workflow_unavailable` within the connect's own bound: before
    any workflow is started, so repeating the request is always safe."""
    try:
        return await ctx.temporal()
    except TemporalUnreachable as err:
        raise workflow_unavailable(f"{UNREACHABLE}; try again") from err


async def booking_temporal(ctx: AppContext) -> tuple[Client, str]:
    """The client and the booking task queue, as every route that talks to bookings'
    workflows needs them."""
    return await temporal_client(ctx), ctx.settings.temporal_task_queue


async def worker_polls(
    client: Client, task_queue: str, task_type: TaskQueueType.ValueType, rpc_seconds: float
) -> bool:
    """Whether a worker has polled `task_queue` for tasks of `task_type` lately
    (Temporal's DescribeTaskQueue lists the pollers it has seen, and when)."""
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=task_type,
        ),
        timeout=_seconds(rpc_seconds),
    )
    since = datetime.now(UTC) - POLLED_WITHIN
    return any(p.last_access_time.ToDatetime(tzinfo=UTC) >= since for p in described.pollers)


# Temporal answered the probe, but will not describe the queue to this client.
_PROBE_REFUSED = frozenset(
    {RPCStatusCode.PERMISSION_DENIED, RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.UNIMPLEMENTED}
)


async def _probe(client: Client, task_queue: str) -> str | None:
    """Why a call not taken yet will not be: Temporal silent, or no worker polling. None
    when a worker polls (it is busy), or when Temporal will not say (a key that may not
    describe queues): the call keeps waiting. Any other failure of the probe is Temporal
    out of reach: a lost connection fails with UNKNOWN ("transport error") or CANCELLED
    as often as with UNAVAILABLE."""
    try:
        async with asyncio.timeout(TEMPORAL_PROBE_SECONDS):
            workflow_tasks = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
            if await worker_polls(client, task_queue, workflow_tasks, TEMPORAL_PROBE_SECONDS):
                return None
            return NO_WORKER
    except TimeoutError:
        return UNREACHABLE
    except RPCError as err:
        return None if err.status in _PROBE_REFUSED else UNREACHABLE


# The probe of each client and queue, with when it began: a burst of slow requests asks
# Temporal once a TEMPORAL_PROBE_SECONDS, not once each.
_probes: dict[tuple[int, str], tuple[float, asyncio.Task[str | None]]] = {}


async def _no_worker_in_sight(client: Client, task_queue: str) -> str | None:
    now = asyncio.get_running_loop().time()
    key = (id(client), task_queue)
    began, probe = _probes.get(key, (0.0, None))
    if probe is None or now - began > TEMPORAL_PROBE_SECONDS:
        probe = asyncio.ensure_future(_probe(client, task_queue))
        _probes[key] = (now, probe)
    return await asyncio.shield(probe)  # one caller's cancellation leaves it to the rest


async def taken(client: Client, task_queue: str, call: Awaitable[T], after: str) -> T:
    """`call` (one a worker on `task_queue` must take), or `503 workflow_unavailable`
    saying why and then `after` once it is clear nobody will take it (the module's
    docstring). The caller bounds how long a busy worker may take."""
    attempt = asyncio.ensure_future(call)
    try:
        async with reaching_temporal(f"{NOT_TAKEN}; {after}", None):
            done, _ = await asyncio.wait({attempt}, timeout=TEMPORAL_TAKE_SECONDS)
            if not done and (why := await _no_worker_in_sight(client, task_queue)):
                raise workflow_unavailable(f"{why}; {after}")
            return await attempt
    finally:
        if not attempt.done():
            attempt.cancel()
            with suppress(BaseException):  # its cancellation, as the SDK words it
                await attempt


async def _answered(
    client: Client, task_queue: str, call: Awaitable[Any], after: str
) -> BookingState:
    """An update's answer, within TEMPORAL_ANSWER_SECONDS in all; one call, so a booking
    costs Temporal no more than the update itself (waiting for the update to be accepted
    first would be a second RPC and a second long poll on every request)."""
    async with reaching_temporal(f"{NOT_ANSWERED}; {after}", TEMPORAL_ANSWER_SECONDS):
        return cast(BookingState, await taken(client, task_queue, call, after))


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
        search_attributes=booking_search_attributes(request),
        static_summary=summary,
        static_details=details,
    )
    try:
        claim = client.execute_update_with_start_workflow(
            BookingWorkflow.claim,
            start_workflow_operation=operation,
            rpc_timeout=_seconds(TEMPORAL_ANSWER_SECONDS),
        )
        return await _answered(client, task_queue, claim, REPEAT_BOOKING)
    except WorkflowUpdateFailedError as err:
        raise _api_error(err) from err
    except (WorkflowAlreadyStartedError, RPCError) as err:
        if isinstance(err, RPCError) and err.status != RPCStatusCode.ALREADY_EXISTS:
            raise
        # The booking's workflow has already finished: its result is the answer.
        handle = client.get_workflow_handle(
            workflow_id_for(request.booking_id), result_type=BookingState
        )
        async with reaching_temporal(f"{NOT_ANSWERED}; {REPEAT_BOOKING}", TEMPORAL_ANSWER_SECONDS):
            state: BookingState = await handle.result(rpc_timeout=_seconds(TEMPORAL_ANSWER_SECONDS))
        if state.status == ClaimPhase.REJECTED:
            raise slot_unavailable() from err
        return state
    finally:
        _read_start_outcome(operation)


async def start_series(client: Client, task_queue: str, request: SeriesRequest) -> SeriesState:
    """Start a series' workflow and wait until it has claimed its occurrences and started
    their workflows (docs/series.md). A repeat (same series id) joins the same workflow."""
    operation = WithStartWorkflowOperation(
        BookingSeriesWorkflow.run,
        request,
        id=series_workflow_id(request.series_id),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes(
            [SearchAttributePair(TENANT_ID, request.tenant_id)]
        ),
        static_summary=f"series of {len(request.occurrences)}: {request.rrule}",
    )
    try:
        create = client.execute_update_with_start_workflow(
            BookingSeriesWorkflow.create,
            start_workflow_operation=operation,
            rpc_timeout=_seconds(TEMPORAL_ANSWER_SECONDS),
        )
        return cast(SeriesState, await _answered(client, task_queue, create, REPEAT_BOOKING))
    except WorkflowUpdateFailedError as err:
        raise _api_error(err) from err
    finally:
        _read_start_outcome(operation)


async def start_waitlist_entry(client: Client, request: WaitlistRequest, task_queue: str) -> None:
    """Start an entry's workflow, asking it at once to try for a slot (docs/waitlist.md)."""
    async with reaching_temporal(f"{UNREACHABLE}; join again"):
        await client.start_workflow(
            WaitlistEntryWorkflow.run,
            request,
            id=waitlist_workflow_id(request.entry_id),
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            start_signal="slots_freed",
            search_attributes=TypedSearchAttributes(
                [SearchAttributePair(TENANT_ID, request.tenant_id)]
            ),
            static_summary="waitlist entry",
        )


async def leave_waitlist(client: Client, task_queue: str, entry_id: str) -> str:
    """The entry's status once it asked to leave (it leaves only while waiting)."""
    handle = client.get_workflow_handle(waitlist_workflow_id(entry_id))
    try:
        leave = handle.execute_update(
            WaitlistEntryWorkflow.leave, rpc_timeout=_seconds(TEMPORAL_ANSWER_SECONDS)
        )
        return cast(str, await _answered(client, task_queue, leave, READ_FIRST))
    except WorkflowUpdateFailedError as err:
        raise _api_error(err) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # the entry's workflow has finished
            raise ApiError(409, "invalid_state", "the entry is no longer waiting") from err
        raise


async def occurrence_answer(client: Client, task_queue: str, booking_id: str) -> BookingState:
    """An occurrence's claim, as its own workflow answers it: at once when free, once its
    payment is authorised when priced (the answer carries the client secret)."""
    handle = client.get_workflow_handle(workflow_id_for(booking_id), result_type=BookingState)
    try:
        claim = handle.execute_update(
            BookingWorkflow.claim, rpc_timeout=_seconds(TEMPORAL_ANSWER_SECONDS)
        )
        return await _answered(client, task_queue, claim, REPEAT_BOOKING)
    except WorkflowUpdateFailedError as err:
        raise _api_error(err) from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        # Its workflow has finished (a repeat, long after): its result is the answer.
        async with reaching_temporal(f"{NOT_ANSWERED}; {REPEAT_BOOKING}", TEMPORAL_ANSWER_SECONDS):
            done: BookingState = await handle.result(rpc_timeout=_seconds(TEMPORAL_ANSWER_SECONDS))
        return done


def _read_start_outcome(operation: WithStartWorkflowOperation[Any, Any]) -> None:
    """The SDK leaves the start's own outcome in a future of the operation. When the
    update-with-start failed (the workflow had finished, Temporal went away) nobody reads
    it, and asyncio would log each such request as an unretrieved error."""
    started = operation._workflow_handle  # the SDK offers no other way
    if started.done() and not started.cancelled():
        started.exception()


# An update method of BookingWorkflow taking one argument.
Update = UpdateMethodMultiParam[[Any, Any], Any]


async def run_update(handle: WorkflowHandle[Any, Any], method: Update, arg: object) -> BookingState:
    """Typed wrapper: the SDK types an async update's result as its coroutine."""
    return cast(BookingState, await handle.execute_update(method, arg))


async def update_booking(
    client: Client,
    task_queue: str,
    booking_id: str,
    status: str,
    method: Update,
    arg: object,
) -> BookingState:
    """The update's answer: not answered within TEMPORAL_TAKE_SECONDS and no worker in
    sight (an outage, no worker) is a prompt 503; a busy worker is waited for."""
    finished = f"the booking is {status}"
    answer = await _update(client, task_queue, workflow_id_for(booking_id), finished, method, arg)
    return cast(BookingState, answer)


async def update_series(
    client: Client, task_queue: str, series_id: str, method: Update, arg: object
) -> SeriesState:
    """A series' update, answered as a booking's is (docs/series.md#payment)."""
    finished = "the series awaits nothing more"
    answer = await _update(client, task_queue, series_workflow_id(series_id), finished, method, arg)
    return cast(SeriesState, answer)


async def _update(
    client: Client, task_queue: str, workflow_id: str, finished: str, method: Update, arg: object
) -> object:
    handle = client.get_workflow_handle(workflow_id)
    try:
        update = handle.execute_update(method, arg, rpc_timeout=_seconds(TEMPORAL_ANSWER_SECONDS))
        return await _answered(client, task_queue, update, READ_FIRST)
    except WorkflowUpdateFailedError as err:
        raise _api_error(err) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # the workflow has finished
            raise ApiError(409, "invalid_state", finished) from err
        raise


async def series_created(client: Client, task_queue: str, series_id: str) -> None:
    """A repeated create joins its series: answered once the series' workflow has started
    its occurrences (and, paid once, begun its payment); a finished one has."""
    handle = client.get_workflow_handle(series_workflow_id(series_id))
    try:
        create = handle.execute_update(
            BookingSeriesWorkflow.create, rpc_timeout=_seconds(TEMPORAL_ANSWER_SECONDS)
        )
        await _answered(client, task_queue, create, REPEAT_BOOKING)
    except WorkflowUpdateFailedError as err:
        raise _api_error(err) from err
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise


async def signal_payment_event(ctx: AppContext, workflow_id: str, event: PaymentEvent) -> None:
    """To the payer's workflow (a booking's, or a series' paid once). A finished one has
    nothing left to pay: the event stays recorded. Temporal out of reach (or any refusal
    but that one) is a 503, so Stripe delivers the event again."""
    message = "the payment event is recorded but not yet handed on; deliver it again"
    try:
        async with reaching_temporal(message):
            client = await ctx.temporal()
            handle = client.get_workflow_handle(workflow_id)
            await handle.signal(
                PAYMENT_EVENT_SIGNAL, event, rpc_timeout=_seconds(TEMPORAL_RPC_SECONDS)
            )
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise workflow_unavailable(message) from err


async def stop_series_payment(client: Client, series_id: str) -> None:
    """The series was cancelled before it was paid. Its workflow may have finished: then
    its payment was settled or voided already."""
    handle = client.get_workflow_handle(series_workflow_id(series_id))
    async with reaching_temporal(UNREACHABLE):
        try:
            await handle.signal(
                BookingSeriesWorkflow.stop_payment, rpc_timeout=_seconds(TEMPORAL_RPC_SECONDS)
            )
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise


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
        return unavailable("booking_failed", cause.message)
    return unavailable("booking_failed", str(cause))
