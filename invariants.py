"""The invariant check: Holdfast's promises, checked against a running system's state
(docs/operations.md#invariants). One function, `check`, used by the fault tests, the load
test and `holdfast doctor`:

- no two live allocations of a resource overlap;
- every booking's row says what its workflow says (the `BookingStatus` it publishes);
- no hold stays alive past its expiry by more than the grace;
- no final booking keeps a live allocation;
- every confirmed priced booking is captured, every cancelled one refunded per its
  policy (or its refund's refusal recorded for operators);
- every message and webhook delivery is delivered, or failing visibly (an error
  recorded).

Changes in flight are late, not broken: a rule only looks at rows last changed more than
`settle` ago. Run it on a quiet system (after a test, after a load run) for a verdict on
everything.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contract import BOOKING_STATUS, BookingStatus
from db import invariants as rows
from db.invariants import Broken
from db.sessions import Sessions
from workflows.cancellation import refund_amount

HOLD_GRACE = timedelta(seconds=30)
# Workflows are described this many at a time: bounded load on Temporal.
_DESCRIBE_AT_ONCE = 16


@dataclass
class Report:
    """What the check found: every broken promise, and how much it looked at."""

    broken: list[Broken] = field(default_factory=list)
    checked_bookings: int = 0

    @property
    def ok(self) -> bool:
        return not self.broken

    def lines(self) -> list[str]:
        if self.ok:
            return [f"ok: {self.checked_bookings} bookings checked, every invariant holds"]
        return [f"{b.rule}: {b.subject}: {b.detail}" for b in self.broken]


async def check(
    sessions: Sessions,
    temporal: Client | None,
    *,
    tenant_id: uuid.UUID | None = None,
    settle: timedelta = timedelta(seconds=30),
    limit: int = 5000,
) -> Report:
    """Check every invariant on `sessions` (acting across tenants, or for `tenant_id`);
    without `temporal`, the rule comparing rows with workflows is skipped. `limit`
    bounds how many of the newest bookings are compared with their workflows."""
    now = datetime.now(UTC)
    settled = now - settle
    report = Report()
    async with sessions.transaction() as db:
        report.broken += await rows.overlapping_allocations(db, tenant_id)
        report.broken += await rows.holds_past_expiry(db, tenant_id, now - HOLD_GRACE)
        report.broken += await rows.final_with_live_allocations(db, tenant_id, settled)
        report.broken += [
            b for r in await rows.paid_bookings(db, tenant_id, settled) for b in _money(r)
        ]
        report.broken += await rows.undelivered(db, tenant_id, settled)
        statuses = await rows.booking_statuses(db, tenant_id, settled, limit)
    report.checked_bookings = len(statuses)
    if temporal is not None:
        report.broken += await _workflows_agree(temporal, statuses)
    return report


def _money(row: Any) -> list[Broken]:
    """A settled paid booking: captured if it was kept, refunded per policy if cancelled."""
    payment: dict[str, Any] = row.payment
    amount, captured = int(payment.get("amount") or 0), int(payment.get("captured_amount") or 0)
    refunded = int(payment.get("refunded_amount") or 0)
    subject = str(row.id)
    if row.status in (BookingStatus.CONFIRMED, BookingStatus.COMPLETED, BookingStatus.NO_SHOW):
        if amount and captured < amount:
            return [
                Broken(
                    "paid_is_captured", subject, f"{row.status}: {captured} of {amount} captured"
                )
            ]
        return []
    if not captured or "payment:refund" in (row.side_effects or {}):
        return []  # nothing was taken, or the refund's refusal is recorded for operators
    if refunded > captured:
        return [Broken("refund_per_policy", subject, f"refunded {refunded} of {captured} captured")]
    if row.cancelled_at is None or row.service_updated_at > row.created_at:
        return []  # the terms booked under are no longer on record: only the bound holds
    due = refund_amount(_Policy.of(row.cancellation), captured, row.start_at, row.cancelled_at)
    if refunded != due:
        return [Broken("refund_per_policy", subject, f"refunded {refunded}, the policy says {due}")]
    return []


@dataclass(frozen=True)
class _Policy:
    """A service's `cancellation`, as the refund rule reads it."""

    free_until_hours_before: int
    late_refund_percent: int

    @classmethod
    def of(cls, cancellation: dict[str, Any]) -> _Policy:
        return cls(
            int(cancellation.get("free_until_hours_before", 0)),
            int(cancellation.get("late_refund_percent", 0)),
        )


async def _workflows_agree(temporal: Client, statuses: Sequence[Any]) -> list[Broken]:
    """Each booking's row status against the status its workflow last published."""
    gate = asyncio.Semaphore(_DESCRIBE_AT_ONCE)

    async def one(row: Any) -> Broken | None:
        async with gate:
            try:
                described = await temporal.get_workflow_handle(row.workflow_id).describe()
            except RPCError as err:
                if err.status == RPCStatusCode.NOT_FOUND:
                    return None  # past the namespace's retention: nothing left to compare
                raise
        published = described.typed_search_attributes.get(BOOKING_STATUS)
        if published != row.status:
            return Broken(
                "row_matches_workflow",
                str(row.id),
                f"row says {row.status}, workflow {row.workflow_id} says {published}",
            )
        return None

    found = await asyncio.gather(*(one(r) for r in statuses))
    return [b for b in found if b is not None]
