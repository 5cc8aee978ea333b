"""The booking saga's logic on the time-skipping test server, every activity an in-memory
stub registered under the real activity's name (as samples-python's tests do): the order
of its steps, its undos and its timers, without PostgreSQL or the API
(docs/lifecycle.md). The workflow runs sandboxed, so a sandbox violation fails here too."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import pytest
from temporalio import activity
from temporalio.client import (
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError, CancelledError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.bookings import (
    ClaimInput,
    ConfirmInput,
    FinishInput,
    MoveInput,
    PaymentRecord,
    SideEffectOutcome,
)
from activities.calendar import CalendarCall
from activities.payments import PAY_AT_VENUE, PayAtVenue, PaymentCall
from api.booking_gateway import run_update, start_booking
from api.errors import ApiError
from connections import data_converter
from contract import (
    ActorRequest,
    BookingRequest,
    BookingState,
    CancelRequest,
    Failure,
    Notice,
    Payment,
    PaymentEvent,
    RescheduleRequest,
    Slot,
    failure,
    is_failure,
    workflow_id_for,
)
from devstack.binaries import venv_binary
from devstack.temporal import register_search_attributes
from settings import Settings
from tests.support.histories import record
from tests.support.polling import eventually
from tests.support.terms import terms as service_terms
from workflows.booking import BookingWorkflow

T = TypeVar("T")
Handle = WorkflowHandle[Any, BookingState]

CARDS = "cards"
PRICE = 6000
PAYMENT_STEPS = {"authorize_payment", "capture_payment", "cancel_payment", "refund_payment"}


@dataclass
class Stubs:
    """Every activity of the saga, in memory: each call is logged in order, and the
    behaviours a test sets decide the answers."""

    calls: list[tuple[str, object]] = field(default_factory=list)
    claim_fails: Failure | None = None
    capture_refused: bool = False
    cancel_refused: bool = False
    calendar_connected: bool = False
    calendar_down: bool = False
    finish_refusals: int = 0  # how many of the next finish_booking calls are refused

    def activities(self) -> list[Callable[..., Any]]:
        return [
            self.claim,
            self.confirm,
            self.finish,
            self.move,
            self.save_payment,
            self.record_side_effect,
            self.authorize,
            self.capture,
            self.cancel,
            self.refund,
            self.connected,
            self.sync,
            self.delete,
            self.notify,
        ]

    # ---- the database steps (local activities) --------------------------------------

    @activity.defn(name="claim_booking")
    async def claim(self, claim: ClaimInput) -> bool:
        self.calls.append(("claim_booking", claim))
        if self.claim_fails is not None:
            raise failure(self.claim_fails, f"the claim failed: {self.claim_fails}")
        return True

    @activity.defn(name="confirm_booking")
    async def confirm(self, step: ConfirmInput) -> None:
        self.calls.append(("confirm_booking", step))

    @activity.defn(name="finish_booking")
    async def finish(self, step: FinishInput) -> str | None:
        self.calls.append(("finish_booking", step))
        if self.finish_refusals:
            self.finish_refusals -= 1
            raise failure(Failure.DATA_REFUSED, "the database refused the data")
        return step.status

    @activity.defn(name="move_booking")
    async def move(self, move: MoveInput) -> None:
        self.calls.append(("move_booking", move))

    @activity.defn(name="save_payment")
    async def save_payment(self, record: PaymentRecord) -> None:
        self.calls.append(("save_payment", record))

    @activity.defn(name="record_side_effect")
    async def record_side_effect(self, outcome: SideEffectOutcome) -> None:
        self.calls.append(("record_side_effect", outcome))

    # ---- payments -------------------------------------------------------------------

    @activity.defn(name="authorize_payment")
    async def authorize(self, call: PaymentCall) -> Payment:
        self.calls.append(("authorize_payment", call))
        pending = call.payment
        intent = f"pi_{call.booking_id}"
        return Payment(CARDS, "requires_payment_method", pending.amount, pending.currency, intent)

    @activity.defn(name="capture_payment")
    async def capture(self, call: PaymentCall) -> Payment:
        self._settle("capture_payment", call, "captured", refused=self.capture_refused)
        return PayAtVenue().capture(call.booking_id, call.payment)

    @activity.defn(name="cancel_payment")
    async def cancel(self, call: PaymentCall) -> Payment:
        self._settle("cancel_payment", call, "cancelled", refused=self.cancel_refused)
        return PayAtVenue().cancel(call.booking_id, call.payment)

    def _settle(self, name: str, call: PaymentCall, done: str, *, refused: bool) -> None:
        """Log the call; refuse it for good, as Stripe does an intent past that step."""
        self.calls.append((name, call))
        if refused:
            raise ApplicationError(f"this intent cannot be {done}", non_retryable=True)

    @activity.defn(name="refund_payment")
    async def refund(self, call: PaymentCall) -> Payment:
        self.calls.append(("refund_payment", call))
        return PayAtVenue().refund(call.booking_id, call.payment, call.amount, call.attempt)

    # ---- calendars and notices ------------------------------------------------------

    @activity.defn(name="calendars_connected")
    async def connected(self, resource_ids: list[str]) -> bool:
        self.calls.append(("calendars_connected", resource_ids))
        return self.calendar_connected

    @activity.defn(name="sync_calendar_events")
    async def sync(self, call: CalendarCall) -> None:
        self._calendar("sync_calendar_events", call)

    @activity.defn(name="delete_calendar_events")
    async def delete(self, call: CalendarCall) -> None:
        self._calendar("delete_calendar_events", call)

    def _calendar(self, name: str, call: CalendarCall) -> None:
        """The export handed on, unless that fails for good."""
        self.calls.append((name, call))
        if self.calendar_down:
            raise ApplicationError("calendar unreachable", non_retryable=True)

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> None:
        self.calls.append(("notify", notice))

    # ---- reading the log ------------------------------------------------------------

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def args(self, name: str, kind: type[T]) -> list[T]:
        found = [arg for called, arg in self.calls if called == name]
        assert all(isinstance(arg, kind) for arg in found), found
        return [arg for arg in found if isinstance(arg, kind)]

    def index(self, name: str, where: Callable[[Any], bool] = lambda _: True) -> int:
        """The position of the first call of `name` whose argument satisfies `where`."""
        for i, (called, arg) in enumerate(self.calls):
            if called == name and where(arg):
                return i
        raise AssertionError(f"no {name} call matched in {self.names()}")

    def notices(self, kind: str | None = None) -> list[Notice]:
        return [n for n in self.args("notify", Notice) if kind is None or n.kind == kind]

    def finishes(self) -> list[FinishInput]:
        return self.args("finish_booking", FinishInput)

    def assert_undone(self, *before_release: str) -> None:
        """The booking was released as failed, after `before_release` ran (in that
        order), and the customer was told once."""
        (finish,) = self.finishes()
        assert (finish.status, finish.release) == ("failed", True)
        steps = [*before_release, "finish_booking", "notify"]
        assert [self.index(s) for s in steps] == sorted(self.index(s) for s in steps)
        assert [n.kind for n in self.notices()] == ["failed"]

    def refunds(self) -> list[int]:
        return [call.amount for call in self.args("refund_payment", PaymentCall)]

    async def until(self, done: Callable[[], bool], seconds: float = 10) -> None:
        """Wait for the workflow (on the worker, in this process) to have made the calls."""

        async def calls() -> list[str]:
            return self.names()

        await eventually(calls, lambda _: done(), seconds=seconds, every=0.01)


@dataclass
class Saga:
    """One test's worker, on a task queue of its own, and the bookings it started."""

    env: WorkflowEnvironment
    stubs: Stubs
    task_queue: str
    started: list[str] = field(default_factory=list)

    async def request(
        self,
        *,
        price: int | None = None,
        starts_in: timedelta = timedelta(days=3),
        hold_seconds: int = 600,
        reminders: list[int] | None = None,
        retry_declined_payment: bool = False,
    ) -> BookingRequest:
        terms = service_terms(
            buffer_after_minutes=10,
            price_amount=price,
            currency="EUR" if price is not None else None,
            hold_seconds=hold_seconds,
            reminders_minutes_before=reminders or [],
            retry_declined_payment=retry_declined_payment,
        )
        start = (await self.env.get_current_time()).replace(microsecond=0) + starts_in
        booking_id = str(uuid.uuid4())
        return BookingRequest(
            booking_id=booking_id,
            tenant_id="tenant-1",
            terms=terms,
            slot=Slot(start, start + timedelta(hours=1), ["staff-1", "room-1"]),
            customer={"name": "Grace", "email": "grace@example.test"},
            metadata={},
            idempotency_key=str(uuid.uuid4()),
        )

    async def book(self, request: BookingRequest) -> BookingState:
        """As the API does: update-with-start, answered by the claim."""
        self.started.append(workflow_id_for(request.booking_id))
        return await start_booking(self.env.client, self.task_queue, request)

    def handle(self, request: BookingRequest) -> Handle:
        return self.env.client.get_workflow_handle(
            workflow_id_for(request.booking_id), result_type=BookingState
        )

    async def state(self, request: BookingRequest) -> BookingState:
        state: BookingState = await self.handle(request).query(BookingWorkflow.state)
        return state

    async def until_state(
        self, request: BookingRequest, done: Callable[[BookingState], bool], seconds: float = 10
    ) -> BookingState:
        return await eventually(lambda: self.state(request), done, seconds=seconds, every=0.02)

    async def held(self, **terms: Any) -> tuple[BookingRequest, Payment]:
        """A priced booking, claimed and its card payment authorised."""
        request = await self.request(price=PRICE, **terms)
        state = await self.book(request)
        assert state.status == "pending_payment" and state.payment is not None
        return request, state.payment

    async def paid(self, **terms: Any) -> BookingRequest:
        """A priced booking its card paid for, confirmed and announced."""
        request, payment = await self.held(**terms)
        await self.signal(request, PaymentEvent("evt_paid", "authorized", str(payment.intent_id)))
        await self.until_state(request, lambda s: "notify:confirmed" in s.side_effects)
        return request

    async def signal(self, request: BookingRequest, event: PaymentEvent) -> None:
        await self.handle(request).signal(BookingWorkflow.payment_event, event)

    async def barrier(self, request: BookingRequest) -> None:
        """An update its validator turns away (no-show before the start): it reaches the
        workflow after every signal sent before it, and changes nothing."""
        with pytest.raises(WorkflowUpdateFailedError):
            await run_update(self.handle(request), BookingWorkflow.no_show, ActorRequest())


