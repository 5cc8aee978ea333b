"""The Temporal worker: hosts the workflows and activities on the `holdfast` task queue."""

from __future__ import annotations

import asyncio
import compileall
import logging
import signal
from collections.abc import AsyncIterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities import Outbound, build_activities, build_delivery_activities
from activities.calendar import CalendarRequests
from activities.calendar_access import CalendarAccess
from activities.payments import PaymentProvider
from activities.stripe_payments import StripePayments
from connections import connect_temporal, create_engine, create_stripe, libpq_url
from contract import delivery_task_queue
from db.sessions import Sessions
from db.tenancy import across_tenants
from dispatch import Dispatcher
from settings import Settings, get_settings
from workflows.booking import BookingWorkflow
from workflows.calendar_connection import CalendarConnectionWorkflow
from workflows.calendar_export import CalendarExportWorkflow
from workflows.notification import NotificationWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

DELIVERY_WORKFLOWS = [
    NotificationWorkflow,
    WebhookDeliveryWorkflow,
    CalendarConnectionWorkflow,
    CalendarExportWorkflow,
]
WORKFLOWS = [BookingWorkflow, *DELIVERY_WORKFLOWS]  # what the replay test replays

WORKFLOWS_DIR = Path(__file__).parent / "workflows"

log = logging.getLogger("holdfast.worker")


def create_worker(
    client: Client,
    engine: AsyncEngine,
    task_queue: str,
    executor: Executor,
    *,
    calendars: CalendarRequests | None = None,
    cards: PaymentProvider | None = None,
    sandboxed: bool = True,
) -> Worker:
    """Everything the saga needs, registered on one task queue (tests use this too).
    Sync activities (payment, calendar clients) run on `executor`, off the event loop.

    `sandboxed`: Temporal's sandbox catches non-deterministic calls in workflow code, at
    the price of re-importing the workflow module for every booking. Tests keep it on
    (with the replay test, every saga path runs sandboxed in CI); the production worker
    turns it off (setting `WORKFLOW_SANDBOX`)."""
    if sandboxed:
        cache_workflow_bytecode()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[BookingWorkflow],
        activities=list(build_activities(engine, task_queue, calendars=calendars, cards=cards)),
        activity_executor=executor,
        workflow_runner=_runner(sandboxed),
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
    )


def _runner(sandboxed: bool) -> SandboxedWorkflowRunner | UnsandboxedWorkflowRunner:
    return SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()


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
    """The dispatcher (dispatch.py) as a task beside the workers, starting deliveries on
    `task_queue`'s delivery queue; stopped on leaving."""
    dispatcher = Dispatcher(
        client,
        Sessions.on(engine, across_tenants("dispatcher")),
        libpq_url(database_url),
        delivery_task_queue(task_queue),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop), name="dispatcher")
    try:
        yield dispatcher
    finally:
        stop.set()
        await task


async def connect_with_retry(settings: Settings, attempts: int = 60) -> Client:
    """Temporal may still be starting (as under `make run`): retry for about a minute."""
    for _ in range(attempts - 1):
        try:
            return await connect_temporal(settings)
        except RuntimeError:
            await asyncio.sleep(1)
    return await connect_temporal(settings)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    client = await connect_with_retry(settings)
    engine = create_engine(settings, pool_size=5, pre_ping=False)
    try:
        queue, sandboxed = settings.temporal_task_queue, settings.workflow_sandbox
        with ThreadPoolExecutor(16) as pool, ThreadPoolExecutor(8) as delivery_pool:
            stripe_client = create_stripe(settings)
            cards = StripePayments(stripe_client) if stripe_client else None
            outbound = Outbound.from_settings(settings)
            async with (
                create_worker(client, engine, queue, pool, cards=cards, sandboxed=sandboxed),
                create_delivery_worker(
                    client,
                    engine,
                    queue,
                    delivery_pool,
                    outbound,
                    CalendarAccess(settings),
                    sandboxed=sandboxed,
                ),
                dispatching(client, engine, settings.app_database_url, queue),
            ):
                log.info("worker polling task queue %s", settings.temporal_task_queue)
                await stop.wait()
    finally:
        await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    stop = asyncio.Event()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(get_settings(), stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
