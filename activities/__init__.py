"""Temporal activities: every side effect of a workflow, each idempotent.

`build_activities` binds them to shared clients for `worker.py`.
"""

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from activities.bookings import BookingStore
from activities.calendar import CalendarActivities, CalendarProvider, NoCalendars
from activities.notifications import NotificationActivities
from activities.payments import ClientSecrets, PayAtVenue, PaymentActivities, PaymentProvider
from db.sessions import Sessions


def build_activities(
    engine: AsyncEngine,
    *,
    calendars: CalendarProvider | None = None,
    cards: PaymentProvider | None = None,
) -> Sequence[Callable[..., Any]]:
    """Without a card provider, priced bookings are paid at the venue (mark-paid). Called
    on the worker's event loop, which the payment threads hand their database writes to."""
    sessions = Sessions.on(engine)
    store = BookingStore(sessions)
    secrets = ClientSecrets(sessions, asyncio.get_running_loop())
    payments = PaymentActivities(cards or PayAtVenue(), secrets)
    calendar = CalendarActivities(calendars or NoCalendars())
    notifications = NotificationActivities(sessions.transaction)
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
