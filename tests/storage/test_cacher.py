"""The watch cache's consistent-read wait, on a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.storage.cacher import HISTORY, HISTORY_FRESH, HISTORY_MIN, Cacher, ResourceCache
from kybernetes.storage.interface import CompactedError, Event, UnavailableError
from kybernetes.storage.sqlite import SQLiteStore


async def test_readers_wait_for_their_own_revision(tmp_path: Path) -> None:
    store = await SQLiteStore.open(str(tmp_path / "kv.db"), compact_interval=0)
    cacher = Cacher(store, lambda value, rev: {})
    await cacher.start()
    try:
        start = cacher.revision
        # 200 readers, each waiting for a different revision not written yet.
        waits = {n: asyncio.create_task(cacher.wait_for_revision(start + n, timeout=20)) for n in range(1, 201)}
        await asyncio.sleep(0)
        for n in range(1, 101):
            await store.create(f"/registry/configmaps/ns/c{n}", b"{}")
        await cacher.wait_for_revision(start + 100, timeout=20)
        for _ in range(3):
            await asyncio.sleep(0)  # the released readers' tasks run
        done = {n for n, t in waits.items() if t.done()}
        assert done == set(range(1, 101)), "exactly the readers whose revision was applied are released"
        assert len(cacher._waiters) == 100
        # A reader that gives up leaves nothing that blocks the others.
        with pytest.raises(TimeoutError):
            await cacher.wait_for_revision(start + 10_000, timeout=0.05)
        for n in range(101, 201):
            await store.create(f"/registry/configmaps/ns/c{n}", b"{}")
        await asyncio.wait_for(asyncio.gather(*waits.values()), 20)
        assert await cacher.wait_fresh() == start + 200
    finally:
        await cacher.stop()
        await store.close()


class OutageStore:
    """A real SQLite store behind a switch: while ``down``, calls raise UnavailableError and live
    watches end with it (a backend that does not resume its own watch, as the contract allows);
    ``compacted_once`` makes the next watch answer CompactedError (the cacher then rebuilds)."""

    def __init__(self, store: SQLiteStore) -> None:
        self.store = store
        self.down = False
        self.compacted_once = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not asyncio.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kw: Any) -> Any:
            if self.down:
                raise UnavailableError("store is down")
            return await attr(*args, **kw)

        return call

    async def watch(self, prefix: str, start: int, *, progress: bool = False) -> AsyncIterator[Event]:
        if self.compacted_once:
            self.compacted_once = False
            raise CompactedError(start, start + 1)
        if self.down:
            raise UnavailableError("store is down")
        async for ev in self.store.watch(prefix, start, progress=progress):
            if self.down:
                raise UnavailableError("store is down")
            yield ev


async def test_the_cache_survives_a_store_outage(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A store outage ends the store watch and fails the rebuild after a compaction: the cacher
    keeps running (a warning, no traceback), and once the store answers it applies every write."""
    real = await SQLiteStore.open(str(tmp_path / "kv.db"), compact_interval=0)
    store = OutageStore(real)
    cacher = Cacher(store, lambda value, rev: {})  # type: ignore[arg-type]
    await cacher.start()
    try:
        cache = await cacher.cache_for("/registry/configmaps/")
        await real.create("/registry/configmaps/ns/before", b"{}")
        await cacher.wait_fresh()
        store.down, store.compacted_once = True, True
        await real.create("/registry/configmaps/ns/wakes-the-watch", b"{}")  # the live watch sees the outage
        with pytest.raises(UnavailableError):
            await cacher.wait_fresh()
        await asyncio.sleep(1.5)  # the cacher retries meanwhile (the compaction's rebuild among them)
        store.down = False
        rev = await real.create("/registry/configmaps/ns/after", b"{}")
        await cacher.wait_for_revision(rev, timeout=10)
        assert "/registry/configmaps/ns/after" in cache.objects
        assert "/registry/configmaps/ns/wakes-the-watch" in cache.objects
        assert not [r for r in caplog.records if r.exc_info], "an outage is a warning, not a traceback"
    finally:
        await cacher.stop()
        await real.close()


def test_the_history_of_a_slowly_written_resource_stays_bounded_by_age() -> None:
    """A Lease renewed every 2 s: its history keeps the newest HISTORY_MIN events and whatever
    else is under HISTORY_FRESH seconds old, not its last HISTORY events (the soak's slow RSS growth:
    hours of renewals held in memory). Resumes from a revision still kept are served from memory;
    older ones fall back to the store (events_since answers None)."""
    now = [0.0]
    cache = ResourceCache("/registry/leases/", lambda value, rev: {"metadata": {"resourceVersion": str(rev)}},
                          clock=lambda: now[0])
    cache.fill([], revision=1)
    renewals = 10 * HISTORY_MIN
    for rev in range(2, 2 + renewals):
        now[0] += 2.0
        cache.apply(Event("PUT", "/registry/leases/ns/holder", rev, b"{}", b"{}" if rev > 2 else None))
    newest = 1 + renewals
    assert len(cache.history) == HISTORY_MIN, "older than HISTORY_FRESH beyond the minimum: forgotten"
    assert [e.revision for e in cache.history] == list(range(newest - HISTORY_MIN + 1, newest + 1))
    assert cache.events_since("/registry/leases/", newest - HISTORY_MIN) is not None
    assert cache.events_since("/registry/leases/", newest - HISTORY_MIN - 1) is None

    # After a pause, written fast: all of the last HISTORY_FRESH seconds stays (up to HISTORY).
    now[0] += HISTORY_FRESH + 1
    for rev in range(newest + 1, newest + 1 + 3 * HISTORY_MIN):
        now[0] += 0.01
        cache.apply(Event("PUT", "/registry/leases/ns/holder", rev, b"{}", b"{}"))
    assert len(cache.history) == 3 * HISTORY_MIN < HISTORY
    assert cache.history[0].revision == newest + 1