@pytest.fixture(scope="module")
async def env(settings: Settings) -> AsyncIterator[WorkflowEnvironment]:
    environment = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=venv_binary("temporal-test-server"),
        data_converter=data_converter(settings),
    )
    await register_search_attributes(environment.client)
    yield environment
    await environment.shutdown()


@pytest.fixture
def stubs() -> Stubs:
    return Stubs()


@pytest.fixture
async def saga(env: WorkflowEnvironment, stubs: Stubs) -> AsyncIterator[Saga]:
    """Its bookings still running at the end are terminated: the test server's clock is
    shared, and a workflow left waiting on a task queue nobody polls would stop it."""
    saga = Saga(env, stubs, f"saga-{uuid.uuid4().hex[:12]}")
    async with Worker(
        env.client,
        task_queue=saga.task_queue,
        workflows=[BookingWorkflow],
        activities=stubs.activities(),
        workflow_runner=SandboxedWorkflowRunner(),
    ):
        yield saga
        for workflow_id in saga.started:
            handle = env.client.get_workflow_handle(workflow_id)
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("the test is over")


def claim_error(err: ApiError) -> ApplicationError:
    """The update's own failure behind the API error start_booking raised."""
    update_failed = err.__cause__
    assert isinstance(update_failed, WorkflowUpdateFailedError)
    assert isinstance(update_failed.cause, ApplicationError)
    return update_failed.cause


