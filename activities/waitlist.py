"""The waitlist's database steps, run as local activities (docs/waitlist.md)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.refusals import refusals_are_final
from contract import (
    BOOKING_WORKFLOW_TYPE,
    BookingRequest,
    booking_search_attributes,
    workflow_id_for,
)
from db import waitlist as store
from db.sessions import Sessions


@dataclass(frozen=True)
class OfferInput:
    entry_id: str
    now: datetime


@dataclass(frozen=True)
class EndInput:
    entry_id: str
    status: str  # WaitlistStatus: left, or expired (its range passed)


class WaitlistStore:
    """Holds the database and the Temporal client: an offer starts its booking's
    workflow."""

    def __init__(self, sessions: Sessions, client: Client, task_queue: str) -> None:
        self._db, self._client, self._task_queue = sessions, client, task_queue

    @activity.defn(name="offer_waitlist_slot")
    @refusals_are_final
    async def offer(self, step: OfferInput) -> str | None:
        """The id of the booking held for the entry, its workflow started; None when it
        is not the entry's turn or nothing is free. A retry finds the same offer and
        joins the same workflow.

        The booking's workflow is started here, not as the entry's child: the offer
        outlives its entry (which ends once it has offered), and Temporal's time-skipping
        test server would not skip time past a child's timers in our tests (compare
        temporalio/sdk-java#1540). The entry's details name it (docs/waitlist.md)."""
        offered = await store.offer(self._db, uuid.UUID(step.entry_id), step.now)
        if offered is None:
            return None
        await self._start(offered)
        return offered.booking_id

    async def _start(self, offered: BookingRequest) -> None:
        await self._client.start_workflow(
            BOOKING_WORKFLOW_TYPE,
            offered,
            id=workflow_id_for(offered.booking_id),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=booking_search_attributes(offered),
            static_summary=f"offered to waitlist entry {offered.offer.entry_id}"
            if offered.offer
            else None,
        )

    @activity.defn(name="end_waitlist_entry")
    @refusals_are_final
    async def end(self, step: EndInput) -> str | None:
        """The entry out of line if still waiting; answers the status that stands."""
        return await store.end(self._db, uuid.UUID(step.entry_id), step.status)
