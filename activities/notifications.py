"""The notice step of the saga for events that change no booking row (reminders) or whose
change was written before (cancellations, expiry, ...): the customer's messages, written
once per id; their delivery is the dispatcher's (dispatch.py)."""

from __future__ import annotations

from temporalio import activity

from activities.refusals import refusals_are_final
from contract import Notice
from db.notifications import write_notice
from db.sessions import Sessions


class NotificationActivities:
    def __init__(self, sessions: Sessions) -> None:
        self._sessions = sessions

    @activity.defn(name="notify")
    @refusals_are_final
    async def notify(self, notice: Notice) -> None:
        async with self._sessions.transaction() as db:
            await write_notice(db, notice)
            await db.commit()
