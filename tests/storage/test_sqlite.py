"""SQLiteStore: the shared Store suite, plus what only an embedded file store has to prove.

Durability (reopen, kill -9), bounded growth (auto-compaction, WAL size) and compaction in many
small batches are checked against the real file, with ``sqlite3`` opened beside the store where the
test needs to see rows rather than keys.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import kybernetes.storage.sqlite as sqlite_module
from kybernetes.storage.interface import CompactedError, RevisionMismatchError, StoreError
from kybernetes.storage.sqlite import SQLiteStore
from kybernetes.storage.sqlite_schema import prefix_end as _prefix_end

from .store_suite import StoreSuite, close, take


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = await SQLiteStore.open(str(tmp_path / "kv.db"), compact_interval=0)
    yield s
    await s.close()


class TestSQLiteStore(StoreSuite):
    pass


def row_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM kv").fetchone()[0])


def test_prefix_end() -> None:
    assert _prefix_end("/registry/pods/") == "/registry/pods0"
    assert _prefix_end("a\U0010ffff") == "b"
    assert _prefix_end("") > "\U0010ffff"


async def test_reopen_keeps_data_and_revision(tmp_path: Path) -> None:
    path = str(tmp_path / "kv.db")
    s = await SQLiteStore.open(path, compact_interval=0)
    r1 = await s.create("/registry/a", b"1")
    r2 = await s.update("/registry/a", b"2", r1)
    r3 = await s.create("/registry/b", b"b")
    r4, _ = await s.delete("/registry/b")
    await s.compact(r4)  # removes the newest row (the tombstone): revisions must not go back
    await s.close()
    assert row_count(Path(path)) == 1  # only /registry/a@r2: r1 was replaced, b is gone entirely

    s = await SQLiteStore.open(path, compact_interval=0)
    try:
        assert await s.current_revision() == r4
        assert await s.compacted_revision() == r4
        kv = await s.get("/registry/a")
        assert kv is not None and (kv.value, kv.create_revision, kv.mod_revision) == (b"2", r1, r2)
        assert await s.get("/registry/b") is None
        r5 = await s.create("/registry/c", b"c")
        assert r5 == r4 + 1 and r3 < r4
        with pytest.raises(RevisionMismatchError):
            await s.update("/registry/a", b"x", r1)
    finally:
        await s.close()


async def test_compaction_in_small_batches(tmp_path: Path) -> None:
    """Sweeping history a few revisions per transaction ends in the same state as one sweep."""
    path = tmp_path / "kv.db"
    s = await SQLiteStore.open(str(path), compact_interval=0)
    s.COMPACT_BATCH = 7
    try:
        revs: dict[str, int] = {}
        for i in range(10):
            revs[f"/registry/k{i}"] = await s.create(f"/registry/k{i}", b"0")
        for round_ in range(1, 10):
            for i in range(10):
                key = f"/registry/k{i}"
                if i % 3 == 0 and round_ == 5:
                    await s.delete(key)
                    revs[key] = await s.create(key, b"re")
                else:
                    revs[key] = await s.update(key, str(round_).encode(), revs[key])
        target = await s.current_revision() - 5
        await s.compact(target)
        # One live row per key plus the rows written after the compaction point.
        assert row_count(path) <= 10 + 5
        res = await s.list("/registry/")
        assert {kv.key: kv.mod_revision for kv in res.items} == revs
        for key, rev in revs.items():
            revs[key] = await s.update(key, b"after", rev)
    finally:
        await s.close()


async def test_auto_compaction_bounds_rows(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    s = await SQLiteStore.open(str(path), compact_interval=0.05, compact_keep=10)
    try:
        rev = await s.create("/registry/hot", b"0")
        for i in range(400):
            rev = await s.update("/registry/hot", str(i).encode(), rev)
            if i % 100 == 99:
                await asyncio.sleep(0.1)  # let the compactor run between bursts
        for _ in range(100):
            if await s.compacted_revision() >= rev - 10:
                break
            await asyncio.sleep(0.05)
        assert await s.compacted_revision() >= rev - 10
        assert row_count(path) <= 11
        with pytest.raises(CompactedError):
            await s.list("/registry/", revision=rev - 20)
        kv = await s.get("/registry/hot")
        assert kv is not None and kv.value == b"399" and kv.mod_revision == rev
    finally:
        await s.close()


async def test_wal_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    wal = Path(str(path) + "-wal")
    s = await SQLiteStore.open(str(path), compact_interval=0)
    value = os.urandom(16 * 1024)
    limit = SQLiteStore.JOURNAL_SIZE_LIMIT + 2 * 1024 * 1024
    biggest = 0
    try:
        revs = await asyncio.gather(*(s.create(f"/registry/big/{i}", value) for i in range(32)))
        for _ in range(60):  # 32 x 60 x 16 KiB = 30 MiB through the WAL
            revs = await asyncio.gather(
                *(s.update(f"/registry/big/{i}", value, r) for i, r in enumerate(revs))
            )
            biggest = max(biggest, wal.stat().st_size)
        assert biggest <= limit, f"WAL grew to {biggest} bytes"
        await s.compact(await s.current_revision())
        assert wal.stat().st_size < 1024 * 1024
        assert row_count(path) == 32
        assert await s.count("/registry/big/") == 32
    finally:
        await s.close()


async def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    path = str(tmp_path / "kv.db")
    script = Path(__file__).with_name("crash_writer.py")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), path, "8", stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    acked: list[tuple[int, str]] = []
    try:

        async def read_acks() -> None:
            while len(acked) < 300:
                line = await proc.stdout.readline()  # type: ignore[union-attr]
                if not line.endswith(b"\n"):
                    raise AssertionError("writer exited early")
                rev, key = line.decode().split()
                acked.append((int(rev), key))

        await asyncio.wait_for(read_acks(), 60)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    s = await SQLiteStore.open(path, compact_interval=0)
    try:
        assert await s.current_revision() >= max(rev for rev, _ in acked)
        for rev, key in acked:
            kv = await s.get(key)
            assert kv is not None, f"acknowledged write {key}@{rev} lost"
            assert kv.mod_revision == rev
        # The store is fully usable after recovery, watches included.
        start = await s.current_revision()
        watch = s.watch("/crash/", start)
        try:
            r = await s.create("/crash/after", b"x")
            (ev,) = await take(watch, 1)
            assert ev.revision == r == start + 1
        finally:
            await close(watch)
    finally:
        await s.close()


async def test_interrupted_compaction_resumes_on_open(tmp_path: Path) -> None:
    path = tmp_path / "kv.db"
    s = await SQLiteStore.open(str(path), compact_interval=0)
    rev = await s.create("/registry/a", b"0")
    for i in range(50):
        rev = await s.update("/registry/a", str(i).encode(), rev)
    await s.close()
    # What a crash right after the first sweep transaction leaves behind: the point is recorded,
    # the cursor has not moved.
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES ('compact_rev', ?)", (rev - 5,))
    assert row_count(path) == 51

    s = await SQLiteStore.open(str(path), compact_interval=0)
    try:
        assert await s.compacted_revision() == rev - 5
        assert row_count(path) == 6
        with pytest.raises(CompactedError):
            await s.list("/registry/", revision=rev - 6)
        kv = await s.get("/registry/a")
        assert kv is not None and kv.mod_revision == rev
    finally:
        await s.close()


async def test_close_ends_watches_and_refuses_work(tmp_path: Path) -> None:
    s = await SQLiteStore.open(str(tmp_path / "kv.db"), compact_interval=0)
    watch = s.watch("/registry/", 0)
    r = await s.create("/registry/a", b"1")
    (ev,) = await take(watch, 1)
    assert ev.revision == r
    pending = asyncio.ensure_future(anext(watch))
    await asyncio.sleep(0.01)
    await s.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(pending, 5)
    with pytest.raises(StoreError):
        await s.create("/registry/b", b"1")
    with pytest.raises(StoreError):
        await s.get("/registry/a")


async def test_compaction_overtaking_a_catching_up_watch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watch still replaying history when compaction removes what it has yet to read fails
    with CompactedError instead of silently skipping events."""
    monkeypatch.setattr(sqlite_module, "_HISTORY_CHUNK", 10)
    s = await SQLiteStore.open(str(tmp_path / "kv.db"), compact_interval=0)
    try:
        start = await s.current_revision()
        rev = await s.create("/registry/a", b"0")
        for i in range(40):
            rev = await s.update("/registry/a", str(i).encode(), rev)
        watch = s.watch("/registry/", start)
        first = await take(watch, 10)  # the first history chunk
        assert first[-1].revision == start + 10
        await s.compact(rev - 5)
        with pytest.raises(CompactedError):
            await take(watch, 1)
    finally:
        await s.close()


