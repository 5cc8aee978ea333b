"""A payment inside a workflow (docs/lifecycle.md#payment): authorise while the slot is
held, wait for the webhook or a mark-paid, capture on confirmation, and cancel or refund
when the booking is undone or cancelled.

`PaymentFlow` takes the payment of a `PaymentLedger`: a booking's own
(`BookingPayment`), or a series' paid once for all its occurrences
(workflows/series_payment.py). Every provider call carries the payer's id, from which
the provider derives its idempotency key; each refund is numbered before it is asked
for, so a refused one never lends its key to a later refund of another amount.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Protocol

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.bookings import BookingStore, PaymentRecord
    from activities.payments import PAY_AT_VENUE, PaymentActivities, PaymentCall
    from contract import EventType, Failure, Payment, PaymentEvent

from workflows.cancellation import refund_amount
from workflows.steps import COMPENSATION, PAYMENT_STEP, BookingSteps, reason


class PaymentLedger(Protocol):
    """Whose payment it is, what it is for, and where its outcomes are written."""

    payment: Payment | None

    @property
    def payer_id(self) -> str: ...
    @property
    def owner(self) -> str: ...  # "booking" or "series" (PaymentCall.owner)
    @property
    def amount(self) -> int: ...
    @property
    def currency(self) -> str: ...
    @property
    def retry_declined(self) -> bool: ...
    def details(self, now_doing: str) -> None: ...
    async def record(
        self, payment: Payment, key: str, event: EventType, retry: RetryPolicy
    ) -> None:
        """Write the payment as it now stands, where its payer is read from."""

    async def record_outcome(self, step: str, outcome: str) -> None: ...
    async def side_effect(
        self, step: str, method: Callable[..., object], arg: object, summary: str
    ) -> None: ...


class PaymentFlow:
    def __init__(self, ledger: PaymentLedger) -> None:
        self._ledger = ledger
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
        ledger = self._ledger
        pending = Payment(provider="", status="", amount=ledger.amount, currency=ledger.currency)
        await self._step(PaymentActivities.authorize, self._call(pending), "authorize")

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
            self._ledger.payment = payment
        await self._step(PaymentActivities.capture, self._call(payment), "capture")
        return card if payment is not card else None

    async def cancel_card(self, card: Payment) -> None:
        """After a confirmation: an outage here delays nothing, so it is a side effect."""
        await self._ledger.side_effect(
            "payment:card",
            PaymentActivities.cancel,
            self._call(card),
            "cancel the card payment (paid at the venue)",
        )

    async def void(self, status: str) -> None:
        """Undo step: refund what was captured, or cancel what was not."""
        payment = self._ledger.payment
        if payment is None:
            return
        if payment.captured_amount > payment.refunded_amount:
            await self.refund(payment.captured_amount - payment.refunded_amount, status)
        elif payment.status not in ("canceled", "refunded"):
            await self._step(PaymentActivities.cancel, self._call(payment), "cancel", COMPENSATION)

    async def refund(self, amount: int, why: str) -> bool:
        """A refusal is recorded for operators (and answers False); the cancel or undo
        that asked goes on."""
        self._refunds_begun += 1
        call = self._call(self._current(), amount, self._refunds_begun)
        try:
            key = f"refund:{self._refunds_begun}:{why}"  # each refund its own history entry
            await self._step(PaymentActivities.refund, call, key, COMPENSATION)
        except FailureError as err:  # refused for good (refunded already at Stripe, say)
            await self._ledger.record_outcome("payment:refund", f"failed: {reason(err)}")
            return False
        return True

    def settle_at_venue(self, actor: str) -> None:
        self.paid = self.at_venue = True
        self.paid_by = actor

    def on_event(self, event: PaymentEvent, pending: bool) -> None:
        """A webhook event for this booking. Repeats, other intents' events and events
        after the booking stopped waiting change nothing."""
        if event.event_id in self._events_seen:
            return
        self._events_seen.add(event.event_id)
        payment = self._ledger.payment
        if payment is None or payment.intent_id != event.intent_id or not pending or self.paid:
            return
        if event.kind == "authorized":
            self.paid, self.paid_by = True, "stripe"
        elif event.kind == "failed" and self._ledger.retry_declined:
            self._ledger.details(f"card declined ({event.message}); the customer may try another")
        elif event.kind == "failed":
            self.failure = event.message or "declined"
        elif event.kind == "canceled":  # in Stripe's dashboard, say: it can't be paid now
            self._ledger.payment = replace(payment, status="canceled")
            self.failure = "the payment was cancelled at Stripe"

    def _call(self, payment: Payment, amount: int = 0, attempt: int = 1) -> PaymentCall:
        ledger = self._ledger
        return PaymentCall(ledger.payer_id, payment, amount, attempt, ledger.owner)

    def _current(self) -> Payment:
        payment = self._ledger.payment
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
        self._ledger.payment = payment
        await self._ledger.record(payment, key, _EVENTS[key.split(":", 1)[0]], retry)


class BookingLedger:
    """A booking's own payment: on its state, written to its row and history."""

    owner = "booking"

    def __init__(self, steps: BookingSteps) -> None:
        self._steps = steps

    @property
    def payer_id(self) -> str:
        return self._steps.request.booking_id

    @property
    def amount(self) -> int:
        amount = self._steps.request.terms.price_amount
        assert amount is not None
        return amount

    @property
    def currency(self) -> str:
        currency = self._steps.request.terms.currency
        assert currency is not None
        return currency

    @property
    def retry_declined(self) -> bool:
        return self._steps.request.terms.retry_declined_payment

    @property
    def payment(self) -> Payment | None:
        return self._steps.state.payment

    @payment.setter
    def payment(self, payment: Payment | None) -> None:
        self._steps.state.payment = payment

    def details(self, now_doing: str) -> None:
        self._steps.details(now_doing)

    async def record(
        self, payment: Payment, key: str, event: EventType, retry: RetryPolicy
    ) -> None:
        record = PaymentRecord(self.payer_id, payment, f"payment:{key}", event)
        await self._steps.db(BookingStore.save_payment, record, "record payment", retry)

    async def record_outcome(self, step: str, outcome: str) -> None:
        await self._steps.record_outcome(step, outcome)

    async def side_effect(
        self, step: str, method: Callable[..., object], arg: object, summary: str
    ) -> None:
        await self._steps.side_effect(step, method, arg, summary)


class BookingPayment(PaymentFlow):
    """A booking's payment: its own, or its share of its series' one payment."""

    def __init__(self, steps: BookingSteps) -> None:
        super().__init__(BookingLedger(steps))
        self._steps = steps

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

    async def take_share(self, share: Payment, paid_by: str) -> None:
        """This occurrence's share of its series' captured payment (docs/series.md#payment):
        from now on it is refunded, on a cancel or an undo, as the booking's own."""
        self.paid, self.paid_by = True, paid_by
        self._ledger.payment = share  # first: an undo that follows a failed record refunds it
        await self._ledger.record(share, "series", EventType.PAYMENT_CAPTURED, PAYMENT_STEP)


_EVENTS = {
    "authorize": EventType.PAYMENT_REQUESTED,
    "capture": EventType.PAYMENT_CAPTURED,
    "cancel": EventType.PAYMENT_CANCELLED,
    "refund": EventType.PAYMENT_REFUNDED,
}
