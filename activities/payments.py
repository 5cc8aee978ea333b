"""Payment steps of the saga behind one provider interface. Every call carries the
booking id, from which providers derive their idempotency keys. Cards go through the
configured provider (Stripe); a payment settled in person (mark-paid) is the venue's.

A card's client secret goes from the authorisation straight to the booking row
(`ClientSecrets`), never into the workflow: its history, query answers and result would
otherwise keep it for as long as the booking's history lives."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from temporalio import activity

from activities import metrics
from activities.worker_loop import WorkerLoop
from contract import Payment
from db.bookings import keep_client_secret
from db.series import keep_series_client_secret
from db.sessions import Sessions


@dataclass(frozen=True)
class PaymentCall:
    """`booking_id` names the payer: a booking, or with `owner` "series" a series paid
    once (docs/series.md#payment). `attempt` numbers repeated operations of one kind
    (refund 1, refund 2, ...)."""

    booking_id: str
    payment: Payment
    amount: int = 0
    attempt: int = 1
    owner: str = "booking"


@dataclass(frozen=True)
class Authorization:
    """A payment begun, and the secret the customer's browser completes it with."""

    payment: Payment
    client_secret: str | None = None


PAY_AT_VENUE = "pay_at_venue"


class PaymentProvider(Protocol):
    name: str

    def authorize(
        self, booking_id: str, amount: int, currency: str, owner: str = "booking"
    ) -> Authorization: ...
    def capture(self, booking_id: str, payment: Payment) -> Payment: ...
    def cancel(self, booking_id: str, payment: Payment) -> Payment: ...
    def refund(self, booking_id: str, payment: Payment, amount: int, attempt: int) -> Payment: ...


class PayAtVenue:
    """Payment taken in person: the booking waits for an operator's mark-paid, and refunds
    are recorded for the venue to pay out. Nothing leaves this process, so every call is
    naturally idempotent."""

    name = PAY_AT_VENUE

    def authorize(
        self, booking_id: str, amount: int, currency: str, owner: str = "booking"
    ) -> Authorization:
        return Authorization(
            Payment(provider=self.name, status="requires_payment", amount=amount, currency=currency)
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
    return replace(payment, status=status, refunded_amount=refunded)


class ClientSecrets:
    """Writes a client secret onto its booking (or series) from a sync activity's thread
    (the write is one short statement)."""

    def __init__(self, sessions: Sessions, loop: WorkerLoop) -> None:
        self._sessions, self._loop = sessions, loop

    def keep(self, call: PaymentCall, secret: str) -> None:
        """Raises without the secret: an activity's error goes into its history."""
        keep = keep_series_client_secret if call.owner == "series" else keep_client_secret
        try:
            self._loop.run(keep(self._sessions, call.booking_id, secret))
        except Exception as err:
            raise RuntimeError(f"could not keep the client secret ({type(err).__name__})") from None


class PaymentActivities:
    """Sync activities: real providers use blocking clients, run on the worker's pool.
    Whoever took a payment captures, cancels and refunds it."""

    def __init__(self, cards: PaymentProvider, secrets: ClientSecrets) -> None:
        self._cards, self._secrets = cards, secrets
        self._providers: dict[str, PaymentProvider] = {PAY_AT_VENUE: PayAtVenue()}
        self._providers[cards.name] = cards

    @activity.defn(name="authorize_payment")
    @metrics.counts_payment("authorize")
    def authorize(self, call: PaymentCall) -> Payment:
        """The payment without its client secret, which is kept on the booking."""
        payment = call.payment
        begun = self._cards.authorize(call.booking_id, payment.amount, payment.currency, call.owner)
        if begun.client_secret:
            self._secrets.keep(call, begun.client_secret)
        return begun.payment

    @activity.defn(name="capture_payment")
    @metrics.counts_payment("capture")
    def capture(self, call: PaymentCall) -> Payment:
        return self._taker(call).capture(call.booking_id, call.payment)

    @activity.defn(name="cancel_payment")
    @metrics.counts_payment("cancel")
    def cancel(self, call: PaymentCall) -> Payment:
        return self._taker(call).cancel(call.booking_id, call.payment)

    @activity.defn(name="refund_payment")
    @metrics.counts_payment("refund")
    def refund(self, call: PaymentCall) -> Payment:
        return self._taker(call).refund(call.booking_id, call.payment, call.amount, call.attempt)

    def _taker(self, call: PaymentCall) -> PaymentProvider:
        return self._providers[call.payment.provider]
