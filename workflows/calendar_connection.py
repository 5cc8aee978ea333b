"""CalendarConnectionWorkflow: one connected calendar for as long as it is connected
(docs/calendars.md#freshness). It syncs when the provider pushes a change, when asked
(`sync_now`, which answers once a sync has run), and on a fallback timer; each sync also
opens or renews the push channel. A burst of pushes collapses into one sync.

A refused credential is not the end: the connection shows `reauth_required` and the
workflow waits, polling slowly and on request, until a sync succeeds again. Deleting the
connection ends it, after it stops the channel. It continues-as-new when its history
grows long.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.calendar_sync import CalendarSyncActivities, SyncOutcome
    from contract import ConnectionInput, ConnectionStatus

# A provider that throttles or is down is retried with its own delay, or doubling waits
# up to 5 minutes; the connection keeps its last busy time meanwhile.
SYNC = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=5),
)


@workflow.defn(name="CalendarConnection")
class CalendarConnectionWorkflow:
    @workflow.init
    def __init__(self, connection: ConnectionInput) -> None:
        self._connection = connection
        self._due = True  # a sync is wanted (first, pushed, or asked for)
        self._asked = 0  # sync_now calls so far
        self._synced = 0  # sync_now calls a finished sync has answered
        self._stop = False
        self._last: SyncOutcome | None = None

    @workflow.run
    async def run(self, connection: ConnectionInput) -> None:
        while not self._stop:
            if self._due:
                await self._sync()
            # (Not while a sync_now waits: its answer needs this run's next sync.)
            if workflow.info().is_continue_as_new_suggested() and workflow.all_handlers_finished():
                workflow.continue_as_new(connection)
            wait = self._last.next_sync_seconds if self._last else 60
            try:
                await workflow.wait_condition(
                    lambda: self._due or self._stop,
                    timeout=timedelta(seconds=wait),
                    timeout_summary="fallback sync",
                )
            except TimeoutError:
                self._due = True
        await workflow.execute_activity_method(
            CalendarSyncActivities.disconnect,
            connection,
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=SYNC,
            summary="stop the push channel and remove the connection",
        )
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _sync(self) -> None:
        self._due, asked = False, self._asked
        outcome: SyncOutcome = await workflow.execute_activity_method(
            CalendarSyncActivities.sync,
            self._connection,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=SYNC,
            summary="sync busy time",
        )
        self._last, self._synced = outcome, asked
        self._stop = self._stop or outcome.gone
        workflow.set_current_details(
            f"**{outcome.status}**" + (f" — {outcome.error}" if outcome.error else "")
        )

    @workflow.signal(description="The provider pushed a change (or a lifecycle notice).")
    def pushed(self) -> None:
        self._due = True

    @workflow.signal(description="The connection was deleted: stop the channel and end.")
    def disconnect(self) -> None:
        self._stop = True

    @workflow.update(description="Sync now; answers with the status once a sync has run.")
    async def sync_now(self) -> str:
        self._asked += 1
        asked, self._due = self._asked, True
        await workflow.wait_condition(lambda: self._synced >= asked or self._stop)
        return self._last.status if self._last else ConnectionStatus.SYNCING
