"""Webhook delivery attempts (docs/webhooks.md): the event's stored body, signed at the
moment of sending (Standard Webhooks), posted to the endpoint's checked address, and
recorded with its answer. An endpoint's failure is an answer, not an activity failure:
the delivery workflow decides when to try again."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from enum import StrEnum

from temporalio import activity

from activities import metrics
from activities.refusals import refusals_are_final
from activities.webhook_http import post_webhook, webhook_client
from db import webhook_deliveries as deliveries
from db.sessions import Sessions
from notifications.webhooks import signed_headers


class Attempted(StrEnum):
    DELIVERED = "delivered"
    FAILED = "failed"
    STOPPED = "stopped"  # the endpoint is gone or disabled


class WebhookActivities:
    def __init__(self, sessions: Sessions, *, allow_private: bool, timeout: float) -> None:
        self._db = sessions
        self._allow_private, self._timeout = allow_private, timeout

    @activity.defn(name="attempt_webhook_delivery")
    @metrics.counts_webhook_attempt
    async def attempt(self, delivery_id: str) -> str:
        delivery = uuid.UUID(delivery_id)
        now = datetime.now(UTC)
        async with self._db.transaction() as db:
            target = await deliveries.load_target(db, delivery, now)
            if target is None:
                await deliveries.finish(db, delivery, "the endpoint was deleted or disabled")
                await db.commit()
                return Attempted.STOPPED
        body = json.dumps(target.body, separators=(",", ":"), ensure_ascii=False).encode()
        headers = signed_headers(target.secrets, target.event_id, now, body)
        # A client per attempt: each goes to the address checked for it, and no
        # connection outlives the check.
        async with webhook_client() as http:
            answer = await post_webhook(
                http,
                target.url,
                body,
                headers,
                allow_private=self._allow_private,
                timeout=self._timeout,
            )
        async with self._db.transaction() as db:
            await deliveries.record_attempt(
                db,
                delivery,
                status_code=answer.status_code,
                latency_ms=answer.latency_ms,
                error=answer.error,
                delivered=answer.ok,
            )
            await db.commit()
        return Attempted.DELIVERED if answer.ok else Attempted.FAILED

    @activity.defn(name="give_up_webhook_delivery")
    @metrics.counts_webhook_give_up
    @refusals_are_final
    async def give_up(self, delivery_id: str) -> None:
        async with self._db.transaction() as db:
            await deliveries.finish(db, uuid.UUID(delivery_id), "failed for 3 days")
            await db.commit()
