"""Both calendar stand-ins behind one face, so an end-to-end test states a behaviour once
and runs it against Google and Outlook alike: a person's busy block, the events Holdfast
wrote, faults, a revoked credential."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from settings import Settings
from tests.support.google_calendar import GoogleCalendarStandin, google_calendar
from tests.support.microsoft_graph import MicrosoftGraph, microsoft_graph


@dataclass(frozen=True)
class Shown:
    """An event on a calendar, as Holdfast wrote it."""

    id: str
    start: datetime
    end: datetime
    summary: str


class Calendars(Protocol):
    provider: str

    def connect(self, calendar_id: str) -> dict[str, Any]:
        """A connection request with fresh credentials (a new key or app)."""
        ...

    async def busy(
        self, calendar_id: str, start: datetime, end: datetime, *, free: bool = False
    ) -> str: ...
    async def shown(self, calendar_id: str) -> list[Shown]: ...
    async def delete(self, calendar_id: str, event_id: str) -> None: ...
    def fail(self, times: int, status: int, retry_after: float | None = None) -> None: ...
    def stall(self, times: int, seconds: float) -> None: ...
    def revoke(self, connection: dict[str, Any]) -> None: ...


class Google:
    provider = "google"

    def __init__(self, standin: GoogleCalendarStandin) -> None:
        self.standin = standin

    def connect(self, calendar_id: str) -> dict[str, Any]:
        self.standin.add_calendar(calendar_id)
        key = self.standin.service_account()
        return {"provider": "google", "calendar_id": calendar_id, "credentials": key}

    async def busy(
        self, calendar_id: str, start: datetime, end: datetime, *, free: bool = False
    ) -> str:
        return self.standin.add_event(calendar_id, start, end, transparent=free)

    async def shown(self, calendar_id: str) -> list[Shown]:
        return [
            Shown(e["id"], _at(e["start"]["dateTime"]), _at(e["end"]["dateTime"]), e["summary"])
            for e in self.standin.events(calendar_id)
            if "holdfastBookingId" in e.get("extendedProperties", {}).get("private", {})
        ]

    async def delete(self, calendar_id: str, event_id: str) -> None:
        self.standin.delete_event(calendar_id, event_id)

    def fail(self, times: int, status: int, retry_after: float | None = None) -> None:
        self.standin.fail(times, status, retry_after)

    def stall(self, times: int, seconds: float) -> None:
        self.standin.stall(times, seconds)

    def revoke(self, connection: dict[str, Any]) -> None:
        self.standin.revoke(connection["credentials"]["client_email"])

    def settings(self) -> dict[str, Any]:
        return {"google_calendar_api_base": self.standin.api_base}


class Outlook:
    provider = "microsoft"

    def __init__(self, graph: MicrosoftGraph) -> None:
        self.graph = graph

    def connect(self, calendar_id: str) -> dict[str, Any]:
        self.graph.add_user(calendar_id)
        credentials = self.graph.credentials()
        return {"provider": "microsoft", "calendar_id": calendar_id, "credentials": credentials}

    async def busy(
        self, calendar_id: str, start: datetime, end: datetime, *, free: bool = False
    ) -> str:
        return await self.graph.add_event(
            calendar_id,
            start.astimezone(UTC),
            end.astimezone(UTC),
            show_as="free" if free else "busy",
        )

    async def shown(self, calendar_id: str) -> list[Shown]:
        return [
            Shown(e["id"], _at(e["start"]["dateTime"]), _at(e["end"]["dateTime"]), e["subject"])
            for e in self.graph.events(calendar_id)
            if e.get("transactionId")
        ]

    async def delete(self, calendar_id: str, event_id: str) -> None:
        await self.graph.delete_event(calendar_id, event_id)

    def fail(self, times: int, status: int, retry_after: float | None = None) -> None:
        self.graph.fail(times, status, retry_after)

    def stall(self, times: int, seconds: float) -> None:
        self.graph.stall(times, seconds)

    def revoke(self, connection: dict[str, Any]) -> None:
        self.graph.revoke(connection["credentials"]["client_id"])

    def settings(self) -> dict[str, Any]:
        return {
            "microsoft_authority_host": self.graph.authority_host,
            "microsoft_graph_base": self.graph.graph_base,
            "microsoft_ca_file": Path(self.graph.ca_file),
        }


def calendar_settings(
    settings: Settings, google: Google, outlook: Outlook, **more: Any
) -> Settings:
    """Settings pointing at both stand-ins. Nothing polls on its own (the tests sync when
    they mean to), and a provider that stalls times out in 2 s."""
    return settings.model_copy(
        update={
            **google.settings(),
            **outlook.settings(),
            "calendar_poll_seconds": 3600,
            "calendar_timeout_seconds": 2,
            **more,
        }
    )


@asynccontextmanager
async def both_calendars(directory: Path) -> AsyncIterator[tuple[Google, Outlook]]:
    async with google_calendar() as google, microsoft_graph(directory) as graph:
        yield Google(google), Outlook(graph)


def _at(text: str) -> datetime:
    """Graph writes UTC without an offset; Google with one."""
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return at if at.tzinfo else at.replace(tzinfo=UTC)
