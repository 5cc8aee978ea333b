"""Microsoft in tests: the Entra ID and Graph stand-in in-process over TLS, and what a
person (or Microsoft) does beside our client. The state lives in the stand-in.

    async with microsoft_graph(tmp_path) as graph:
        calendar = MicrosoftCalendar(graph.credentials(), "ada@contoso.test",
                                     **graph.addresses(), timeout=2)
        event_id = await graph.add_event("ada@contoso.test", start, end)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from devstack.microsoft_graph import (
    GRAPH,
    Deliver,
    Push,
    build_app,
    represent,
    self_signed_certificate,
    server_context,
    subscription_json,
)
from devstack.stand_in import serve


class MicrosoftGraph:
    def __init__(self, app: web.Application, base: str, ca_file: Path) -> None:
        self._graph = app[GRAPH]
        self.authority_host = base
        self.graph_base = f"{base}/v1.0"
        self.ca_file = str(ca_file)

    def addresses(self) -> dict[str, str]:
        """MicrosoftCalendar's keyword arguments that point it here."""
        return {
            "authority_host": self.authority_host,
            "graph_base": self.graph_base,
            "ca_file": self.ca_file,
        }

    def credentials(self, tenant_id: str | None = None) -> dict[str, str]:
        """A newly registered app (in a new tenant unless given)."""
        app = self._graph.register(tenant_id)
        return {"tenant_id": app.tenant_id, "client_id": app.client_id, "client_secret": app.secret}

    def add_user(self, user: str) -> str:
        self._graph.add_user(user)
        return user

    async def add_event(
        self,
        user: str,
        start: datetime,
        end: datetime,
        *,
        show_as: str = "busy",
        all_day: bool = False,
        subject: str = "",
    ) -> str:
        """As the user in Outlook (the mailbox is made if new); returns once the
        subscriptions heard of it."""
        mailbox = self._graph.add_user(user)
        start, end = start.astimezone(UTC), end.astimezone(UTC)  # Graph keeps UTC
        fields = {"start": start, "end": end, "show_as": show_as, "all_day": all_day}
        event = self._graph.add_event(mailbox, fields | {"subject": subject})
        await self._graph.notify(mailbox, event.id, "created")
        return event.id

    async def move_event(self, user: str, event_id: str, start: datetime, end: datetime) -> None:
        await self._update(user, event_id, {"start": start, "end": end})

    async def cancel_event(self, user: str, event_id: str) -> None:
        """The organiser cancelled the meeting: it stays in the user's calendar."""
        await self._update(user, event_id, {"cancelled": True})

    async def _update(self, user: str, event_id: str, fields: dict[str, Any]) -> None:
        mailbox = self._graph.mailbox(user)
        self._graph.update_event(mailbox, event_id, fields)
        await self._graph.notify(mailbox, event_id, "updated")

    async def delete_event(self, user: str, event_id: str) -> None:
        mailbox = self._graph.mailbox(user)
        self._graph.delete_event(mailbox, event_id)
        await self._graph.notify(mailbox, event_id, "deleted")

    def events(self, user: str) -> list[dict[str, Any]]:
        """The user's events now, as Graph shows them with their extended properties."""
        events = self._graph.mailbox(user).events.values()
        return [represent(e, with_properties=True) for e in sorted(events, key=lambda e: e.start)]

    def fail(self, times: int, status: int, retry_after: float | None = None) -> None:
        self._graph.fail(times, status, retry_after)

    def stall(self, times: int, seconds: float) -> None:
        self._graph.stall(times, seconds)

    def revoke(self, client_id: str) -> None:
        self._graph.revoke(client_id)

    def expire_delta_links(self, user: str) -> None:
        """Graph forgets the user's sync state: every delta and skip link answers 410."""
        self._graph.mailbox(user).epoch += 1

    def subscriptions(self, user: str) -> list[dict[str, Any]]:
        live = self._graph.live_subscriptions()
        return [subscription_json(s) for s in live if s.user == user.lower()]

    async def lifecycle(self, subscription_id: str, event: str) -> int:
        return await self._graph.lifecycle(subscription_id, event)

    def deliver_with(self, deliver: Deliver) -> None:
        """Pushes and validation requests go through `deliver` from now on."""
        self._graph.deliver = deliver

    @property
    def pushed(self) -> list[Push]:
        return list(self._graph.pushed)

    async def settled(self) -> None:
        """Waits for the pushes that Graph requests set off."""
        while self._graph.tasks:
            await asyncio.gather(*self._graph.tasks, return_exceptions=True)


class Receiver:
    """A `deliver` standing in for our push endpoint: it echoes validation tokens (unless
    told not to) and keeps each push's body."""

    def __init__(self, *, validates: bool = True) -> None:
        self.validates = validates
        self.validations: list[str] = []
        self.pushes: list[dict[str, Any]] = []

    async def __call__(self, url: str, body: Any | None, params: dict[str, str]) -> tuple[int, str]:
        if body is None:
            self.validations.append(url)
            return 200, params["validationToken"] if self.validates else ""
        self.pushes.append(body)
        return 202, ""


def asgi_deliver(app: Any) -> Deliver:
    """Pushes into an ASGI app in this process, at the URL's path and query."""

    async def deliver(url: str, body: Any | None, params: dict[str, str]) -> tuple[int, str]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as client:
            if body is None:
                headers = {"Content-Type": "text/plain; charset=utf-8"}
                answer = await client.post(url, params=params, content=b"", headers=headers)
            else:
                answer = await client.post(url, params=params, json=body)
        return answer.status_code, answer.text

    return deliver


@asynccontextmanager
async def microsoft_graph(directory: Path) -> AsyncIterator[MicrosoftGraph]:
    cert_path, key_path = self_signed_certificate(directory)
    app = build_app()
    runner = await serve(app, "127.0.0.1", 0, server_context(cert_path, key_path))
    host, port = runner.addresses[0][:2]
    try:
        yield MicrosoftGraph(app, f"https://{host}:{port}", cert_path)
    finally:
        await runner.cleanup()
