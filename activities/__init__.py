"""Temporal activities: every side effect of a workflow, each idempotent.

`build_activities` binds them to shared clients for `worker.py`.
"""

from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from activities.bookings import BookingStore
from activities.calendar import CalendarActivities, CalendarProvider, NoCalendars
from activities.notifications import NotificationActivities
from activities.payments import PayAtVenue, PaymentActivities, PaymentProvider


def build_activities(
    engine: AsyncEngine,
    *,
    calendars: CalendarProvider | None = None,
    cards: PaymentProvider | None = None,
) -> Sequence[Callable[..., Any]]:
    """Without a card provider, priced bookings are paid at the venue (mark-paid)."""
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    store = BookingStore(sessions)
    payments = PaymentActivities(cards or PayAtVenue())
    calendar = CalendarActivities(calendars or NoCalendars())
    notifications = NotificationActivities(sessions)
    return [
        store.claim,
        store.confirm,
        store.finish,
        store.move,
        store.save_payment,
        store.record_side_effect,
        payments.authorize,
        payments.capture,
        payments.cancel,
        payments.refund,
        calendar.connected,
        calendar.sync,
        calendar.delete,
        notifications.notify,
    ]
