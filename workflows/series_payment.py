"""A series paid once (docs/series.md#payment): one payment for every occurrence, taken
by the series' workflow and handed out as shares once captured.

authorise the whole amount → wait for the webhook or a mark-paid (until the holds run
out) → capture → send each occurrence its share. An occurrence that ended meanwhile
(cancelled, expired) gives its share back: it refunds it itself while its workflow
runs, or the series refunds it when that workflow has closed. Unpaid or cancelled
before it was paid, the payment is voided and the occurrences are told to expire;
declined, they are told it failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from activities.bookings import BookingStore, SeriesPaymentRecord, SideEffectOutcome
    from contract import (
        EventType,
        Payment,
        SeriesRequest,
        SeriesShare,
        SeriesState,
        workflow_id_for,
    )

from workflows.booking import BookingWorkflow
from workflows.payment import PaymentFlow
from workflows.steps import DB_STEP, SIDE_EFFECT, reason


class SeriesLedger:
    """The series' payment: on its state, written to its row (its occurrences' own
    histories record their shares)."""

    owner = "series"

    def __init__(self, request: SeriesRequest, state: SeriesState) -> None:
        self._request, self._state = request, state

    @property
    def payer_id(self) -> str:
        return self._request.series_id

    @property
    def amount(self) -> int:
        return self.share * len(self._state.booking_ids)

    @property
    def share(self) -> int:
        price = self._request.terms.price_amount
        assert price is not None
        return price

    @property
    def currency(self) -> str:
        currency = self._request.terms.currency
        assert currency is not None
        return currency

    @property
    def retry_declined(self) -> bool:
        return self._request.terms.retry_declined_payment

    @property
    def payment(self) -> Payment | None:
        return self._state.payment

    @payment.setter
    def payment(self, payment: Payment | None) -> None:
        self._state.payment = payment

    def details(self, now_doing: str) -> None:
        """The series' details in the Temporal UI: its payment, no personal data."""
        lines = [now_doing, f"occurrences: {len(self._state.booking_ids)}"]
        if (p := self._state.payment) is not None:
            lines.append(f"payment: {p.status} {p.captured_amount}/{p.amount} {p.currency}")
        workflow.set_current_details("\n\n".join(lines))

    async def record(
        self, payment: Payment, key: str, event: EventType, retry: RetryPolicy
    ) -> None:
        await workflow.execute_local_activity_method(
            BookingStore.save_series_payment,
            SeriesPaymentRecord(self.payer_id, payment),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=retry,
            summary=f"record payment ({key})",
        )

    async def record_outcome(self, step: str, outcome: str) -> None:
        """A series has no history of its own: operators read this in its details."""
        workflow.logger.warning("series %s: %s %s", self.payer_id, step, outcome)
        self.details(f"{step}: {outcome}")

    async def side_effect(
        self, step: str, method: Callable[..., object], arg: object, summary: str
    ) -> None:
        try:
            await workflow.execute_activity_method(
                method,
                arg,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=SIDE_EFFECT,
                summary=summary,
            )
        except FailureError as err:
            await self.record_outcome(step, f"failed: {reason(err)}")


class SeriesPayment:
    """The series' one payment, from authorisation to the occurrences' shares."""

    def __init__(self, request: SeriesRequest, state: SeriesState) -> None:
        self._ledger = SeriesLedger(request, state)
        self.flow = PaymentFlow(self._ledger)
        self._state = state
        self.collecting = False  # waiting for the webhook or a mark-paid
        self.stopped = False  # the series was cancelled before it was paid
        self.settled = False  # shares sent, or the payment voided

    async def authorize(self) -> bool:
        """False if the payment could not even begin: the occurrences fail with it."""
        try:
            await self.flow.authorize()
        except FailureError as err:
            await self._failed(reason(err))
            return False
        return True

    async def collect(self, until: datetime) -> None:
        self._ledger.details(f"waiting for the series' payment until {until.isoformat()}")
        self.collecting = True
        try:
            waited = await self.flow.wait(until, lambda: not self.stopped)
        except FailureError as err:  # declined
            self.collecting = False
            await self.flow.void("failed")
            await self._failed(reason(err))
            return
        self.collecting = False
        if not waited or not self.flow.paid:  # the holds ran out, or the series was cancelled
            await self.flow.void("expired" if not waited else "cancelled")
            await self._tell_all(SeriesShare(None))
            self._ledger.details("unpaid: the payment was voided")
            self.settled = True
            return
        try:
            card = await self.flow.capture()
        except FailureError as err:
            await self.flow.void("failed")
            await self._failed(reason(err))
            return
        await self._hand_out_shares()
        if card is not None:  # paid at the venue: the card is not needed
            await self.flow.cancel_card(card)

    async def _hand_out_shares(self) -> None:
        paid = self._state.payment
        assert paid is not None
        each = self._ledger.share
        share = replace(paid, amount=each, captured_amount=each, refunded_amount=0)
        for booking_id in self._state.booking_ids:
            if await self._tell(booking_id, SeriesShare(share, self.flow.paid_by)):
                continue
            # Its workflow has closed (cancelled before the payment): the series refunds.
            if not await self.flow.refund(each, f"unused:{booking_id}"):
                await self._refund_refused(booking_id)
        self._ledger.details("paid: each occurrence has its share")
        self.settled = True

    async def _refund_refused(self, booking_id: str) -> None:
        """Recorded where operators look: on the occurrence whose share it was."""
        outcome = SideEffectOutcome(
            booking_id,
            "payment:refund",
            "failed: its share of the series' payment was not refunded",
            f"side_effect:series-refund:{self.payer_id}",
        )
        await workflow.execute_local_activity_method(
            BookingStore.record_side_effect,
            outcome,
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=DB_STEP,
            summary="record payment:refund outcome",
        )

    @property
    def payer_id(self) -> str:
        return self._ledger.payer_id

    async def _failed(self, why: str) -> None:
        await self._tell_all(SeriesShare(None, failure=why))
        self._state.error = why
        self._ledger.details(f"the payment failed: {why}")
        self.settled = True

    async def _tell_all(self, share: SeriesShare) -> None:
        for booking_id in self._state.booking_ids:
            await self._tell(booking_id, share)

    @staticmethod
    async def _tell(booking_id: str, share: SeriesShare) -> bool:
        """False if the occurrence's workflow has closed (it cannot take its share)."""
        handle = workflow.get_external_workflow_handle(workflow_id_for(booking_id))
        try:
            await handle.signal(BookingWorkflow.series_paid, share)
        except FailureError:
            return False
        return True
