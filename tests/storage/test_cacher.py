"""The watch cache's consistent-read wait, on a real SQLite store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from kybernetes.storage.cacher import Cacher
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
