"""WebhookDeliveryWorkflow: one event for one endpoint, tried until the endpoint answers
2xx, for up to 3 days (docs/webhooks.md#retries). One workflow per delivery, so a slow or
dead endpoint delays no other endpoint and no booking.

The waits are the workflow's own timers, not an activity retry policy: each attempt is
recorded with its answer, and `retry_now` (the API's manual retry) cuts a wait short.
Attempts are local activities, so one costs a single workflow task."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.webhooks import Attempted, WebhookActivities
    from contract import DeliveryInput

import contextlib

from workflows.steps import DB_STEP

RETRY_FOR = timedelta(days=3)
LONGEST_WAIT = timedelta(hours=1)
# An attempt is retried by Temporal only when it could not run (the database is down),
# for 10 minutes; an endpoint's own failure is an answer, recorded by the attempt.
ATTEMPT = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=1),
)


@workflow.defn(name="WebhookDelivery")
class WebhookDeliveryWorkflow:
    def __init__(self) -> None:
        self._now = False

    @workflow.run
    async def run(self, delivery: DeliveryInput) -> str:
        started, wait = workflow.now(), delivery.first_retry
        attempt = 0
        while True:
            self._now = False
            attempt += 1
            try:
                outcome: str = await workflow.execute_local_activity_method(
                    WebhookActivities.attempt,
                    delivery.delivery_id,
                    start_to_close_timeout=timedelta(seconds=60),
                    schedule_to_close_timeout=timedelta(minutes=10),
                    retry_policy=ATTEMPT,
                    summary=f"attempt {attempt}",
                )
            except FailureError:  # could not even be made (the database away): a failure
                outcome = Attempted.FAILED
            if outcome == Attempted.STOPPED:
                return outcome
            if outcome == Attempted.DELIVERED:
                if self._now:  # a manual retry came during the attempt: send it again
                    continue
                return outcome
            if workflow.now() - started >= RETRY_FOR and not self._now:
                await workflow.execute_local_activity_method(
                    WebhookActivities.give_up,
                    delivery.delivery_id,
                    start_to_close_timeout=timedelta(seconds=10),
                    retry_policy=DB_STEP,
                    summary="give up after 3 days",
                )
                return "failed"
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._now, timeout=wait, timeout_summary="wait to retry"
                )
            wait = min(wait * 2, LONGEST_WAIT)

    @workflow.signal(description="Try again now (a manual retry from the API).")
    def retry_now(self) -> None:
        self._now = True
