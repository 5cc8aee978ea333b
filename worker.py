"""The Temporal worker: hosts the workflows and activities on the `holdfast` task queue."""

from __future__ import annotations

import asyncio
import logging
import signal
from concurrent.futures import ThreadPoolExecutor

from temporalio.client import Client
from temporalio.worker import Worker

from activities import build_activities
from connections import connect_temporal, create_engine
from settings import Settings, get_settings
from workflows import WORKFLOWS

log = logging.getLogger("holdfast.worker")


async def connect_with_retry(settings: Settings, attempts: int = 60) -> Client:
    """Temporal may still be starting (as under `make run`): retry for about a minute."""
    for _ in range(attempts - 1):
        try:
            return await connect_temporal(settings)
        except RuntimeError:
            await asyncio.sleep(1)
    return await connect_temporal(settings)


async def run(settings: Settings, stop: asyncio.Event) -> None:
    client = await connect_with_retry(settings)
    engine = create_engine(settings, pool_size=5)
    activities = build_activities(engine)
    try:
        if not WORKFLOWS and not activities:
            log.warning("no workflows or activities are registered yet; idling")
            await stop.wait()
            return
        # Sync activities (stripe, google, msal clients) run on this pool, off the event loop.
        with ThreadPoolExecutor(max_workers=16) as pool:
            async with Worker(
                client,
                task_queue=settings.temporal_task_queue,
                workflows=list(WORKFLOWS),
                activities=list(activities),
                activity_executor=pool,
            ):
                log.info("worker polling task queue %s", settings.temporal_task_queue)
                await stop.wait()
    finally:
        await engine.dispose()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    stop = asyncio.Event()

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run(get_settings(), stop)

    asyncio.run(serve())


if __name__ == "__main__":
    main()
