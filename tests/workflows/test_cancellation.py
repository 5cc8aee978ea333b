"""The cancellation policy's three bands (docs/api.md, `cancellation`), as the saga applies them
to a captured payment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support.terms import MASSAGE
from workflows.cancellation import refund_amount

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
TERMS = MASSAGE


@pytest.mark.parametrize(
    ("before_start", "refund"),
    [
        (timedelta(hours=48), 6500),  # before the free-cancel cutoff: in full
        (timedelta(hours=24), 6500),  # at the cutoff: still free
        (timedelta(hours=3), 3250),  # after the cutoff: late_refund_percent
        (timedelta(0), 0),  # once started: nothing
        (-timedelta(minutes=10), 0),
    ],
)
def test_the_refund_follows_the_policy_band(before_start: timedelta, refund: int) -> None:
    assert refund_amount(TERMS, 6500, START, START - before_start) == refund


def test_a_late_refund_rounds_down_to_a_minor_unit() -> None:
    assert refund_amount(TERMS, 999, START, START - timedelta(hours=1)) == 499
