"""A series paid once whose occurrences have all ended before it was paid has nothing
left to pay for (docs/series.md#payment): its workflow is told to void the payment, so
the customer's card is released now rather than when the holds would have run out."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client

from api.booking_gateway import stop_series_payment
from contract import LIVE_STATUSES
from db.models import Booking, BookingSeries


async def stop_if_nothing_left(db: AsyncSession, client: Client, series_id: uuid.UUID) -> None:
    """After a cancel: the series' payment stops if it is unpaid and no occurrence lives."""
    series = await db.get(BookingSeries, series_id, populate_existing=True)
    paying = (series.payment if series is not None else None) or {}
    if not paying or paying["captured_amount"] or paying["status"] == "canceled":
        return
    live = await db.scalar(
        select(Booking.id)
        .where(Booking.series_id == series_id, Booking.status.in_(LIVE_STATUSES))
        .limit(1)
    )
    await db.commit()
    if live is None:
        await stop_series_payment(client, str(series_id))
