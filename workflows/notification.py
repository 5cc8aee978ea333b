"""NotificationWorkflow: one email or text message, sent until its provider accepts it
(docs/notifications.md#delivery). Its own workflow, started by the dispatcher, so a slow
mail server never holds a booking's lock or its caller.

Sending is one step, which records the acceptance itself; if it could not, a second
step writes it, retried until it is written, so a lost record never sends the message
twice. Both are local activities: a message costs one workflow task, not a round trip
through the task queue per step."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.messages import MESSAGE_REFUSED, MessageActivities, MessageOutcome, Sent
    from contract import Channel, MessageInput

from workflows.steps import DB_STEP, reason

# A mail server or SMS provider that is down is waited for, ever more patiently, for a
# day; after that the message would arrive too late to help.
SEND = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=[MESSAGE_REFUSED],
)
GIVE_UP_AFTER = timedelta(days=1)


@workflow.defn(name="Notification")
class NotificationWorkflow:
    @workflow.run
    async def run(self, message: MessageInput) -> str:
        send = (
            MessageActivities.send_email
            if message.channel == Channel.EMAIL
            else MessageActivities.send_sms
        )
        try:
            sent: Sent | None = await workflow.execute_local_activity_method(
                send,
                message,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=GIVE_UP_AFTER,
                retry_policy=SEND,
                summary=f"send {message.channel}",
            )
        except FailureError as err:  # a local activity's own error, or its timeout
            await self._record(MessageOutcome(message.notification_id, None, reason(err)))
            return "failed"
        if sent is None:  # sent or given up before (a repeated start)
            return "done"
        if not sent.recorded:  # the send could not write it: written here, until it is
            await self._record(MessageOutcome(message.notification_id, sent.provider_id, None))
        return "sent"

    async def _record(self, outcome: MessageOutcome) -> None:
        await workflow.execute_local_activity_method(
            MessageActivities.record,
            outcome,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_STEP,
            summary="record: sent" if outcome.provider_id else "record: failed",
        )
