"""Work queue semantics (client-go's), rate limiters and the fake clock — all on a FakeClock."""

from __future__ import annotations

import asyncio

import pytest

from kybernetes import errors
from kybernetes.client.workqueue import (
    BucketRateLimiter,
    FakeClock,
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RealClock,
    ShutDown,
    WorkQueue,
    default_rate_limiter,
    run_workers,
)


async def settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


async def test_fifo_and_dedupe() -> None:
    q = WorkQueue("t", clock=FakeClock())
    for k in ["a", "b", "a", "c", "b"]:
        q.add(k)
    assert len(q) == 3
    assert [await q.get() for _ in range(3)] == ["a", "b", "c"]
    assert len(q) == 0


async def test_processing_key_is_not_handed_out_twice_and_dirty_requeues() -> None:
    q = WorkQueue("t", clock=FakeClock())
    q.add("a")
    assert await q.get() == "a"
    q.add("a")  # while processing: marked dirty, not queued
    q.add("a")
    assert len(q) == 0
    getter = asyncio.create_task(q.get())
    await settle()
    assert not getter.done()  # the only key is being processed
    q.done("a")
    assert await asyncio.wait_for(getter, 1) == "a"  # requeued once, after done
    q.done("a")
    assert len(q) == 0


async def test_done_without_readd_does_not_requeue() -> None:
    q = WorkQueue("t", clock=FakeClock())
    q.add("a")
    await q.get()
    q.done("a")
    assert len(q) == 0


async def test_get_blocks_until_add_and_shutdown_drains() -> None:
    q = WorkQueue("t", clock=FakeClock())
    waiters = [asyncio.create_task(q.get()) for _ in range(2)]
    await settle()
    q.add("x")
    await settle()
    done = [w for w in waiters if w.done()]
    assert len(done) == 1 and done[0].result() == "x"
    q.add("y")
    q.shutdown()
    q.add("ignored")  # adds after shutdown are dropped
    results = await asyncio.gather(*[w for w in waiters if not w.done()], q.get(), return_exceptions=True)
    assert "y" in results and any(isinstance(r, ShutDown) for r in results)
    with pytest.raises(ShutDown):
        await q.get()


async def test_add_after_and_earlier_delay_wins() -> None:
    clock = FakeClock()
    q = WorkQueue("t", clock=clock)
    q.add_after("a", 10)
    q.add_after("a", 5)   # earlier: replaces
    q.add_after("a", 20)  # later: ignored
    q.add_after("b", 0)   # immediate
    assert len(q) == 1 and await q.get() == "b"
    await clock.advance(4.9)
    assert len(q) == 0
    await clock.advance(0.1)
    assert len(q) == 1 and await q.get() == "a"
    await clock.advance(100)
    assert len(q) == 0  # the replaced 10 s and the ignored 20 s never fire


async def test_add_after_then_plain_add_dedupes() -> None:
    clock = FakeClock()
    q = WorkQueue("t", clock=clock)
    q.add_after("a", 5)
    q.add("a")
    await clock.advance(5)
    assert len(q) == 1  # the delayed add found "a" already queued


async def test_pending_counts_queued_processing_and_due_delays() -> None:
    clock = FakeClock()
    q = WorkQueue("t", clock=clock)
    assert q.pending() == 0
    q.add("a")
    q.add_after("b", 5)
    assert (q.pending(0), q.pending(4.9), q.pending(5), q.pending()) == (1, 1, 2, 2)
    assert await q.get() == "a"
    assert q.pending(0) == 1  # processing is outstanding work
    q.done("a")
    assert q.pending(0) == 0 and q.pending() == 1
    clock.advance(5)  # due, and not yet added (the timer task has not run): still outstanding
    assert q.pending(0) == 1
    await settle()
    assert len(q) == 1 and q.pending(0) == 1
    assert await q.get() == "b"
    q.done("b")
    assert q.pending() == 0


async def test_shutdown_drops_pending_delays() -> None:
    clock = FakeClock()
    q = WorkQueue("t", clock=clock)
    q.add_after("a", 1)
    q.shutdown()
    await clock.advance(2)
    with pytest.raises(ShutDown):
        await q.get()


