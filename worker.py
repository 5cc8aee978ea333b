"""The Temporal worker: hosts the workflows and activities on the `holdfast` task queue."""

from __future__ import annotations

import asyncio
import compileall
import contextlib
import logging
import os
import signal
import threading
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import Outbound, build_activities, build_delivery_activities
from activities import metrics as worker_metrics
from activities.calendar import CalendarRequests
from activities.calendar_access import CalendarAccess
from activities.payments import PaymentProvider
from activities.stripe_payments import StripePayments
from connections import connect_temporal, create_engine, create_stripe, libpq_url
from contract import delivery_task_queue
from db.sessions import Sessions
from db.tenancy import across_tenants
from dispatch import Dispatcher
from logs import configure_logging
from settings import Settings, get_settings
from tracing import configure_tracing
from waitlist_dispatch import WaitlistDispatcher
from workflows.booking import BookingWorkflow
from workflows.booking_series import BookingSeriesWorkflow
from workflows.calendar_connection import CalendarConnectionWorkflow
from workflows.calendar_export import CalendarExportWorkflow
from workflows.notification import NotificationWorkflow
from workflows.waitlist_entry import WaitlistEntryWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

DELIVERY_WORKFLOWS = [
    NotificationWorkflow,
    WebhookDeliveryWorkflow,
    CalendarConnectionWorkflow,
    CalendarExportWorkflow,
]
BOOKING_WORKFLOWS = [BookingWorkflow, BookingSeriesWorkflow, WaitlistEntryWorkflow]
WORKFLOWS = [*BOOKING_WORKFLOWS, *DELIVERY_WORKFLOWS]  # what the replay test replays

WORKFLOWS_DIR = Path(__file__).parent / "workflows"

log = logging.getLogger("holdfast.worker")

# On SIGTERM or SIGINT the worker stops taking tasks at once and gives the activities it
# is running this long to finish (they are then cancelled): a deploy or Ctrl-C lets a
# payment capture or a calendar write complete instead of leaving it to a retry.
GRACEFUL_SHUTDOWN = timedelta(seconds=10)
# A sync activity stuck in a call cannot be cancelled; past this the process exits
# without it (Temporal retries it on another worker once its timeout passes), so a
# stop is always bounded.
EXIT_DEADLINE = GRACEFUL_SHUTDOWN.total_seconds() + 5


def create_worker(
    client: Client,
    engine: AsyncEngine,
    task_queue: str,
    executor: Executor,
    *,
    calendars: CalendarRequests | None = None,
    cards: PaymentProvider | None = None,
    sandboxed: bool = True,
    graceful_shutdown: timedelta = timedelta(),
) -> Worker:
    """Everything the saga needs, registered on one task queue (tests use this too).
    Sync activities (payment, calendar clients) run on `executor`, off the event loop.
    `graceful_shutdown`: how long running activities may go on once shutdown starts
    (none by default, so tests stop at once; the worker process gives GRACEFUL_SHUTDOWN).

    `sandboxed`: Temporal's sandbox catches non-deterministic calls in workflow code, at
    the price of re-importing the workflow module for every booking. Tests keep it on
    (with the replay test, every saga path runs sandboxed in CI); the production worker
    turns it off (setting `WORKFLOW_SANDBOX`)."""
    if sandboxed:
        cache_workflow_bytecode()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=BOOKING_WORKFLOWS,
        activities=list(
            build_activities(engine, task_queue, client, calendars=calendars, cards=cards)
        ),
        activity_executor=executor,
        workflow_runner=_runner(sandboxed),
        graceful_shutdown_timeout=graceful_shutdown,
    )


def create_delivery_worker(
    client: Client,
    engine: AsyncEngine,
    task_queue: str,
    executor: Executor,
    outbound: Outbound,
    calendars: CalendarAccess,
    *,
    sandboxed: bool = True,
    graceful_shutdown: timedelta = timedelta(),
) -> Worker:
    """Outward work (messages, webhook deliveries, calendar syncs and exports), on the
    bookings' task queue's delivery queue (`delivery_task_queue`), with slots and a
    thread pool of their own."""
    queue = delivery_task_queue(task_queue)
    return Worker(
        client,
        task_queue=queue,
        workflows=DELIVERY_WORKFLOWS,
        activities=list(build_delivery_activities(engine, outbound, calendars, client, queue)),
        activity_executor=executor,
        workflow_runner=_runner(sandboxed),
        graceful_shutdown_timeout=graceful_shutdown,
    )


def _runner(sandboxed: bool) -> SandboxedWorkflowRunner | UnsandboxedWorkflowRunner:
    return SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()


def observe(settings: Settings) -> None:
    """What operators see of this process (docs/operations.md): its log lines in
    LOG_FORMAT, spans when an exporter is configured, and its activities' counters on
    WORKER_METRICS_PORT."""
    configure_logging(settings.log_format, "worker")
    configure_tracing(settings, "worker")
    worker_metrics.serve(settings.worker_metrics_port)


