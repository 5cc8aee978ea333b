"""Payment steps of the saga behind one provider interface. Every call carries the
booking id, from which providers derive their idempotency keys."""

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


class PaymentProvider(Protocol):
    def authorize(self, booking_id: str, amount: int, currency: str) -> Payment: ...
    def capture(self, booking_id: str, payment: Payment) -> Payment: ...
    def cancel(self, booking_id: str, payment: Payment) -> Payment: ...
    def refund(self, booking_id: str, payment: Payment, amount: int, attempt: int) -> Payment: ...


class PayAtVenue:
    """Payment taken in person: the booking waits for an operator's mark-paid, and refunds
    are recorded for the venue to pay out. Nothing leaves this process, so every call is
    naturally idempotent."""

    name = "pay_at_venue"

    def authorize(self, booking_id: str, amount: int, currency: str) -> Payment:
        return Payment(
            provider=self.name, status="requires_payment", amount=amount, currency=currency
        )

    def capture(self, booking_id: str, payment: Payment) -> Payment:
        return replace(payment, status="captured", captured_amount=payment.amount)

    def cancel(self, booking_id: str, payment: Payment) -> Payment:
        return replace(payment, status="canceled")

    def refund(self, booking_id: str, payment: Payment, amount: int, attempt: int) -> Payment:
        refunded = min(payment.captured_amount, payment.refunded_amount + amount)
        status = "refunded" if refunded == payment.captured_amount else "partially_refunded"
        return replace(payment, status=status, refunded_amount=refunded)


class PaymentActivities:
    """Sync activities: real providers use blocking clients, run on the worker's pool."""

    def __init__(self, provider: PaymentProvider) -> None:
        self._provider = provider

    @activity.defn(name="authorize_payment")
    def authorize(self, call: PaymentCall) -> Payment:
        return self._provider.authorize(call.booking_id, call.payment.amount, call.payment.currency)

    @activity.defn(name="capture_payment")
    def capture(self, call: PaymentCall) -> Payment:
        return self._provider.capture(call.booking_id, call.payment)

    @activity.defn(name="cancel_payment")
    def cancel(self, call: PaymentCall) -> Payment:
        return self._provider.cancel(call.booking_id, call.payment)

    @activity.defn(name="refund_payment")
    def refund(self, call: PaymentCall) -> Payment:
        return self._provider.refund(call.booking_id, call.payment, call.amount, call.attempt)
