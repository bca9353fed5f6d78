"""An open watch as the handlers consume it: events in batches, BOOKMARK ticks, an end.

:meth:`kybernetes.apiserver.registry.store.Registry.open_watch` makes one; :func:`filter_event`
is how a selector sees each change.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.storage.cacher import CacheEvent, Cacher, Watcher


def filter_event(ev: CacheEvent, match: Callable[[Obj], bool] | None) -> CacheEvent | None:
    """``ev`` as a watcher with the selector ``match`` sees it: a change into the selection is
    ADDED, out of it DELETED; None when it concerns no selected object."""
    if match is None:
        return ev
    now = match(ev.obj) if ev.type != "DELETED" else False
    was = ev.prev is not None and match(ev.prev)
    if ev.type == "DELETED":
        return ev if was else None
    if now and was:
        return ev
    if now:
        return CacheEvent("ADDED", ev.key, ev.obj, ev.prev, ev.revision)
    if was:
        return CacheEvent("DELETED", ev.key, ev.obj, ev.prev, ev.revision)
    return None


class WatchStream:
    """An open watch: events in batches (all that are queued at a wake-up), BOOKMARK ticks, an end.

    One timer per stream drives bookmarks and the end of the watch, and a batch is everything the
    watcher has queued, so a burst of writes costs each watcher one wake-up and one socket write.
    """

    def __init__(self, first: list[CacheEvent], watcher: Watcher | None, cache: Any,
                 match: Callable[[Obj], bool] | None, store_events: AsyncIterator[CacheEvent] | None,
                 cacher: Cacher, bookmark_interval: float | None, timeout: float | None) -> None:
        self._first = first
        self._watcher = watcher
        self._cache = cache
        self._match = match
        self._store_events = store_events
        self._cacher = cacher
        self._interval = bookmark_interval
        self._timeout = timeout
        # The end's timer and the next bookmark's: only the pending ones are kept (a watch lives
        # for up to an hour and ticks every minute; a list of every tick held each fired handle).
        self._expire_handle: asyncio.TimerHandle | None = None
        self._tick_handle: asyncio.TimerHandle | None = None
        self._tick = False
        self._expired = False
        self.direct: Callable[[list[CacheEvent]], bool] | None = None
        """Set by the consumer to have events written for it while it waits (see ``Watcher``):
        called with a filtered, non-empty batch; returns False if it cannot write now."""

    def _deliver(self) -> bool:
        """The parked watcher's queue, filtered and handed to ``direct`` without waking the task."""
        w, direct = self._watcher, self.direct
        assert w is not None and direct is not None
        q = w.queue
        if q[-1] is None:
            return False  # the end: the task writes what is left and closes
        match, filt = self._match, filter_event
        batch = [out for item in q if item is not None and (out := filt(item, match)) is not None]
        if batch and not direct(batch):
            return False
        q.clear()
        return True

    def _wake(self) -> None:
        if self._watcher is not None:
            self._watcher.wake.set()

    def _on_tick(self) -> None:
        self._tick = True
        self._wake()
        assert self._interval is not None
        self._tick_handle = asyncio.get_running_loop().call_later(self._interval, self._on_tick)

    def _on_expire(self) -> None:
        self._expired = True
        self._wake()

    def _bookmark(self) -> CacheEvent:
        return CacheEvent("BOOKMARK", "", {}, None, self._cacher.revision)

    async def batches(self) -> AsyncIterator[list[CacheEvent]]:
        if self._first:
            yield self._first
            self._first = []
        if self._store_events is not None:
            # The rare path (a resume older than the cache's history): one event at a time.
            try:
                async with asyncio.timeout(self._timeout):
                    async for ev in self._store_events:
                        yield [ev]
            except TimeoutError:
                return
            return
        w = self._watcher
        assert w is not None
        loop = asyncio.get_running_loop()
        if self._timeout is not None:
            self._expire_handle = loop.call_later(self._timeout, self._on_expire)
        if self._interval is not None:
            self._tick_handle = loop.call_later(self._interval, self._on_tick)
        match, filt = self._match, filter_event
        while True:
            if w.queue:
                batch: list[CacheEvent] = []
                closed = False
                while w.queue:
                    item = w.queue.popleft()
                    if item is None:
                        closed = True
                        break
                    out = filt(item, match)
                    if out is not None:
                        batch.append(out)
                if batch:
                    yield batch
                if closed:
                    return
                continue
            if self._expired or w.dropped:
                return
            if self._tick:
                self._tick = False
                yield [self._bookmark()]
                continue
            w.wake.clear()
            if self.direct is not None:
                w.direct = self._deliver
                try:
                    await w.wake.wait()
                finally:
                    w.direct = None
            else:
                await w.wake.wait()

    def close(self) -> None:
        for h in (self._expire_handle, self._tick_handle):
            if h is not None:
                h.cancel()
        self._expire_handle = self._tick_handle = None
        if self._watcher is not None and self._cache is not None:
            self._cache.watchers.discard(self._watcher)


__all__ = ["WatchStream", "filter_event"]
