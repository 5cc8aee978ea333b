"""Temporal activities: every side effect of a workflow, each idempotent.

`build_activities` binds them to shared clients for `worker.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.client import Client

from activities.bookings import BookingStore
from activities.calendar import CalendarActivities, CalendarRequests, ExportRequests
from activities.calendar_access import CalendarAccess
from activities.calendar_export import CalendarExportActivities
from activities.calendar_sync import CalendarSyncActivities
from activities.messages import MessageActivities
from activities.notifications import NotificationActivities
from activities.payments import ClientSecrets, PayAtVenue, PaymentActivities, PaymentProvider
from activities.sms_providers import SmsProvider, create_sms
from activities.smtp import Mailer
from activities.waitlist import WaitlistStore
from activities.webhooks import WebhookActivities
from activities.worker_loop import WorkerLoop
from db.sessions import Sessions
from db.tenancy import Tenancy, across_tenants
from settings import Settings


def acting_step() -> Tenancy:
    """What a step's database sessions act for (docs/security.md#row-level-security): every
    tenant, since a step finds its rows by the booking's or the connection's id, recorded
    in the audit log as the workflow and the step (`worker` off an activity's context, as
    in a payment thread's database step)."""
    try:
        info = activity.info()
    except RuntimeError:
        return across_tenants("worker")
    return across_tenants(f"workflow:{info.workflow_id}/{info.activity_type}")


@dataclass(frozen=True)
class Outbound:
    """How messages leave: the mail server, the SMS provider, and the rules for webhook
    targets. Without a mail server or SMS provider, such messages fail, visibly."""

    mailer: Mailer | None = None
    sms: SmsProvider | None = None
    allow_private_targets: bool = False
    webhook_timeout: float = 10.0

    @classmethod
    def from_settings(cls, settings: Settings) -> Outbound:
        return cls(
            mailer=Mailer(settings) if settings.smtp_host else None,
            sms=create_sms(settings),
            allow_private_targets=settings.webhook_allow_private_targets,
            webhook_timeout=settings.webhook_timeout_seconds,
        )


def build_activities(
    engine: AsyncEngine,
    task_queue: str,
    client: Client,
    *,
    calendars: CalendarRequests | None = None,
    cards: PaymentProvider | None = None,
) -> Sequence[Callable[..., Any]]:
    """The booking saga's. Without a card provider, priced bookings are paid at the venue
    (mark-paid). Called on the worker's event loop, which the payment threads hand their
    database steps to."""
    sessions = Sessions.on(engine, acting_step)
    loop = WorkerLoop(asyncio.get_running_loop())
    store = BookingStore(sessions)
    waitlist = WaitlistStore(sessions, client, task_queue)
    payments = PaymentActivities(cards or PayAtVenue(), ClientSecrets(sessions, loop))
    calendar = CalendarActivities(calendars or ExportRequests(sessions, task_queue))
    notifications = NotificationActivities(sessions)
    return [
        store.claim,
        store.claim_series,
        store.extend_hold,
        waitlist.offer,
        waitlist.end,
        store.confirm,
        store.finish,
        store.move,
        store.save_payment,
        store.save_series_payment,
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


def build_delivery_activities(
    engine: AsyncEngine,
    outbound: Outbound,
    calendars: CalendarAccess,
    temporal: Client,
    delivery_queue: str,
) -> Sequence[Callable[..., Any]]:
    """The outward work's: messages, webhook deliveries, calendar syncs and exports.
    Called on the worker's event loop, which the SMS and calendar threads hand their
    database steps to."""
    sessions = Sessions.on(engine, acting_step)
    loop = WorkerLoop(asyncio.get_running_loop())
    messages = MessageActivities(sessions, loop, mailer=outbound.mailer, sms=outbound.sms)
    syncs = CalendarSyncActivities(sessions, loop, calendars, temporal, delivery_queue)
    exports = CalendarExportActivities(sessions, loop, calendars)
    webhooks = WebhookActivities(
        sessions,
        allow_private=outbound.allow_private_targets,
        timeout=outbound.webhook_timeout,
    )
    return [
        messages.send_email,
        messages.send_sms,
        messages.record,
        webhooks.attempt,
        webhooks.give_up,
        syncs.sync,
        syncs.disconnect,
        exports.export,
    ]