# ---- the claim ----------------------------------------------------------------------


async def test_a_free_booking_is_confirmed_by_its_claim(saga: Saga, stubs: Stubs) -> None:
    """Its confirmation notice goes in with the claim's own transaction: nothing to pay,
    nothing to announce after."""
    request = await saga.request()
    state = await saga.book(request)
    assert state.status == "confirmed" and state.payment is None
    (claim,) = stubs.args("claim_booking", ClaimInput)
    assert claim.hold_expires_at is None
    assert claim.notice is not None and claim.notice.kind == "confirmed"
    assert claim.notice.booking["status"] == "confirmed"
    assert not PAYMENT_STEPS & set(stubs.names())
    assert stubs.notices() == []
    await record(saga.handle(request), "free_confirmed_by_claim")


async def test_a_taken_slot_answers_slot_unavailable_and_ends_rejected(
    saga: Saga, stubs: Stubs
) -> None:
    """No booking exists, so there is nothing to release (docs/lifecycle.md#claim)."""
    stubs.claim_fails = Failure.SLOT_UNAVAILABLE
    request = await saga.request()
    with pytest.raises(ApiError) as refused:
        await saga.book(request)
    assert refused.value.code == "slot_unavailable"
    assert claim_error(refused.value).type == Failure.SLOT_UNAVAILABLE
    final = await saga.handle(request).result()
    assert final.status == "rejected"
    assert "finish_booking" not in stubs.names()


