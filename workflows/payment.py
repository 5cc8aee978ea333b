"""A booking's payment inside its workflow (docs/lifecycle.md#payment): authorise while
the slot is held, wait for the webhook or a mark-paid, capture on confirmation, and
cancel or refund when the booking is undone or cancelled.

Every provider call carries the booking id, from which the provider derives its
idempotency key; each refund is numbered before it is asked for, so a refused one never
lends its key to a later refund of another amount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.bookings import BookingStore, PaymentRecord
    from activities.payments import PAY_AT_VENUE, PaymentActivities, PaymentCall
    from contract import EventType, Failure, Payment, PaymentEvent

from workflows.cancellation import refund_amount
from workflows.steps import COMPENSATION, PAYMENT_STEP, BookingSteps, reason


class BookingPayment:
    def __init__(self, steps: BookingSteps) -> None:
        self._steps = steps
        self.paid = False
        self.at_venue = False  # paid in person (mark-paid), not by card
        self.paid_by = "system"  # who settled it: the history's confirming actor
        self.failure: str | None = None
        self._events_seen: set[str] = set()
        self._refunds_begun = 0

    @property
    def settling(self) -> bool:
        return self.paid or self.failure is not None

    async def authorize(self) -> None:
        terms = self._steps.request.terms
        assert terms.price_amount is not None and terms.currency is not None
        pending = Payment(
            provider="", status="", amount=terms.price_amount, currency=terms.currency
        )
        await self._step(PaymentActivities.authorize, PaymentCall(self._id, pending), "authorize")

    async def wait(self, until: datetime, pending: Callable[[], bool]) -> bool:
        """Wait while the booking is `pending` for the payment to settle; False if the hold
        ran out first. A failed payment raises, so the saga undoes the booking."""
        try:
            await workflow.wait_condition(
                lambda: self.settling or not pending(),
                timeout=max(until - workflow.now(), timedelta(0)),
                timeout_summary="hold expires unpaid",
            )
        except TimeoutError:
            return False
        if self.failure is not None and not self.paid:
            raise ApplicationError(
                f"the payment failed: {self.failure}", type=Failure.PAYMENT_FAILED
            )
        return True

    async def capture(self) -> Payment | None:
        """Take the money. Paid in person, the venue's payment takes the card's place:
        the card payment is returned, to be cancelled once the booking is confirmed."""
        card = self._current()
        payment = card
        if self.at_venue and card.provider != PAY_AT_VENUE:
            payment = Payment(PAY_AT_VENUE, "requires_payment", card.amount, card.currency)
            self._steps.state.payment = payment
        await self._step(PaymentActivities.capture, PaymentCall(self._id, payment), "capture")
        return card if payment is not card else None

    async def cancel_card(self, card: Payment) -> None:
        """After a confirmation: an outage here delays nothing, so it is a side effect."""
        await self._steps.side_effect(
            "payment:card",
            PaymentActivities.cancel,
            PaymentCall(self._id, card),
            "cancel the card payment (paid at the venue)",
        )

    async def void(self, status: str) -> None:
        """Undo step: refund what was captured, or cancel what was not."""
        payment = self._steps.state.payment
        if payment is None:
            return
        if payment.captured_amount > payment.refunded_amount:
            await self.refund(payment.captured_amount - payment.refunded_amount, status)
        elif payment.status not in ("canceled", "refunded"):
            call = PaymentCall(self._id, payment)
            await self._step(PaymentActivities.cancel, call, "cancel", COMPENSATION)

    async def refund_for_cancel(self) -> None:
        """A cancel refunds by the service's policy what has not been refunded yet (a
        cancel that failed after its refund is asked again), or voids an unpaid payment."""
        payment = self._steps.state.payment
        if payment is None:
            return
        if not payment.captured_amount:
            await self.void("cancelled")
            return
        terms, start = self._steps.request.terms, self._steps.state.slot.start
        due = refund_amount(terms, payment.captured_amount, start, workflow.now())
        if due > payment.refunded_amount:
            await self.refund(due - payment.refunded_amount, "cancel")

    async def refund(self, amount: int, why: str) -> None:
        """A refusal is recorded for operators; the cancel or undo that asked goes on."""
        self._refunds_begun += 1
        call = PaymentCall(self._id, self._current(), amount, self._refunds_begun)
        try:
            key = f"refund:{self._refunds_begun}:{why}"  # each refund its own history entry
            await self._step(PaymentActivities.refund, call, key, COMPENSATION)
        except FailureError as err:  # refused for good (refunded already at Stripe, say)
            await self._steps.record_outcome("payment:refund", f"failed: {reason(err)}")

    def settle_at_venue(self, actor: str) -> None:
        self.paid = self.at_venue = True
        self.paid_by = actor

    def on_event(self, event: PaymentEvent, pending: bool) -> None:
        """A webhook event for this booking. Repeats, other intents' events and events
        after the booking stopped waiting change nothing."""
        if event.event_id in self._events_seen:
            return
        self._events_seen.add(event.event_id)
        payment = self._steps.state.payment
        if payment is None or payment.intent_id != event.intent_id or not pending or self.paid:
            return
        if event.kind == "authorized":
            self.paid, self.paid_by = True, "stripe"
        elif event.kind == "failed" and self._steps.request.terms.retry_declined_payment:
            self._steps.details(f"card declined ({event.message}); the customer may try another")
        elif event.kind == "failed":
            self.failure = event.message or "declined"
        elif event.kind == "canceled":  # in Stripe's dashboard, say: it can't be paid now
            self._steps.state.payment = replace(payment, status="canceled")
            self.failure = "the payment was cancelled at Stripe"

    @property
    def _id(self) -> str:
        return self._steps.request.booking_id

    def _current(self) -> Payment:
        payment = self._steps.state.payment
        assert payment is not None
        return payment

    async def _step(
        self,
        method: Callable[..., Payment],
        call: PaymentCall,
        key: str,
        retry: RetryPolicy = PAYMENT_STEP,
    ) -> None:
        """One provider call, then its outcome recorded on the booking and its history."""
        payment = await workflow.execute_activity_method(
            method,
            call,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=retry,
            summary=f"payment: {key}",
        )
        self._steps.state.payment = payment
        event = _EVENTS[key.split(":", 1)[0]]
        record = PaymentRecord(self._id, payment, f"payment:{key}", event)
        await self._steps.db(BookingStore.save_payment, record, "record payment", retry)


_EVENTS = {
    "authorize": EventType.PAYMENT_REQUESTED,
    "capture": EventType.PAYMENT_CAPTURED,
    "cancel": EventType.PAYMENT_CANCELLED,
    "refund": EventType.PAYMENT_REFUNDED,
}
