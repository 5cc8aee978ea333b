"""Booking series in the database (docs/series.md): the series' row and its occurrences'
claims in one transaction, and the reads its routes need."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from contract import SeriesPolicy
from db.bookings import Claim, SlotUnavailable, claim_in
from db.models import Booking, BookingSeries
from db.sessions import Sessions


@dataclass(frozen=True)
class SeriesRow:
    id: str
    tenant_id: str
    service_id: str
    start: datetime
    rrule: str
    policy: str
    skipped: list[tuple[datetime, str]]  # (start, reason) found before the claim
    workflow_id: str


class OccurrenceTaken(SlotUnavailable):
    """An occurrence of an all-or-nothing series is taken: nothing was booked."""


async def claim(
    sessions: Sessions, series: SeriesRow, claims: list[Claim]
) -> tuple[list[str], list[datetime]]:
    """The series' row and every occurrence's claim in one transaction. All or nothing:
    one taken occurrence refuses the whole (OccurrenceTaken, naming its start). Skipping
    conflicts: the free ones are booked, the taken returned. A retry of a committed claim
    finds the series and its bookings there and books nothing twice."""
    all_or_nothing = series.policy == SeriesPolicy.ALL_OR_NOTHING
    booked: list[str] = []
    taken: list[datetime] = []
    async with sessions.transaction() as db:
        if await db.get(BookingSeries, uuid.UUID(series.id)) is not None:
            # A retry: the first attempt committed (its skipped ones are on the row).
            return [str(b) for b in await occurrence_ids(db, uuid.UUID(series.id))], []
        row = await _insert_series(db, series)  # first: its bookings point at it
        for one in claims:
            try:
                await claim_in(db, one)
            except SlotUnavailable:
                if all_or_nothing:
                    await db.rollback()
                    raise OccurrenceTaken(f"the occurrence at {one.start.isoformat()}") from None
                taken.append(one.start)
                continue
            booked.append(str(one.params["id"]))
        if not booked:
            await db.rollback()
            raise OccurrenceTaken("every occurrence")
        if taken:
            row.skipped = _skipped([*series.skipped, *((at, "slot_unavailable") for at in taken)])
        await db.commit()
    return booked, taken


async def _insert_series(db: AsyncSession, series: SeriesRow) -> BookingSeries:
    row = BookingSeries(
        id=uuid.UUID(series.id),
        tenant_id=uuid.UUID(series.tenant_id),
        service_id=uuid.UUID(series.service_id),
        start_at=series.start,
        rrule=series.rrule,
        policy=series.policy,
        skipped=_skipped(series.skipped),
        workflow_id=series.workflow_id,
    )
    db.add(row)
    await db.flush()
    return row


def _skipped(skipped: list[tuple[datetime, str]]) -> list[dict[str, str]]:
    return [{"start": at.isoformat(), "reason": why} for at, why in sorted(skipped)]


async def occurrence_ids(db: AsyncSession, series_id: uuid.UUID) -> list[uuid.UUID]:
    """The series' bookings, by start."""
    found = await db.scalars(
        select(Booking.id).where(Booking.series_id == series_id).order_by(Booking.start_at)
    )
    return list(found.all())


async def save_payment(sessions: Sessions, series_id: str, payment: dict[str, Any]) -> None:
    """The series' one payment as its workflow knows it. Once captured or cancelled,
    nobody needs the client secret any more."""
    done = payment["captured_amount"] > 0 or payment["status"] in ("canceled", "refunded")
    values: dict[str, Any] = {"payment": payment}
    if done:
        values["payment_client_secret"] = None
    async with sessions.autocommit() as db:
        await db.execute(
            update(BookingSeries).where(BookingSeries.id == uuid.UUID(series_id)).values(**values)
        )


async def keep_series_client_secret(sessions: Sessions, series_id: str, secret: str) -> None:
    """The card's client secret, for the browser paying the whole series."""
    async with sessions.autocommit() as db:
        await db.execute(
            update(BookingSeries)
            .where(BookingSeries.id == uuid.UUID(series_id))
            .values(payment_client_secret=secret)
        )
