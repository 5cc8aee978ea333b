"""A service's terms as a booking carries them, for tests that need no catalogue."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from contract import ServiceTerms

MASSAGE = ServiceTerms(
    service_id="svc-1",
    code="massage-60",
    name="Massage",
    buffer_before_minutes=0,
    buffer_after_minutes=0,
    price_amount=6500,
    currency="EUR",
    hold_seconds=300,
    free_until_hours_before=24,
    late_refund_percent=50,
    reminders_minutes_before=[],
)


def terms(**changes: Any) -> ServiceTerms:
    """The massage's terms with `changes`."""
    return replace(MASSAGE, **changes)
