"""Saved histories of real booking runs replay against the current workflow code: a
change that would break bookings already running fails here (non-determinism)."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from connections import DATA_CONVERTER
from tests.support.histories import HISTORIES
from workflows.booking import BookingWorkflow

SAVED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("*.json"))}


def test_histories_are_saved() -> None:
    assert set(SAVED) >= {
        "hold_expired",
        "completed",
        "paid_then_cancelled",
        "reminder_then_cancel",
        "rescheduled_reminders_rearmed",
        "card_capture_and_cancel_refused",
        "refund_refused_on_cancel",
    }


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_history_replays_on_current_code(name: str) -> None:
    history = WorkflowHistory.from_json(f"replay-{name}", SAVED[name])
    replayer = Replayer(workflows=[BookingWorkflow], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
