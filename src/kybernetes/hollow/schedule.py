"""One timeline for every periodic job of thousands of nodes, with a bound on requests in flight.

A real kubelet has a goroutine per loop; 5,000 hollow nodes with a task each would mostly be
sleeping timers, and nothing would keep them from firing together. Here there is one heap of
``(due, seq, key)`` and one runner task: it sleeps until the earliest due time, pops the job and
starts it once a slot of the shared semaphore is free. The semaphore is the back-pressure: when the
API server is slow the runner waits for a slot instead of piling up tasks, so the number of
requests in flight never exceeds ``concurrency`` and memory stays flat.

``schedule(key, due)`` sets a key's next run (one pending run per key: the later call wins, stale
heap entries are skipped when popped); ``cancel(key)`` drops it. A job is ``run(key, due)`` and
reschedules itself if it is periodic, from ``due`` rather than from "now", so renewals spread over an
interval stay spread.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable

from kybernetes.aiorun import wait_for

log = logging.getLogger(__name__)

Job = Callable[[Hashable, float], Awaitable[None]]


class Timeline:
    def __init__(self, run: Job, slots: asyncio.Semaphore) -> None:
        self._run = run
        self._slots = slots
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, tuple[float, int]] = {}
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._running: collections.Counter[Hashable] = collections.Counter()

    def __len__(self) -> int:
        return len(self._due)

    def running(self, key: Hashable) -> bool:
        """Whether a run of ``key`` has started and not finished (cancel() does not stop one)."""
        return self._running[key] > 0

    def schedule(self, key: Hashable, due: float) -> None:
        seq = next(self._seq)
        self._due[key] = (due, seq)
        heapq.heappush(self._heap, (due, seq, key))
        if self._heap[0][1] == seq:
            self._wake.set()  # the new entry is the earliest: the runner must sleep less

    def schedule_soon(self, key: Hashable, due: float) -> None:
        """Run ``key`` at ``due`` unless it is already due earlier."""
        current = self._due.get(key)
        if current is None or current[0] > due:
            self.schedule(key, due)

    def cancel(self, key: Hashable) -> None:
        self._due.pop(key, None)

    def due(self, key: Hashable) -> float | None:
        entry = self._due.get(key)
        return entry[0] if entry else None

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while True:
                while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][:2]:
                    heapq.heappop(self._heap)  # cancelled or rescheduled since pushed
                if not self._heap:
                    self._wake.clear()
                    await self._wake.wait()
                    continue
                due, _seq, key = self._heap[0]
                delay = due - loop.time()
                if delay > 0:
                    self._wake.clear()
                    try:
                        await wait_for(self._wake.wait(), delay)
                    except TimeoutError:
                        pass
                    continue
                heapq.heappop(self._heap)
                del self._due[key]
                await self._slots.acquire()
                self._running[key] += 1
                task = loop.create_task(self._one(key, due))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        finally:
            for task in list(self._tasks):
                task.cancel()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _one(self, key: Hashable, due: float) -> None:
        try:
            await self._run(key, due)
        except asyncio.CancelledError:
            raise
        except Exception:  # a job handles its own API errors; this is a bug, keep the timeline alive
            log.exception("hollow job %r failed", key)
        finally:
            self._slots.release()
            self._running[key] -= 1
            if not self._running[key]:
                del self._running[key]
