"""The API server's watch cache: one store watch for everything, fanned out in memory.

Design (Kubernetes' cacher, simplified by owning the whole keyspace):

- :class:`Cacher` runs exactly ONE ``store.watch("/registry/", rev)``. Every write in the store
  arrives here once, in revision order, so the cacher's ``revision`` is the newest store revision
  it has applied, for every resource at once. A consistent read ("as of now") waits until
  ``revision >= store.current_revision()``. When the newest revisions were written outside
  ``/registry/`` (etcd: the compactor's key, another program's keys) no event will bring the cache
  there, so while readers wait the cacher asks the store for progress notifications (etcd's
  WatchProgressRequest, as kube-apiserver's progress requester does), which advance ``revision``.
- Per resource prefix a :class:`ResourceCache` keeps the live objects (decoded dicts, shared and
  never mutated) and a bounded history of recent events for watches that resume from a
  resourceVersion. It is built lazily on first use: registered with the dispatcher first (events
  that arrive meanwhile are buffered), then filled from ``store.list(prefix, revision=R)``, then
  the buffered events newer than R are applied — no gap, no duplicate.
- A watch from a revision the history still covers is served from memory; an older one falls back
  to a direct store watch (which answers :class:`CompactedError` -> 410 if it is older still).
  The history is bounded by count (:data:`HISTORY`) and, like Kubernetes' watch cache, by age: beyond
  its newest :data:`HISTORY_MIN` events it keeps only the last :data:`HISTORY_FRESH` seconds. Without
  the age bound a resource written slowly (a Lease renewed every 2 s) kept all of its last 5,000
  events, growing the server's memory for hours before the count bound was reached.
- Each watcher has its own queue; the dispatcher never awaits a watcher, so one slow client cannot
  stall the others. A watcher that falls too far behind is closed (the client re-watches).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.storage.interface import CompactedError, Event, Store, StoreError, UnavailableError

log = logging.getLogger(__name__)

Decoder = Callable[[bytes, int], Obj]
EventList = list["CacheEvent"]

ROOT = "/registry/"
HISTORY = 5000
"""At most this many events are kept per resource for watches that resume from a recent resourceVersion."""
HISTORY_MIN = 100
"""Events a resource's history keeps however old they are (Kubernetes' lower bound of its watch cache)."""
HISTORY_FRESH = 75.0
"""Seconds of events kept beyond :data:`HISTORY_MIN` (Kubernetes' ``eventFreshDuration``: a default
bookmark interval plus a margin, so a watcher that reconnects can resume from its last bookmark)."""
PROGRESS_INTERVAL = 0.1
"""Seconds between progress requests while a reader waits (kube-apiserver's progress requester: 100 ms)."""
PROGRESS_GRACE = 0.005
"""Seconds a new reader waits for events before the cacher asks for progress (coalescing readers)."""
WATCHER_BACKLOG = 100_000
"""Undelivered events after which a watcher is dropped (the client re-watches, as with Kubernetes)."""


@dataclass(slots=True)
class CacheEvent:
    type: str
    """ADDED, MODIFIED or DELETED."""
    key: str
    obj: Obj
    prev: Obj | None
    revision: int
    _encoded: bytes | None = None
    """The event as a JSON watch line, made once and shared by every watcher that sends it as is."""
    _chunk: bytes | None = None
    """``_encoded`` framed as one HTTP/1.1 chunk, for watchers written to directly."""


@dataclass(eq=False)
class Watcher:
    """One client's watch: a queue of events under ``prefix`` newer than its start revision.

    Events reach the client one of two ways. Normally ``push`` wakes the watch's own task, which
    drains the queue and writes a batch. But waking a task costs more than the write itself, and a
    write to 1,000 watchers is 1,000 wake-ups; so while the task is parked with nothing to do, its
    stream sets ``direct``, and ``push`` instead hands the watcher to the :class:`Flusher`, which
    calls ``direct()`` once per burst of events, from the dispatcher's side. ``direct`` writes
    what is queued and returns True, or returns False (the socket is backed up, the queue holds the
    end marker) and the task is woken to do it the normal way.
    """

    prefix: str
    flusher: Flusher | None = None
    queue: deque[CacheEvent | None] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    dropped: bool = False
    direct: Callable[[], bool] | None = None
    scheduled: bool = False

    def push(self, ev: CacheEvent | None) -> None:
        if len(self.queue) >= WATCHER_BACKLOG:
            self.dropped = True
            self.wake.set()
            return
        self.queue.append(ev)
        if ev is not None and self.direct is not None and self.flusher is not None:
            if not self.scheduled:
                self.scheduled = True
                self.flusher.schedule(self)
            return
        self.wake.set()


class Flusher:
    """Runs parked watchers' ``direct`` writes once per burst: after every event that is ready now.

    The first watcher scheduled arms a ``call_soon``; by the time it runs, the dispatcher has applied
    every store event that was ready, so a watcher that several of them matched gets one write.
    """

    def __init__(self) -> None:
        self._ready: list[Watcher] = []
        self._armed = False

    def schedule(self, w: Watcher) -> None:
        self._ready.append(w)
        if not self._armed:
            self._armed = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._armed = False
        ready, self._ready = self._ready, []
        for w in ready:
            w.scheduled = False
            if not w.queue:
                continue
            direct = w.direct
            ok = False
            if direct is not None:
                try:
                    ok = direct()
                except Exception:
                    log.exception("direct watch write failed")
            if not ok:
                w.wake.set()


class ResourceCache:
    """Live objects and recent history under one key prefix."""

    def __init__(self, prefix: str, decode: Decoder, clock: Callable[[], float] = time.monotonic) -> None:
        self.prefix = prefix
        self.decode = decode
        self.clock = clock
        self.objects: dict[str, Obj] = {}
        self._sorted_keys: list[str] | None = None
        self.history: deque[CacheEvent] = deque(maxlen=HISTORY)
        self._applied_at: deque[float] = deque(maxlen=HISTORY)
        """When each event of ``history`` was applied (``clock``), in the same order."""
        self.history_start = 0
        """History is complete for revisions > history_start."""
        self.ready = asyncio.Event()
        self._pending: list[Event] | None = []
        self.watchers: set[Watcher] = set()

    # --- building -----------------------------------------------------------------------

    def fill(self, items: list[tuple[str, bytes, int]], revision: int) -> None:
        for key, value, rev in items:
            self.objects[key] = self.decode(value, rev)
        self.history_start = revision
        pending, self._pending = self._pending or [], None
        for ev in pending:
            if ev.revision > revision:
                self.apply(ev)
        self.ready.set()

    def offer(self, ev: Event) -> None:
        if self._pending is not None:
            self._pending.append(ev)
        else:
            self.apply(ev)

    def apply(self, ev: Event) -> None:
        prev = self.objects.get(ev.key)
        if ev.type == "DELETE":
            if prev is None:
                return
            del self.objects[ev.key]
            self._sorted_keys = None
            # A DELETED event carries the last state, at the deletion's revision.
            obj = dict(prev)
            meta = dict(obj.get("metadata") or {})
            meta["resourceVersion"] = str(ev.revision)
            obj["metadata"] = meta
            cev = CacheEvent("DELETED", ev.key, obj, prev, ev.revision)
        else:
            assert ev.value is not None
            obj = self.decode(ev.value, ev.revision)
            if prev is None:
                self._sorted_keys = None
            self.objects[ev.key] = obj
            cev = CacheEvent("MODIFIED" if prev is not None else "ADDED", ev.key, obj, prev, ev.revision)
        if len(self.history) == self.history.maxlen:
            self.history_start = self.history[0].revision
        self.history.append(cev)
        now = self.clock()
        self._applied_at.append(now)
        self._forget_stale(now)
        for w in self.watchers:
            if ev.key.startswith(w.prefix):
                w.push(cev)

    def _forget_stale(self, now: float) -> None:
        """Drop the oldest events beyond :data:`HISTORY_MIN` applied more than :data:`HISTORY_FRESH` ago."""
        history, applied_at = self.history, self._applied_at
        while len(history) > HISTORY_MIN and applied_at[0] < now - HISTORY_FRESH:
            applied_at.popleft()
            self.history_start = history.popleft().revision

    # --- reading ------------------------------------------------------------------------

    def sorted_keys(self) -> list[str]:
        if self._sorted_keys is None:
            self._sorted_keys = sorted(self.objects)
        return self._sorted_keys

    def list(self, prefix: str, start_after: str = "") -> list[tuple[str, Obj]]:
        keys = self.sorted_keys()
        lo = bisect.bisect_right(keys, start_after) if start_after > prefix else bisect.bisect_left(keys, prefix)
        out = []
        for i in range(lo, len(keys)):
            k = keys[i]
            if not k.startswith(prefix):
                break
            out.append((k, self.objects[k]))
        return out

    def events_since(self, prefix: str, revision: int) -> EventList | None:
        """Buffered events under ``prefix`` newer than ``revision``, or None if history is too short."""
        if revision < self.history_start:
            return None
        out = []
        for ev in reversed(self.history):
            if ev.revision <= revision:
                break
            if ev.key.startswith(prefix):
                out.append(ev)
        out.reverse()
        return out


class Cacher:
    """The single store watch, dispatching to per-resource caches."""

    def __init__(self, store: Store, decode: Decoder) -> None:
        self.store = store
        self.decode = decode
        self.caches: dict[str, ResourceCache] = {}
        self.flusher = Flusher()
        self.revision = 0
        # (target revision, tie-breaker, future) of readers waiting for the cache to reach a revision.
        # A heap, resolved from the front as the revision advances: each event wakes only the
        # readers it satisfies. (A Condition woke every waiter on every event, and each had to
        # take its lock in turn: under a write storm the dispatch loop itself queued for that lock,
        # the cache fell behind, more reads waited, and the API server stalled for seconds.)
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._progress_task: asyncio.Task[None] | None = None
        self._progress_kick = asyncio.Event()
        self._started = asyncio.Event()

    async def start(self) -> None:
        self.revision = await self.store.current_revision()
        self._task = asyncio.create_task(self._run(self.revision), name="cacher")
        self._started.set()

    async def stop(self) -> None:
        for task in (self._task, self._progress_task):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        for c in self.caches.values():
            for w in list(c.watchers):
                w.push(None)

    async def _run(self, start: int) -> None:
        rev = start
        while True:
            try:
                async for ev in self.store.watch(ROOT, rev, progress=True):
                    if ev.type != "PROGRESS":
                        self._dispatch(ev)
                    elif ev.revision <= rev:
                        continue
                    rev = max(rev, ev.revision)
                    self.revision = rev
                    if self._waiters and self._waiters[0][0] <= rev:
                        self._release(rev)
            except asyncio.CancelledError:
                raise
            except CompactedError:
                # We fell behind compaction (should not happen: we consume as fast as the store
                # writes). Rebuild every cache from a fresh list.
                log.error("watch cache fell behind compaction; rebuilding")
                try:
                    rev = await self._drop_all()
                except UnavailableError as e:  # the store went away meanwhile: the watch retries
                    log.warning("watch cache: cannot rebuild while the store is unavailable: %s", e)
                    await asyncio.sleep(0.5)
            except UnavailableError as e:
                # The store is away (a backend that does not resume its own watch): keep the caches
                # and resume from the last applied revision once it answers, so no event is lost.
                log.warning("watch cache: store unavailable (%s); resuming from revision %d", e, rev + 1)
                await asyncio.sleep(0.5)
            except Exception:
                log.exception("watch cache: store watch failed; restarting")
                await asyncio.sleep(0.5)

    async def _drop_all(self) -> int:
        """Forget every cache (their watchers re-watch) and jump to the store's current revision."""
        rev = await self.store.current_revision()
        for prefix in list(self.caches):
            old = self.caches.pop(prefix)
            for w in old.watchers:
                w.dropped = True
                w.wake.set()
        self.revision = rev
        self._release(rev)
        return rev

    def _dispatch(self, ev: Event) -> None:
        # Prefixes are /registry/<plural>/ or /registry/<a>/<b>/ (services/specs, a custom resource's
        # <group>/<plural>): kube-apiserver's layout. None is the start of another, so the cache is
        # the one under the key's first two segments, else under its first three.
        key = ev.key
        two = key.find("/", 10)
        if two < 0:
            return
        cache = self.caches.get(key[: two + 1])
        if cache is None:
            three = key.find("/", two + 1)
            if three < 0:
                return
            cache = self.caches.get(key[: three + 1])
        if cache is not None:
            cache.offer(ev)

    async def cache_for(self, prefix: str) -> ResourceCache:
        cache = self.caches.get(prefix)
        if cache is None:
            await self._started.wait()
            cache = ResourceCache(prefix, self.decode)
            self.caches[prefix] = cache
            revision = self.revision
            items: list[tuple[str, bytes, int]] = []
            start_after = ""
            try:
                while True:
                    res = await self.store.list(prefix, revision=revision, start_after=start_after, limit=5000)
                    items.extend((kv.key, kv.value, kv.mod_revision) for kv in res.items)
                    if not res.more:
                        break
                    start_after = res.items[-1].key
            except BaseException:
                self.caches.pop(prefix, None)
                raise
            cache.fill(items, revision)
        elif not cache.ready.is_set():
            await cache.ready.wait()
        return cache

    def drop(self, prefix: str) -> None:
        """Forget a resource's cache (its CRD is gone)."""
        cache = self.caches.pop(prefix, None)
        if cache:
            for w in cache.watchers:
                w.push(None)

    async def wait_fresh(self, timeout: float = 3.0) -> int:
        """Wait until the cache has applied every write the store has acknowledged."""
        await self.wait_for_revision(await self.store.current_revision(), timeout)
        return self.revision

    async def wait_for_revision(self, target: int, timeout: float = 3.0) -> None:
        """Wait until the cache has applied revision ``target`` (TimeoutError after ``timeout``)."""
        if self.revision >= target:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (target, next(self._seq), fut))
        self._progress_kick.set()
        if self._progress_task is None or self._progress_task.done():
            self._progress_task = asyncio.create_task(self._request_progress(), name="cacher-progress")
        await wait_for(fut, timeout)  # on timeout the future is cancelled; _release skips it

    async def _request_progress(self) -> None:
        """While readers wait, ask the store for progress: when a reader has waited PROGRESS_GRACE
        (events usually release it sooner), then every PROGRESS_INTERVAL or sooner for a new reader.
        One request serves every reader waiting at the time."""
        while self._waiters:
            self._progress_kick.clear()
            await asyncio.sleep(PROGRESS_GRACE)
            while self._waiters and self._waiters[0][2].done():
                heapq.heappop(self._waiters)  # released, or gave up
            if not self._waiters:
                return
            try:
                await self.store.request_progress()
            except StoreError as e:  # the store is down: the readers time out, the next reader retries
                log.warning("watch cache: progress request failed: %s", e)
            except Exception:
                log.exception("watch cache: progress request failed")
            with contextlib.suppress(TimeoutError):
                await wait_for(self._progress_kick.wait(), PROGRESS_INTERVAL)

    def _release(self, rev: int) -> None:
        waiters = self._waiters
        while waiters and waiters[0][0] <= rev:
            fut = heapq.heappop(waiters)[2]
            if not fut.done():
                fut.set_result(None)
