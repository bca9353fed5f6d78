"""The read path of the generic store: get, list and watch, served from the watch cache.

:class:`StoreReads` is the part of :class:`~kybernetes.apiserver.registry.store.Registry` that
reads. Reads are made consistent by waiting until the cache has applied every acknowledged write
(or the revision the client asked for); paginated and exact-revision lists read a snapshot from
the store itself so that every page sees one revision; a watch from a revision the cache no longer
holds reads the store's own history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from kybernetes import errors
from kybernetes.api.field_selectors import object_fields
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Resource
from kybernetes.apiserver.registry.conversion import Conversions
from kybernetes.apiserver.registry.objutil import decode
from kybernetes.apiserver.registry.request import (
    ListOptions,
    ListResult,
    decode_continue,
    encode_continue,
    parse_rv,
)
from kybernetes.apiserver.registry.strategy import Strategy
from kybernetes.apiserver.registry.watchstream import WatchStream, filter_event
from kybernetes.storage import interface as st
from kybernetes.storage.cacher import CacheEvent, Cacher, Watcher


class StoreReads:
    """get, list and watch of every kind; the registry (its subclass) sets the attributes below."""

    store: st.Store
    cacher: Cacher
    conversions: Conversions

    def _stored_strategy(self, r: Resource) -> Strategy:
        """The strategy of the kind as it is stored (defined by the registry)."""
        raise NotImplementedError

    async def to_version(self, r: Resource, obj: Obj) -> Obj:
        """A stored object as ``r``'s version serves it (see :mod:`.conversion`; through the
        conversion webhook where there is one: a 500 Status when that fails)."""
        return (await self.conversions.to_view_all(r, [obj]))[0]

    async def to_version_all(self, r: Resource, objs: list[Obj]) -> list[Obj]:
        """A list's stored items as ``r``'s version serves them (one webhook call for all)."""
        return await self.conversions.to_view_all(r, objs, list_kind=r.list_kind)

    async def _cache(self, r: Resource) -> Any:
        return await self.cacher.cache_for(r.key_prefix)

    async def get(self, r: Resource, namespace: str, name: str, resource_version: str = "") -> Obj:
        cache = await self._cache(r)
        if resource_version and resource_version != "0":
            await self._wait_rv(parse_rv(resource_version))
        elif not resource_version:
            await self._fresh()
        obj = cache.objects.get(r.key(namespace, name))
        if obj is None:
            raise errors.NotFound.of(r.plural, name, r.group)
        return obj

    async def _fresh(self) -> None:
        try:
            await self.cacher.wait_fresh()
        except TimeoutError:
            raise errors.Timeout("Too large resource version: the watch cache is not up to date yet") from None

    async def _wait_rv(self, rev: int) -> None:
        try:
            await self.cacher.wait_for_revision(rev)
        except TimeoutError:
            raise errors.Timeout(
                f"Too large resource version: {rev}, current: {self.cacher.revision}",
                details={"causes": [{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}],
                         "retryAfterSeconds": 1},
            ) from None

    def _matcher(self, r: Resource, opts: ListOptions) -> Callable[[Obj], bool] | None:
        ls, fs = opts.label_selector, opts.field_selector
        if (ls is None or ls.empty) and (fs is None or fs.empty):
            return None
        # Selectors are matched against stored objects, in the stored form's field labels.
        extra: Any = self._stored_strategy(r).field_selectors
        if fs is not None and not fs.empty:
            fs = self.conversions.field_selector(r, fs)
            for field_name, _op, _val in fs.requirements:
                if field_name not in ("metadata.name", "metadata.namespace") and field_name not in extra:
                    raise errors.BadRequest(f'field label not supported: {field_name}')

        def match(obj: Obj) -> bool:
            if ls is not None and not ls.empty and not ls.matches(obj.get("metadata", {}).get("labels")):
                return False
            return not (fs is not None and not fs.empty and not fs.matches(object_fields(obj, extra)))

        return match

    async def list(self, r: Resource, namespace: str, opts: ListOptions) -> ListResult:
        match = self._matcher(r, opts)
        prefix = r.namespace_prefix(namespace)
        rv, rvm = opts.resource_version, opts.resource_version_match
        if rvm and rvm not in ("Exact", "NotOlderThan"):
            raise errors.BadRequest(f'resourceVersionMatch: Unsupported value: "{rvm}"')
        if rvm and not rv:
            raise errors.BadRequest("resourceVersionMatch is forbidden unless resourceVersion is provided")
        if opts.continue_token:
            if rv:
                raise errors.BadRequest("specifying resource version is not allowed when using continue")
            rev, start = decode_continue(opts.continue_token)
            return await self._list_store(r, prefix, rev, start, opts.limit, match)
        if rvm == "Exact":
            return await self._list_store(r, prefix, parse_rv(rv), "", opts.limit, match)
        if opts.limit and rv != "0":
            # Paginated consistent lists read a snapshot from the store so that later pages
            # (continue tokens) see the same revision.
            base = 0 if not rv else parse_rv(rv)
            if base:
                await self._wait_rv(base)
            return await self._list_store(r, prefix, 0, "", opts.limit, match)
        cache = await self._cache(r)
        if rv and rv != "0":
            await self._wait_rv(parse_rv(rv))
        elif not rv:
            await self._fresh()
        revision = self.cacher.revision
        items = [o for _k, o in cache.list(prefix)]
        if match is not None:
            items = [o for o in items if match(o)]
        return ListResult(items, str(revision))

    async def _list_store(self, r: Resource, prefix: str, revision: int, start_after: str, limit: int,
                          match: Callable[[Obj], bool] | None) -> ListResult:
        out: list[Obj] = []
        rev = revision
        cursor = start_after
        try:
            while True:
                want = (limit - len(out)) if limit else 0
                res = await self.store.list(prefix, revision=rev, start_after=cursor, limit=max(want, 50) if limit else 0)
                rev = res.revision
                cut_short = False
                for i, kv in enumerate(res.items):
                    cursor = kv.key
                    obj = decode(kv.value, kv.mod_revision)
                    if match is None or match(obj):
                        out.append(obj)
                        if limit and len(out) >= limit:
                            cut_short = i < len(res.items) - 1
                            break
                if limit and len(out) >= limit:
                    if cut_short or res.more:
                        return ListResult(out, str(rev), encode_continue(rev, cursor))
                    return ListResult(out, str(rev))
                if not res.more:
                    return ListResult(out, str(rev))
        except st.CompactedError:
            if start_after:
                # handleCompactedErrorForPaging: the Status carries a token that goes on from the
                # same key at the current revision.
                expired = errors.Expired(
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter, or use the continue token in this "
                    "response to retrieve the remainder of the results. Continuing with the provided token "
                    "results in an inconsistent list - objects that were created, modified, or deleted "
                    "between the time the first chunk was returned and now may show up in the list."
                )
                expired.list_meta = {"continue": encode_continue(-1, start_after)}
                raise expired from None
            raise errors.Expired("The resourceVersion for the provided list is too old.") from None  # etcd3 store
        except st.FutureRevisionError as e:
            raise errors.Timeout(f"Too large resource version: {e.requested}, current: {e.current}") from None

    # --- watch --------------------------------------------------------------------------

    async def open_watch(self, r: Resource, namespace: str, opts: ListOptions, *,
                         bookmark_interval: float | None = None, timeout: float | None = None,
                         send_initial: bool = True) -> WatchStream:
        """Open a watch, checking everything that can fail before the first event is sent.

        resourceVersion unset or "0": synthetic ADDED events for the current state, then changes.
        resourceVersion N: every change after N (410 Expired if N is too old).
        """
        match = self._matcher(r, opts)
        prefix = r.namespace_prefix(namespace)
        cache = await self._cache(r)
        rv = opts.resource_version
        first: list[CacheEvent] = []
        if rv and rv != "0":
            start = parse_rv(rv)
            if start > self.cacher.revision:
                await self._wait_rv(start)
            backlog = cache.events_since(prefix, start)
            if backlog is None:
                compacted = await self.store.compacted_revision()
                if start < compacted:
                    raise errors.Expired(f"too old resource version: {start} ({compacted})")
                return WatchStream([], None, None, match, self._watch_store(r, prefix, start, match),
                                   self.cacher, bookmark_interval, timeout)
            first = [out for ev in backlog if (out := self._filter(ev, match)) is not None]
        else:
            if not rv:
                await self._fresh()
            if send_initial:
                for k, o in cache.list(prefix):
                    if match is None or match(o):
                        first.append(CacheEvent("ADDED", k, o, None, int(o["metadata"]["resourceVersion"])))
        # No await between reading the backlog and registering: no event is lost or repeated.
        w = Watcher(prefix, self.cacher.flusher)
        cache.watchers.add(w)
        return WatchStream(first, w, cache, match, None, self.cacher, bookmark_interval, timeout)

    async def watch(self, r: Resource, namespace: str, opts: ListOptions,
                    send_initial: bool = True) -> AsyncIterator[CacheEvent]:
        """Events one by one (for in-process watchers such as the CRD controller)."""
        stream = await self.open_watch(r, namespace, opts, send_initial=send_initial)
        try:
            async for batch in stream.batches():
                for ev in batch:
                    yield ev
        finally:
            stream.close()

    _filter = staticmethod(filter_event)

    async def _watch_store(self, r: Resource, prefix: str, start: int,
                           match: Callable[[Obj], bool] | None) -> AsyncIterator[CacheEvent]:
        it = self.store.watch(prefix, start)
        try:
            async for sev in it:
                if sev.type == "DELETE":
                    if sev.prev_value is None:
                        continue
                    obj = decode(sev.prev_value, sev.revision)
                    cev = CacheEvent("DELETED", sev.key, obj, obj, sev.revision)
                else:
                    assert sev.value is not None
                    obj = decode(sev.value, sev.revision)
                    prev = decode(sev.prev_value, sev.revision) if sev.prev_value else None
                    cev = CacheEvent("MODIFIED" if prev else "ADDED", sev.key, obj, prev, sev.revision)
                out = self._filter(cev, match)
                if out is not None:
                    yield out
        except st.CompactedError:
            raise errors.Expired(f"too old resource version: {start} ({await self.store.compacted_revision()})") from None
        finally:
            await it.aclose()  # type: ignore[attr-defined]
