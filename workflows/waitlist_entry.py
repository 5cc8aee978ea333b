"""WaitlistEntryWorkflow: someone waiting for a service in a range of time
(docs/waitlist.md).

wait → (asked: is a slot free, and is it this entry's turn?) → offer: a booking held
for the entry, its workflow started → done. The offer lives as a booking: accepted, it
is booked (and paid) as any booking; declined or lapsed, it is released, which frees the
slot for the next entry in line. Operators follow the chain in the Temporal UI: each
entry's details name the booking it was offered (`booking-…`), whose summary names the
entry back.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.waitlist import EndInput, OfferInput, WaitlistStore
    from contract import WaitlistRequest, WaitlistStatus, workflow_id_for

from workflows.steps import DB_STEP

DB_TIMEOUT = timedelta(seconds=30)


@workflow.defn(name="WaitlistEntry")
class WaitlistEntryWorkflow:
    @workflow.init
    def __init__(self, request: WaitlistRequest) -> None:
        self._entry_id = request.entry_id
        self._status: str = WaitlistStatus.WAITING
        self._lock = asyncio.Lock()
        self._asked = self._tried = 0

    @workflow.run
    async def run(self, request: WaitlistRequest) -> str:
        while self._status == WaitlistStatus.WAITING:
            if workflow.info().is_continue_as_new_suggested():
                # Every ask adds to the history: a long wait goes on in a fresh run (an
                # ask lost meanwhile is repeated by the dispatcher's poll).
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(request)
            workflow.set_current_details("waiting for a slot to free up")
            try:
                await workflow.wait_condition(
                    lambda: self._asked > self._tried or self._status != WaitlistStatus.WAITING,
                    timeout=_left_to_wait(request),
                    timeout_summary="the range has passed",
                )
            except TimeoutError:
                await self._end(WaitlistStatus.EXPIRED)
                break
            self._tried = self._asked  # asks that came meanwhile are answered by this try
            await self._try_offer()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._status

    @workflow.signal(
        description="Time may have freed up (the dispatcher, or the entry's own join): "
        "try for a slot."
    )
    def slots_freed(self) -> None:
        self._asked += 1

    async def _try_offer(self) -> None:
        """Offered a slot if one is free and no earlier entry waits for it."""
        async with self._lock:
            if self._status != WaitlistStatus.WAITING:
                return
            offered: str | None = await workflow.execute_local_activity_method(
                WaitlistStore.offer,
                OfferInput(self._entry_id, workflow.now()),
                start_to_close_timeout=DB_TIMEOUT,
                retry_policy=DB_STEP,
                summary="offer: hold a free slot, in join order; start its booking",
            )
            if offered is None:
                return
            self._status = WaitlistStatus.OFFERED
            workflow.set_current_details(f"offered: {workflow_id_for(offered)}")

    @workflow.update(description="Leave the waitlist (only while waiting).")
    async def leave(self) -> str:
        await self._end(WaitlistStatus.LEFT)
        return self._status

    async def _end(self, status: WaitlistStatus) -> None:
        """Out of line (left, or its range passed), if still waiting."""
        async with self._lock:
            if self._status == WaitlistStatus.WAITING:
                stands: str | None = await workflow.execute_local_activity_method(
                    WaitlistStore.end,
                    EndInput(self._entry_id, status),
                    start_to_close_timeout=DB_TIMEOUT,
                    retry_policy=DB_STEP,
                    summary=f"out of line: {status}",
                )
                self._status = stands or status


def _left_to_wait(request: WaitlistRequest) -> timedelta | None:
    """Until the entry's range has passed: none of its starts can be booked after."""
    if request.range_end is None:
        return None
    return max(request.range_end - workflow.now(), timedelta(seconds=1))
