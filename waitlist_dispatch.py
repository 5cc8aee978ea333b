"""The waitlist's dispatcher (docs/waitlist.md): a task of each worker process that hears
PostgreSQL's `holdfast_slots` NOTIFYs (migration 0013: sent by every transaction that
frees or takes time) and signals the waiting entries whose range the change meets, in
join order, to try for a slot.

Each entry's workflow decides, in the offer's transaction: a slot must be free and no
earlier entry waiting for it. So entries trying at once, two dispatchers (two workers),
or a signal sent twice offer nothing twice and nothing out of turn. An offer is itself a
change (its booking takes the slot), whose NOTIFY asks the next entries again: a later
entry that yielded a slot to an earlier one tries again once that one is offered.
Every POLL_SECONDS however busy, and after a lost connection, every waiting entry is
asked, so a missed NOTIFY delays an offer, never loses it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from temporalio.client import Client
from temporalio.service import RPCError

from db.listening import SLOTS_CHANNEL, heard, wait_or_stop
from db.sessions import Sessions
from db.waitlist import waiting_for
from workflows.waitlist_entry import WaitlistEntryWorkflow

POLL_SECONDS = 120.0
# A freed span moves starts up to a day earlier or later (a service's duration and
# buffers are each at most 1,440 minutes): entries whose range meets it widened so.
REACH = timedelta(days=2)
ASK_SECONDS = 10.0
log = logging.getLogger("holdfast.waitlist")


class WaitlistDispatcher:
    def __init__(self, client: Client, sessions: Sessions, listen_url: str) -> None:
        self._client, self._sessions, self._listen_url = client, sessions, listen_url

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._listen_url, autocommit=True
                ) as listener:
                    await listener.execute(f"LISTEN {SLOTS_CHANNEL}")
                    await self.ask(None)  # what was freed while nobody listened
                    polled = asyncio.get_running_loop().time()
                    while not stop.is_set():
                        notes = await heard(listener, stop, POLL_SECONDS, linger=0.05)
                        if notes:
                            await self._ask_heard([json.loads(n) for n in notes])
                        now = asyncio.get_running_loop().time()
                        if now - polled >= POLL_SECONDS and not stop.is_set():
                            await self.ask(None)  # however busy: the safety net
                            polled = now
            except psycopg.Error as err:
                log.warning("waitlist dispatcher lost its database connection: %s", err)
                await wait_or_stop(stop, POLL_SECONDS)
            except Exception:  # never die quietly: the poll goes on
                log.exception("waitlist dispatcher failed; going on")
                await wait_or_stop(stop, POLL_SECONDS)

    async def _ask_heard(self, heard: list[dict[str, Any]]) -> None:
        spans: dict[uuid.UUID, tuple[datetime | None, datetime | None]] = {}
        for note in heard:
            tenant = uuid.UUID(str(note["tenant"]))
            lo, hi = _instant(note.get("lo"), -REACH), _instant(note.get("hi"), REACH)
            if tenant in spans:
                known = spans[tenant]
                lo = None if lo is None or known[0] is None else min(lo, known[0])
                hi = None if hi is None or known[1] is None else max(hi, known[1])
            spans[tenant] = (lo, hi)
        for tenant, (lo, hi) in spans.items():
            await self.ask(tenant, lo, hi)

    async def ask(
        self, tenant: uuid.UUID | None, lo: datetime | None = None, hi: datetime | None = None
    ) -> None:
        """Signal the waiting entries (of `tenant`, meeting `[lo, hi)`; all without), in
        join order."""
        async with self._sessions.autocommit() as db:
            entries = await waiting_for(db, tenant, lo, hi)
        for _, workflow_id in entries:
            handle = self._client.get_workflow_handle(workflow_id)
            try:
                async with asyncio.timeout(ASK_SECONDS):
                    await handle.signal(WaitlistEntryWorkflow.slots_freed)
            except (RPCError, TimeoutError) as err:
                log.warning("waitlist entry %s not asked: %s", workflow_id, err)


def _instant(epoch: object, reach: timedelta) -> datetime | None:
    return None if epoch is None else datetime.fromtimestamp(int(str(epoch)), UTC) + reach
