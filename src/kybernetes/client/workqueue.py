"""Work queues of keys, with client-go's ``util/workqueue`` semantics, and the clocks they run on.

A controller's event handlers ``add`` keys (``namespace/name``); workers ``get`` a key, reconcile
it, and call ``done``. The queue guarantees:

- **Dedupe.** Adding a key that is already waiting is a no-op: ten events for one object before a
  worker gets to it mean one sync.
- **One worker per key.** A key handed out by ``get`` is *processing* until ``done(key)``; it is
  never handed out again meanwhile.
- **Dirty requeue.** Adding a key that is processing marks it *dirty*; ``done`` puts it back at
  the end of the queue, so the change that arrived during the sync is not lost.
- **FIFO** among distinct keys.
- **Delays.** ``add_after(key, d)`` adds the key after ``d`` seconds of the queue's clock. While a
  delayed add is pending, another ``add_after`` with an earlier due time replaces it; a later
  one is dropped. ``d <= 0`` is ``add``. A plain ``add`` does not cancel a pending delayed add.
- **Rate limiting.** ``add_rate_limited(key)`` is ``add_after(key, rate_limiter.when(key))``;
  ``forget(key)`` resets the key's failure history (call it after a successful sync);
  ``num_requeues`` says how many failures are on record.
- **Shutdown.** After ``shutdown()`` adds are ignored; ``get`` still hands out what is queued and
  then raises :class:`ShutDown` (client-go's drain-on-Get behaviour); pending delayed adds are
  dropped.

The default rate limiter is client-go's ``DefaultControllerRateLimiter``: the maximum of a
per-key exponential backoff (5 ms doubling up to 1000 s) and an overall token bucket (10 qps,
burst 100), so one broken object backs off on its own while a storm of failures cannot exceed
10 retries a second overall.

A named queue keeps client-go's ``workqueue_*`` metrics (:mod:`kybernetes.client.workqueue_metrics`).

Time comes from a :class:`Clock`. :class:`RealClock` is the event loop; :class:`FakeClock` is
advanced by tests, so backoff of minutes runs in microseconds.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import Any, Protocol

from kybernetes import errors
from kybernetes.client import workqueue_metrics

log = logging.getLogger(__name__)


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale (not wall-clock time)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class _Settle:
    """What :meth:`FakeClock.advance` returns: already done, but awaiting it lets woken tasks run."""

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    def __await__(self) -> Generator[Any, None, None]:
        for _ in range(self.rounds):
            yield from asyncio.sleep(0).__await__()


class FakeClock:
    """A clock that moves only when told to.

    ``await clock.sleep(d)`` parks until :meth:`advance` moves the clock to or past its due time.
    ``advance`` changes the time and wakes the due sleepers at once (it may be called without
    ``await``); ``await clock.advance(d)`` additionally yields to the loop a number of times, so
    the woken tasks — and what they in turn wake — run before the test goes on.
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    def advance(self, seconds: float, *, settle_rounds: int = 20) -> _Settle:
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)
        return _Settle(settle_rounds)

    def has_sleepers(self) -> bool:
        """Whether any task is parked in :meth:`sleep` (tests use it to know a timer is armed)."""
        self._sleepers = [s for s in self._sleepers if not s[2].done()]
        heapq.heapify(self._sleepers)
        return bool(self._sleepers)

    def next_wakeup(self) -> float | None:
        """The earliest due time of a parked sleeper, if any."""
        return self._sleepers[0][0] if self.has_sleepers() else None


# -- rate limiters --------------------------------------------------------------------------------


class RateLimiter(Protocol):
    def when(self, key: str) -> float:
        """Seconds to wait before the key's next retry (records one more failure)."""
        ...

    def forget(self, key: str) -> None:
        """Drop the key's failure history."""
        ...

    def num_requeues(self, key: str) -> int: ...


class ItemExponentialFailureRateLimiter:
    """``base * 2**failures``, capped at ``max_delay``; per key."""

    def __init__(self, base: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base = base
        self.max_delay = max_delay
        self._failures: dict[str, int] = {}

    def when(self, key: str) -> float:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        if n > 60:  # 2**n overflows float precision long after it passed max_delay
            return self.max_delay
        return float(min(self.max_delay, self.base * (2**n)))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)


class BucketRateLimiter:
    """A token bucket over all keys (``qps`` refill, ``burst`` size); ``when`` reserves a token.

    Reservations may go into debt, as Go's ``rate.Limiter.Reserve`` does: the n-th caller past the
    burst waits n/qps seconds.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, *, clock: Clock | None = None) -> None:
        self.qps = qps
        self.burst = burst
        self.clock: Clock = clock or RealClock()
        self._tokens = float(burst)
        self._last = self.clock.now()

    def when(self, key: str) -> float:
        now = self.clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: str) -> None:
        pass

    def num_requeues(self, key: str) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of the limiters asks for (every limiter records every failure)."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, key: str) -> float:
        return max(lim.when(key) for lim in self.limiters)

    def forget(self, key: str) -> None:
        for lim in self.limiters:
            lim.forget(key)

    def num_requeues(self, key: str) -> int:
        return max(lim.num_requeues(key) for lim in self.limiters)


def default_rate_limiter(clock: Clock | None = None) -> RateLimiter:
    """client-go's ``DefaultControllerRateLimiter``: max(5 ms..1000 s per key, 10 qps burst 100)."""
    return MaxOfRateLimiter(ItemExponentialFailureRateLimiter(0.005, 1000.0),
                            BucketRateLimiter(10.0, 100, clock=clock))


# -- the queue ------------------------------------------------------------------------------------


class ShutDown(Exception):
    """The queue was shut down and holds nothing more."""