def cache_workflow_bytecode() -> None:
    """The sandbox imports the workflow modules afresh for every new workflow. Without a
    bytecode cache (PYTHONDONTWRITEBYTECODE, usual in containers) each import compiles
    their source again, on the path of every claim (about 5 ms here). Cheap when fresh;
    a read-only tree (built with `compileall`) is left as it is."""
    compileall.compile_dir(WORKFLOWS_DIR, quiet=2)


@asynccontextmanager
async def dispatching(
    client: Client, engine: AsyncEngine, database_url: str, task_queue: str
) -> AsyncIterator[Dispatcher]:
    """The dispatchers as tasks beside the workers, stopped on leaving: the outbox's
    (dispatch.py), starting deliveries on `task_queue`'s delivery queue, and the
    waitlist's (waitlist_dispatch.py), asking waiting entries when time frees up."""
    dispatcher = Dispatcher(
        client,
        Sessions.on(engine, across_tenants("dispatcher")),
        libpq_url(database_url),
        delivery_task_queue(task_queue),
    )
    waitlist = WaitlistDispatcher(
        client, Sessions.on(engine, across_tenants("waitlist")), libpq_url(database_url)
    )
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(dispatcher.run(stop), name="dispatcher"),
        asyncio.create_task(waitlist.run(stop), name="waitlist-dispatcher"),
    ]
    try:
        yield dispatcher
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def connect_with_retry(settings: Settings, attempts: int = 60) -> Client:
    """Temporal may still be starting (as under `make run`): retry for about a minute."""
    for _ in range(attempts - 1):
        try:
            return await connect_temporal(settings)
        except RuntimeError:
            await asyncio.sleep(1)
    return await connect_temporal(settings)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    """Serve until `stop` is set, then drain: both workers stop polling at once and
    together give their running activities GRACEFUL_SHUTDOWN to finish."""
    client = await _unless_stopped(connect_with_retry(settings), stop)
    if client is None:
        return  # stopped while Temporal was still coming up
    engine = create_engine(settings, pool_size=5, pre_ping=False)
    try:
        queue, sandboxed = settings.temporal_task_queue, settings.workflow_sandbox
        graceful = GRACEFUL_SHUTDOWN
        with ThreadPoolExecutor(16) as pool, ThreadPoolExecutor(8) as delivery_pool:
            stripe_client = create_stripe(settings)
            cards = StripePayments(stripe_client) if stripe_client else None
            outbound = Outbound.from_settings(settings)
            async with (
                create_worker(
                    client,
                    engine,
                    queue,
                    pool,
                    cards=cards,
                    sandboxed=sandboxed,
                    graceful_shutdown=graceful,
                ) as bookings,
                create_delivery_worker(
                    client,
                    engine,
                    queue,
                    delivery_pool,
                    outbound,
                    CalendarAccess(settings),
                    sandboxed=sandboxed,
                    graceful_shutdown=graceful,
                ) as deliveries,
                dispatching(client, engine, settings.app_database_url, queue),
            ):
                log.info("worker polling task queue %s", settings.temporal_task_queue)
                await stop.wait()
                # Leaving the block would stop them one after the other, each with its
                # own grace: together, the drain takes GRACEFUL_SHUTDOWN at most.
                await asyncio.gather(bookings.shutdown(), deliveries.shutdown())
    finally:
        await engine.dispose()
    log.info("worker stopped")


async def _unless_stopped(connecting: Awaitable[Client], stop: asyncio.Event) -> Client | None:
    """`connecting`'s client, or None (and it cancelled) if `stop` is set first: a stop
    must not wait out a minute of retries against a Temporal that is not there."""
    task = asyncio.ensure_future(connecting)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if task.done():
        return task.result()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return None


def main() -> None:
    """`python -m worker`. The first SIGTERM or SIGINT starts the drain (see `run`) and
    the process exits 0 once it is done; a second one, or EXIT_DEADLINE passing, exits
    at once with code 1, leaving what still runs to Temporal's retries."""
    observe(get_settings())
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            log.warning("%s again: exiting without waiting for running activities", name)
            _exit_now()
        log.info(
            "%s: stopping; running activities get %.0fs to finish",
            name,
            GRACEFUL_SHUTDOWN.total_seconds(),
        )
        stop.set()
        # A thread, not the event loop: it fires even if the loop is stuck.
        deadline = threading.Timer(EXIT_DEADLINE, _past_deadline)
        deadline.daemon = True
        deadline.start()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        settings = get_settings()
        log.info("connecting to Temporal at %s", settings.temporal_address)
        await run(settings, stop)

    asyncio.run(serve())
    # Drained: leave without the interpreter's teardown, which can race the Temporal
    # SDK's own runtime threads and abort ("PyGILState_Release ... finalizing").
    _exit_now(0)


def _past_deadline() -> None:
    log.warning("still stopping after %.0fs; exiting without what still runs", EXIT_DEADLINE)
    _exit_now()


def _exit_now(code: int = 1) -> None:
    logging.shutdown()  # flush the lines above
    os._exit(code)


if __name__ == "__main__":
    main()
