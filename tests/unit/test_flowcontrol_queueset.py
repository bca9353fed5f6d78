"""The APF queue set: seats, shuffle-sharded queues, fairness between flows, limits, timeouts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from kybernetes.apiserver.flowcontrol.queueset import QueueSet, deal


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self) -> None:
        self.t = 0.0
        self.timers: list[tuple[float, Callable[[], None], list[bool]]] = []

    def now(self) -> float:
        return self.t

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeClock.Handle:
        cancelled = [False]
        self.timers.append((self.t + delay, callback, cancelled))
        return FakeClock.Handle(cancelled)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        due = [x for x in self.timers if x[0] <= self.t]
        self.timers = [x for x in self.timers if x[0] > self.t]
        for _, cb, cancelled in due:
            if not cancelled[0]:
                cb()

    class Handle:
        def __init__(self, flag: list[bool]) -> None:
            self.flag = flag

        def cancel(self) -> None:
            self.flag[0] = True


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_deal_gives_distinct_cards_deterministically() -> None:
    for h in (0, 1, 12345, 2**60 - 1):
        hand = deal(h, 64, 6)
        assert len(set(hand)) == 6 and all(0 <= c < 64 for c in hand)
        assert deal(h, 64, 6) == hand
    assert deal(7, 10_000_000, 2) == deal(7, 10_000_000, 2)
    assert len(set(deal(7, 10_000_000, 2))) == 2


async def test_free_seats_start_at_once_and_are_limited() -> None:
    qs = QueueSet("l", 2, queues=4, hand_size=2, queue_length_limit=5, clock=FakeClock())
    assert qs.try_start() and qs.try_start()
    assert not qs.try_start()
    qs.release()
    assert qs.try_start()
    assert qs.executing == 2


async def test_exempt_level_never_waits() -> None:
    qs = QueueSet("exempt", None)
    assert all(qs.try_start() for _ in range(1000))


async def test_reject_level_without_queues_rejects_when_full() -> None:
    qs = QueueSet("r", 1, clock=FakeClock())
    assert await qs.acquire(1)
    assert not await qs.acquire(2)
    qs.release()
    assert await qs.acquire(2)


async def test_waiter_gets_the_released_seat() -> None:
    qs = QueueSet("q", 1, queues=8, hand_size=2, queue_length_limit=10, clock=FakeClock())
    assert qs.try_start()
    waiter = asyncio.ensure_future(qs.acquire(42))
    await settle()
    assert not waiter.done() and qs.waiting == 1
    qs.release()
    assert await waiter is True
    assert qs.executing == 1 and qs.waiting == 0


async def test_queue_length_limit_rejects() -> None:
    # One queue: every flow lands in it.
    qs = QueueSet("q", 1, queues=1, hand_size=1, queue_length_limit=2, clock=FakeClock())
    assert qs.try_start()
    waiters = [asyncio.ensure_future(qs.acquire(i)) for i in range(2)]
    await settle()
    assert await qs.acquire(99) is False
    for _ in waiters:
        qs.release()
        await settle()
    assert [w.result() for w in waiters] == [True, True]


async def test_timeout_in_queue_rejects() -> None:
    clock = FakeClock()
    qs = QueueSet("q", 1, queues=4, hand_size=1, queue_length_limit=10, wait_limit=15.0, clock=clock)
    assert qs.try_start()
    waiter = asyncio.ensure_future(qs.acquire(5))
    await settle()
    clock.advance(14.9)
    await settle()
    assert not waiter.done()
    clock.advance(0.2)
    assert await waiter is False
    assert qs.waiting == 0
    qs.release()
    assert qs.executing == 0


async def test_cancelled_waiter_leaves_its_queue() -> None:
    qs = QueueSet("q", 1, queues=4, hand_size=1, queue_length_limit=10, clock=FakeClock())
    assert qs.try_start()
    waiter = asyncio.ensure_future(qs.acquire(5))
    await settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert qs.waiting == 0
    qs.release()
    assert qs.executing == 0


def _flows_in_distinct_queues(qs: QueueSet, n: int) -> list[int]:
    """Flow hashes whose hands (hand size 1) are n different queues."""
    seen: dict[int, int] = {}
    h = 0
    while len(seen) < n:
        q = deal(h, len(qs._queues), 1)[0]
        seen.setdefault(q, h)
        h += 1
    return list(seen.values())


async def test_seats_alternate_between_flows_however_long_their_queues() -> None:
    qs = QueueSet("q", 1, queues=16, hand_size=1, queue_length_limit=50, clock=FakeClock())
    heavy, light = _flows_in_distinct_queues(qs, 2)
    assert qs.try_start()
    order: list[str] = []

    async def one(flow: int, label: str) -> None:
        assert await qs.acquire(flow)
        order.append(label)

    tasks = [asyncio.ensure_future(one(heavy, "heavy")) for _ in range(10)]
    await settle()
    tasks += [asyncio.ensure_future(one(light, "light")) for _ in range(3)]
    await settle()
    for _ in range(13):
        qs.release()
        await settle()
    await asyncio.gather(*tasks)
    # The light flow arrived behind ten heavy requests, yet is served every other seat.
    assert order[:6] == ["heavy", "light", "heavy", "light", "heavy", "light"]
    assert order[6:] == ["heavy"] * 7


async def test_new_limit_dispatches_waiters() -> None:
    qs = QueueSet("q", 1, queues=4, hand_size=2, queue_length_limit=10, clock=FakeClock())
    assert qs.try_start()
    waiters = [asyncio.ensure_future(qs.acquire(i)) for i in range(3)]
    await settle()
    assert qs.configure(4, queues=4, hand_size=2, queue_length_limit=10)
    assert await asyncio.gather(*waiters) == [True, True, True]
    assert qs.executing == 4
    assert not qs.configure(4, queues=8, hand_size=2, queue_length_limit=10)
