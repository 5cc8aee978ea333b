"""A service row as the rest of the code takes it: the engine's rules for its slots, and
the terms a booking keeps (later edits do not change a running booking)."""

from __future__ import annotations

from contract import ServiceTerms
from db.models import Service
from scheduling.engine import Requirement, ServiceRules


def service_rules(row: Service) -> ServiceRules:
    return ServiceRules(
        timezone=row.timezone,
        duration=row.duration_minutes * 60,
        interval=row.slot_interval_minutes * 60,
        requirements=tuple(
            Requirement(
                kind=r["kind"],
                tags_any=frozenset(r.get("tags_any", ())),
                tags_all=frozenset(r.get("tags_all", ())),
                resource_ids=frozenset(r.get("resource_ids", ())),
            )
            for r in row.requirements
        ),
        buffer_before=row.buffer_before_minutes * 60,
        buffer_after=row.buffer_after_minutes * 60,
        min_notice=row.min_notice_minutes * 60,
        max_advance_days=row.max_advance_days,
        seats=row.seats_per_booking,
        service_id=str(row.id),
    )


def terms_of(service: Service) -> ServiceTerms:
    return ServiceTerms(
        service_id=str(service.id),
        code=service.code,
        name=service.name,
        buffer_before_minutes=service.buffer_before_minutes,
        buffer_after_minutes=service.buffer_after_minutes,
        price_amount=service.price_amount,
        currency=service.price_currency,
        hold_seconds=service.hold_seconds,
        free_until_hours_before=service.cancellation["free_until_hours_before"],
        late_refund_percent=service.cancellation["late_refund_percent"],
        reminders_minutes_before=list(service.reminders_minutes_before),
        retry_declined_payment=service.retry_declined_payment,
        seats_per_booking=service.seats_per_booking,
    )
