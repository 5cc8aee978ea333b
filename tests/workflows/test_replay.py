"""Saved histories of real booking runs, from every release, replay against the current
workflow code: a change that would break bookings already running fails here
(non-determinism). From 0.1.0 on, a change to the workflow's commands goes behind
`workflow.patched`; removing a patch while a release's histories need it fails here."""

from __future__ import annotations

import ast
import base64
import json
import os
from pathlib import Path

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


@pytest.mark.skipif(
    bool(os.environ.get("HOLDFAST_RECORD_HISTORIES")), reason="the histories are being written"
)
def test_release_0_5_0_keeps_a_history_of_each_series_and_waitlist_path() -> None:
    assert {name for name in SAVED if name.startswith("0.5.0/")} >= {
        "0.5.0/series_skip_conflicts",
        "0.5.0/series_paid_once",
        "0.5.0/occurrence_paid_by_its_series",
        "0.5.0/waitlist_entry",
        "0.5.0/offer_accepted",
        "0.5.0/offer_lapsed",
    }


WORKFLOWS_DIR = Path(__file__).parents[2] / "workflows"


def _patches_in_code() -> set[str]:
    """Every `workflow.patched(...)` id in the workflows, literal or module constant."""
    found: set[str] = set()
    for source in WORKFLOWS_DIR.glob("*.py"):
        tree = ast.parse(source.read_text())
        constants = {
            node.targets[0].id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "patched":
                arg = node.args[0]
                if isinstance(arg, ast.Constant):
                    found.add(str(arg.value))
                elif isinstance(arg, ast.Name):
                    found.add(constants[arg.id])
    return found


def _patches_in_histories() -> set[str]:
    found: set[str] = set()
    for text in SAVED.values():
        for event in json.loads(text)["events"]:
            marker = event.get("markerRecordedEventAttributes") or {}
            if marker.get("markerName") == "core_patch":
                data = marker["details"]["patch-data"]["payloads"][0]["data"]
                found.add(json.loads(base64.b64decode(data))["id"])
    return found


@pytest.mark.skipif(
    bool(os.environ.get("HOLDFAST_RECORD_HISTORIES")), reason="the histories are being written"
)
def test_every_patch_in_the_code_is_taken_by_a_saved_history() -> None:
    """So removing a patch (its new path kept unguarded) fails a replay below: a saved
    history that recorded the patch's marker no longer finds the marker's command."""
    in_code = _patches_in_code()
    assert {"no-show-leaves-calendars", "waitlist-offer", "series-payment"} <= in_code
    assert in_code <= _patches_in_histories()


SEALED = base64.b64encode(b"binary/encrypted").decode()


@pytest.mark.skipif(
    bool(os.environ.get("HOLDFAST_RECORD_HISTORIES")), reason="the histories are being written"
)
def test_histories_from_0_3_0_on_are_sealed() -> None:
    """From 0.3.0 every payload is encrypted, so the replay test replays sealed ones."""
    recent = [name for name in SAVED if name.split("/")[0] not in ("0.1.0", "0.2.0")]
    assert recent and all(SEALED in SAVED[name] for name in recent)


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_history_replays_on_current_code(name: str, settings: Settings) -> None:
    """Histories from 0.3.0 on are encrypted (the suite's key); earlier ones are plain,
    and the codec lets them through."""
    history = WorkflowHistory.from_json(f"replay-{name}", SAVED[name])
    replayer = Replayer(workflows=WORKFLOWS, data_converter=data_converter(settings))
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
