"""One priority level's seats and queues: fair queuing with shuffle sharding.

Guarantees (on one event loop, no locks):

* at most ``limit`` requests hold a seat at once (every request is one seat wide);
* a request that finds a free seat and nobody waiting starts at once, without allocating;
* otherwise, with queues, its flow is dealt a *hand* of ``hand_size`` of the ``queues`` queues
  (the same hand every time for the same flow hash) and it joins the shortest queue of its hand,
  or is rejected if that queue already holds ``queue_length_limit`` requests;
* without queues (``Reject`` levels) it is rejected;
* a freed seat goes to the head of the non-empty queue that has been served least: each queue
  carries a virtual clock advanced by one per dispatched request, and a queue that becomes busy
  starts no earlier than the queue served last, so an idle flow banks no credit. Flows in
  different queues thus get seats in turn however many requests each has waiting;
* a request waits at most ``wait_limit`` seconds (then it is rejected), and a waiter whose
  client goes away leaves its queue.

The clock is injectable (:class:`Clock`) so tests drive time by hand.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol


class TimerHandle(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle: ...


class LoopClock:
    """The event loop's monotonic clock."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> TimerHandle:
        return asyncio.get_running_loop().call_later(delay, callback)


def deal(hash_value: int, deck: int, hand: int) -> tuple[int, ...]:
    """``hand`` distinct cards of ``0..deck-1`` chosen by ``hash_value`` (shuffle sharding): each
    step takes a remainder of the hash as the index among the cards not yet dealt."""
    remaining = list(range(deck)) if deck <= 4096 else None
    out: list[int] = []
    for i in range(hand):
        hash_value, r = divmod(hash_value, deck - i)
        if remaining is not None:
            out.append(remaining.pop(r))
        else:  # a huge deck: skip over the cards already dealt instead of listing them all
            card = r
            for taken in sorted(out):
                if card >= taken:
                    card += 1
            out.append(card)
    return tuple(out)


class _Queue:
    __slots__ = ("in_heap", "index", "virtual", "waiting")

    def __init__(self, index: int) -> None:
        self.index = index
        self.waiting: deque[asyncio.Future[bool]] = deque()
        self.virtual = 0.0
        self.in_heap = False


class QueueSet:
    """Seats and queues of one priority level (see the module docstring)."""

    def __init__(self, name: str, limit: int | None, *, queues: int = 0, hand_size: int = 0,
                 queue_length_limit: int = 0, wait_limit: float = 15.0, clock: Clock | None = None) -> None:
        self.name = name
        self.limit = limit
        """Seats; None for an exempt level (never waits)."""
        self.executing = 0
        self.waiting = 0
        self.wait_limit = wait_limit
        self.hand_size = min(hand_size, queues)
        self.queue_length_limit = queue_length_limit
        self.clock: Clock = clock or LoopClock()
        self._queues = [_Queue(i) for i in range(queues)]
        self._ready: list[tuple[float, int, _Queue]] = []
        """Non-empty queues by (virtual clock, tie-break)."""
        self._seq = 0
        self._floor = 0.0
        self._hands: dict[int, tuple[int, ...]] = {}

    def configure(self, limit: int | None, *, queues: int, hand_size: int, queue_length_limit: int) -> bool:
        """Take a new limit; False if the queue shape changed (then build a new QueueSet)."""
        if queues != len(self._queues) or min(hand_size, queues) != self.hand_size:
            return False
        self.limit, self.queue_length_limit = limit, queue_length_limit
        self._dispatch()
        return True

    def try_start(self) -> bool:
        """Take a seat now if one is free and nobody waits (the fast path of every request)."""
        if self.limit is None or (self.executing < self.limit and not self.waiting):
            self.executing += 1
            return True
        return False

    async def acquire(self, flow_hash: int) -> bool:
        """Wait for a seat; False if the request is rejected (no queue room, no queues, or timeout)."""
        return not await self.wait(flow_hash)

    async def wait(self, flow_hash: int) -> str:
        """Wait for a seat: "" once seated, else why the request is rejected, in Kubernetes'
        words: ``concurrency-limit`` (the level has no queues), ``queue-full``, ``time-out``."""
        if self.try_start():
            return ""
        if not self._queues:
            return "concurrency-limit"
        queue = self._choose(flow_hash)
        if len(queue.waiting) >= self.queue_length_limit:
            return "queue-full"
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        if not queue.waiting:
            queue.virtual = max(queue.virtual, self._floor)
        if not queue.in_heap:
            self._push(queue)
        queue.waiting.append(fut)
        self.waiting += 1
        self._dispatch()
        if fut.done():
            return "" if fut.result() else "time-out"
        timer = self.clock.call_later(self.wait_limit, lambda: self._expire(queue, fut))
        try:
            return "" if await fut else "time-out"
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled() and fut.result():
                self.release()  # granted just as the client left: give the seat back
            else:
                self._remove(queue, fut)
            raise
        finally:
            timer.cancel()

    def release(self) -> None:
        """Give a seat back (every successful start must be released once)."""
        self.executing -= 1
        if self.waiting:
            self._dispatch()

    # --- internals -------------------------------------------------------------------------

    def _choose(self, flow_hash: int) -> _Queue:
        hand = self._hands.get(flow_hash)
        if hand is None:
            if len(self._hands) > 10_000:
                self._hands.clear()
            hand = self._hands[flow_hash] = deal(flow_hash, len(self._queues), max(self.hand_size, 1))
        return min((self._queues[i] for i in hand), key=lambda q: len(q.waiting))

    def _push(self, queue: _Queue) -> None:
        self._seq += 1
        queue.in_heap = True
        heapq.heappush(self._ready, (queue.virtual, self._seq, queue))

    def _dispatch(self) -> None:
        while self.waiting and (self.limit is None or self.executing < self.limit) and self._ready:
            _, _, queue = heapq.heappop(self._ready)
            queue.in_heap = False
            if not queue.waiting:
                continue  # its waiters left
            fut = queue.waiting.popleft()
            self.waiting -= 1
            self._floor = queue.virtual
            queue.virtual += 1
            if queue.waiting:
                self._push(queue)
            self.executing += 1
            fut.set_result(True)

    def _remove(self, queue: _Queue, fut: asyncio.Future[Any]) -> None:
        try:
            queue.waiting.remove(fut)
        except ValueError:
            return
        self.waiting -= 1

    def _expire(self, queue: _Queue, fut: asyncio.Future[bool]) -> None:
        if not fut.done():
            self._remove(queue, fut)
            fut.set_result(False)
