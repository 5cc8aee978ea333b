"""The worker's Prometheus metrics (docs/operations.md#metrics): what only the activities
see as it happens (claims and conflicts, expired holds, payments, deliveries, calendar
syncs, steps failing for good), counted where the outcome is known.

They live in a registry of their own, served by the worker process on WORKER_METRICS_PORT
(`serve`): the API imports the activity modules too (its workflow stubs do), and its
/metrics must not show these as zeros beside the worker's real counts. Labels are kinds
and outcomes only, never a tenant's or a booking's id.

Each activity carries one decorator line; the decorators read the outcome off the
result or the error and leave both untouched."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    start_http_server,
)
from temporalio import activity
from temporalio.exceptions import ApplicationError

from contract import BookingStatus, Failure

P = ParamSpec("P")
T = TypeVar("T")

REGISTRY = CollectorRegistry(auto_describe=True)
for _collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
    REGISTRY.register(_collector)

CLAIMS = Counter(
    "holdfast_claims_total",
    "Slot claims answered: by step (claim, reschedule) and outcome (claimed, conflict: "
    "a resource was taken; repeated: a retried claim that found its booking)",
    ["step", "outcome"],
    registry=REGISTRY,
)
BOOKING_STATUS_CHANGES = Counter(
    "holdfast_booking_status_changes_total",
    "Bookings entering a status (claimed as pending_payment or confirmed, then final)",
    ["status"],
    registry=REGISTRY,
)
HOLDS_EXPIRED = Counter(
    "holdfast_holds_expired_total",
    "Holds released as they expired unpaid",
    registry=REGISTRY,
)
STEP_FAILURES = Counter(
    "holdfast_saga_step_failures_total",
    "Activities failed for good (non-retryable, or out of attempts), by activity and "
    "error type; a claim's conflict is an answer, counted in holdfast_claims_total",
    ["activity", "error"],
    registry=REGISTRY,
)
STEP_RETRIES = Counter(
    "holdfast_activity_retries_total",
    "Activity attempts that failed and will be retried, by activity",
    ["activity"],
    registry=REGISTRY,
)
PAYMENTS = Counter(
    "holdfast_payments_total",
    "Payment operations by provider, operation (authorize, capture, cancel, refund) and "
    "outcome (the payment's status after it, or declined, refused, error)",
    ["provider", "operation", "outcome"],
    registry=REGISTRY,
)
MESSAGES_SENT = Counter(
    "holdfast_notifications_sent_total",
    "Emails and text messages the provider accepted",
    ["channel"],
    registry=REGISTRY,
)
MESSAGE_SEND_ERRORS = Counter(
    "holdfast_notification_send_errors_total",
    "Send attempts that failed (retried, or refused for good)",
    ["channel"],
    registry=REGISTRY,
)
MESSAGES_FAILED = Counter(
    "holdfast_notifications_failed_total",
    "Messages given up on, recorded as failed",
    registry=REGISTRY,
)
WEBHOOK_ATTEMPTS = Counter(
    "holdfast_webhook_attempts_total",
    "Webhook delivery attempts by outcome (delivered, failed, stopped: the endpoint is "
    "gone; error: the attempt could not be made)",
    ["outcome"],
    registry=REGISTRY,
)
WEBHOOKS_FAILED = Counter(
    "holdfast_webhook_deliveries_failed_total",
    "Webhook deliveries given up on after 3 days of failures",
    registry=REGISTRY,
)
CALENDAR_SYNCS = Counter(
    "holdfast_calendar_syncs_total",
    "Calendar connection syncs by outcome (active, reauth_required, refused, throttled, "
    "gone, error)",
    ["outcome"],
    registry=REGISTRY,
)
DISPATCHED = Counter(
    "holdfast_dispatched_total",
    "Delivery workflows the dispatcher started, by kind (message, webhook)",
    ["kind"],
    registry=REGISTRY,
)
DISPATCH_FAILURES = Counter(
    "holdfast_dispatch_failures_total",
    "Dispatcher drains that failed (retried on the next wake-up)",
    registry=REGISTRY,
)

# Failures that are answers to the caller, not a step going wrong.
_ANSWERS = {Failure.SLOT_UNAVAILABLE.value, Failure.INVALID_STATE.value}


def serve(port: int | None, addr: str = "0.0.0.0") -> WSGIServer | None:
    """The worker's /metrics on `port`, from a daemon thread (the process's exit ends
    it); None: not served."""
    if not port:
        return None
    server, _ = start_http_server(port, addr, registry=REGISTRY)
    return server


def _error_type(err: BaseException) -> str:
    if isinstance(err, ApplicationError) and err.type:
        return err.type
    return type(err).__name__


def failed_for_good(info: activity.Info, err: BaseException) -> bool:
    """Whether Temporal will not try this activity again: a non-retryable error, one its
    retry policy names, or its last attempt. (A timeout or schedule-to-close deadline
    ends it without an error here: those show as retries.)"""
    if isinstance(err, ApplicationError) and err.non_retryable:
        return True
    policy = info.retry_policy
    if policy is None:
        return False
    if _error_type(err) in (policy.non_retryable_error_types or ()):
        return True
    return 0 < policy.maximum_attempts <= info.attempt


def count_failure(info: activity.Info, err: BaseException) -> bool:
    """Counts a failed attempt (tracing.py's interceptor calls it for every activity);
    returns whether it was final."""
    final = failed_for_good(info, err)
    kind = _error_type(err)
    if not final:
        STEP_RETRIES.labels(info.activity_type).inc()
    elif kind not in _ANSWERS:
        STEP_FAILURES.labels(info.activity_type, kind).inc()
    return final


# ---- decorators, one line on each activity ------------------------------------------


def _async(
    on_result: Callable[[tuple[Any, ...], Any], None],
    on_error: Callable[[tuple[Any, ...], BaseException], None] | None = None,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    def wrap(step: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(step)
        async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                result = await step(*args, **kwargs)
            except Exception as err:
                if on_error is not None:
                    on_error(args, err)
                raise
            on_result(args, result)
            return result

        return counted

    return wrap


def _sync(
    on_result: Callable[[tuple[Any, ...], Any], None],
    on_error: Callable[[tuple[Any, ...], BaseException], None] | None = None,
) -> Callable[[Callable[P, T]], Callable[P, T]]:
    def wrap(step: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(step)
        def counted(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                result = step(*args, **kwargs)
            except Exception as err:
                if on_error is not None:
                    on_error(args, err)
                raise
            on_result(args, result)
            return result

        return counted

    return wrap


def _conflict(step: str) -> Callable[[tuple[Any, ...], BaseException], None]:
    def counted(_: tuple[Any, ...], err: BaseException) -> None:
        if _error_type(err) == Failure.SLOT_UNAVAILABLE:
            CLAIMS.labels(step, "conflict").inc()

    return counted


def _claimed(args: tuple[Any, ...], created: Any) -> None:
    """`claim_booking(self, ClaimInput) -> bool` (False: the booking existed already)."""
    if created is False:
        CLAIMS.labels("claim", "repeated").inc()
        return
    CLAIMS.labels("claim", "claimed").inc()
    held = args[1].hold_expires_at is not None
    status = BookingStatus.PENDING_PAYMENT if held else BookingStatus.CONFIRMED
    BOOKING_STATUS_CHANGES.labels(status.value).inc()


counts_claim = _async(_claimed, _conflict("claim"))
counts_move = _async(
    lambda _, __: CLAIMS.labels("reschedule", "claimed").inc(), _conflict("reschedule")
)
counts_confirm = _async(
    lambda _, __: BOOKING_STATUS_CHANGES.labels(BookingStatus.CONFIRMED.value).inc()
)


def _finished(args: tuple[Any, ...], standing: Any) -> None:
    """`finish_booking(self, FinishInput) -> the status that stands`: counted when it is
    the one asked for (a booking already final keeps its own)."""
    asked = args[1].status
    if standing != asked:
        return
    BOOKING_STATUS_CHANGES.labels(asked).inc()
    if asked == BookingStatus.EXPIRED:
        HOLDS_EXPIRED.inc()


counts_finish = _async(_finished)


def counts_payment(operation: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """For `PaymentActivities`' sync methods `(self, PaymentCall) -> Payment`."""

    def done(_: tuple[Any, ...], payment: Any) -> None:
        PAYMENTS.labels(payment.provider, operation, payment.status).inc()

    def failed(args: tuple[Any, ...], err: BaseException) -> None:
        kind = _error_type(err)
        outcome = (
            "declined"
            if kind == Failure.PAYMENT_DECLINED
            else "refused"
            if isinstance(err, ApplicationError) and err.non_retryable
            else "error"
        )
        PAYMENTS.labels(args[1].payment.provider, operation, outcome).inc()

    return _sync(done, failed)


def _message_counters(
    channel: str,
) -> tuple[
    Callable[[tuple[Any, ...], Any], None], Callable[[tuple[Any, ...], BaseException], None]
]:
    def sent(_: tuple[Any, ...], accepted: Any) -> None:
        if accepted is not None:  # None: sent or given up before
            MESSAGES_SENT.labels(channel).inc()

    def failed(_: tuple[Any, ...], __: BaseException) -> None:
        MESSAGE_SEND_ERRORS.labels(channel).inc()

    return sent, failed


counts_email = _async(*_message_counters("email"))
counts_sms = _sync(*_message_counters("sms"))


def _recorded(args: tuple[Any, ...], _: Any) -> None:
    """`record_message(self, MessageOutcome)`: no provider id is a message given up."""
    if args[1].provider_id is None:
        MESSAGES_FAILED.inc()


counts_record = _async(_recorded)
counts_webhook_attempt = _async(
    lambda _, outcome: WEBHOOK_ATTEMPTS.labels(str(outcome)).inc(),
    lambda _, __: WEBHOOK_ATTEMPTS.labels("error").inc(),
)
counts_webhook_give_up = _async(lambda _, __: WEBHOOKS_FAILED.inc())


def _synced(_: tuple[Any, ...], outcome: Any) -> None:
    """`sync_calendar(self, ConnectionInput) -> SyncOutcome`."""
    kind = "gone" if outcome.gone else "refused" if outcome.error else str(outcome.status)
    CALENDAR_SYNCS.labels(kind).inc()


def _sync_failed(_: tuple[Any, ...], err: BaseException) -> None:
    throttled = _error_type(err) == "CalendarThrottled"  # calendar_clients.retry_later
    CALENDAR_SYNCS.labels("throttled" if throttled else "error").inc()


counts_calendar_sync = _sync(_synced, _sync_failed)
