"""BookingWorkflow: one booking's whole life, as a saga (SPEC §4).

claim → (payment, until the hold expires) → confirm → side effects → reminders →
completed. Every step that changes the world registers its undo before it runs; on a
failure the undos run in reverse, each retried until it succeeds.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.bookings import (
        INVALID_STATE,
        SLOT_UNAVAILABLE,
        BookingStore,
        ClaimInput,
        ConfirmInput,
        FinishInput,
        MoveInput,
        PaymentRecord,
        SideEffectOutcome,
    )
    from activities.calendar import CalendarActivities, CalendarCall
    from activities.notifications import Notice, NotificationActivities
    from activities.payments import PAY_AT_VENUE, PaymentActivities, PaymentCall
    from workflows.cancellation import refund_amount
    from workflows.messages import (
        LIVE_STATUSES,
        ActorRequest,
        BookingRequest,
        BookingState,
        CancelRequest,
        Payment,
        PaymentEvent,
        RescheduleRequest,
    )

PAYMENT_FAILED = "PaymentFailed"

BOOKING_STATUS = SearchAttributeKey.for_keyword("BookingStatus")
TENANT_ID = SearchAttributeKey.for_keyword("TenantId")
SERVICE_CODE = SearchAttributeKey.for_keyword("ServiceCode")
BOOKING_START = SearchAttributeKey.for_datetime("BookingStart")

# Bookings started before this patch wrote notices with a task-queue activity, always ran
# the calendar steps, and confirmed before capturing. Newer ones write notices as a local
# activity (a short database step, like the claim) and skip calendar steps when no
# resource has a calendar, so a confirmation needs no work after its first workflow task;
# and they capture first, so a confirmed booking is always a paid one.
SAGA_V2 = "saga-v2"
# A refund refused for good used to fail the cancel that asked for it (the booking stayed
# confirmed); since this patch it is recorded for operators and the cancel goes on.
REFUND_REFUSAL_RECORDED = "refund-refusal-recorded"

# Short database steps: local activities, retried until the database answers (an outage
# delays a paid booking, never undoes it). The claim alone is bounded: a caller waits.
DB_STEP = RetryPolicy(
    initial_interval=timedelta(milliseconds=100),
    backoff_coefficient=2,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=0,
)
# Calls to other services: retried with backoff; a step that still fails is recorded.
SIDE_EFFECT = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=2),
    maximum_attempts=8,
)
# Undo steps: retried until they succeed.
COMPENSATION = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,
)
PAYMENT_STEP = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2,
    maximum_interval=timedelta(seconds=30),
    maximum_attempts=10,
)

Undo = Callable[[str], Awaitable[None]]


@workflow.defn(name="Booking")
class BookingWorkflow:
    @workflow.init
    def __init__(self, request: BookingRequest) -> None:
        self._req = request
        self._state = BookingState(
            booking_id=request.booking_id, status="claiming", slot=request.slot
        )
        self._claimed: bool | None = None
        # Set once the claim can be answered: after the claim, or for a priced service
        # after the payment is authorised (the answer carries its client secret).
        self._answered = False
        self._paid = False
        self._at_venue = False  # paid in person (mark-paid), not by card
        self._paid_by = "workflow"  # who settled the payment: the history's confirming actor
        self._payment_failure: str | None = None
        self._payment_events: set[str] = set()
        self._refunds_begun = 0
        self._lock = asyncio.Lock()
        self._undo: list[Undo] = []
        self._compensating = False
        self._v2 = workflow.patched(SAGA_V2)
        # Whether the booking's resources have calendars to write: learnt on confirmation
        # (and assumed on bookings started before SAGA_V2).
        self._calendar = not self._v2

    # ---- the saga -------------------------------------------------------------------

    @workflow.run
    async def run(self, request: BookingRequest) -> BookingState:
        self._details("claiming the slot")
        claimed = await self._claim()
        try:
            if claimed and self._state.status == "pending_payment":
                await self._collect_payment()
            self._answered = True
            if self._state.status == "confirmed":
                await self._announce_confirmed()
                await self._remind_until_done()
        except BaseException as err:
            if isinstance(err, GeneratorExit):  # the worker dropped this coroutine
                raise
            cancelled = isinstance(err, asyncio.CancelledError)
            await self._compensate(
                "cancelled" if cancelled else "failed",
                "the workflow was cancelled" if cancelled else _reason(err),
            )
            self._answered = True
            if cancelled:
                raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _claim(self) -> bool:
        req = self._req
        hold = None
        if req.terms.priced:
            hold = workflow.now() + timedelta(seconds=req.terms.hold_seconds)
        # A booking confirmed at once writes its confirmation notice with itself.
        notice = None
        if self._v2 and hold is None:
            notice = self._notice("confirmed", status="confirmed")
        claim = workflow.execute_local_activity_method(
            BookingStore.claim,
            ClaimInput(req, hold, workflow.now(), notice),
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_STEP,
            summary="claim: insert booking and allocations",
        )
        # Beside the claim rather than after it (the caller waits): whether any resource
        # has a calendar to write.
        connected = asyncio.ensure_future(self._calendars_connected()) if self._v2 else None
        # Registered before the claim: releasing a booking that never got in is a no-op.
        self._undo.append(self._release)
        try:
            await claim
        except FailureError as err:  # an ActivityError, or a local activity's own error
            self._state.error = _reason(err)
            self._claimed = False
            if _is(err, SLOT_UNAVAILABLE):
                self._set_status("rejected")
            else:  # the claim may have committed before its answer was lost: undo it
                await self._release("failed")
                if notice is not None:  # and told the customer it was confirmed
                    await self._notify("failed")
            self._details(f"not booked: {self._state.error}")
            return False
        finally:
            if connected is not None:
                self._calendar = await connected
        self._state.hold_expires_at = hold
        self._claimed = True
        self._set_status("pending_payment" if hold else "confirmed")
        return True

    async def _collect_payment(self) -> None:
        terms = self._req.terms
        assert terms.price_amount is not None and terms.currency is not None
        self._undo.append(self._void_payment)
        pending = Payment(
            provider="", status="", amount=terms.price_amount, currency=terms.currency
        )
        await self._payment_step(
            PaymentActivities.authorize, PaymentCall(self._req.booking_id, pending), "authorize"
        )
        self._answered = True
        if self._state.status != "pending_payment":  # cancelled while authorising
            await self._void_payment(self._state.status)
            return
        hold = self._state.hold_expires_at
        assert hold is not None
        self._details(f"waiting for payment until {hold.isoformat()}")
        try:
            await workflow.wait_condition(
                lambda: (
                    self._paid
                    or self._payment_failure is not None
                    or self._state.status != "pending_payment"
                ),
                timeout=max(hold - workflow.now(), timedelta(0)),
                timeout_summary="hold expires unpaid",
            )
        except TimeoutError:
            await self._expire()
            return
        if self._payment_failure is not None and not self._paid:
            # Undone by the caller's compensation: intent cancelled, slot released.
            raise ApplicationError(
                f"the payment failed: {self._payment_failure}", type=PAYMENT_FAILED
            )
        if self._paid:
            async with self._lock:
                if self._state.status == "pending_payment":
                    await self._confirm()

    async def _confirm(self) -> None:
        payment = self._state.payment
        assert payment is not None
        card = payment
        if self._at_venue and payment.provider != PAY_AT_VENUE:
            # Paid in person: the venue's payment takes the card's place; the card intent
            # is cancelled after the confirmation, so an outage there delays nothing.
            payment = Payment(PAY_AT_VENUE, "requires_payment", payment.amount, payment.currency)
            self._state.payment = payment
        capture = PaymentCall(self._req.booking_id, payment)
        if self._v2:  # a failed confirmation (hold lost) refunds in the compensation
            await self._payment_step(PaymentActivities.capture, capture, "capture")
        confirm = ConfirmInput(self._req.booking_id, self._paid_by)
        await self._db(BookingStore.confirm, confirm, "confirm booking")
        if not self._v2:
            await self._payment_step(PaymentActivities.capture, capture, "capture")
        self._set_status("confirmed")
        if card is not payment:
            await self._side_effect(
                "payment:card",
                PaymentActivities.cancel,
                PaymentCall(self._req.booking_id, card),
                "cancel the card payment (paid at the venue)",
            )

    async def _expire(self) -> None:
        async with self._lock:
            if self._state.status != "pending_payment":
                return
            await self._void_payment("expired")
            await self._finish(
                "expired",
                release=True,
                key="expired",
                actor="system",
                reason="the hold expired before payment",
            )
            await self._notify("expired")
            self._details("expired: the hold ran out unpaid")

    async def _announce_confirmed(self) -> None:
        version = self._state.version
        write = functools.partial(
            self._side_effect,
            "calendar",
            CalendarActivities.sync,
            self._calendar_call(),
            "write calendar events",
        )
        if not self._v2:  # as bookings started before SAGA_V2 do
            self._undo.append(self._remove_calendar)
            await asyncio.gather(write(), self._notify("confirmed"))
        else:
            if self._req.terms.priced:  # a free booking's claim wrote its confirmation
                await self._notify("confirmed")
            if not self._calendar:
                return
            self._undo.append(self._remove_calendar)
            await write()
        # The write may have been retried past a cancel or a reschedule: make the calendar
        # match the booking as it is now (event ids are stable, so this converges).
        if self._state.status not in LIVE_STATUSES:
            await self._side_effect(
                "calendar",
                CalendarActivities.delete,
                self._calendar_call(),
                "delete calendar events",
            )
        elif self._state.version != version:
            await self._side_effect(
                "calendar", CalendarActivities.sync, self._calendar_call(), "update calendar events"
            )

    async def _remind_until_done(self) -> None:
        """Durable timers: each reminder offset before the start, then completion at the
        end. A reschedule bumps the version, which re-arms the timers; a final status
        (cancel, no-show) ends the loop."""
        while self._state.status == "confirmed":
            version = self._state.version
            offset, due = self._next_reminder()
            what = f"reminder {offset} min before" if offset else "complete at the end"
            self._details(f"confirmed; next: {what} at {due.isoformat()}")
            wait = due - workflow.now()
            if wait > timedelta(0):
                try:
                    await workflow.wait_condition(
                        lambda v=version: (  # type: ignore[misc]
                            self._state.status != "confirmed" or self._state.version != v
                        ),
                        timeout=wait,
                        timeout_summary=what,
                    )
                    continue
                except TimeoutError:
                    pass
            async with self._lock:
                if self._state.status != "confirmed" or self._state.version != version:
                    continue
                if offset:
                    self._state.reminders_sent.append(offset)
                    await self._notify("reminder", key=f"{offset}:{version}")
                else:
                    await self._finish("completed", release=False, key="completed", actor="system")
                    await self._notify("completed")
                    self._details("completed")

    def _next_reminder(self) -> tuple[int | None, datetime]:
        """The earliest reminder still ahead, or the end. Reminders whose moment passed
        before the booking was made (or moved) are skipped, not sent late."""
        now, start = workflow.now(), self._state.slot.start
        ahead = [
            (start - timedelta(minutes=m), m)
            for m in self._req.terms.reminders_minutes_before
            if m not in self._state.reminders_sent and start - timedelta(minutes=m) > now
        ]
        if ahead:
            due, minutes = min(ahead)
            return minutes, due
        return None, self._state.slot.end

    async def _compensate(self, status: str, reason: str) -> None:
        """Run the registered undos in reverse. Only a booking still live is undone: a
        final one (cancelled, completed, ...) already released what it held."""
        self._state.error = reason
        async with self._lock:
            if self._state.status not in LIVE_STATUSES:
                return
            self._compensating = True
            self._details(f"{status}: {reason}; undoing")
            for undo in reversed(self._undo):
                try:
                    await undo(status)
                except FailureError as err:  # refused for good: recorded; the rest still runs
                    await self._record_outcome(
                        f"undo:{undo.__name__.strip('_')}", f"failed: {_reason(err)}"
                    )
            await self._notify(status)

    # ---- undo steps (idempotent, retried until they succeed) -------------------------

    async def _release(self, status: str) -> None:
        await self._finish(
            status,
            release=True,
            key=status,
            actor="system",
            reason=self._state.error or "",
            retry=COMPENSATION,
        )

    async def _void_payment(self, status: str) -> None:
        payment = self._state.payment
        if payment is None:
            return
        call = PaymentCall(self._req.booking_id, payment)
        if payment.captured_amount > payment.refunded_amount:
            await self._refund(payment.captured_amount - payment.refunded_amount, status)
        elif payment.status not in ("canceled", "refunded"):
            await self._payment_step(PaymentActivities.cancel, call, "cancel", retry=COMPENSATION)

    async def _refund(self, amount: int, why: str) -> None:
        """Each refund gets the next number for its idempotency key, taken before the call:
        a refused one never lends its key to a later refund of another amount. A refusal
        is recorded for operators; the cancel or undo that asked for it goes on."""
        payment = self._state.payment
        assert payment is not None
        self._refunds_begun += 1
        call = PaymentCall(self._req.booking_id, payment, amount, self._refunds_begun)
        try:
            await self._payment_step(PaymentActivities.refund, call, f"refund:{why}", COMPENSATION)
        except FailureError as err:  # refused for good (refunded already at Stripe, say)
            if not workflow.patched(REFUND_REFUSAL_RECORDED):
                raise
            await self._record_outcome("payment:refund", f"failed: {_reason(err)}")

    async def _remove_calendar(self, status: str) -> None:
        await workflow.execute_activity_method(
            CalendarActivities.delete,
            self._calendar_call(),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=COMPENSATION,
            summary="delete calendar events",
        )

    # ---- updates, signals, queries ---------------------------------------------------

    @workflow.update(
        description="Claim the slot (sent with the start): answers with the "
        "booking, or fails with SlotUnavailable. Repeats answer the same."
    )
    async def claim(self) -> BookingState:
        await workflow.wait_condition(lambda: self._answered)
        if not self._claimed:
            kind = SLOT_UNAVAILABLE if self._state.status == "rejected" else "ClaimFailed"
            raise ApplicationError(self._state.error or "not booked", type=kind, non_retryable=True)
        return self._state

    @workflow.update(
        description="Cancel: refund per the cancellation policy (or void an "
        "unpaid payment), release the resources, delete calendar events, notify."
    )
    async def cancel(self, request: CancelRequest) -> BookingState:
        async with self._lock:
            self._require_live("cancel")
            payment = self._state.payment
            if payment is not None and payment.captured_amount:
                due = refund_amount(
                    self._req.terms, payment.captured_amount, self._state.slot.start, workflow.now()
                )
                if due:
                    await self._refund(due, "cancel")
            elif payment is not None:
                await self._void_payment("cancelled")
            await self._finish(
                "cancelled",
                release=True,
                key="cancelled",
                actor=request.actor,
                reason=request.reason,
            )
            # Bounded and recorded: a calendar outage must not hold the booking's lock.
            if self._calendar:
                await self._side_effect(
                    "calendar",
                    CalendarActivities.delete,
                    self._calendar_call(),
                    "delete calendar events",
                )
            await self._notify("cancelled")
            self._details(f"cancelled by {request.actor}: {request.reason}")
            return self._state

    @cancel.validator
    def _validate_cancel(self, request: CancelRequest) -> None:
        self._require_live("cancel")

    @workflow.update(
        description="Reschedule: take the new slot and free the old one in one "
        "transaction (or fail with SlotUnavailable and change nothing); re-arm "
        "reminders, update calendar events, notify."
    )
    async def reschedule(self, request: RescheduleRequest) -> BookingState:
        async with self._lock:
            self._require_live("reschedule")
            version = self._state.version + 1
            await workflow.execute_local_activity_method(
                BookingStore.move,
                MoveInput(
                    self._req.booking_id,
                    request.slot,
                    request.slot.widened(self._req.terms),
                    version,
                    request.actor,
                    workflow.now(),
                ),
                start_to_close_timeout=timedelta(seconds=10),
                retry_policy=DB_STEP,
                summary="move: swap allocations",
            )
            self._state.slot, self._state.version = request.slot, version
            self._state.reminders_sent = []
            workflow.upsert_search_attributes([BOOKING_START.value_set(request.slot.start)])
            if self._state.status == "confirmed" and not self._calendar and self._v2:
                self._calendar = await self._calendars_connected()  # the new resources may
            if self._state.status == "confirmed" and self._calendar:
                await self._side_effect(
                    "calendar",
                    CalendarActivities.sync,
                    self._calendar_call(),
                    "update calendar events",
                )
            await self._notify("rescheduled", key=str(version))
            return self._state

    @reschedule.validator
    def _validate_reschedule(self, request: RescheduleRequest) -> None:
        self._require_live("reschedule")
        if request.slot.start <= workflow.now():
            raise ApplicationError("the new start is in the past", type=INVALID_STATE)

    @workflow.update(description="No-show: the customer did not come; frees the resources.")
    async def no_show(self, request: ActorRequest) -> BookingState:
        async with self._lock:
            self._validate_no_show(request)
            await self._finish("no_show", release=True, key="no_show", actor=request.actor)
            await self._notify("no_show")
            self._details(f"no-show, marked by {request.actor}")
            return self._state

    @no_show.validator
    def _validate_no_show(self, request: ActorRequest) -> None:
        if self._state.status != "confirmed":
            raise ApplicationError(
                f"a {self._state.status} booking cannot be a no-show", type=INVALID_STATE
            )
        if workflow.now() < self._state.slot.start:
            raise ApplicationError(
                "a booking can be a no-show only after it starts", type=INVALID_STATE
            )

    @workflow.update(
        description="Mark paid (pay at venue): the payment is settled; answers "
        "once the booking is confirmed."
    )
    async def mark_paid(self, request: ActorRequest) -> BookingState:
        self._validate_mark_paid(request)
        self._paid = self._at_venue = True
        self._paid_by = request.actor
        await workflow.wait_condition(lambda: self._state.status != "pending_payment")
        return self._state

    @mark_paid.validator
    def _validate_mark_paid(self, request: ActorRequest) -> None:
        if self._state.status != "pending_payment" or self._state.payment is None:
            raise ApplicationError(
                f"a {self._state.status} booking awaits no payment", type=INVALID_STATE
            )
        if self._paid or self._payment_failure is not None or self._compensating:
            raise ApplicationError("the card payment is already being settled", type=INVALID_STATE)

    @workflow.signal(
        description="A Stripe webhook event for this booking's payment: authorised → "
        "confirm and capture; failed → undo the booking. Repeats have no effect."
    )
    def payment_event(self, event: PaymentEvent) -> None:
        if event.event_id in self._payment_events:
            return
        self._payment_events.add(event.event_id)
        payment = self._state.payment
        if payment is None or payment.intent_id != event.intent_id:
            return
        if self._state.status != "pending_payment" or self._paid:
            return
        if event.kind == "authorized":
            self._paid, self._paid_by = True, "stripe"
        elif event.kind == "failed" and self._req.terms.retry_declined_payment:
            self._details(f"card declined ({event.message}); the customer may try another")
        elif event.kind == "failed":
            self._payment_failure = event.message or "declined"
        elif event.kind == "canceled":  # in Stripe's dashboard, say: it can't be paid now
            self._state.payment = replace(payment, status="canceled")
            self._payment_failure = "the payment was cancelled at Stripe"

    @workflow.query(description="The booking as this workflow sees it.")
    def state(self) -> BookingState:
        return self._state

    # ---- helpers ---------------------------------------------------------------------

    def _require_live(self, action: str) -> None:
        if self._compensating:
            raise ApplicationError(
                f"the booking is being undone; cannot {action}", type=INVALID_STATE
            )
        if self._state.status not in LIVE_STATUSES:
            raise ApplicationError(
                f"a {self._state.status} booking cannot {action}", type=INVALID_STATE
            )

    def _set_status(self, status: str) -> None:
        self._state.status = status
        workflow.upsert_search_attributes([BOOKING_STATUS.value_set(status)])

    def _details(self, now_doing: str) -> None:
        slot, payment = self._state.slot, self._state.payment
        lines = [
            f"**{self._state.status}** — {now_doing}",
            f"{self._req.terms.name}: {slot.start.isoformat()} → {slot.end.isoformat()}",
            f"resources: {', '.join(slot.resource_ids)}",
        ]
        if payment is not None:
            lines.append(
                f"payment: {payment.status} {payment.captured_amount}/"
                f"{payment.amount} {payment.currency} "
                f"(refunded {payment.refunded_amount})"
            )
        failed = {k: v for k, v in self._state.side_effects.items() if v != "done"}
        if failed:
            lines.append(f"failed side effects: {failed}")
        workflow.set_current_details("\n\n".join(lines))

    async def _db(
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

    async def _finish(
        self,
        status: str,
        *,
        release: bool,
        key: str,
        actor: str,
        reason: str = "",
        retry: RetryPolicy = DB_STEP,
    ) -> None:
        standing = await self._db(
            BookingStore.finish,
            FinishInput(self._req.booking_id, status, release, key, actor, reason),
            f"{status}: update booking",
            retry,
        )
        # A booking already final in the database (a lapsed hold another claim released)
        # keeps its status there; the workflow follows it.
        self._set_status(standing or status)

    async def _payment_step(
        self,
        method: Callable[..., Payment],
        call: PaymentCall,
        key: str,
        retry: RetryPolicy = PAYMENT_STEP,
    ) -> None:
        self._state.payment = await workflow.execute_activity_method(
            method,
            call,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=retry,
            summary=f"payment: {key}",
        )
        await self._db(
            BookingStore.save_payment,
            PaymentRecord(self._req.booking_id, self._state.payment, f"payment:{key}", "workflow"),
            "record payment",
            retry,
        )

    async def _side_effect(
        self,
        step: str,
        method: Callable[..., object],
        arg: object,
        summary: str,
        *,
        local: bool = False,
    ) -> None:
        """A step whose permanent failure is recorded, never undoing a paid booking."""
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
            outcome = f"failed: {_reason(err)}"
        await self._record_outcome(step, outcome)

    async def _record_outcome(self, step: str, outcome: str) -> None:
        """The booking row records failures (and a later recovery), not every success."""
        recorded = step in self._state.side_effects and self._state.side_effects[step] != "done"
        self._state.side_effects[step] = outcome
        if outcome != "done" or recorded:
            await self._db(
                BookingStore.record_side_effect,
                SideEffectOutcome(
                    self._req.booking_id, step, outcome, f"side_effect:{step}:{self._state.version}"
                ),
                f"record {step} outcome",
            )

    async def _notify(self, kind: str, key: str = "") -> None:
        await self._side_effect(
            f"notify:{kind}",
            NotificationActivities.notify,
            self._notice(kind, key),
            f"notify {kind}",
            local=self._v2,
        )

    def _notice(self, kind: str, key: str = "", status: str | None = None) -> Notice:
        req, slot = self._req, self._state.slot
        booking = {
            "id": req.booking_id,
            "status": status or self._state.status,
            "service": req.terms.code,
            "start": slot.start.isoformat(),
            "end": slot.end.isoformat(),
            "resource_ids": slot.resource_ids,
            "customer": req.customer,
            "metadata": req.metadata,
            "payment": _public(self._state.payment),
        }
        return Notice(req.tenant_id, req.booking_id, kind, key or kind, booking)

    async def _calendars_connected(self) -> bool:
        connected: bool = await workflow.execute_local_activity_method(
            CalendarActivities.connected,
            self._state.slot.resource_ids,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_STEP,
            summary="calendar: is any resource connected?",
        )
        return connected

    def _calendar_call(self) -> CalendarCall:
        return CalendarCall(
            self._req.booking_id, self._req.tenant_id, self._req.terms.name, self._state.slot
        )


def _public(payment: Payment | None) -> dict[str, Any] | None:
    """The payment as notices carry it (to email and webhooks): without the client
    secret, which only the customer's own checkout may hold."""
    if payment is None:
        return None
    return {k: v for k, v in asdict(payment).items() if k != "client_secret"}


def _is(err: BaseException, kind: str) -> bool:
    cause = err.cause if isinstance(err, ActivityError) else err
    return isinstance(cause, ApplicationError) and cause.type == kind


def _reason(err: BaseException) -> str:
    cause = err.cause if isinstance(err, ActivityError) and err.cause else err
    return str(cause) or type(cause).__name__
