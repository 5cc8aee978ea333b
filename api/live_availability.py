"""Live availability: `GET /v1/availability/stream` tells a booking page, within a second,
that slots in its range may have changed (docs/capacity.md#live-availability).

Each API process holds one listening connection to PostgreSQL (`holdfast_slots`,
migration 0013), opened with its first stream and shared by all of them. A NOTIFY is sent
by the transaction that changes an allocation, time off, a resource or a service, so
every process hears every committed change, whichever process or worker made it.

A stream holds no queue: changes that arrive faster than its client reads are merged
into one pending span, so a slow reader costs a few numbers, never a backlog. The client
re-queries availability for the span it is told about.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import psycopg

from db.listening import SLOTS_CHANNEL

RECONNECT_SECONDS = 1.0
IDLE_SECONDS = 5.0
log = logging.getLogger(__name__)


class TooManyStreams(Exception):
    """The key has as many streams open as it may."""


@dataclass(eq=False)
class Stream:
    """One client's view: a tenant's service over `[lo, hi)` (epoch starts). A change
    over `[a, b)` on one of its resources moves the starts whose buffer-widened span
    meets it: `(a - reach_back, b + reach_ahead)`."""

    tenant: uuid.UUID
    key: uuid.UUID | None
    service: uuid.UUID
    kinds: frozenset[str]
    resources: set[uuid.UUID]
    lo: int
    hi: int
    reach_back: int  # duration + buffer after
    reach_ahead: int  # buffer before
    changed: tuple[int, int] | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, lo: int | None, hi: int | None) -> None:
        """Merge a change into the pending span (the whole range when unbounded)."""
        start = self.lo if lo is None else max(self.lo, lo - self.reach_back + 1)
        end = self.hi if hi is None else min(self.hi, hi + self.reach_ahead)
        if start >= end:
            return
        if self.changed is not None:
            start, end = min(start, self.changed[0]), max(end, self.changed[1])
        self.changed = (start, end)
        self.wake.set()

    async def next_change(self, seconds: float) -> tuple[int, int] | None:
        """The pending span, once there is one; None after `seconds` without (a
        heartbeat is due)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), seconds)
        self.wake.clear()
        changed, self.changed = self.changed, None
        return changed

    def hears(self, note: dict[str, str | int | None]) -> bool:
        if note.get("service") is not None:
            return note["service"] == str(self.service)
        resource = note.get("resource")
        if resource is None:
            return False
        rid = uuid.UUID(str(resource))
        if rid in self.resources:
            return True
        if note.get("kind") in self.kinds:  # a resource created or changed meanwhile
            self.resources.add(rid)
            return True
        return False


class Streams:
    """The process's open streams, by tenant, each key bounded to `streams_per_key`."""

    def __init__(self, streams_per_key: int) -> None:
        self._per_key = streams_per_key
        self._streams: dict[uuid.UUID, set[Stream]] = {}
        self._open_per_key: Counter[uuid.UUID | None] = Counter()

    def open(self, stream: Stream) -> None:
        if stream.key is not None and self._open_per_key[stream.key] >= self._per_key:
            raise TooManyStreams
        self._open_per_key[stream.key] += 1
        self._streams.setdefault(stream.tenant, set()).add(stream)

    def close(self, stream: Stream) -> None:
        self._open_per_key[stream.key] -= 1
        if self._open_per_key[stream.key] <= 0:
            del self._open_per_key[stream.key]
        tenant = self._streams.get(stream.tenant)
        if tenant is not None:
            tenant.discard(stream)
            if not tenant:
                del self._streams[stream.tenant]

    def open_streams(self) -> dict[uuid.UUID | None, int]:
        """Streams open now, by key."""
        return dict(self._open_per_key)

    def heard(self, payload: str) -> None:
        note = json.loads(payload)
        lo, hi = note.get("lo"), note.get("hi")
        for stream in self._listeners_of(note.get("tenant")):
            if stream.hears(note):
                stream.offer(lo, hi)

    def _listeners_of(self, tenant: object) -> Iterable[Stream]:
        try:
            return list(self._streams.get(uuid.UUID(str(tenant)), ()))
        except ValueError:
            return ()

    def all_changed(self) -> None:
        """After a lost connection: anything may have changed unheard."""
        for streams in list(self._streams.values()):
            for stream in streams:
                stream.offer(None, None)


class SlotFeed(Streams):
    """The streams, and the listener that wakes them, running while any is open."""

    def __init__(self, listen_url: str, streams_per_key: int) -> None:
        super().__init__(streams_per_key)
        self._listen_url = listen_url
        self._listener: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    def open(self, stream: Stream) -> None:
        super().open(stream)
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="slot-feed")

    async def _listen(self) -> None:
        """LISTEN until no stream is left; a lost connection is opened again and every
        stream told its whole range may have changed."""
        lost = False
        while self._streams:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._listen_url, autocommit=True
                ) as listener:
                    await listener.execute(f"LISTEN {SLOTS_CHANNEL}")
                    self.listening.set()
                    if lost:
                        self.all_changed()
                    while self._streams:  # woken at least every IDLE_SECONDS to see
                        async for notify in listener.notifies(timeout=IDLE_SECONDS):
                            self.heard(notify.payload)
            except psycopg.Error as err:
                self.listening.clear()
                lost = True
                log.warning("live availability lost its database connection: %s", err)
                await asyncio.sleep(RECONNECT_SECONDS)
        self.listening.clear()

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