async def test_rate_limited_backoff_is_exponential_per_key() -> None:
    clock = FakeClock()
    q = WorkQueue("t", clock=clock)
    delays = []
    for _ in range(5):
        q.add_rate_limited("k")
        start = clock.now()
        while len(q) == 0:
            await clock.advance(0.001)
        delays.append(round(clock.now() - start, 3))
        assert await q.get() == "k"
        q.done("k")
    assert delays == [0.005, 0.01, 0.02, 0.04, 0.08]
    assert q.num_requeues("k") == 5
    q.forget("k")
    assert q.num_requeues("k") == 0


def test_item_exponential_limiter_caps() -> None:
    lim = ItemExponentialFailureRateLimiter(0.005, 1000.0)
    got = [lim.when("a") for _ in range(30)]
    assert got[:3] == [0.005, 0.01, 0.02]
    assert got[-1] == 1000.0 and max(got) == 1000.0
    assert lim.when("b") == 0.005  # per key
    for _ in range(100):
        lim.when("c")
    assert lim.when("c") == 1000.0


def test_bucket_limiter_burst_then_qps() -> None:
    clock = FakeClock()
    lim = BucketRateLimiter(10, 100, clock=clock)
    assert all(lim.when(f"k{i}") == 0 for i in range(100))
    assert lim.when("x") == pytest.approx(0.1)
    assert lim.when("y") == pytest.approx(0.2)
    clock.advance(10)  # refills (capped at the burst)
    assert lim.when("z") == 0


def test_default_limiter_is_max_of_both() -> None:
    clock = FakeClock()
    lim = default_rate_limiter(clock)
    assert isinstance(lim, MaxOfRateLimiter)
    assert lim.when("a") == 0.005
    for i in range(200):
        lim.when(f"other{i}")
    # the bucket is in debt now, so a fresh key still waits
    assert lim.when("fresh") > 1
    assert lim.num_requeues("a") == 1


async def test_fake_clock_wakes_sleepers_in_order() -> None:
    clock = FakeClock(100.0)
    woke: list[str] = []

    async def sleeper(name: str, d: float) -> None:
        await clock.sleep(d)
        woke.append(name)

    tasks = [asyncio.create_task(sleeper("late", 3)), asyncio.create_task(sleeper("early", 1))]
    await settle()
    assert clock.has_sleepers() and clock.next_wakeup() == 101.0
    await clock.advance(1)
    assert woke == ["early"]
    clock.advance(5)  # also usable without await
    await settle()
    assert woke == ["early", "late"] and clock.now() == 106.0
    await asyncio.gather(*tasks)
    await clock.sleep(0)
    assert RealClock().now() > 0


async def test_run_workers_one_worker_per_key_and_retries() -> None:
    clock = FakeClock()
    q = WorkQueue("t", clock=clock)
    active: set[str] = set()
    overlaps = 0
    attempts: dict[str, int] = {}
    release = asyncio.Event()

    async def sync(key: str) -> None:
        nonlocal overlaps
        if key in active:
            overlaps += 1
        active.add(key)
        attempts[key] = attempts.get(key, 0) + 1
        try:
            await release.wait()
            if key == "flaky" and attempts[key] < 3:
                raise RuntimeError("transient")
            if key == "conflict" and attempts[key] < 2:
                raise errors.Conflict("stale")
        finally:
            active.discard(key)

    runner = asyncio.create_task(run_workers(q, sync, workers=4))
    q.add("a")
    await settle()
    q.add("a")  # while "a" is processing: must wait, not run on a second worker
    q.add("flaky")
    q.add("conflict")
    await settle()
    assert "a" in active and attempts["a"] == 1
    release.set()
    await settle(50)
    assert attempts["a"] == 2  # the dirty requeue ran after the first sync finished
    # failures back off on the fake clock
    for _ in range(200):
        if attempts.get("flaky") == 3 and attempts.get("conflict") == 2 and len(q) == 0 and not active:
            break
        await clock.advance(0.005)
    assert attempts["flaky"] == 3 and attempts["conflict"] == 2
    assert overlaps == 0
    assert q.num_requeues("flaky") == 0  # forgotten after success
    q.shutdown()
    await asyncio.wait_for(runner, 2)