class WorkQueue:
    """A rate-limited, delaying, deduplicating queue of keys (see the module doc for the contract)."""

    def __init__(self, name: str = "", *, clock: Clock | None = None,
                 rate_limiter: RateLimiter | None = None) -> None:
        self.name = name
        self.clock: Clock = clock or RealClock()
        self.rate_limiter: RateLimiter = rate_limiter or default_rate_limiter(self.clock)
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._waiters: list[asyncio.Future[None]] = []
        # key -> (due time, the task that will add it); at most one pending delayed add per key.
        self._delayed: dict[str, tuple[float, asyncio.Task[None]]] = {}
        self._shutting_down = False
        # Metrics (named queues only): when each waiting key was first added, when each
        # processing key was handed out, on the queue's clock.
        self._metrics = workqueue_metrics.register(self) if name else None
        self._added_at: dict[str, float] = {}
        self._started_at: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"<WorkQueue {self.name!r} queued={len(self._queue)} processing={len(self._processing)}>"

    def __len__(self) -> int:
        """Keys waiting to be handed out (not those processing or delayed)."""
        return len(self._queue)

    def pending(self, within: float = math.inf) -> int:
        """Keys with work outstanding: queued, processing, or delayed to be added within ``within``
        seconds of the queue's clock (0: only those already due). A queue whose ``pending(w)`` is
        0 has finished every sync it was asked for, except periodic re-adds further than ``w`` out;
        tests use it to know a controller has processed the events it was sent."""
        horizon = self.clock.now() + within
        delayed = sum(1 for due, _ in self._delayed.values() if due <= horizon)
        return len(self._queue) + len(self._processing) + delayed

    def depth(self) -> int:
        """Keys added and not yet handed out, a key re-added while processing included (client-go's depth)."""
        return len(self._dirty)

    def processing_times(self) -> tuple[float, float]:
        """The sum and the longest of the times the processing keys have been processing."""
        if not self._started_at:
            return 0.0, 0.0
        now = self.clock.now()
        spans = [now - t for t in self._started_at.values()]
        return sum(spans), max(spans)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def add(self, key: str) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        m = self._metrics
        if m is not None:
            m.adds += 1
            self._added_at.setdefault(key, self.clock.now())
        if key in self._processing:
            return  # done() will queue it again
        self._queue.append(key)
        self._wake()

    def add_after(self, key: str, delay: float) -> None:
        if self._shutting_down:
            return
        if self._metrics is not None:
            self._metrics.retries += 1
        if delay <= 0:
            self.add(key)
            return
        due = self.clock.now() + delay
        pending = self._delayed.get(key)
        if pending is not None:
            if pending[0] <= due:
                return
            pending[1].cancel()
        task = asyncio.get_running_loop().create_task(self._add_later(key, due))
        self._delayed[key] = (due, task)

    async def _add_later(self, key: str, due: float) -> None:
        # Sleep until the due time, not for the delay: the clock may have moved between
        # add_after and this task's first step (a FakeClock advanced right away, say).
        await self.clock.sleep(due - self.clock.now())
        pending = self._delayed.get(key)
        if pending is not None and pending[0] == due:
            del self._delayed[key]
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        self.add_after(key, self.rate_limiter.when(key))

    def forget(self, key: str) -> None:
        self.rate_limiter.forget(key)

    def num_requeues(self, key: str) -> int:
        return self.rate_limiter.num_requeues(key)

    async def get(self) -> str:
        """The next key (now processing); raises :class:`ShutDown` once shut down and empty."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            finally:
                if fut in self._waiters:
                    self._waiters.remove(fut)
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        m = self._metrics
        if m is not None:
            now = self.clock.now()
            self._started_at[key] = now
            added = self._added_at.pop(key, None)
            if added is not None:
                m.queue_duration.observe(now - added)
        return key

    def done(self, key: str) -> None:
        """The worker finished ``key``; if it was added meanwhile, it is queued again."""
        self._processing.discard(key)
        m = self._metrics
        if m is not None:
            started = self._started_at.pop(key, None)
            if started is not None:
                m.work_duration.observe(self.clock.now() - started)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shutdown(self) -> None:
        self._shutting_down = True
        for _, task in self._delayed.values():
            task.cancel()
        self._delayed.clear()
        self._wake()

    def _wake(self) -> None:
        # Wake every waiter: each re-checks the queue, so a waiter cancelled after being woken can
        # never strand a key while others sleep (the cost is a few spurious wake-ups).
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)


async def run_workers(queue: WorkQueue, sync: Callable[[str], Awaitable[None]], workers: int = 1) -> None:
    """Run ``workers`` loops of get -> sync -> done until the queue shuts down.

    Success forgets the key's failures. An exception requeues the key with backoff
    (``add_rate_limited``) and is logged — a :class:`~kybernetes.errors.Conflict` quietly, since a
    stale read losing a compare-and-swap is routine. ``done`` is always called.
    """

    async def worker(i: int) -> None:
        while True:
            try:
                key = await queue.get()
            except ShutDown:
                return
            try:
                await sync(key)
            except asyncio.CancelledError:
                queue.done(key)
                raise
            except errors.Conflict as e:
                log.debug("%s: sync %s: conflict, requeued: %s", queue.name, key, e)
                queue.add_rate_limited(key)
            except Exception:
                log.exception("%s: sync %s failed (retry %d)", queue.name, key, queue.num_requeues(key) + 1)
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            queue.done(key)

    tasks = [asyncio.create_task(worker(i), name=f"{queue.name}-worker-{i}") for i in range(max(1, workers))]
    try:
        await asyncio.gather(*tasks)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
