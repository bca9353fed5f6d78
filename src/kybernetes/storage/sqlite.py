"""The embedded store: one SQLite file, an append-only revision log, group commit.

The file's layout (one append-only ``kv`` table whose row id is the revision, plus ``meta``) and
the statements run on it are in :mod:`kybernetes.storage.sqlite_schema`.

Writes: one writer thread, group commit
---------------------------------------
Every write is a request put on a queue and awaited through an asyncio future. A single writer
thread owns the only write connection. It takes every request queued at that moment, runs them in
one transaction (each under its own SAVEPOINT so a failing request does not spoil the others),
commits once (``synchronous=FULL``: the WAL is fsynced, so an acknowledged write survives kill -9
and power loss), then hands results back to the event loop with one ``call_soon_threadsafe``.
Because this process is the only writer, the compare-and-swap checks are simple reads inside the
transaction, and the writer knows every committed change in revision order.

Reads
-----
WAL mode lets readers run beside the writer. Reads run on a small thread pool, each thread with
its own connection, so the event loop never blocks on disk. ``_rev`` is the newest *committed*
revision; the writer advances it only after COMMIT, so a reader that samples it and then opens a
snapshot always sees every row up to it.

Watch
-----
After each commit the writer publishes the batch's events on the event loop to every watcher's
queue. A watcher subscribes first, then replays history from the table (``id > start``), then
switches to its queue, dropping anything at or below the last revision it delivered: subscribing
before reading means nothing committed in between can be missed, and the revision filter means
nothing is delivered twice. A DELETE event's ``prev_value`` comes from the row it replaced, which
compaction never removes while the tombstone itself is still in the retained window.

Compaction
----------
``compact(C)`` records C in ``meta`` (in the same transaction as the first batch, so a reader's
snapshot sees either the old point and all rows, or the new point) and then deletes, in small
transactions interleaved with ordinary writes, every row that some row ``<= C`` replaced (found
through ``prev_revision``) and every tombstone ``<= C``. A cursor (``compact_done``) in ``meta`` makes
an interrupted compaction resume where it stopped. Afterwards the WAL is checkpointed with TRUNCATE
and free pages are returned with incremental vacuum. A background task compacts every
``compact_interval`` seconds, keeping the last ``compact_keep`` revisions.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import queue
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from kybernetes.storage.interface import (
    CompactedError,
    Event,
    FutureRevisionError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    ListResult,
    OutOfSpaceError,
    RevisionMismatchError,
    StoreError,
)
from kybernetes.storage.sqlite_schema import (
    SQL_COUNT,
    SQL_HISTORY,
    SQL_INSERT,
    SQL_LATEST,
    SQL_LIST,
    get_meta,
    load_state,
    open_writer_connection,
    prefix_end,
    rename_prefixes,
    set_meta,
)

T = TypeVar("T")

# How many history rows a watcher reads per query while catching up.
_HISTORY_CHUNK = 1000
_NO_LIMIT = (1 << 63) - 1
"""A list limit this large (int64's largest, which Kubernetes accepts) is no limit at all."""

# Bound on one group commit, so one huge burst does not delay its first caller for long.
_MAX_BATCH = 1000

# ---------------------------------------------------------------------------------------------
# Requests to the writer thread


@dataclass(slots=True)
class _Write:
    op: Literal["create", "update", "delete"]
    key: str
    value: bytes | None
    expected: int
    future: asyncio.Future[Any]


@dataclass(slots=True)
class _Job:
    """Work that needs the write connection but is not a key write (compaction, checkpoint)."""

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


_STOP = object()

# What the event loop does with one request once its transaction is over: (future, result, error).
_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


@dataclass(eq=False)
class _Watcher:
    prefix: str
    progress: bool = False
    queue: asyncio.Queue[Event | None] = field(default_factory=asyncio.Queue)


class SQLiteStore:
    """A :class:`~kybernetes.storage.interface.Store` in one SQLite file."""

    COMPACT_BATCH = 500
    """Revisions swept per compaction transaction (each may delete up to twice as many rows)."""

    JOURNAL_SIZE_LIMIT = 8 * 1024 * 1024
    """Bytes the WAL file is truncated back to whenever SQLite restarts it."""

    READ_THREADS = 4

    def __init__(self, path: str, conn: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        # Use SQLiteStore.open(); this only wires up state that open() has read from the file.
        self.path = path
        self._conn = conn
        self._loop = loop
        self._rev = 0  # newest committed revision; written by the writer thread only
        self._wrev = 0  # newest revision handed out in the open transaction (writer thread)
        self._published = 0  # newest revision whose events are in every watcher's queue (event loop)
        self._compacted = 0
        self._compact_done = 0
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._watchers: set[_Watcher] = set()
        self._closed = False
        self._local = threading.local()
        self._readers: builtins.list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._pool = ThreadPoolExecutor(self.READ_THREADS, thread_name_prefix="kyb-sqlite-read")
        self._writer = threading.Thread(target=self._writer_main, name="kyb-sqlite-writer", daemon=True)
        self._compactor: asyncio.Task[None] | None = None
        self._compact_lock = asyncio.Lock()

    # -----------------------------------------------------------------------------------------
    # Lifecycle

    @classmethod
    async def open(
        cls, path: str, *, compact_interval: float = 60.0, compact_keep: int = 1000
    ) -> SQLiteStore:
        """Open (creating if needed) the store at ``path`` and start its writer and compactor.

        ``compact_interval`` <= 0 disables automatic compaction.
        """
        loop = asyncio.get_running_loop()
        conn = await asyncio.to_thread(open_writer_connection, path, cls.JOURNAL_SIZE_LIMIT)
        store = cls(path, conn, loop)
        try:
            rev, compacted, done = await asyncio.to_thread(load_state, conn)
        except BaseException:
            conn.close()
            raise
        store._rev = store._wrev = store._published = rev
        store._compacted, store._compact_done = compacted, done
        store._writer.start()
        if compact_interval > 0:
            store._compactor = loop.create_task(store._compact_forever(compact_interval, compact_keep))
        elif done < compacted:
            # Finish a compaction that a previous run left halfway, even without the background task.
            await store._sweep(compacted)
        return store

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._compactor is not None:
            self._compactor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._compactor
        # The stop marker queues behind every accepted write, so they all finish first.
        self._queue.put(_STOP)
        await asyncio.to_thread(self._writer.join)
        for w in list(self._watchers):
            w.queue.put_nowait(None)
        await asyncio.to_thread(self._pool.shutdown, True)
        with self._readers_lock:
            for c in self._readers:
                c.close()
            self._readers.clear()

    async def __aenter__(self) -> SQLiteStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def rename_prefixes(self, renames: builtins.list[tuple[str, str]], layout: int) -> int:
        """Move keys from old prefixes to new ones, history included and revisions unchanged,
        once per ``layout`` (see :func:`sqlite_schema.rename_prefixes`). Call before any watch."""
        moved: int = await self._submit_job(lambda conn: rename_prefixes(conn, renames, layout))
        return moved

    # -----------------------------------------------------------------------------------------
    # Reads

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 5000")
            conn.execute("PRAGMA query_only = ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise StoreError("store is closed")
        return await self._loop.run_in_executor(self._pool, fn, *args)

    async def get(self, key: str) -> KeyValue | None:
        return await self._read(self._get_sync, key)

    def _get_sync(self, key: str) -> KeyValue | None:
        row = self._reader().execute(SQL_LATEST, (key,)).fetchone()
        if row is None or row[1]:
            return None
        return KeyValue(key, row[2], row[3], row[0])

    async def list(
        self, prefix: str, *, revision: int = 0, start_after: str = "", limit: int = 0
    ) -> ListResult:
        current = self._rev
        if revision > current:
            raise FutureRevisionError(revision, current)
        if revision and revision < self._compacted:
            raise CompactedError(revision, self._compacted)
        return await self._read(self._list_sync, prefix, revision or current, start_after, limit)

    def _list_sync(self, prefix: str, revision: int, start_after: str, limit: int) -> ListResult:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            # The compaction point read inside the snapshot is the one that governs it.
            compacted = get_meta(conn, "compact_rev")
            if revision < compacted:
                raise CompactedError(revision, compacted)
            # One more row than asked says whether more remain; a limit no list can reach (up to
            # int64's largest, as Kubernetes allows) is no limit: limit + 1 would not fit SQLite.
            n = limit + 1 if 0 < limit < _NO_LIMIT else -1
            rows = conn.execute(
                SQL_LIST, (prefix, prefix_end(prefix), start_after, revision, revision, n)
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        more = 0 < limit < _NO_LIMIT and len(rows) > limit
        if more:
            rows = rows[:limit]
        items = [KeyValue(r[0], r[1], r[2], r[3]) for r in rows]
        return ListResult(items=items, revision=revision, more=more)

    async def count(self, prefix: str) -> int:
        return await self._read(self._count_sync, prefix)

    def _count_sync(self, prefix: str) -> int:
        row = self._reader().execute(SQL_COUNT, (prefix, prefix_end(prefix))).fetchone()
        return int(row[0])

    async def current_revision(self) -> int:
        return self._rev

    async def compacted_revision(self) -> int:
        return self._compacted

    # -----------------------------------------------------------------------------------------
    # Writes

    async def create(self, key: str, value: bytes) -> int:
        rev: int = await self._submit_write("create", key, value, 0)
        return rev

    async def update(self, key: str, value: bytes, expected_revision: int) -> int:
        rev: int = await self._submit_write("update", key, value, expected_revision)
        return rev

    async def delete(self, key: str, expected_revision: int = 0) -> tuple[int, KeyValue]:
        out: tuple[int, KeyValue] = await self._submit_write("delete", key, None, expected_revision)
        return out

    def _submit_write(
        self, op: Literal["create", "update", "delete"], key: str, value: bytes | None, expected: int
    ) -> asyncio.Future[Any]:
        if self._closed:
            raise StoreError("store is closed")
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._queue.put(_Write(op, key, value, expected, fut))
        return fut

    def _submit_job(self, fn: Callable[[sqlite3.Connection], T]) -> asyncio.Future[T]:
        if self._closed:
            raise StoreError("store is closed")
        fut: asyncio.Future[T] = self._loop.create_future()
        self._queue.put(_Job(fn, fut))
        return fut

    # -----------------------------------------------------------------------------------------
    # The writer thread

    def _writer_main(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                writes: builtins.list[_Write] = []
                jobs: builtins.list[_Job] = []
                stop = False
                while True:
                    if isinstance(item, _Write):
                        writes.append(item)
                    else:
                        jobs.append(item)
                    if len(writes) >= _MAX_BATCH:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is _STOP:
                        stop = True
                        break
                if writes:
                    self._commit_batch(writes)
                for job in jobs:
                    self._run_job(job)
                if stop:
                    return
        finally:
            self._conn.close()

    def _commit_batch(self, writes: builtins.list[_Write]) -> None:
        conn = self._conn
        results: builtins.list[_Outcome] = []
        events: builtins.list[Event] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for w in writes:
                conn.execute("SAVEPOINT w")
                before = self._wrev
                try:
                    result, event = self._apply(w)
                except StoreError as e:
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    self._wrev = before
                    results.append((w.future, None, e))
                    continue
                except sqlite3.IntegrityError:
                    # The unique (name, prev_revision) index caught a lost race the check missed.
                    conn.execute("ROLLBACK TO w")
                    conn.execute("RELEASE w")
                    self._wrev = before
                    results.append((w.future, None, RevisionMismatchError(w.key, w.expected, -1)))
                    continue
                conn.execute("RELEASE w")
                results.append((w.future, result, None))
                events.append(event)
            conn.execute("COMMIT")
        except BaseException as e:
            # Disk full, I/O error, ...: nothing in this batch happened; the revision counter rewinds.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            self._wrev = self._rev
            full = isinstance(e, sqlite3.Error) and getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
            err = (OutOfSpaceError if full else StoreError)(f"write failed: {e}")
            err.__cause__ = e
            failed: builtins.list[_Outcome] = [(w.future, None, err) for w in writes]
            self._loop.call_soon_threadsafe(self._resolve, failed, [])
            return
        self._rev = self._wrev
        self._loop.call_soon_threadsafe(self._resolve, results, events)

    def _apply(self, w: _Write) -> tuple[Any, Event]:
        """One write inside the open transaction: the check, the row, its result and its event."""
        conn = self._conn
        row = conn.execute(SQL_LATEST, (w.key,)).fetchone()
        live = row is not None and not row[1]
        rev = self._wrev + 1
        if w.op == "create":
            if live:
                raise KeyExistsError(w.key)
            prev = row[0] if row is not None else 0
            conn.execute(SQL_INSERT, (rev, w.key, 1, 0, rev, prev, w.value))
            self._wrev = rev
            return rev, Event("PUT", w.key, rev, w.value, None, rev)
        if not live:
            raise KeyNotFoundError(w.key)
        mod, old, created = row[0], row[2], row[3]
        if w.expected and w.expected != mod:
            raise RevisionMismatchError(w.key, w.expected, mod)
        if w.op == "update":
            conn.execute(SQL_INSERT, (rev, w.key, 0, 0, created, mod, w.value))
            self._wrev = rev
            return rev, Event("PUT", w.key, rev, w.value, old, created)
        conn.execute(SQL_INSERT, (rev, w.key, 0, 1, created, mod, None))
        self._wrev = rev
        return (rev, KeyValue(w.key, old, created, mod)), Event("DELETE", w.key, rev, None, old, created)

    def _run_job(self, job: _Job) -> None:
        try:
            result = job.fn(self._conn)
        except BaseException as e:
            if self._conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            outcome: _Outcome = (job.future, None, e)
        else:
            outcome = (job.future, result, None)
        self._loop.call_soon_threadsafe(self._resolve, [outcome], [])

    def _resolve(self, results: builtins.list[_Outcome], events: builtins.list[Event]) -> None:
        """On the event loop: publish a committed batch to watchers, then wake its writers."""
        if events:
            for w in self._watchers:
                for ev in events:
                    if ev.key.startswith(w.prefix):
                        w.queue.put_nowait(ev)
            self._published = events[-1].revision
        for fut, result, err in results:
            if fut.done():  # the caller gave up (cancelled); the write itself stands
                continue
            if err is not None:
                fut.set_exception(err)
            else:
                fut.set_result(result)

    # -----------------------------------------------------------------------------------------
    # Watch

    async def request_progress(self) -> None:
        # Queued behind every event already published, so it never overtakes one.
        for w in self._watchers:
            if w.progress:
                w.queue.put_nowait(Event("PROGRESS", "", self._published, None, None))

    async def watch(self, prefix: str, start_revision: int, *, progress: bool = False) -> AsyncIterator[Event]:
        if self._closed:
            raise StoreError("store is closed")
        if start_revision < self._compacted:
            raise CompactedError(start_revision, self._compacted)
        watcher = _Watcher(prefix, progress)
        # Subscribe before reading history: whatever commits from now on reaches the queue.
        self._watchers.add(watcher)
        try:
            last = start_revision
            while True:
                chunk = await self._read(self._history_sync, prefix, last)
                for ev in chunk:
                    yield ev
                    last = ev.revision
                if len(chunk) < _HISTORY_CHUNK:
                    break
            while True:
                ev_or_end = await watcher.queue.get()
                if ev_or_end is None:
                    return
                if ev_or_end.revision <= last:
                    continue
                last = ev_or_end.revision
                yield ev_or_end
        finally:
            self._watchers.discard(watcher)

    def _history_sync(self, prefix: str, after: int) -> builtins.list[Event]:
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            compacted = get_meta(conn, "compact_rev")
            if after < compacted:
                # Compaction overtook a watcher that was still catching up; rows it needs are gone.
                raise CompactedError(after, compacted)
            rows = conn.execute(SQL_HISTORY, (after, prefix, prefix_end(prefix), _HISTORY_CHUNK)).fetchall()
        finally:
            conn.execute("COMMIT")
        out = []
        for rev, key, created, deleted, create_rev, value, prev in rows:
            if deleted:
                out.append(Event("DELETE", key, rev, None, prev, create_rev))
            else:
                out.append(Event("PUT", key, rev, value, None if created else prev, create_rev))
        return out

    # -----------------------------------------------------------------------------------------
    # Compaction

    async def compact(self, revision: int) -> None:
        if revision > self._rev:
            raise FutureRevisionError(revision, self._rev)
        async with self._compact_lock:
            if revision <= self._compacted and self._compact_done >= self._compacted:
                return
            await self._sweep(max(revision, self._compacted))

    async def _sweep(self, target: int) -> None:
        """Delete history up to ``target`` one small transaction at a time, then shrink the files."""
        while True:
            done = await self._submit_job(lambda conn: self._compact_step(conn, target))
            if done:
                break
        await self._submit_job(self._checkpoint)

    def _compact_step(self, conn: sqlite3.Connection, target: int) -> bool:
        lo = self._compact_done
        hi = min(lo + self.COMPACT_BATCH, target)
        conn.execute("BEGIN IMMEDIATE")
        if target > self._compacted:
            set_meta(conn, "compact_rev", target)
        # Rows replaced by a write in (lo, hi] are history now: nothing at or after target needs them.
        conn.execute(
            "DELETE FROM kv WHERE id IN "
            "(SELECT prev_revision FROM kv WHERE id > ? AND id <= ? AND prev_revision > 0)",
            (lo, hi),
        )
        conn.execute("DELETE FROM kv WHERE id > ? AND id <= ? AND deleted = 1", (lo, hi))
        set_meta(conn, "compact_done", hi)
        conn.execute("COMMIT")
        self._compacted = max(self._compacted, target)
        self._compact_done = hi
        return hi >= target

    @staticmethod
    def _checkpoint(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA incremental_vacuum").fetchall()
        # TRUNCATE waits (busy_timeout) for readers to leave the WAL; they only hold it for
        # milliseconds. If one does not, the WAL shrinks at the next restart instead.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    async def _compact_forever(self, interval: float, keep: int) -> None:
        if self._compact_done < self._compacted:
            await self._safe_compact(self._compacted)
        while True:
            await asyncio.sleep(interval)
            target = self._rev - keep
            if target > self._compacted:
                await self._safe_compact(target)

    async def _safe_compact(self, target: int) -> None:
        try:
            await self.compact(target)
        except StoreError:
            # A failed sweep leaves the cursor where it was; the next round retries.
            pass
        except sqlite3.Error:
            pass


__all__ = [
    "SQLiteStore",
]
