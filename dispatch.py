"""The dispatcher: the relay from the database to delivery (docs/notifications.md).

Every message and webhook event is written in the transaction of the change it tells; a
trigger NOTIFYs `holdfast_dispatch` on each insert. The dispatcher, a task of each worker
process, wakes on that NOTIFY (or every few seconds, should one be missed), fans new
webhook events out to their endpoints, and starts one workflow per message and per
delivery, found by a deterministic id, so a start repeated after a crash is refused by
Temporal as a duplicate. Nothing is sent here: the booking's transaction and lock are
long gone by the time a message leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import timedelta

import psycopg
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from activities import metrics
from contract import DeliveryInput, MessageInput, delivery_workflow_id, notification_workflow_id
from db.dispatch import BATCH, fan_out, mark_dispatched, take_undispatched
from db.listening import heard, wait_or_stop
from db.sessions import Sessions
from workflows.notification import NotificationWorkflow
from workflows.webhook_delivery import WebhookDeliveryWorkflow

CHANNEL = "holdfast_dispatch"
POLL_SECONDS = 5.0
START_TIMEOUT = timedelta(seconds=5)  # a slow Temporal must not hold the batch's locks long

log = logging.getLogger("holdfast.dispatch")


class Dispatcher:
    def __init__(
        self, client: Client, sessions: Sessions, listen_url: str, task_queue: str
    ) -> None:
        self._client, self._sessions = client, sessions
        self._listen_url, self._task_queue = listen_url, task_queue

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: drain, then wait for a NOTIFY or the poll interval. A lost
        listening connection (the database restarting) is opened again; meanwhile the
        poll goes on."""
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._listen_url, autocommit=True
                ) as listener:
                    await listener.execute(f"LISTEN {CHANNEL}")
                    while not stop.is_set():
                        await self._drain_logged()
                        await heard(listener, stop, POLL_SECONDS)
            except psycopg.Error as err:
                log.warning("dispatcher lost its database connection: %s", type(err).__name__)
                await self._drain_logged()
                await wait_or_stop(stop, POLL_SECONDS)
            except Exception:  # never die quietly: the poll goes on
                log.exception("dispatcher failed; going on")
                await wait_or_stop(stop, POLL_SECONDS)

    async def drain(self) -> None:
        """Dispatch everything waiting, batch by batch. The rows stay locked while their
        workflows start, so a crash before the commit leaves them for the next drain
        (whose starts Temporal then refuses as duplicates, or makes)."""
        while True:
            async with self._sessions.transaction() as db:
                fanned = await fan_out(db)
                await db.commit()
            async with self._sessions.transaction() as db:
                work = await take_undispatched(db)
                if work:
                    await asyncio.gather(
                        *(self._start_message(i, c) for i, c in work.messages),
                        *(self._start_delivery(i) for i in work.deliveries),
                    )
                    await mark_dispatched(db, work)
                await db.commit()
            if fanned < BATCH and not work.full:
                return

    async def _drain_logged(self) -> None:
        try:
            await self.drain()
        except Exception:  # the next wake-up tries again; nothing is marked dispatched
            metrics.DISPATCH_FAILURES.inc()
            log.exception("dispatching failed; will retry")

    async def _start_message(self, notification_id: uuid.UUID, channel: str) -> None:
        await self._start(
            NotificationWorkflow.run,
            MessageInput(str(notification_id), channel),
            notification_workflow_id(str(notification_id)),
        )
        metrics.DISPATCHED.labels("message").inc()

    async def _start_delivery(self, delivery_id: uuid.UUID) -> None:
        await self._start(
            WebhookDeliveryWorkflow.run,
            DeliveryInput(str(delivery_id)),
            delivery_workflow_id(str(delivery_id)),
        )
        metrics.DISPATCHED.labels("webhook").inc()

    async def _start(self, run: object, arg: object, workflow_id: str) -> None:
        # Started before a crash, or by a manual retry: it runs once.
        with contextlib.suppress(WorkflowAlreadyStartedError):
            await self._client.start_workflow(
                run,  # type: ignore[arg-type]
                arg,
                id=workflow_id,
                task_queue=self._task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # The worker beside this dispatcher, on the same client, takes the first
                # workflow task with the start's answer: no poll, less work for the server.
                request_eager_start=True,
                rpc_timeout=START_TIMEOUT,
            )