async def test_a_claim_failed_for_another_reason_is_released_and_answers_claim_failed(
    saga: Saga, stubs: Stubs
) -> None:
    """The claim may have committed before its answer was lost: it is released, and the
    confirmation notice it carried is followed by a failed one (docs/lifecycle.md#claim)."""
    stubs.claim_fails = Failure.HOLD_LOST
    request = await saga.request()
    with pytest.raises(ApiError) as refused:
        await saga.book(request)
    assert claim_error(refused.value).type == Failure.CLAIM_FAILED
    final = await saga.handle(request).result()
    assert final.status == "failed"
    (finish,) = stubs.finishes()
    assert (finish.status, finish.release, finish.actor) == ("failed", True, "system")
    assert [n.kind for n in stubs.notices()] == ["failed"]


async def test_a_claim_whose_data_the_database_refuses_answers_data_refused(
    saga: Saga, stubs: Stubs
) -> None:
    """A repeat of the same request cannot succeed either: the answer says why."""
    stubs.claim_fails = Failure.DATA_REFUSED
    request = await saga.request()
    with pytest.raises(ApiError) as refused:
        await saga.book(request)
    assert (refused.value.status, refused.value.code) == (422, "data_refused")
    assert claim_error(refused.value).type == Failure.DATA_REFUSED
    assert (await saga.handle(request).result()).status == "failed"


# ---- payment --------------------------------------------------------------------------


async def test_an_unpaid_hold_expires_cancelling_the_payment_before_finishing_expired(
    env: WorkflowEnvironment, saga: Saga, stubs: Stubs
) -> None:
    request, payment = await saga.held(hold_seconds=600)
    (claim,) = stubs.args("claim_booking", ClaimInput)
    assert claim.notice is None and claim.hold_expires_at is not None
    assert payment.provider == CARDS and payment.intent_id
    await env.sleep(timedelta(seconds=601))
    final = await saga.handle(request).result()
    assert final.status == "expired"
    assert final.payment is not None and final.payment.status == "canceled"
    (finish,) = stubs.finishes()
    assert (finish.status, finish.release, finish.actor) == ("expired", True, "system")
    assert stubs.index("cancel_payment") < stubs.index("finish_booking")
    assert [n.kind for n in stubs.notices()] == ["expired"]


async def test_an_authorised_payment_is_captured_before_the_booking_is_confirmed(
    saga: Saga, stubs: Stubs
) -> None:
    """A confirmed booking is a paid one (docs/lifecycle.md#confirmation)."""
    request = await saga.paid()
    assert stubs.index("capture_payment") < stubs.index("confirm_booking")
    (confirm,) = stubs.args("confirm_booking", ConfirmInput)
    assert confirm.actor == "stripe"
    state = await saga.state(request)
    assert state.status == "confirmed" and state.payment is not None
    assert state.payment.captured_amount == PRICE
    assert [n.kind for n in stubs.notices()] == ["confirmed"]


