"""The cancellation policy (docs/api.md#services, `cancellation`): how much of a payment
comes back."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contract import ServiceTerms


def refund_amount(terms: ServiceTerms, captured: int, start: datetime, now: datetime) -> int:
    """Full refund until `free_until_hours_before` the start, `late_refund_percent` after
    that, nothing once the booking has started. Rounded down to a minor unit."""
    if now >= start:
        return 0
    if now <= start - timedelta(hours=terms.free_until_hours_before):
        return captured
    return captured * terms.late_refund_percent // 100
