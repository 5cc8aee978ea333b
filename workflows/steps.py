"""The steps a booking's workflow runs, and how each is retried: database steps as local
activities, side effects whose lasting failure is recorded on the booking (never undoing
a paid one), notices, and what operators see in the Temporal UI (docs/lifecycle.md).

A plain helper class, as samples-python's `updatable_timer_lib` keeps its timer logic
out of the workflow: the workflow reads as the booking's life, the mechanics live here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.bookings import BookingStore, FinishInput, SideEffectOutcome
    from activities.calendar import CalendarActivities, CalendarCall
    from activities.notifications import NotificationActivities
    from contract import (
        BOOKING_STATUS,
        BookingRequest,
        BookingState,
        Notice,
    )


def _backoff(first: timedelta, longest: timedelta, attempts: int = 0) -> RetryPolicy:
    """Doubling waits from `first` up to `longest`; `attempts` 0 retries for ever."""
    return RetryPolicy(
        initial_interval=first,
        backoff_coefficient=2,
        maximum_interval=longest,
        maximum_attempts=attempts,
    )


# Short database steps: local activities, retried while the database may heal (an outage
# delays a paid booking, never undoes it). Data it refuses fails the step for good.
DB_STEP = _backoff(timedelta(milliseconds=100), timedelta(seconds=10))
# Calls to other services: retried with backoff; a step that still fails is recorded.
SIDE_EFFECT = _backoff(timedelta(seconds=1), timedelta(minutes=2), attempts=8)
# Undo steps: retried until they succeed.
COMPENSATION = _backoff(timedelta(seconds=1), timedelta(minutes=1))
PAYMENT_STEP = _backoff(timedelta(seconds=1), timedelta(seconds=30), attempts=10)


class BookingSteps:
    """One booking's steps, sharing its request and the state its updates answer with."""

    def __init__(self, request: BookingRequest, state: BookingState) -> None:
        self.request = request
        self.state = state

    async def db(
        self,
        method: Callable[..., Awaitable[Any]],
        arg: object,
        summary: str,
        retry: RetryPolicy = DB_STEP,
    ) -> Any:
        return await workflow.execute_local_activity_method(
            method,
            arg,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=retry,
            summary=summary,
        )

    async def finish(
        self,
        status: str,
        *,
        release: bool,
        actor: str,
        reason: str = "",
        retry: RetryPolicy = DB_STEP,
    ) -> None:
        """Move the booking to a final status. One already final in the database (a
        lapsed hold another claim released) keeps its status there; the workflow follows."""
        standing = await self.db(
            BookingStore.finish,
            FinishInput(self.request.booking_id, status, release, actor, reason),
            f"{status}: update booking",
            retry,
        )
        self.set_status(standing or status)

    async def side_effect(
        self,
        step: str,
        method: Callable[..., object],
        arg: object,
        summary: str,
        *,
        local: bool = False,
    ) -> None:
        """A step whose lasting failure is recorded, never undoing a paid booking."""
        run = workflow.execute_local_activity_method if local else workflow.execute_activity_method
        try:
            await run(
                method,
                arg,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=SIDE_EFFECT,
                summary=summary,
            )
            outcome = "done"
        except FailureError as err:  # an ActivityError, or a local activity's own error
            outcome = f"failed: {reason(err)}"
        await self.record_outcome(step, outcome)

    async def record_outcome(self, step: str, outcome: str) -> None:
        """The booking row records failures (and a later recovery), not every success.
        A record the database refuses is only logged: a side effect's outcome must never
        undo a booking, nor stop the undo steps that record theirs."""
        side_effects = self.state.side_effects
        recorded = step in side_effects and side_effects[step] != "done"
        side_effects[step] = outcome
        if outcome != "done" or recorded:
            key = f"side_effect:{step}:{self.state.version}"
            try:
                await self.db(
                    BookingStore.record_side_effect,
                    SideEffectOutcome(self.request.booking_id, step, outcome, key),
                    f"record {step} outcome",
                )
            except FailureError as err:
                workflow.logger.warning("%s outcome not recorded: %s", step, reason(err))

    async def notify(self, kind: str, key: str = "") -> None:
        await self.side_effect(
            f"notify:{kind}",
            NotificationActivities.notify,
            self.notice(kind, key),
            f"notify {kind}",
            local=True,
        )

    def notice(self, kind: str, key: str = "", status: str | None = None) -> Notice:
        state = self.state
        return Notice.of(self.request, state.slot, status or state.status, state.payment, kind, key)

    async def calendars_connected(self) -> bool:
        """Whether any of the booking's resources has an external calendar to write."""
        connected: bool = await self.db(
            CalendarActivities.connected,
            self.state.slot.resource_ids,
            "calendar: is any resource connected?",
        )
        return connected

    async def write_calendar(self, summary: str = "write calendar events") -> None:
        await self.side_effect("calendar", CalendarActivities.sync, self.calendar_call(), summary)

    async def delete_calendar(self) -> None:
        await self.side_effect(
            "calendar", CalendarActivities.delete, self.calendar_call(), "delete calendar events"
        )

    def calendar_call(self) -> CalendarCall:
        req = self.request
        return CalendarCall(req.booking_id, req.tenant_id, req.terms.name, self.state.slot)

    def set_status(self, status: str) -> None:
        self.state.status = status
        workflow.upsert_search_attributes([BOOKING_STATUS.value_set(status)])

    def details(self, now_doing: str) -> None:
        """The booking's current details in the Temporal UI: no personal data."""
        state, terms = self.state, self.request.terms
        lines = [
            f"**{state.status}** — {now_doing}",
            f"{terms.name}: {state.slot.start.isoformat()} → {state.slot.end.isoformat()}",
            f"resources: {', '.join(state.slot.resource_ids)}",
        ]
        if state.payment is not None:
            p = state.payment
            lines.append(
                f"payment: {p.status} {p.captured_amount}/{p.amount} {p.currency} "
                f"(refunded {p.refunded_amount})"
            )
        failed = {k: v for k, v in state.side_effects.items() if v != "done"}
        if failed:
            lines.append(f"failed side effects: {failed}")
        workflow.set_current_details("\n\n".join(lines))


def reason(err: BaseException) -> str:
    """What went wrong, in words: an activity error's cause, else the error itself. Made
    storable (no NUL, no lone surrogate): it goes into the booking's row and history, and
    another service's error text must not make that write fail."""
    cause = getattr(err, "cause", None) or err
    text = str(cause) or type(cause).__name__
    return text.replace("\x00", "").encode("utf-8", "replace").decode()
