"""A webhook receiver for tests: an aiohttp server on 127.0.0.1 that answers a scripted
status per request (e.g. 500, 500, 500, then 200) and keeps what it received."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.support.polling import eventually
from tests.support.stripe import free_port


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic() on arrival

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    url: str
    answers: list[int]  # status per request; the last repeats
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(
            Received(
                {k.lower(): v for k, v in request.headers.items()},
                await request.read(),
                time.monotonic(),
            )
        )
        status = self.answers[min(len(self.received), len(self.answers)) - 1]
        return web.Response(status=status, text="ok" if status < 300 else "not now")

    def delivered(self) -> list[Received]:
        """The requests it answered 2xx."""
        statuses = [self.answers[min(i, len(self.answers) - 1)] for i in range(len(self.received))]
        return [r for r, s in zip(self.received, statuses, strict=True) if 200 <= s < 300]

    async def wait_for(self, count: int, seconds: float = 20) -> list[Received]:
        async def got() -> list[Received]:
            return self.delivered()

        return await eventually(got, lambda d: len(d) >= count, seconds=seconds)


@asynccontextmanager
async def receiver(*answers: int) -> AsyncIterator[Receiver]:
    port = free_port()
    me = Receiver(f"http://127.0.0.1:{port}/hooks", list(answers) or [200])
    app = web.Application()
    app.router.add_post("/hooks", me.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield me
    finally:
        await runner.cleanup()
