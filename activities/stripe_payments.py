"""Card payments through Stripe: a PaymentIntent with manual capture, authorised while the
booking holds its slot, captured on confirmation, cancelled or refunded when undone.

Every call carries an idempotency key derived from the booking (`<id>:authorize`,
`:capture`, `:cancel`, `:refund:<n>`), so an activity retried after its call reached
Stripe gets the first answer again instead of a second intent or refund."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import stripe
from temporalio.exceptions import ApplicationError

from activities.payments import Authorization, refunded_payment
from contract import Failure, Payment, failure

PROVIDER = "stripe"


class StripePayments:
    name = PROVIDER

    def __init__(self, client: stripe.StripeClient) -> None:
        self._stripe = client

    def authorize(
        self, booking_id: str, amount: int, currency: str, owner: str = "booking"
    ) -> Authorization:
        """The intent's metadata names its payer (`booking_id`, or `series_id` for a
        series paid once), which is how the webhook finds whose payment an event is."""
        intent = self._call(
            self._stripe.v1.payment_intents.create,
            f"{booking_id}:authorize",
            {
                "amount": amount,
                "currency": currency.lower(),
                "capture_method": "manual",
                "metadata": {f"{owner}_id": booking_id},
            },
        )
        payment = Payment(PROVIDER, intent.status, amount, currency, intent_id=intent.id)
        return Authorization(payment, intent.client_secret)

    def capture(self, booking_id: str, payment: Payment) -> Payment:
        try:
            intent = self._call(
                lambda params, options: self._stripe.v1.payment_intents.capture(
                    _intent(payment), params, options
                ),
                f"{booking_id}:capture",
                {},
            )
        except ApplicationError as refused:
            # Refused: perhaps captured already (by hand, in Stripe's dashboard). Then the
            # booking is paid; otherwise the refusal stands.
            try:
                intent = self._stripe.v1.payment_intents.retrieve(_intent(payment))
            except stripe.StripeError:
                raise refused from None
            if intent.status != "succeeded":
                raise
        # (localstripe omits amount_received; a capture without an amount takes it all)
        captured = intent.to_dict().get("amount_received") or payment.amount
        return replace(payment, status=intent.status, captured_amount=captured)

    def cancel(self, booking_id: str, payment: Payment) -> Payment:
        intent = self._call(
            lambda params, options: self._stripe.v1.payment_intents.cancel(
                _intent(payment), params, options
            ),
            f"{booking_id}:cancel",
            {},
        )
        return replace(payment, status=intent.status)

    def refund(self, booking_id: str, payment: Payment, amount: int, attempt: int) -> Payment:
        refund = self._call(
            self._stripe.v1.refunds.create,
            f"{booking_id}:refund:{attempt}",
            {"payment_intent": _intent(payment), "amount": amount},
        )
        # `pending` is on its way (Stripe settles it later); these will never arrive.
        if refund.status in ("failed", "canceled"):
            why = refund.to_dict().get("failure_reason")
            raise failure(
                Failure.REFUND_FAILED, f"Stripe refused the refund ({refund.status}: {why})"
            )
        return refunded_payment(payment, amount)

    @staticmethod
    def _call(method: Any, key: str, params: dict[str, Any]) -> Any:
        """Stripe's answers that retrying cannot change (a declined card, a request it
        refuses) fail the step for good; network trouble and 5xx are retried."""
        try:
            return method(params, {"idempotency_key": key})
        except stripe.CardError as err:
            raise failure(Failure.PAYMENT_DECLINED, err.user_message or str(err)) from err
        except (stripe.InvalidRequestError, stripe.IdempotencyError) as err:
            raise failure(
                Failure.PAYMENT_REFUSED, f"Stripe refused the request: {err.user_message or err}"
            ) from err


def _intent(payment: Payment) -> str:
    if not payment.intent_id:
        raise failure(Failure.PAYMENT_REFUSED, "the payment has no Stripe intent")
    return payment.intent_id
