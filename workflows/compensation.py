"""The saga's undo stack (docs/lifecycle.md#compensation): each step that changes the
world registers its undo before it runs, so a step whose answer was lost is undone too;
the undos run in reverse, each retried until it succeeds or is refused for good.

They run only for failures that end a booking. A bug in workflow code is not one: it
fails the workflow task, and Temporal retries the task once a fixed worker takes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.exceptions import FailureError

# An undo step takes the status the booking ends in (failed, cancelled).
Undo = Callable[[str], Awaitable[None]]
# Told of an undo refused for good (its name, the error), so operators see it.
Refusal = Callable[[str, FailureError], Awaitable[None]]


class Compensations:
    def __init__(self) -> None:
        self._undo: list[tuple[str, Undo]] = []
        self.running = False

    def add(self, name: str, undo: Undo) -> None:
        self._undo.append((name, undo))

    async def run(self, status: str, refused: Refusal) -> None:
        """Every undo, newest first; one refused for good is reported and the rest
        still run."""
        self.running = True
        for name, undo in reversed(self._undo):
            try:
                await undo(status)
            except FailureError as err:
                await refused(name, err)
