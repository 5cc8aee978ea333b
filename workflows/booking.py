"""BookingWorkflow: one booking's whole life, as a saga (docs/lifecycle.md).

claim → (payment, until the hold expires) → confirm → side effects → reminders →
completed. Each step that changes the world registers its undo before it runs; a failure
that ends the booking runs the undos in reverse. The steps' mechanics live in
`steps.py`, the payment's in `payment.py`, the undo stack in `compensation.py`.
"""

from __future__ import annotations

import asyncio
from contextlib import suppress
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ApplicationError, FailureError, is_cancelled_exception

with workflow.unsafe.imports_passed_through():
    from activities.bookings import BookingStore, ClaimInput, ConfirmInput, HoldInput, MoveInput
    from activities.calendar import CalendarActivities
    from contract import (
        BOOKING_START,
        BOOKING_WORKFLOW_TYPE,
        LIVE_STATUSES,
        PAYMENT_EVENT_SIGNAL,
        ActorRequest,
        BookingRequest,
        BookingState,
        BookingStatus,
        CancelRequest,
        ClaimPhase,
        Failure,
        PaymentEvent,
        RescheduleRequest,
        SeriesShare,
        failure,
        is_failure,
    )

# The workflow's own helpers are imported inside the sandbox, so it checks them too.
from workflows.compensation import Compensations
from workflows.payment import BookingPayment
from workflows.reminders import next_reminder
from workflows.steps import COMPENSATION, DB_STEP, BookingSteps, reason

PENDING, CONFIRMED = BookingStatus.PENDING_PAYMENT, BookingStatus.CONFIRMED
# 0.5.0: a booking offered from the waitlist waits to be accepted first (docs/waitlist.md).
WAITLIST_OFFER = "waitlist-offer"
# 0.5.0: an occurrence of a series paid once waits for its share (docs/series.md#payment).
SERIES_PAYMENT = "series-payment"
# How long past its hold an occurrence waits for its share: the series may have been paid
# just before the hold ran out, and capture first. (The series says when it gives up.)
SHARE_GRACE = timedelta(minutes=1)