async def test_an_older_store_moves_to_kube_apiserver_key_layout(tmp_path: Path) -> None:
    """A store written with the old layout (/registry/<group or core>/<plural>/) is renamed once, at
    open, history and revisions included, so objects, resourceVersions and watches carry over."""
    from kybernetes.apiserver.server import APIServerConfig, open_store

    path = tmp_path / "db" / "state.db"
    path.parent.mkdir()
    s = await SQLiteStore.open(str(path), compact_interval=0)
    r1 = await s.create("/registry/core/services/default/kubernetes", b"svc1")
    r2 = await s.update("/registry/core/services/default/kubernetes", b"svc2", r1)
    r3 = await s.create("/registry/apps/deployments/ns/web", b"dep")
    r4 = await s.create("/registry/example.com/widgets/ns/w", b"cr")  # custom resources keep their keys
    await s.close()

    store = await open_store(APIServerConfig(data_dir=tmp_path, compact_interval=0))
    try:
        assert isinstance(store, SQLiteStore)
        live = {kv.key: (kv.value, kv.mod_revision) for kv in (await store.list("/registry/")).items}
        assert live == {
            "/registry/services/specs/default/kubernetes": (b"svc2", r2),
            "/registry/deployments/ns/web": (b"dep", r3),
            "/registry/example.com/widgets/ns/w": (b"cr", r4),
        }
        watch = store.watch("/registry/services/specs/", 0)
        evs = await take(watch, 2)
        assert [(e.key, e.revision, e.prev_value) for e in evs] == [
            ("/registry/services/specs/default/kubernetes", r1, None),
            ("/registry/services/specs/default/kubernetes", r2, b"svc1"),
        ]
        await close(watch)
        assert await store.rename_prefixes([("/registry/x/", "/registry/y/")], 2) == 0  # once only
    finally:
        await store.close()


async def test_a_limit_as_large_as_int64_allows_is_no_limit(store: SQLiteStore) -> None:
    """``?limit=9223372036854775807`` (Kubernetes accepts any int64) was a 500: one more row than
    the limit does not fit SQLite's integers. Found by tests/reliability's hostile input."""
    for name in ("a", "b"):
        await store.create(f"/registry/x/{name}", b"{}")
    for limit in ((1 << 63) - 1, (1 << 63) - 2, 1):
        listed = await store.list("/registry/x/", limit=limit)
        assert [kv.key for kv in listed.items] == ["/registry/x/a", "/registry/x/b"][:limit]
        assert listed.more == (limit == 1)
