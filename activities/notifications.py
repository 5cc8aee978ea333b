"""The notice step of the saga for events that change no booking row (reminders) or whose
change was written before (cancellations, expiry, ...): outbox rows, once per id."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from temporalio import activity

from db.outbox import Notice, write_notice

__all__ = ["Notice", "NotificationActivities"]


class NotificationActivities:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> None:
        async with self._sessions() as db:
            await write_notice(db, notice)
            await db.commit()
