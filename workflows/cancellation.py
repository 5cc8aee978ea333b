"""The cancellation policy (docs/api.md#services, `cancellation`): how much of a payment
comes back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol


class CancellationPolicy(Protocol):
    """What the refund rule reads of a service's terms (`ServiceTerms` as booked, or the
    invariant check's reading of a service's `cancellation`)."""

    @property
    def free_until_hours_before(self) -> int: ...

    @property
    def late_refund_percent(self) -> int: ...


def refund_amount(terms: CancellationPolicy, captured: int, start: datetime, now: datetime) -> int:
    """Full refund until `free_until_hours_before` the start, `late_refund_percent` after
    that, nothing once the booking has started. Rounded down to a minor unit."""
    if now >= start:
        return 0
    if now <= start - timedelta(hours=terms.free_until_hours_before):
        return captured
    return captured * terms.late_refund_percent // 100
