"""Saved histories of real booking runs, from every release, replay against the current
workflow code: a change that would break bookings already running fails here
(non-determinism). From 0.1.0 on, a change to the workflow's commands goes behind
`workflow.patched`; removing a patch while a release's histories need it fails here."""

from __future__ import annotations

import base64
import os

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from connections import data_converter
from settings import Settings
from tests.support.histories import HISTORIES
from worker import WORKFLOWS

SAVED = {
    f"{path.parent.name}/{path.stem}": path.read_text()
    for path in sorted(HISTORIES.glob("*/*.json"))
}


@pytest.mark.skipif(
    bool(os.environ.get("HOLDFAST_RECORD_HISTORIES")), reason="the histories are being written"
)
def test_the_first_release_keeps_a_history_of_every_path() -> None:
    assert {name for name in SAVED if name.startswith("0.1.0/")} >= {
        "0.1.0/hold_expired",
        "0.1.0/completed",
        "0.1.0/paid_then_cancelled",
        "0.1.0/reminder_then_cancel",
        "0.1.0/rescheduled_reminders_rearmed",
        "0.1.0/card_capture_and_cancel_refused",
        "0.1.0/refund_refused_on_cancel",
        "0.1.0/free_confirmed_by_claim",
        "0.1.0/declined_card_undone",
        "0.1.0/cancel_refused_then_repeated",
        "0.1.0/undo_refused_recorded",
        "0.1.0/workflow_cancelled_while_held",
    }


@pytest.mark.skipif(
    bool(os.environ.get("HOLDFAST_RECORD_HISTORIES")), reason="the histories are being written"
)
def test_release_0_2_0_keeps_a_history_of_each_delivery_path() -> None:
    assert {name for name in SAVED if name.startswith("0.2.0/")} >= {
        "0.2.0/notification_retried_after_accept",
        "0.2.0/webhook_fourth_attempt",
        "0.2.0/webhook_manual_retry",
    }


@pytest.mark.skipif(
    bool(os.environ.get("HOLDFAST_RECORD_HISTORIES")), reason="the histories are being written"
)
def test_release_0_3_0_keeps_a_history_of_each_calendar_path() -> None:
    assert {name for name in SAVED if name.startswith("0.3.0/")} >= {
        "0.3.0/no_show_leaves_calendars",
        "0.3.0/calendar_export",
        "0.3.0/calendar_connection_reauth_required",
    }


SEALED = base64.b64encode(b"binary/encrypted").decode()


@pytest.mark.skipif(
    bool(os.environ.get("HOLDFAST_RECORD_HISTORIES")), reason="the histories are being written"
)
def test_histories_from_0_3_0_on_are_sealed() -> None:
    """From 0.3.0 every payload is encrypted, so the replay test replays sealed ones."""
    recent = [name for name in SAVED if name.startswith("0.3.0/")]
    assert recent and all(SEALED in SAVED[name] for name in recent)


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_history_replays_on_current_code(name: str, settings: Settings) -> None:
    """Histories from 0.3.0 on are encrypted (the suite's key); earlier ones are plain,
    and the codec lets them through."""
    history = WorkflowHistory.from_json(f"replay-{name}", SAVED[name])
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(settings))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