@workflow.defn(name=BOOKING_WORKFLOW_TYPE)
class BookingWorkflow:
    @workflow.init
    def __init__(self, request: BookingRequest) -> None:
        self._req = request
        self._state = BookingState(request.booking_id, ClaimPhase.CLAIMING, request.slot)
        self._steps = BookingSteps(request, self._state)
        self._payment = BookingPayment(self._steps)
        self._undo = Compensations()
        self._lock = asyncio.Lock()
        # Why the claim failed (the claim update answers with it), None if it did not.
        self._refusal: Failure | None = None
        # Set once the claim can be answered: after the claim, or for a priced service
        # after the payment is authorised (the answer carries its client secret).
        self._answered = False
        self._calendar = False  # whether any resource has a calendar to write
        self._accepted_by: str | None = None  # who accepted a waitlist offer
        self._offer_open = request.offer is not None  # until accepted, lapsed or cancelled
        self._share: SeriesShare | None = None  # from its series paid once
        self._share_open = request.paid_by_series  # while the run may still take a share
        self._share_done = False  # the share was taken, or given back

    @workflow.run
    async def run(self, request: BookingRequest) -> BookingState:
        self._steps.details("claiming the slot")
        claimed = await self._claim()
        if self._share_open and not claimed:
            await self._close_share()
        try:
            if claimed and self._req.offer is not None and workflow.patched(WAITLIST_OFFER):
                await self._await_acceptance()
            if self._share_open and workflow.patched(SERIES_PAYMENT):
                await self._await_series_payment()
            elif claimed and self._state.status == PENDING:
                await self._collect_payment()
            self._answered = True
            if self._state.status == CONFIRMED:
                await self._announce_confirmed()
                await self._remind_until_done()
        # Only failures that end the booking are undone. Any other exception is a bug: it
        # fails the workflow task, and Temporal retries it once a fixed worker runs.
        except (FailureError, asyncio.CancelledError) as err:
            # (Cancelled while a step ran, the step's error says so.)
            cancelled = is_cancelled_exception(err)
            why = "the workflow was cancelled" if cancelled else reason(err)
            await self._compensate(
                BookingStatus.CANCELLED if cancelled else BookingStatus.FAILED, why
            )
            self._answered = True
            if cancelled:
                raise
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _claim(self) -> bool:
        req, terms = self._req, self._req.terms
        hold = workflow.now() + timedelta(seconds=terms.hold_seconds) if terms.priced else None
        if req.offer is not None:  # the offer's claim, made with the entry (db/waitlist.py)
            hold = req.offer.until
        elif req.held_until is not None:  # claimed by its series, held until then
            hold = req.held_until
        # A booking confirmed at once writes its confirmation notice with itself.
        notice = None if hold else self._steps.notice("confirmed", status=CONFIRMED)
        claim = workflow.execute_local_activity_method(
            BookingStore.claim,
            ClaimInput(req, hold, workflow.now(), notice),
            start_to_close_timeout=timedelta(seconds=10),
            schedule_to_close_timeout=timedelta(seconds=30),
            retry_policy=DB_STEP,
            summary="claim: insert booking and allocations",
        )
        # Beside the claim, not after it (the caller waits): is there a calendar to write?
        connected = asyncio.ensure_future(self._steps.calendars_connected())
        # Registered before the claim: releasing a booking that never got in is a no-op.
        self._undo.add("release", self._release)
        try:
            await claim
        except FailureError as err:  # an ActivityError, or a local activity's own error
            await self._not_booked(err, told_confirmed=notice is not None)
            return False
        finally:
            self._calendar = await connected
        self._state.hold_expires_at = hold
        self._steps.set_status(PENDING if hold else CONFIRMED)
        return True

    async def _not_booked(self, err: FailureError, *, told_confirmed: bool) -> None:
        self._state.error = reason(err)
        # What the claim answers: the slot was taken, the data was refused (a repeat
        # cannot succeed either), or it failed otherwise.
        told = (Failure.SLOT_UNAVAILABLE, Failure.DATA_REFUSED)
        self._refusal = next((k for k in told if is_failure(err, k)), Failure.CLAIM_FAILED)
        if self._refusal == Failure.SLOT_UNAVAILABLE:
            self._steps.set_status(ClaimPhase.REJECTED)
        else:  # the claim may have committed before its answer was lost: undo it
            await self._release("failed")
            if told_confirmed:  # and told the customer it was confirmed
                await self._steps.notify("failed")
        self._steps.details(f"not booked: {self._state.error}")

    async def _await_acceptance(self) -> None:
        """A waitlist offer: held until accepted, declined (cancelled) or lapsed. Accepted,
        a free booking is confirmed; a priced one holds on for its payment, as usual."""
        until = self._state.hold_expires_at
        assert until is not None
        self._steps.details(f"offered from the waitlist until {until.isoformat()}")
        try:
            await workflow.wait_condition(
                lambda: self._accepted_by is not None or self._state.status != PENDING,
                timeout=max(until - workflow.now(), timedelta(0)),
                timeout_summary="the waitlist offer lapses",
            )
        except TimeoutError:
            self._offer_open = False  # an accept arriving now is refused
            await self._expire()
            return
        async with self._lock:
            if self._accepted_by is None or self._state.status != PENDING:
                return  # declined (cancelled) meanwhile
            if self._req.terms.priced:
                hold = workflow.now() + timedelta(seconds=self._req.terms.hold_seconds)
                held = HoldInput(self._req.booking_id, hold)
                await self._steps.db(BookingStore.extend_hold, held, "hold for payment")
                self._state.hold_expires_at = hold
                return
            await self._confirm_as(self._accepted_by)
            await self._steps.notify("confirmed")

    async def _await_series_payment(self) -> None:
        """Paid with its series' one payment: the series sends this occurrence its share
        once the payment is captured, or says it failed or lapsed. Unpaid when the hold
        (and its grace) runs out, it expires as any booking does."""
        self._undo.add("void_payment", self._payment.void)
        self._answered = True
        until = self._state.hold_expires_at
        assert until is not None
        self._steps.details(f"waiting for the series' payment until {until.isoformat()}")
        try:
            with suppress(TimeoutError):  # unpaid: it expires
                await workflow.wait_condition(
                    lambda: self._share is not None or self._state.status != PENDING,
                    timeout=max(until + SHARE_GRACE - workflow.now(), timedelta(0)),
                    timeout_summary="hold expires unpaid",
                )
            await self._settle_share()
        finally:  # however it ended (a cancelled workflow too)
            await self._close_share()

    async def _settle_share(self) -> None:
        share = self._share
        async with self._lock:
            if self._state.status == PENDING and share is not None and share.payment:
                self._share_done = True
                await self._payment.take_share(share.payment, share.paid_by)
                await self._confirm_as(share.paid_by)
                return
        if self._state.status == PENDING and share is not None and share.failure:
            raise failure(Failure.PAYMENT_FAILED, f"the series' payment failed: {share.failure}")
        await self._expire()

    async def _close_share(self) -> None:
        """From now on no share can be taken: one that came, or comes, goes back."""
        self._share_open = False
        share = self._share
        if share is None or share.payment is None or self._share_done:
            return
        self._share_done = True
        async with self._lock:
            await self._payment.take_share(share.payment, "system")
            await self._payment.refund(share.payment.captured_amount, "unused")

    async def _collect_payment(self) -> None:
        self._undo.add("void_payment", self._payment.void)
        await self._payment.authorize()
        self._answered = True
        if self._state.status != PENDING:  # cancelled while authorising
            await self._payment.void(self._state.status)
            return
        hold = self._state.hold_expires_at
        assert hold is not None
        self._steps.details(f"waiting for payment until {hold.isoformat()}")
        if not await self._payment.wait(hold, lambda: self._state.status == PENDING):
            await self._expire()
            return
        if self._payment.paid:
            async with self._lock:
                if self._state.status == PENDING:
                    await self._confirm()

    async def _confirm(self) -> None:
        """Captured first, so a confirmed booking is a paid one; a confirmation that
        fails (the hold was lost) refunds in the compensation."""
        card = await self._payment.capture()
        await self._confirm_as(self._payment.paid_by)
        if card is not None:
            await self._payment.cancel_card(card)

    async def _confirm_as(self, actor: str) -> None:
        confirm = ConfirmInput(self._req.booking_id, actor)
        await self._steps.db(BookingStore.confirm, confirm, "confirm booking")
        self._steps.set_status(CONFIRMED)

    async def _expire(self) -> None:
        async with self._lock:
            if self._state.status != PENDING:
                return
            await self._payment.void(BookingStatus.EXPIRED)
            await self._steps.finish(
                BookingStatus.EXPIRED,
                release=True,
                actor="system",
                reason="the hold expired before payment",
            )
            await self._steps.notify("expired")
            self._steps.details("expired: the hold ran out unpaid")

    async def _announce_confirmed(self) -> None:
        version = self._state.version
        if self._req.terms.priced:  # a free booking's claim wrote its confirmation
            await self._steps.notify("confirmed")
        if not self._calendar:
            return
        self._undo.add("remove_calendar", self._remove_calendar)
        await self._steps.write_calendar()
        # The write may have been retried past a cancel or a reschedule: make the calendar
        # match the booking as it is now (event ids are stable, so this converges).
        if self._state.status not in LIVE_STATUSES:
            await self._steps.delete_calendar()
        elif self._state.version != version:
            await self._steps.write_calendar("update calendar events")

    async def _remind_until_done(self) -> None:
        """Durable timers: each reminder before the start, then completion at the end. A
        reschedule bumps the version, which re-arms them; a final status ends the loop."""
        while self._state.status == CONFIRMED:
            version = self._state.version
            offset, due = next_reminder(self._req.terms, self._state, workflow.now())
            what = f"reminder {offset} min before" if offset else "complete at the end"
            self._steps.details(f"confirmed; next: {what} at {due.isoformat()}")
            if due > workflow.now():
                try:
                    await workflow.wait_condition(
                        lambda v=version: (  # type: ignore[misc]
                            self._state.status != CONFIRMED or self._state.version != v
                        ),
                        timeout=due - workflow.now(),
                        timeout_summary=what,
                    )
                    continue
                except TimeoutError:
                    pass
            async with self._lock:
                if self._state.status == CONFIRMED and self._state.version == version:
                    await self._remind_or_complete(offset, version)

    async def _remind_or_complete(self, offset: int | None, version: int) -> None:
        if offset:
            self._state.reminders_sent.append(offset)
            await self._steps.notify("reminder", key=f"{offset}:{version}")
            return
        await self._steps.finish(BookingStatus.COMPLETED, release=False, actor="system")
        await self._steps.notify("completed")
        self._steps.details("completed")

    async def _compensate(self, status: str, why: str) -> None:
        """Only a booking still live is undone: a final one already released its hold."""
        self._state.error = why
        async with self._lock:
            if self._state.status not in LIVE_STATUSES:
                return
            self._steps.details(f"{status}: {why}; undoing")
            await self._undo.run(status, self._undo_refused)
            await self._steps.notify(status)

    async def _undo_refused(self, name: str, err: FailureError) -> None:
        await self._steps.record_outcome(f"undo:{name}", f"failed: {reason(err)}")

    # ---- undo steps (idempotent, retried until they succeed) -------------------------

    async def _release(self, status: str) -> None:
        await self._steps.finish(
            status,
            release=True,
            actor="system",
            reason=self._state.error or "",
            retry=COMPENSATION,
        )

    async def _remove_calendar(self, status: str) -> None:
        await workflow.execute_activity_method(
            CalendarActivities.delete,
            self._steps.calendar_call(),
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
        # A waitlist offer is answered once claimed: it then waits to be accepted.
        await workflow.wait_condition(
            lambda: (
                self._answered
                or (self._req.offer is not None and self._state.status != ClaimPhase.CLAIMING)
            )
        )
        if self._refusal is not None:
            raise failure(self._refusal, self._state.error or "not booked")
        return self._state

    @workflow.update(
        description="Accept a waitlist offer: a free booking is confirmed, a priced one "
        "holds for its payment (the answer carries its client secret)."
    )
    async def accept(self, request: ActorRequest) -> BookingState:
        self._accepted_by = request.actor
        await workflow.wait_condition(lambda: self._answered)
        return self._state

    @accept.validator
    def _validate_accept(self, request: ActorRequest) -> None:
        if not self._offer_open or self._accepted_by is not None:
            raise _invalid("this booking is not an open waitlist offer")
        self._require_live("accept")

    @workflow.update(
        description="Cancel: refund per the cancellation policy (or void an "
        "unpaid payment), release the resources, delete calendar events, notify."
    )
    async def cancel(self, request: CancelRequest) -> BookingState:
        self._offer_open = False  # a waitlist offer cancelled (declined) takes no accept
        async with self._lock:
            self._require_live("cancel")
            await self._payment.refund_for_cancel()
            await self._steps.finish(
                BookingStatus.CANCELLED, release=True, actor=request.actor, reason=request.reason
            )
            # Bounded and recorded: a calendar outage must not hold the booking's lock.
            if self._calendar:
                await self._steps.delete_calendar()
            await self._steps.notify("cancelled")
            self._steps.details(f"cancelled by {request.actor}: {request.reason}")
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
            widened = request.slot.widened(self._req.terms)
            move = MoveInput(
                self._req.booking_id,
                request.slot,
                widened,
                version,
                request.actor,
                workflow.now(),
                seats=self._req.terms.seats_per_booking,
            )
            await self._steps.db(BookingStore.move, move, "move: swap allocations")
            self._state.slot, self._state.version = request.slot, version
            self._state.reminders_sent = []
            workflow.upsert_search_attributes([BOOKING_START.value_set(request.slot.start)])
            if self._state.status == CONFIRMED:
                self._calendar = self._calendar or await self._steps.calendars_connected()
                if self._calendar:
                    await self._steps.write_calendar("update calendar events")
            await self._steps.notify("rescheduled", key=str(version))
            return self._state

    @reschedule.validator
    def _validate_reschedule(self, request: RescheduleRequest) -> None:
        self._require_live("reschedule")
        if request.slot.start <= workflow.now():
            raise _invalid("the new start is in the past")

    @workflow.update(
        description="No-show: the customer did not come; frees the resources and "
        "takes the booking off its calendars."
    )
    async def no_show(self, request: ActorRequest) -> BookingState:
        async with self._lock:
            self._validate_no_show(request)
            await self._steps.finish(BookingStatus.NO_SHOW, release=True, actor=request.actor)
            # From 0.3.0 a no-show also leaves the calendars (its time is free again).
            if self._calendar and workflow.patched("no-show-leaves-calendars"):
                await self._steps.delete_calendar()
            await self._steps.notify("no_show")
            self._steps.details(f"no-show, marked by {request.actor}")
            return self._state

    @no_show.validator
    def _validate_no_show(self, request: ActorRequest) -> None:
        if self._state.status != CONFIRMED:
            raise _invalid(f"a {self._state.status} booking cannot be a no-show")
        if workflow.now() < self._state.slot.start:
            raise _invalid("a booking can be a no-show only after it starts")

    @workflow.update(
        description="Mark paid (pay at venue): the payment is settled; answers "
        "once the booking is confirmed."
    )
    async def mark_paid(self, request: ActorRequest) -> BookingState:
        self._validate_mark_paid(request)
        self._payment.settle_at_venue(request.actor)
        await workflow.wait_condition(lambda: self._state.status != PENDING)
        return self._state

    @mark_paid.validator
    def _validate_mark_paid(self, request: ActorRequest) -> None:
        if self._req.paid_by_series and self._state.payment is None:
            raise _invalid("this occurrence is paid with its series: mark the series paid")
        if self._state.status != PENDING or self._state.payment is None:
            raise _invalid(f"a {self._state.status} booking awaits no payment")
        if self._payment.settling or self._undo.running:
            raise _invalid("the card payment is already being settled")

    @workflow.signal(
        name=PAYMENT_EVENT_SIGNAL,
        description="A Stripe webhook event for this booking's payment: authorised → "
        "confirm and capture; failed → undo the booking. Repeats have no effect.",
    )
    def payment_event(self, event: PaymentEvent) -> None:
        self._payment.on_event(event, pending=self._state.status == PENDING)

    @workflow.signal(
        description="Its series' one payment (docs/series.md#payment): this occurrence's "
        "share once captured, or that the payment failed or lapsed. One that has ended "
        "refunds its share."
    )
    async def series_paid(self, share: SeriesShare) -> None:
        if self._share is not None:
            return
        self._share = share
        if not self._share_open:  # the run no longer waits for it
            await self._close_share()

    @workflow.query(description="The booking as this workflow sees it.")
    def state(self) -> BookingState:
        return self._state

    def _require_live(self, action: str) -> None:
        if self._undo.running:
            raise _invalid(f"the booking is being undone; cannot {action}")
        if self._state.status not in LIVE_STATUSES:
            raise _invalid(f"a {self._state.status} booking cannot {action}")


def _invalid(message: str) -> ApplicationError:
    return failure(Failure.INVALID_STATE, message)
