"""CalendarExportWorkflow: keeps one booking's events on its calendars matching the
booking (docs/calendars.md#export). The saga signals it on each change that shows on a
calendar (confirmed, moved, cancelled, undone, no-show) and goes on: the export retries
outside the booking's lock, for as long as a provider needs, while the Temporal UI shows
it pending.

Changes that arrive while an export runs collapse into one more run, which reads the
booking as it is then; `remove` sticks, as an undone booking never shows again."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.calendar_export import CalendarExportActivities
    from contract import ExportRequest

# Until the providers take it: throttling and outages are retried with their own delay
# (or doubling waits up to 10 minutes), for a week at most.
EXPORT = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=10),
)


@workflow.defn(name="CalendarExport")
class CalendarExportWorkflow:
    def __init__(self) -> None:
        self._asked = 0
        self._remove = False

    @workflow.run
    async def run(self, booking_id: str) -> int:
        done, changed = 0, 0
        while done < self._asked:
            asked = self._asked
            changed += await workflow.execute_activity_method(
                CalendarExportActivities.export,
                ExportRequest(booking_id, self._remove),
                start_to_close_timeout=timedelta(minutes=2),
                schedule_to_close_timeout=timedelta(days=7),
                retry_policy=EXPORT,
                summary="remove the events" if self._remove else "write the events",
            )
            done = asked
        return changed

    @workflow.signal(description="The booking changed: make its events match it again.")
    def changed(self, request: ExportRequest) -> None:
        self._asked += 1
        self._remove = self._remove or request.remove
