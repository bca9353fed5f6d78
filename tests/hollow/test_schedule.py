"""The hollow fleet's Timeline: which runs are in flight (tests wait on it instead of sleeping)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable

from kybernetes.hollow.schedule import Timeline


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.001)
    await asyncio.wait_for(poll(), timeout)


async def test_running_covers_a_run_from_start_to_end_even_after_cancel() -> None:
    release = asyncio.Event()
    started: list[Hashable] = []

    async def job(key: Hashable, due: float) -> None:
        started.append(key)
        await release.wait()

    timeline = Timeline(job, asyncio.Semaphore(4))
    runner = asyncio.create_task(timeline.run())
    try:
        assert not timeline.running("a")
        timeline.schedule("a", asyncio.get_running_loop().time())
        await until(lambda: bool(started))
        timeline.cancel("a")  # drops the next run, not the one in flight
        assert timeline.running("a") and not timeline.running("b")
        release.set()
        await until(lambda: not timeline.running("a"))
        assert started == ["a"]
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
