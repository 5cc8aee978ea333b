"""When a confirmed booking next needs its workflow: a reminder, or its end."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from contract import BookingState, ServiceTerms


def next_reminder(
    terms: ServiceTerms, state: BookingState, now: datetime
) -> tuple[int | None, datetime]:
    """The earliest reminder still ahead (its offset in minutes, its moment), or None and
    the booking's end. Reminders whose moment passed before the booking was made (or
    moved) are skipped, not sent late."""
    start = state.slot.start
    ahead = [
        (start - timedelta(minutes=m), m)
        for m in terms.reminders_minutes_before
        if m not in state.reminders_sent and start - timedelta(minutes=m) > now
    ]
    if ahead:
        due, minutes = min(ahead)
        return minutes, due
    return None, state.slot.end
