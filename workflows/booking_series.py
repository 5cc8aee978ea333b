"""BookingSeriesWorkflow: a recurring booking (docs/series.md), the parent of one booking
workflow per occurrence.

claim every occurrence in one transaction (all or nothing, or the free ones) → start
each occurrence's booking workflow as a child → (paid once: take the series' payment and
hand each occurrence its share, workflows/series_payment.py) → done. The children then
live their own lives (reminders, cancel, reschedule, and paid per occurrence their
payment) and outlive the parent, which Temporal's UI shows them under.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.bookings import BookingStore, ClaimInput, SeriesClaim, SeriesClaimed
    from contract import (
        PAYMENT_EVENT_SIGNAL,
        ActorRequest,
        BookingRequest,
        BookingStatus,
        Failure,
        Notice,
        PaymentEvent,
        SeriesRequest,
        SeriesState,
        SkippedOccurrence,
        booking_search_attributes,
        failure,
        is_failure,
        workflow_id_for,
    )

from workflows.booking import BookingWorkflow
from workflows.series_payment import SeriesPayment
from workflows.steps import DB_STEP, reason


@workflow.defn(name="BookingSeries")
class BookingSeriesWorkflow:
    @workflow.init
    def __init__(self, request: SeriesRequest) -> None:
        self._state = SeriesState(request.series_id, skipped=list(request.skipped))
        self._refusal: Failure | None = None
        self._answered = False
        self._claims: list[ClaimInput] = []
        self._payment: SeriesPayment | None = None  # paid once (docs/series.md#payment)

    @workflow.run
    async def run(self, request: SeriesRequest) -> SeriesState:
        try:
            claimed = await self._claim(request)
        except FailureError as err:
            told = is_failure(err, Failure.SLOT_UNAVAILABLE)
            self._refusal = Failure.SLOT_UNAVAILABLE if told else Failure.CLAIM_FAILED
            self._state.error = reason(err)
            self._answered = True
            return self._state
        self._state.skipped = sorted([*self._state.skipped, *claimed.skipped], key=_start)
        by_id = {claim.request.booking_id: claim.request for claim in self._claims}
        for booking_id in claimed.booking_ids:
            await workflow.start_child_workflow(
                BookingWorkflow.run,
                by_id[booking_id],
                id=workflow_id_for(booking_id),
                parent_close_policy=workflow.ParentClosePolicy.ABANDON,
                search_attributes=booking_search_attributes(by_id[booking_id]),
                static_summary=f"occurrence at {by_id[booking_id].slot.start.isoformat()}",
            )
            self._state.booking_ids.append(booking_id)
        if request.paid_once:
            await self._collect_payment(request)
        self._answered = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._state

    async def _collect_payment(self, request: SeriesRequest) -> None:
        """Answered once the payment is authorised (the answer carries its client
        secret); the occurrences hold their slots until their claims' hold runs out."""
        payment = self._payment = SeriesPayment(request, self._state)
        began = await payment.authorize()
        self._answered = True
        hold = self._claims[0].hold_expires_at
        if began and hold is not None:
            await payment.collect(hold)

    async def _claim(self, request: SeriesRequest) -> SeriesClaimed:
        now = workflow.now()
        self._claims = claims = [
            _claim_input(occurrence, now) for occurrence in request.occurrences
        ]
        claimed: SeriesClaimed = await workflow.execute_local_activity_method(
            BookingStore.claim_series,
            SeriesClaim(request, claims),
            start_to_close_timeout=timedelta(seconds=30),
            schedule_to_close_timeout=timedelta(minutes=2),
            retry_policy=DB_STEP,
            summary=f"claim {len(claims)} occurrences in one transaction",
        )
        return claimed

    @workflow.update(
        description="Create the series (sent with the start): answers with its bookings "
        "and skipped occurrences once each booking's workflow has started, or fails with "
        "SlotUnavailable (all_or_nothing, an occurrence taken)."
    )
    async def create(self) -> SeriesState:
        await workflow.wait_condition(lambda: self._answered)
        if self._refusal is not None:
            raise failure(self._refusal, self._state.error or "not booked")
        return self._state

    @workflow.signal(
        name=PAYMENT_EVENT_SIGNAL,
        description="A Stripe webhook event for the series' one payment: authorised → "
        "capture and hand out the shares; failed → the occurrences fail. Repeats have no effect.",
    )
    def payment_event(self, event: PaymentEvent) -> None:
        if self._payment is not None:
            self._payment.flow.on_event(event, pending=self._payment.collecting)

    @workflow.signal(description="The series was cancelled before it was paid: void its payment.")
    def stop_payment(self) -> None:
        if self._payment is not None:
            self._payment.stopped = True

    @workflow.update(
        description="Mark paid (pay at venue): the series' one payment is settled; answers "
        "once each occurrence has its share."
    )
    async def mark_paid(self, request: ActorRequest) -> SeriesState:
        self._validate_mark_paid(request)
        assert self._payment is not None
        payment = self._payment
        payment.flow.settle_at_venue(request.actor)
        await workflow.wait_condition(lambda: payment.settled)
        return self._state

    @mark_paid.validator
    def _validate_mark_paid(self, request: ActorRequest) -> None:
        payment = self._payment
        if payment is None or not payment.collecting or payment.stopped:
            raise failure(Failure.INVALID_STATE, "the series awaits no payment")
        if payment.flow.settling:
            raise failure(Failure.INVALID_STATE, "the series' payment is already being settled")


def _claim_input(occurrence: BookingRequest, now: datetime) -> ClaimInput:
    """The claim each occurrence's own workflow makes, made here for all at once: the
    same hold and, confirmed at once, the same confirmation notice (so the child's claim
    finds its booking, and its messages, already there)."""
    terms = occurrence.terms
    if terms.priced:  # the child holds as long as this claim did
        hold = now + timedelta(seconds=terms.hold_seconds)
        return ClaimInput(replace(occurrence, held_until=hold), hold, now, None)
    notice = Notice.of(occurrence, occurrence.slot, BookingStatus.CONFIRMED, None, "confirmed", "")
    return ClaimInput(occurrence, None, now, notice)


def _start(skipped: SkippedOccurrence) -> datetime:
    return skipped.start
