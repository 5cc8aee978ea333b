"""The baseline for booking figures: the least a claim over update-with-start can cost on
this server — a workflow whose update answers at once, with no database work."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="MinimalClaim")
class MinimalClaim:
    def __init__(self) -> None:
        self._claimed = False

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self._claimed)
        await workflow.wait_condition(workflow.all_handlers_finished)

    @workflow.update
    async def claim(self) -> str:
        self._claimed = True
        return workflow.info().workflow_id
