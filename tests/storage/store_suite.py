"""The backend-agnostic Store test suite.

Every storage backend must pass these tests unchanged; that is what lets the API server treat
backends as interchangeable. A backend's test module subclasses :class:`StoreSuite` and defines a
``store`` fixture that yields a freshly opened, empty store (and closes it afterwards)::

    class TestMyStore(StoreSuite):
        pass

    @pytest.fixture
    async def store(tmp_path):
        s = await MyStore.open(...)
        yield s
        await s.close()

The tests assume nothing about absolute revision numbers, only about their order, so a store that
starts at any revision (an etcd cluster with history, say) passes as well, provided it is empty
under ``/registry/`` and ``/other/`` at the start.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import cast

import pytest

from kybernetes.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    RevisionMismatchError,
    Store,
)

WATCH_TIMEOUT = 10.0


async def take(it: AsyncIterator[Event], n: int, timeout: float = WATCH_TIMEOUT) -> list[Event]:
    """The next ``n`` events of a watch, failing the test if they do not come in time."""
    out: list[Event] = []

    async def run() -> None:
        while len(out) < n:
            out.append(await anext(it))

    await asyncio.wait_for(run(), timeout)
    return out


async def assert_quiet(it: AsyncIterator[Event], wait: float = 0.2) -> None:
    """No further event arrives within ``wait`` seconds."""
    with pytest.raises(asyncio.TimeoutError):
        ev = await asyncio.wait_for(anext(it), wait)
        pytest.fail(f"unexpected event {ev}")


async def close(it: AsyncIterator[Event]) -> None:
    """End a watch (the protocol's watch is an async generator; its type only says iterator)."""
    await cast(AsyncGenerator[Event, None], it).aclose()


def counter(value: bytes) -> int:
    return int(json.loads(value)["n"])


class StoreSuite:
    """Run by each backend's test module through a subclass; needs a ``store`` fixture."""

    # --- single-key operations --------------------------------------------------------------

    async def test_create_then_get(self, store: Store) -> None:
        assert isinstance(store, Store)
        rev = await store.create("/registry/pods/default/a", b'{"a":1}')
        kv = await store.get("/registry/pods/default/a")
        assert kv is not None
        assert kv.key == "/registry/pods/default/a"
        assert kv.value == b'{"a":1}'
        assert kv.create_revision == kv.mod_revision == rev
        assert await store.current_revision() == rev
        assert await store.get("/registry/pods/default/missing") is None

    async def test_create_existing_key_fails(self, store: Store) -> None:
        rev = await store.create("/registry/pods/default/a", b"1")
        with pytest.raises(KeyExistsError):
            await store.create("/registry/pods/default/a", b"2")
        kv = await store.get("/registry/pods/default/a")
        assert kv is not None and kv.value == b"1" and kv.mod_revision == rev
        # A failed write does not consume a revision.
        assert await store.current_revision() == rev

    async def test_update_compare_and_swap(self, store: Store) -> None:
        r1 = await store.create("/registry/pods/default/a", b"1")
        r2 = await store.update("/registry/pods/default/a", b"2", r1)
        assert r2 > r1
        kv = await store.get("/registry/pods/default/a")
        assert kv is not None
        assert (kv.value, kv.create_revision, kv.mod_revision) == (b"2", r1, r2)
        with pytest.raises(RevisionMismatchError) as info:
            await store.update("/registry/pods/default/a", b"3", r1)
        assert info.value.expected == r1 and info.value.actual == r2
        kv = await store.get("/registry/pods/default/a")
        assert kv is not None and kv.value == b"2"

    async def test_update_missing_key(self, store: Store) -> None:
        with pytest.raises(KeyNotFoundError):
            await store.update("/registry/pods/default/none", b"x", 1)

    async def test_delete_unconditional(self, store: Store) -> None:
        r1 = await store.create("/registry/pods/default/a", b"1")
        rev, old = await store.delete("/registry/pods/default/a")
        assert rev > r1
        assert (old.key, old.value, old.create_revision, old.mod_revision) == (
            "/registry/pods/default/a",
            b"1",
            r1,
            r1,
        )
        assert await store.get("/registry/pods/default/a") is None
        with pytest.raises(KeyNotFoundError):
            await store.delete("/registry/pods/default/a")

    async def test_delete_with_expected_revision(self, store: Store) -> None:
        r1 = await store.create("/registry/pods/default/a", b"1")
        r2 = await store.update("/registry/pods/default/a", b"2", r1)
        with pytest.raises(RevisionMismatchError):
            await store.delete("/registry/pods/default/a", r1)
        assert await store.get("/registry/pods/default/a") is not None
        rev, old = await store.delete("/registry/pods/default/a", r2)
        assert rev > r2 and old.value == b"2" and old.mod_revision == r2

    async def test_recreate_after_delete(self, store: Store) -> None:
        r1 = await store.create("/registry/pods/default/a", b"1")
        await store.delete("/registry/pods/default/a")
        r3 = await store.create("/registry/pods/default/a", b"new")
        kv = await store.get("/registry/pods/default/a")
        assert kv is not None and kv.value == b"new"
        assert kv.create_revision == kv.mod_revision == r3 > r1
        r4 = await store.update("/registry/pods/default/a", b"newer", r3)
        kv = await store.get("/registry/pods/default/a")
        assert kv is not None and kv.create_revision == r3 and kv.mod_revision == r4

    async def test_revisions_strictly_increase_across_keys(self, store: Store) -> None:
        revs = [
            await store.create("/registry/a", b"1"),
            await store.create("/registry/b", b"1"),
        ]
        revs.append(await store.update("/registry/a", b"2", revs[0]))
        revs.append((await store.delete("/registry/b"))[0])
        revs.append(await store.create("/other/c", b"1"))
        assert revs == sorted(revs) and len(set(revs)) == len(revs)
        assert await store.current_revision() == revs[-1]

    # --- list and count -----------------------------------------------------------------------

    async def test_list_is_ordered_and_isolated_by_prefix(self, store: Store) -> None:
        names = ["c", "a", "b", "a-1", "b0"]
        for n in names:
            await store.create(f"/registry/pods/ns/{n}", n.encode())
        await store.create("/registry/podsx/ns/a", b"x")
        await store.create("/registry/pod", b"x")
        await store.create("/registry/pods", b"x")
        res = await store.list("/registry/pods/")
        assert [kv.key for kv in res.items] == [f"/registry/pods/ns/{n}" for n in sorted(names)]
        assert [kv.value for kv in res.items] == [n.encode() for n in sorted(names)]
        assert res.more is False
        assert res.revision == await store.current_revision()
        assert await store.count("/registry/pods/") == len(names)
        assert await store.count("/registry/podsx/") == 1
        assert await store.count("/registry/") == len(names) + 3
        assert await store.count("/nothing/") == 0
        assert (await store.list("/nothing/")).items == []

    async def test_list_skips_deleted_and_shows_latest(self, store: Store) -> None:
        ra = await store.create("/registry/x/a", b"a1")
        await store.create("/registry/x/b", b"b1")
        ra2 = await store.update("/registry/x/a", b"a2", ra)
        await store.delete("/registry/x/b")
        res = await store.list("/registry/x/")
        assert [(kv.key, kv.value, kv.mod_revision) for kv in res.items] == [("/registry/x/a", b"a2", ra2)]
        assert await store.count("/registry/x/") == 1

    async def test_list_pagination(self, store: Store) -> None:
        keys = [f"/registry/cm/ns/k{i:03d}" for i in range(25)]
        for k in keys:
            await store.create(k, b"v")
        seen: list[str] = []
        after = ""
        pages = 0
        first_rev = 0
        while True:
            res = await store.list("/registry/cm/", start_after=after, limit=10, revision=first_rev)
            first_rev = first_rev or res.revision
            assert res.revision == first_rev
            pages += 1
            seen += [kv.key for kv in res.items]
            if not res.more:
                break
            assert len(res.items) == 10
            after = res.items[-1].key
        assert seen == keys and pages == 3
        exact = await store.list("/registry/cm/", limit=25)
        assert len(exact.items) == 25 and exact.more is False
        short = await store.list("/registry/cm/", limit=24)
        assert len(short.items) == 24 and short.more is True

    async def test_list_at_older_revision_is_a_snapshot(self, store: Store) -> None:
        ra = await store.create("/registry/s/a", b"a1")
        rb = await store.create("/registry/s/b", b"b1")
        snap = await store.current_revision()
        await store.update("/registry/s/a", b"a2", ra)
        await store.delete("/registry/s/b", rb)
        await store.create("/registry/s/c", b"c1")
        old = await store.list("/registry/s/", revision=snap)
        assert old.revision == snap
        assert [(kv.key, kv.value) for kv in old.items] == [
            ("/registry/s/a", b"a1"),
            ("/registry/s/b", b"b1"),
        ]
        mid = await store.list("/registry/s/", revision=ra)
        assert [kv.key for kv in mid.items] == ["/registry/s/a"]
        now = await store.list("/registry/s/")
        assert [(kv.key, kv.value) for kv in now.items] == [
            ("/registry/s/a", b"a2"),
            ("/registry/s/c", b"c1"),
        ]
        page = await store.list("/registry/s/", revision=snap, limit=1)
        assert [kv.key for kv in page.items] == ["/registry/s/a"] and page.more

    async def test_list_future_revision(self, store: Store) -> None:
        await store.create("/registry/f/a", b"1")
        cur = await store.current_revision()
        with pytest.raises(FutureRevisionError):
            await store.list("/registry/f/", revision=cur + 100)

    # --- watch --------------------------------------------------------------------------------

    async def test_watch_replays_history_then_live(self, store: Store) -> None:
        start = await store.current_revision()
        r1 = await store.create("/registry/w/a", b"1")
        r2 = await store.update("/registry/w/a", b"2", r1)
        watch = store.watch("/registry/w/", start)
        try:
            history = await take(watch, 2)
            assert [(e.type, e.revision, e.value, e.prev_value) for e in history] == [
                ("PUT", r1, b"1", None),
                ("PUT", r2, b"2", b"1"),
            ]
            assert history[0].is_create and not history[1].is_create
            r3, _ = await store.delete("/registry/w/a")
            r4 = await store.create("/registry/w/a", b"again")
            live = await take(watch, 2)
            assert [(e.type, e.revision, e.value, e.prev_value) for e in live] == [
                ("DELETE", r3, None, b"2"),
                ("PUT", r4, b"again", None),
            ]
            assert live[0].key == "/registry/w/a"
            assert live[1].is_create and live[1].create_revision == r4
            await assert_quiet(watch)
        finally:
            await close(watch)

    async def test_watch_history_events_carry_prev_value(self, store: Store) -> None:
        start = await store.current_revision()
        r1 = await store.create("/registry/h/a", b"1")
        await store.update("/registry/h/a", b"2", r1)
        await store.delete("/registry/h/a")
        await store.create("/registry/h/a", b"3")
        watch = store.watch("/registry/h/", start)
        try:
            evs = await take(watch, 4)
        finally:
            await close(watch)
        assert [(e.type, e.value, e.prev_value, e.create_revision) for e in evs] == [
            ("PUT", b"1", None, r1),
            ("PUT", b"2", b"1", r1),
            ("DELETE", None, b"2", r1),
            ("PUT", b"3", None, evs[3].revision),
        ]

    async def test_watch_only_sees_its_prefix(self, store: Store) -> None:
        start = await store.current_revision()
        watch = store.watch("/registry/pods/", start)
        try:
            await store.create("/registry/podsx/a", b"no")
            r = await store.create("/registry/pods/ns/a", b"yes")
            await store.create("/registry/pod", b"no")
            await store.create("/other/pods/", b"no")
            (ev,) = await take(watch, 1)
            assert (ev.key, ev.revision) == ("/registry/pods/ns/a", r)
            await assert_quiet(watch)
        finally:
            await close(watch)

    async def test_watch_from_now_sees_only_later_events(self, store: Store) -> None:
        await store.create("/registry/n/old", b"1")
        start = await store.current_revision()
        watch = store.watch("/registry/n/", start)
        try:
            r = await store.create("/registry/n/new", b"2")
            (ev,) = await take(watch, 1)
            assert ev.revision == r and ev.key == "/registry/n/new"
        finally:
            await close(watch)

    @pytest.mark.parametrize("let_writers_finish", [False, True])
    async def test_watch_catch_up_races_with_writers(self, store: Store, let_writers_finish: bool) -> None:
        """Events written while the watch replays history arrive once each, in order, no gaps.

        With ``let_writers_finish`` the writes all land after the watch subscribed but before it
        read the rest of history, so each is both in history and live: only one copy may come out.
        """
        start = await store.current_revision()
        before = await asyncio.gather(*(store.create(f"/registry/r/pre{i:04d}", b"x") for i in range(1200)))
        watch = store.watch("/registry/r/", start)
        during: list[int] = []

        async def writer(t: int) -> None:
            for i in range(60):
                during.append(await store.create(f"/registry/r/during{t}-{i}", b"y"))
                if i % 10 == 0:
                    await asyncio.sleep(0)

        try:
            first = await take(watch, 1)  # the watch is now subscribed and replaying
            writers = asyncio.gather(*(writer(t) for t in range(5)))
            if let_writers_finish:
                await writers
            rest = await take(watch, len(before) + 300 - 1)
            await writers
            evs = first + rest
            revs = [e.revision for e in evs]
            assert revs == sorted(set(revs)), "events out of order or duplicated"
            assert set(revs) == set(before) | set(during)
            await assert_quiet(watch)
        finally:
            await close(watch)

    async def test_watch_close_ends_subscription(self, store: Store) -> None:
        start = await store.current_revision()
        watch = store.watch("/registry/c/", start)
        r = await store.create("/registry/c/a", b"1")
        (ev,) = await take(watch, 1)
        assert ev.revision == r
        await close(watch)
        # Writes after the close must not fail or block.
        await store.create("/registry/c/b", b"1")

    async def test_watch_progress_reports_revisions_outside_its_prefix(self, store: Store) -> None:
        """A progress-watching client learns it is current even when the newest write was elsewhere."""
        start = await store.current_revision()
        watch = store.watch("/registry/p/", start, progress=True)
        try:
            r1 = await store.create("/registry/p/a", b"1")
            (ev,) = await take(watch, 1)
            assert (ev.type, ev.revision) == ("PUT", r1)
            r2 = await store.create("/other/p", b"1")
            seen = 0
            for _ in range(50):  # a request may be answered before the write reaches the watch
                await store.request_progress()
                (ev,) = await take(watch, 1)
                assert ev.type == "PROGRESS" and ev.key == ""
                seen = ev.revision
                if seen >= r2:
                    break
            assert seen >= r2
        finally:
            await close(watch)

    # --- compaction ---------------------------------------------------------------------------

    async def test_compaction(self, store: Store) -> None:
        ra = await store.create("/registry/k/a", b"a1")
        rb = await store.create("/registry/k/b", b"b1")
        ra2 = await store.update("/registry/k/a", b"a2", ra)
        await store.delete("/registry/k/b", rb)
        rc = await store.create("/registry/k/c", b"c1")
        old_snapshot = await store.current_revision()
        rc2 = await store.update("/registry/k/c", b"c2", rc)
        await store.compact(rc2)
        assert await store.compacted_revision() == rc2

        with pytest.raises(CompactedError):
            await store.list("/registry/k/", revision=old_snapshot)
        with pytest.raises(CompactedError):
            await anext(store.watch("/registry/k/", old_snapshot))
        res = await store.list("/registry/k/")
        assert [(kv.key, kv.value, kv.create_revision, kv.mod_revision) for kv in res.items] == [
            ("/registry/k/a", b"a2", ra, ra2),
            ("/registry/k/c", b"c2", rc, rc2),
        ]
        at = await store.list("/registry/k/", revision=rc2)
        assert [kv.key for kv in at.items] == ["/registry/k/a", "/registry/k/c"]
        assert await store.count("/registry/k/") == 2

        # CAS after compaction: stale revisions still lose, current ones still win.
        with pytest.raises(RevisionMismatchError):
            await store.update("/registry/k/a", b"a3", ra)
        ra3 = await store.update("/registry/k/a", b"a3", ra2)
        assert ra3 > rc2
        # A key deleted before the compaction can be created again, and updated.
        rb2 = await store.create("/registry/k/b", b"b2")
        await store.update("/registry/k/b", b"b3", rb2)
        with pytest.raises(KeyExistsError):
            await store.create("/registry/k/c", b"dup")
        rd, old = await store.delete("/registry/k/c", rc2)
        assert old.value == b"c2"

        # Watching from the compaction point works and sees the later writes with prev values.
        watch = store.watch("/registry/k/", rc2)
        try:
            evs = await take(watch, 4)
        finally:
            await close(watch)
        assert [(e.type, e.key, e.prev_value) for e in evs] == [
            ("PUT", "/registry/k/a", b"a2"),
            ("PUT", "/registry/k/b", None),
            ("PUT", "/registry/k/b", b"b2"),
            ("DELETE", "/registry/k/c", b"c2"),
        ]
        assert evs[-1].revision == rd

    async def test_compaction_twice_and_at_current(self, store: Store) -> None:
        r = await store.create("/registry/t/a", b"0")
        for i in range(1, 20):
            r = await store.update("/registry/t/a", str(i).encode(), r)
        await store.compact(r - 10)
        await store.compact(r)
        rd, _ = await store.delete("/registry/t/a", r)
        await store.compact(rd)
        assert await store.get("/registry/t/a") is None
        assert await store.count("/registry/t/") == 0
        rn = await store.create("/registry/t/a", b"fresh")
        assert rn > rd
        kv = await store.get("/registry/t/a")
        assert kv is not None and kv.value == b"fresh" and kv.create_revision == rn

    # --- concurrency --------------------------------------------------------------------------

    async def test_concurrent_read_modify_write_loses_no_update(self, store: Store) -> None:
        key = "/registry/counter"
        await store.create(key, json.dumps({"n": 0}).encode())
        workers, per_worker = 50, 3
        conflicts = 0

        async def work() -> None:
            nonlocal conflicts
            for _ in range(per_worker):
                while True:
                    kv = await store.get(key)
                    assert kv is not None
                    new = json.dumps({"n": counter(kv.value) + 1}).encode()
                    try:
                        await store.update(key, new, kv.mod_revision)
                        break
                    except RevisionMismatchError:
                        conflicts += 1

        await asyncio.wait_for(asyncio.gather(*(work() for _ in range(workers))), 60)
        kv = await store.get(key)
        assert kv is not None and counter(kv.value) == workers * per_worker
        assert conflicts > 0, "the workers never raced; the test proves nothing"

    async def test_concurrent_creates_get_distinct_revisions(self, store: Store) -> None:
        revs = await asyncio.gather(*(store.create(f"/registry/many/k{i:04d}", b"v") for i in range(500)))
        assert len(set(revs)) == 500
        assert await store.count("/registry/many/") == 500
        assert await store.current_revision() == max(revs)

    async def test_concurrent_duplicate_creates_one_wins(self, store: Store) -> None:
        results = await asyncio.gather(
            *(store.create("/registry/dup", str(i).encode()) for i in range(20)), return_exceptions=True
        )
        wins = [r for r in results if isinstance(r, int)]
        assert len(wins) == 1
        assert all(isinstance(r, KeyExistsError) for r in results if not isinstance(r, int))
