"""One page of availability, as the JSON the API answers: the engine's slots, each with
its signed offer (docs/api.md#availability).

An ordinary query (a week or less, up to 1,000 slots) is answered on the event loop, in a
few milliseconds. A long one (weeks, thousands of slots) takes CPU for hundreds of
milliseconds; on the loop, every other request of the process would wait for it, and in
a thread the loop would still queue behind it for the interpreter's lock. So it runs in a
small pool of processes (`Offload`): the loop only awaits the bytes.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field

from api.slots import SlotSearch
from scheduling.tokens import AllocationGrant, TokenSigner

# Past either, a query is heavy enough for the pool.
HEAVY_RANGE = timedelta(days=7)
HEAVY_LIMIT = 1000


class SlotResource(BaseModel):
    id: uuid.UUID
    kind: Literal["staff", "room", "asset"]
    name: str


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    resources: list[SlotResource]
    seats_left: int = Field(
        description="Seats still free at this start on its fullest resource with seats "
        "(1 when none has more than one): docs/capacity.md."
    )
    allocation_token: str | None = Field(
        description="The signed offer to book it; null for a full group session (fewer "
        "seats left than a booking takes), listed so a client can show it full."
    )


class AvailabilityOut(BaseModel):
    timezone: str
    slots: list[SlotOut]
    next_range_start: datetime | None = Field(
        default=None,
        description="Set when more slots start in the range than `limit`: the start of "
        "the first one left out, to send as the next query's `range_start`.",
    )


@dataclass(frozen=True)
class PageRequest:
    """A search and how to answer it. The search asks for `limit + 1` slots: one more
    tells whether a next page exists."""

    search: SlotSearch
    limit: int
    timezone: str
    tenant: str
    service: str
    expires: int


def render(request: PageRequest, signer: TokenSigner) -> bytes:
    slots = request.search.run()
    page, more = slots[: request.limit], slots[request.limit : request.limit + 1]
    tz = ZoneInfo(request.timezone)
    out = AvailabilityOut(
        timezone=request.timezone,
        slots=[
            SlotOut(
                start=datetime.fromtimestamp(slot.start, tz),
                end=datetime.fromtimestamp(slot.end, tz),
                resources=[
                    SlotResource(id=uuid.UUID(r.id), kind=r.kind, name=r.name)
                    for r in slot.resources
                ],
                seats_left=slot.seats_left,
                allocation_token=signer.issue(
                    AllocationGrant(
                        request.tenant,
                        request.service,
                        slot.start,
                        slot.end,
                        tuple(r.id for r in slot.resources),
                        request.expires,
                    )
                )
                if slot.bookable
                else None,
            )
            for slot in page
        ],
        next_range_start=datetime.fromtimestamp(more[0].start, tz) if more else None,
    )
    return out.model_dump_json().encode()


def expiry(ttl_seconds: int) -> int:
    return int(time.time()) + ttl_seconds


# The pool's processes sign with a signer of their own, made from the secret at start.
_signer: TokenSigner | None = None


def _start(secret: bytes) -> None:
    global _signer
    _signer = TokenSigner(secret)


def _render_here(request: PageRequest) -> bytes:
    assert _signer is not None
    return render(request, _signer)


class Offload:
    """The process pool for heavy pages, started on first use ("spawn": a fork of a
    process running threads and an event loop is not safe)."""

    def __init__(self, secret: bytes, workers: int) -> None:
        self._secret, self._workers = secret, workers
        self._pool: ProcessPoolExecutor | None = None

    async def render(self, request: PageRequest) -> bytes:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(self._secret,),
            )
        return await asyncio.get_running_loop().run_in_executor(self._pool, _render_here, request)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