async def test_a_repeated_payment_event_has_no_second_effect_and_another_intents_is_ignored(
    saga: Saga, stubs: Stubs
) -> None:
    """Webhooks are delivered at least once, and a tenant's intents share one endpoint
    (docs/lifecycle.md#payment)."""
    request, payment = await saga.held()
    intent = str(payment.intent_id)
    await saga.signal(request, PaymentEvent("evt_other", "failed", "pi_someone_else"))
    await saga.barrier(request)
    assert (await saga.state(request)).status == "pending_payment"
    authorised = PaymentEvent("evt_1", "authorized", intent)
    await saga.signal(request, authorised)
    await saga.signal(request, authorised)
    await saga.until_state(request, lambda s: "notify:confirmed" in s.side_effects)
    await saga.signal(request, authorised)
    await saga.barrier(request)
    assert (await saga.state(request)).status == "confirmed"
    names = stubs.names()
    assert names.count("capture_payment") == names.count("confirm_booking") == 1
    assert "cancel_payment" not in names and "finish_booking" not in names
    assert [n.kind for n in stubs.notices()] == ["confirmed"]


async def test_a_declined_card_voids_the_payment_then_releases_the_booking(
    saga: Saga, stubs: Stubs
) -> None:
    """The undos run newest first: the payment was opened after the claim
    (docs/lifecycle.md#compensation)."""
    request, payment = await saga.held()
    declined = PaymentEvent("evt_1", "failed", str(payment.intent_id), "Your card was declined.")
    await saga.signal(request, declined)
    final = await saga.handle(request).result()
    assert final.status == "failed" and "Your card was declined." in (final.error or "")
    assert final.payment is not None and final.payment.status == "canceled"
    stubs.assert_undone("cancel_payment")
    assert "capture_payment" not in stubs.names()
    await record(saga.handle(request), "declined_card_undone")


async def test_a_declined_card_may_be_retried_when_the_service_allows_it(
    saga: Saga, stubs: Stubs
) -> None:
    request, payment = await saga.held(retry_declined_payment=True)
    intent = str(payment.intent_id)
    await saga.signal(request, PaymentEvent("evt_1", "failed", intent, "declined"))
    await saga.barrier(request)
    assert (await saga.state(request)).status == "pending_payment"
    await saga.signal(request, PaymentEvent("evt_2", "authorized", intent))
    state = await saga.until_state(request, lambda s: s.status == "confirmed")
    assert state.payment is not None and state.payment.captured_amount == PRICE
    assert "cancel_payment" not in stubs.names() and "finish_booking" not in stubs.names()


async def test_mark_paid_settles_at_the_venue_then_cancels_the_card_payment(
    saga: Saga, stubs: Stubs
) -> None:
    """The venue's payment takes the card's place; the card is cancelled as a side
    effect, after the confirmation (docs/lifecycle.md#confirmation)."""
    request, _ = await saga.held()
    state = await run_update(
        saga.handle(request), BookingWorkflow.mark_paid, ActorRequest("operator")
    )
    assert state.status == "confirmed"
    assert state.payment is not None and state.payment.provider == PAY_AT_VENUE
    assert state.payment.captured_amount == PRICE
    (capture,) = stubs.args("capture_payment", PaymentCall)
    assert capture.payment.provider == PAY_AT_VENUE
    (confirm,) = stubs.args("confirm_booking", ConfirmInput)
    assert confirm.actor == "operator"
    await saga.until_state(request, lambda s: s.side_effects.get("payment:card") == "done")
    (cancel,) = stubs.args("cancel_payment", PaymentCall)
    assert cancel.payment.provider == CARDS
    assert stubs.index("capture_payment") < stubs.index("confirm_booking")
    assert stubs.index("confirm_booking") < stubs.index("cancel_payment")


# ---- changes to a live booking --------------------------------------------------------


