"""Informers: a local, indexed, eventually consistent copy of one resource, with change handlers.

This is client-go's ``tools/cache`` reduced to what a controller needs: a *reflector* keeps an
:class:`Indexer` in step with the API server and tells *handlers* what changed.

The reflector, one task per informer::

    list (limit 500, following continue; one consistent snapshot)
      -> replace the store: adds, updates and deletes versus what it held before go to handlers
      -> has_synced
    watch from the list's resourceVersion (allowWatchBookmarks, timeoutSeconds 5-10 min at random)
      -> every event updates the store, then the handlers
      -> the stream ends: watch again from the last resourceVersion seen (bookmarks advance it)
      -> 410 Expired/Gone: list again (the "relist"), which repairs anything missed
      -> any other failure (server down, 5xx, broken stream): back off (0.8 s doubling to 30 s,
         jittered), then watch again from the last resourceVersion — or list, if no list has
         succeeded yet

Contract for handlers (client-go's ``ResourceEventHandler``):

- ``on_add(obj)``, ``on_update(old, new)``, ``on_delete(obj)`` are plain (sync) callables. They
  must be quick and must not block — enqueue a key and return. They may be ``None``.
- Every handler sees the changes of one object in the order the server made them. Handlers are
  called from the informer's reflector task right after the store is changed, so when a handler
  runs, ``store`` already holds (at least) the new state.
- A relist reports the difference between the old and the new contents: objects that appeared
  (``on_add``), changed resourceVersion (``on_update``) or vanished (``on_delete`` with the last
  object the store held — the server cannot say more, like client-go's
  ``DeletedFinalStateUnknown``).
- A ``DELETED`` watch event passes the object from the event (its final state).
- With ``resync_period > 0`` every object is redelivered as ``on_update(obj, obj)`` each period,
  so level-triggered controllers reconsider everything now and then.
- A handler added after the informer has objects gets a synthetic ``on_add`` for each of them
  at once, then live events; it never misses or doubles an object.
- A handler that raises is logged; the informer and other handlers carry on.

``has_synced`` becomes true once the first list has been stored and delivered, and stays true
through relists and restarts of the server.

Objects in the store are the dicts decoded from the server: treat them as read-only (copy before
changing), because every handler and every reader shares them.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

IndexFunc = Callable[[Obj], list[str]]

WATCH_TIMEOUT_MIN = 300
WATCH_TIMEOUT_MAX = 600
BACKOFF_INITIAL = 0.8
BACKOFF_MAX = 30.0


def key_of(obj: Obj) -> str:
    """The cache key: ``namespace/name`` for namespaced objects, ``name`` otherwise."""
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    name = meta.get("name") or ""
    return f"{ns}/{name}" if ns else name


def _index_namespace(obj: Obj) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def _index_owner(obj: Obj) -> list[str]:
    return [str(r["uid"]) for r in (obj.get("metadata") or {}).get("ownerReferences") or () if r.get("uid")]


def _index_node_name(obj: Obj) -> list[str]:
    spec = obj.get("spec")
    node = spec.get("nodeName") if isinstance(spec, dict) else None
    return [node] if isinstance(node, str) and node else []


class Indexer:
    """A thread-unsafe (asyncio-only) keyed store with secondary indexes.

    Built-in indexes: ``namespace`` (every object, "" for cluster-scoped), ``owner`` (the uid of
    every ownerReference) and ``nodeName`` (``spec.nodeName`` when set; pods only, in practice).
    Index functions return the list of values an object is filed under; they run on every change.
    """

    def __init__(self) -> None:
        self._items: dict[str, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {}
        self._indices: dict[str, dict[str, set[str]]] = {}
        self.add_indexers({"namespace": _index_namespace, "owner": _index_owner, "nodeName": _index_node_name})

    def add_indexers(self, indexers: dict[str, IndexFunc]) -> None:
        """Add indexes (existing objects are indexed at once). Re-adding a name replaces it."""
        for name, fn in indexers.items():
            self._indexers[name] = fn
            index: dict[str, set[str]] = {}
            self._indices[name] = index
            for key, obj in self._items.items():
                for value in self._values(fn, obj):
                    index.setdefault(value, set()).add(key)

    def get(self, key: str) -> Obj | None:
        return self._items.get(key)

    def list(self) -> builtins.list[Obj]:
        return list(self._items.values())

    def keys(self) -> builtins.list[str]:
        return list(self._items)

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        """Objects filed under ``value`` in ``index`` (KeyError for an unknown index)."""
        keys = self._indices[index].get(value) or ()
        return [self._items[k] for k in keys]

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        """The keys (a snapshot, so the store may change while iterating)."""
        return iter(list(self._items))

    def __contains__(self, key: object) -> bool:
        return key in self._items

    # -- writes (the reflector's) -----------------------------------------------------------------

    def put(self, key: str, obj: Obj) -> Obj | None:
        """Store ``obj``; returns the object it replaced."""
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in self._values(fn, obj):
                index.setdefault(value, set()).add(key)
        return old

    def remove(self, key: str) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, fn in self._indexers.items():
            index = self._indices[name]
            for value in self._values(fn, obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    @staticmethod
    def _values(fn: IndexFunc, obj: Obj) -> builtins.list[str]:
        try:
            return fn(obj)
        except Exception:
            log.exception("index function failed on %s", key_of(obj))
            return []


@dataclass
class _Handler:
    on_add: Callable[[Obj], Any] | None
    on_update: Callable[[Obj, Obj], Any] | None
    on_delete: Callable[[Obj], Any] | None


def _rv(obj: Obj | None) -> str:
    return str(((obj or {}).get("metadata") or {}).get("resourceVersion", ""))


class Informer:
    """One resource (optionally one namespace / selector), cached and watched. See the module doc."""

    def __init__(self, client: Client, api_version: str, plural: str, namespace: str = "", *,
                 label_selector: str = "", field_selector: str = "", resync_period: float = 0) -> None:
        self.client = client
        self.api_version = api_version
        self.plural = plural
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.resync_period = resync_period
        self.store = Indexer()
        self.has_synced = False
        self.last_resource_version = ""
        self._handlers: list[_Handler] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._resync_task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        where = f" in {self.namespace}" if self.namespace else ""
        return f"<Informer {self.api_version} {self.plural}{where}>"

    # -- handlers ---------------------------------------------------------------------------------

    def add_handler(self, on_add: Callable[[Obj], Any] | None = None,
                    on_update: Callable[[Obj, Obj], Any] | None = None,
                    on_delete: Callable[[Obj], Any] | None = None) -> None:
        h = _Handler(on_add, on_update, on_delete)
        # Replay what the store holds now, synchronously: no reflector step can run in between, so
        # the handler continues seamlessly with the next live event.
        if h.on_add is not None:
            for obj in self.store.list():
                self._call(h.on_add, obj)
        self._handlers.append(h)

    def _call(self, fn: Callable[..., Any], *args: Obj) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("%r: event handler %r failed", self, fn)

    def _notify_add(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_add is not None:
                self._call(h.on_add, obj)

    def _notify_update(self, old: Obj, new: Obj) -> None:
        for h in self._handlers:
            if h.on_update is not None:
                self._call(h.on_update, old, new)

    def _notify_delete(self, obj: Obj) -> None:
        for h in self._handlers:
            if h.on_delete is not None:
                self._call(h.on_delete, obj)

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the reflector (idempotent); needs a running event loop."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"informer:{self.plural}")
        if self.resync_period > 0 and (self._resync_task is None or self._resync_task.done()):
            self._resync_task = asyncio.get_running_loop().create_task(self._resync_loop())

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._resync_task) if t is not None]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._task = self._resync_task = None

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        try:
            await wait_for(self._synced.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # -- the reflector ----------------------------------------------------------------------------

    async def _run(self) -> None:
        need_list = True
        backoff = BACKOFF_INITIAL
        while True:
            try:
                if need_list:
                    await self._list_and_replace()
                    need_list = False
                    backoff = BACKOFF_INITIAL
                started = asyncio.get_running_loop().time()
                events = await self._watch()
                if events == 0 and asyncio.get_running_loop().time() - started < 1.0:
                    # An empty stream that ended at once is a misbehaving server (or proxy), not
                    # a timeoutSeconds expiry: do not hammer it.
                    await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                    backoff = min(BACKOFF_MAX, backoff * 2)
                else:
                    # A clean end (timeoutSeconds ran out): watch again at once.
                    backoff = BACKOFF_INITIAL
            except asyncio.CancelledError:
                raise
            except errors.Gone as e:
                # Our resourceVersion is older than the server's history: only a list can catch up.
                log.info("%r: %s; relisting", self, e)
                need_list = True
                await asyncio.sleep(random.uniform(0, 0.1))  # never a tight loop, even if 410 repeats
            except Exception as e:
                log.warning("%r: %s: %s; retrying in %.1fs", self, type(e).__name__, e, backoff)
                await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
                backoff = min(BACKOFF_MAX, backoff * 2)

    async def _list_and_replace(self) -> None:
        items, rv = await self.client.list_all(self.api_version, self.plural, self.namespace,
                                               label_selector=self.label_selector,
                                               field_selector=self.field_selector)
        self._replace(items)
        self.last_resource_version = rv
        if not self.has_synced:
            self.has_synced = True
            self._synced.set()

    def _replace(self, items: list[Obj]) -> None:
        seen: set[str] = set()
        for obj in items:
            key = key_of(obj)
            seen.add(key)
            old = self.store.put(key, obj)
            if old is None:
                self._notify_add(obj)
            elif _rv(old) != _rv(obj):
                self._notify_update(old, obj)
        for key in [k for k in self.store if k not in seen]:
            old = self.store.remove(key)
            if old is not None:
                self._notify_delete(old)

    async def _watch(self) -> int:
        """One watch stream, applied to the store and handlers; returns how many events it carried."""
        n = 0
        timeout = random.randint(WATCH_TIMEOUT_MIN, WATCH_TIMEOUT_MAX)
        async for ev in self.client.watch(self.api_version, self.plural, self.namespace,
                                          resource_version=self.last_resource_version,
                                          label_selector=self.label_selector,
                                          field_selector=self.field_selector,
                                          timeout_seconds=timeout, allow_bookmarks=True):
            n += 1
            obj = ev.object
            rv = _rv(obj)
            if ev.type == "BOOKMARK":
                pass
            elif ev.type in ("ADDED", "MODIFIED"):
                key = key_of(obj)
                old = self.store.put(key, obj)
                if old is None:
                    self._notify_add(obj)
                else:
                    self._notify_update(old, obj)
            elif ev.type == "DELETED":
                self.store.remove(key_of(obj))
                self._notify_delete(obj)
            else:
                log.warning("%r: unknown watch event type %r", self, ev.type)
                continue
            if rv:
                self.last_resource_version = rv
        return n

    async def _resync_loop(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            if not self.has_synced:
                continue
            # No await inside: the whole resync is one step, so it cannot interleave with the
            # reflector and per-object ordering holds.
            for obj in self.store.list():
                self._notify_update(obj, obj)


class SharedInformerFactory:
    """One informer per (resource, namespace, selectors), shared by every controller of a process."""

    def __init__(self, client: Client, *, resync_period: float = 0) -> None:
        self.client = client
        self.resync_period = resync_period
        self._informers: dict[tuple[str, str, str, str, str], Informer] = {}
        self._started = False

    def informer(self, api_version: str, plural: str, namespace: str = "", *, label_selector: str = "",
                 field_selector: str = "") -> Informer:
        key = (api_version, plural, namespace, label_selector, field_selector)
        inf = self._informers.get(key)
        if inf is None:
            inf = Informer(self.client, api_version, plural, namespace, label_selector=label_selector,
                           field_selector=field_selector, resync_period=self.resync_period)
            self._informers[key] = inf
            if self._started:
                inf.start()
        return inf

    @property
    def informers(self) -> list[Informer]:
        return list(self._informers.values())

    async def start(self) -> None:
        self._started = True
        for inf in self._informers.values():
            inf.start()

    async def wait_for_sync(self, timeout: float | None = None) -> bool:
        """True when every informer requested so far has synced; False on timeout."""
        infs = list(self._informers.values())
        if not infs:
            return True
        try:
            await wait_for(asyncio.gather(*(i._synced.wait() for i in infs)), timeout)
        except TimeoutError:
            return False
        return True

    async def stop(self) -> None:
        self._started = False
        await asyncio.gather(*(i.stop() for i in self._informers.values()))
