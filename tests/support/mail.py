"""Mail in tests: the local SMTP stand-in in-process, collecting what it receives in
memory (and as files too, given a folder), and a wait for the messages to arrive.

    async with mail_server() as mail:
        ...  # settings with smtp_host=mail.host, smtp_port=mail.port, smtp_starttls=False
        [message] = await mail.wait_for(1)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

from devstack.mail import MailFolder, Received, start
from tests.support.stripe import free_port


class MailServer:
    """The stand-in on 127.0.0.1 at a free port (aiosmtpd cannot take port 0)."""

    host = "127.0.0.1"

    def __init__(self, directory: Path | None = None, handler: MailFolder | None = None) -> None:
        self.handler = handler or MailFolder(directory, keep=True)
        self.port = 0
        self._controller: Controller | None = None

    def start(self, attempts: int = 5, port: int | None = None) -> MailServer:
        """On `port`, or a free one."""
        for attempt in range(attempts):
            self.port = port or free_port()
            try:
                self._controller = start(self.handler, self.host, self.port)
            except OSError:  # taken between the probe and the bind
                if attempt == attempts - 1:
                    raise
            else:
                return self
        raise AssertionError("unreachable")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[Received]:
        return list(self.handler.received)

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    async def wait_for(self, count: int, seconds: float = 10) -> list[EmailMessage]:
        """Waits until at least `count` messages have arrived and returns them all; fails
        after `seconds` saying how many came."""
        deadline = time.monotonic() + seconds
        while len(messages := self.messages) < count:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(messages)} of {count} message(s) arrived within {seconds} s"
                )
            await asyncio.sleep(0.02)
        return messages


@asynccontextmanager
async def mail_server(
    directory: Path | None = None, port: int | None = None, handler: MailFolder | None = None
) -> AsyncIterator[MailServer]:
    server = await asyncio.to_thread(MailServer(directory, handler).start, 5, port)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