@pytest.mark.parametrize(
    ("before_start", "refund"),
    [
        (timedelta(hours=48), PRICE),  # before free_until_hours_before: in full
        (timedelta(hours=3), PRICE * 50 // 100),  # after it: late_refund_percent
        (-timedelta(minutes=10), 0),  # once started: nothing
    ],
    ids=["in-full", "late", "started"],
)
async def test_a_cancel_of_a_paid_booking_refunds_by_the_policy_band(
    env: WorkflowEnvironment, saga: Saga, stubs: Stubs, before_start: timedelta, refund: int
) -> None:
    """docs/lifecycle.md#cancellation-refunds, measured when the workflow handles it."""
    request = await saga.paid(starts_in=timedelta(days=3))
    await env.sleep(request.slot.start - before_start - await env.get_current_time())
    state = await run_update(
        saga.handle(request), BookingWorkflow.cancel, CancelRequest("ill", "front-desk")
    )
    assert state.status == "cancelled"
    assert stubs.refunds() == ([refund] if refund else [])
    assert state.payment is not None and state.payment.refunded_amount == refund
    (finish,) = stubs.finishes()
    assert (finish.status, finish.release) == ("cancelled", True)
    assert (finish.actor, finish.reason) == ("front-desk", "ill")
    if refund:
        assert stubs.index("refund_payment") < stubs.index("finish_booking")
    await stubs.until(lambda: bool(stubs.notices("cancelled")))
    assert (await saga.handle(request).result()).status == "cancelled"


async def test_a_cancel_refused_by_the_database_can_be_asked_again_without_a_second_refund(
    saga: Saga, stubs: Stubs
) -> None:
    """A cancel that failed after its refund refunds only what is still due when asked
    again (docs/lifecycle.md#cancellation-refunds)."""
    request = await saga.paid()
    stubs.finish_refusals = 1
    cancel = CancelRequest("ill", "api")
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await run_update(saga.handle(request), BookingWorkflow.cancel, cancel)
    assert is_failure(refused.value.cause, Failure.DATA_REFUSED)
    assert (await saga.state(request)).status == "confirmed"
    state = await run_update(saga.handle(request), BookingWorkflow.cancel, cancel)
    assert state.status == "cancelled"
    assert stubs.refunds() == [PRICE]
    assert state.payment is not None and state.payment.refunded_amount == PRICE
    assert [f.status for f in stubs.finishes()] == ["cancelled", "cancelled"]
    await record(saga.handle(request), "cancel_refused_then_repeated")


# ---- timers ---------------------------------------------------------------------------


async def test_reminders_are_sent_at_each_offset_then_the_booking_completes_at_its_end(
    env: WorkflowEnvironment, saga: Saga, stubs: Stubs
) -> None:
    """Durable timers (docs/lifecycle.md#reminders-and-completion)."""
    request = await saga.request(starts_in=timedelta(days=3), reminders=[1440, 60])
    await saga.book(request)

    def reminders() -> list[str]:
        return [n.key for n in stubs.notices("reminder")]

    await env.sleep(timedelta(days=2, minutes=-1))
    assert reminders() == []
    await env.sleep(timedelta(minutes=2))  # a day before the start
    await stubs.until(lambda: reminders() == ["1440:1"])
    await env.sleep(timedelta(hours=23))  # just past an hour before
    await stubs.until(lambda: reminders() == ["1440:1", "60:1"])
    assert stubs.finishes() == []
    await env.sleep(timedelta(hours=2))  # past the end
    final = await saga.handle(request).result()
    assert final.status == "completed" and final.reminders_sent == [1440, 60]
    (finish,) = stubs.finishes()
    assert (finish.status, finish.release, finish.actor) == ("completed", False, "system")
    assert [n.kind for n in stubs.notices()] == ["reminder", "reminder", "completed"]


async def test_a_reschedule_re_arms_the_reminders_for_the_new_start(
    env: WorkflowEnvironment, saga: Saga, stubs: Stubs
) -> None:
    """Every reminder still ahead of the new start is due again, even one sent for the old
    start (docs/lifecycle.md#reminders-and-completion)."""
    request = await saga.request(starts_in=timedelta(days=1), reminders=[60])
    await saga.book(request)
    await env.sleep(timedelta(hours=23, minutes=1))
    await stubs.until(lambda: [n.key for n in stubs.notices("reminder")] == ["60:1"])
    old = request.slot
    new = Slot(old.start + timedelta(days=2), old.end + timedelta(days=2), old.resource_ids)
    state = await run_update(
        saga.handle(request), BookingWorkflow.reschedule, RescheduleRequest(new, "api")
    )
    assert state.version == 2 and state.slot == new and state.reminders_sent == []
    (move,) = stubs.args("move_booking", MoveInput)
    assert (move.slot, move.version) == (new, 2)
    assert move.widened == (new.start, new.end + timedelta(minutes=10))
    await env.sleep(timedelta(days=2))  # past an hour before the new start
    await stubs.until(lambda: [n.key for n in stubs.notices("reminder")] == ["60:1", "60:2"])
    assert [(n.kind, n.key) for n in stubs.notices()] == [
        ("reminder", "60:1"),
        ("rescheduled", "2"),
        ("reminder", "60:2"),
    ]


# ---- side effects and undos -----------------------------------------------------------


async def test_a_calendar_write_failing_for_good_is_recorded_and_the_paid_booking_stands(
    saga: Saga, stubs: Stubs
) -> None:
    """A side effect never undoes a paid booking (docs/lifecycle.md#side-effects)."""
    stubs.calendar_connected = stubs.calendar_down = True
    request = await saga.paid()
    state = await saga.until_state(request, lambda s: "calendar" in s.side_effects)
    await stubs.until(lambda: "record_side_effect" in stubs.names())
    (recorded,) = stubs.args("record_side_effect", SideEffectOutcome)
    assert recorded.step == "calendar" and recorded.outcome.startswith("failed")
    assert "calendar unreachable" in recorded.outcome
    assert state.status == "confirmed" and state.side_effects["calendar"] == recorded.outcome
    names = stubs.names()
    assert "refund_payment" not in names and "finish_booking" not in names
    assert "delete_calendar_events" not in names


async def test_a_no_show_takes_the_booking_off_its_calendars(
    saga: Saga, stubs: Stubs, env: WorkflowEnvironment
) -> None:
    """Its time is free again, so its calendars show it no longer (from 0.3.0)."""
    stubs.calendar_connected = True
    request = await saga.request(starts_in=timedelta(hours=1))
    await saga.book(request)
    await stubs.until(lambda: "sync_calendar_events" in stubs.names())
    await env.sleep(timedelta(hours=1, minutes=5))
    state = await run_update(saga.handle(request), BookingWorkflow.no_show, ActorRequest())
    assert state.status == "no_show"
    assert stubs.index("finish_booking") < stubs.index("delete_calendar_events")
    await record(saga.handle(request), "no_show_leaves_calendars")


async def test_an_undo_refused_for_good_is_recorded_and_the_remaining_undos_still_run(
    saga: Saga, stubs: Stubs
) -> None:
    """docs/lifecycle.md#compensation: the refused capture fails the booking, the refused
    cancel of its payment is recorded, and the booking is still released."""
    stubs.capture_refused = stubs.cancel_refused = True
    request, payment = await saga.held()
    await saga.signal(request, PaymentEvent("evt_1", "authorized", str(payment.intent_id)))
    final = await saga.handle(request).result()
    assert final.status == "failed" and "cannot be captured" in (final.error or "")
    (recorded,) = stubs.args("record_side_effect", SideEffectOutcome)
    assert recorded.step == "undo:void_payment" and recorded.outcome.startswith("failed")
    assert "cannot be cancelled" in final.side_effects["undo:void_payment"]
    stubs.assert_undone("cancel_payment", "record_side_effect")
    assert "confirm_booking" not in stubs.names()
    await record(saga.handle(request), "undo_refused_recorded")


async def test_cancelling_the_workflow_while_pending_payment_undoes_the_booking(
    saga: Saga, stubs: Stubs
) -> None:
    """Cancel workflow in the Temporal UI runs the compensation
    (docs/lifecycle.md#operating-in-the-temporal-ui)."""
    request, _ = await saga.held()
    handle = saga.handle(request)
    await handle.cancel()
    await stubs.until(lambda: bool(stubs.notices("cancelled")))
    assert stubs.index("cancel_payment") < stubs.index("finish_booking")
    (finish,) = stubs.finishes()
    assert (finish.status, finish.release, finish.actor) == ("cancelled", True, "system")
    assert finish.reason == "the workflow was cancelled"
    with pytest.raises(WorkflowFailureError) as ended:
        await handle.result()
    assert isinstance(ended.value.cause, CancelledError)
    assert (await handle.describe()).status == WorkflowExecutionStatus.CANCELED
    await record(handle, "workflow_cancelled_while_held")
