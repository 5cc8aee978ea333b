"""Payment steps of the saga behind one provider interface. Every call carries the
booking id, from which providers derive their idempotency keys. Cards go through the
configured provider (Stripe); a payment settled in person (mark-paid) is the venue's."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from temporalio import activity

from workflows.messages import Payment


@dataclass(frozen=True)
class PaymentCall:
    """`attempt` numbers repeated operations of one kind (refund 1, refund 2, ...)."""

    booking_id: str
    payment: Payment
    amount: int = 0
    attempt: int = 1


PAY_AT_VENUE = "pay_at_venue"


class PaymentProvider(Protocol):
    name: str

    def authorize(self, booking_id: str, amount: int, currency: str) -> Payment: ...
    def capture(self, booking_id: str, payment: Payment) -> Payment: ...
    def cancel(self, booking_id: str, payment: Payment) -> Payment: ...
    def refund(self, booking_id: str, payment: Payment, amount: int, attempt: int) -> Payment: ...


class PayAtVenue:
    """Payment taken in person: the booking waits for an operator's mark-paid, and refunds
    are recorded for the venue to pay out. Nothing leaves this process, so every call is
    naturally idempotent."""

    name = PAY_AT_VENUE

    def authorize(self, booking_id: str, amount: int, currency: str) -> Payment:
        return Payment(
            provider=self.name, status="requires_payment", amount=amount, currency=currency
        )

    def capture(self, booking_id: str, payment: Payment) -> Payment:
        return replace(payment, status="captured", captured_amount=payment.amount)

    def cancel(self, booking_id: str, payment: Payment) -> Payment:
        return replace(payment, status="canceled")

    def refund(self, booking_id: str, payment: Payment, amount: int, attempt: int) -> Payment:
        return refunded_payment(payment, amount)


def refunded_payment(payment: Payment, amount: int) -> Payment:
    refunded = min(payment.captured_amount, payment.refunded_amount + amount)
    status = "refunded" if refunded == payment.captured_amount else "partially_refunded"
    return replace(payment, status=status, refunded_amount=refunded, refunds=payment.refunds + 1)


class PaymentActivities:
    """Sync activities: real providers use blocking clients, run on the worker's pool.
    Whoever took a payment captures, cancels and refunds it."""

    def __init__(self, cards: PaymentProvider) -> None:
        self._cards = cards
        self._providers: dict[str, PaymentProvider] = {PAY_AT_VENUE: PayAtVenue()}
        self._providers[cards.name] = cards

    @activity.defn(name="authorize_payment")
    def authorize(self, call: PaymentCall) -> Payment:
        return self._cards.authorize(call.booking_id, call.payment.amount, call.payment.currency)

    @activity.defn(name="capture_payment")
    def capture(self, call: PaymentCall) -> Payment:
        return self._taker(call).capture(call.booking_id, call.payment)

    @activity.defn(name="cancel_payment")
    def cancel(self, call: PaymentCall) -> Payment:
        return self._taker(call).cancel(call.booking_id, call.payment)

    @activity.defn(name="refund_payment")
    def refund(self, call: PaymentCall) -> Payment:
        return self._taker(call).refund(call.booking_id, call.payment, call.amount, call.attempt)

    def _taker(self, call: PaymentCall) -> PaymentProvider:
        return self._providers[call.payment.provider]
