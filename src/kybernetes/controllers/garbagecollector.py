"""The garbage collector: deletes objects whose owners are gone, and runs foreground/orphan deletion.

Built like Kubernetes' ``pkg/controller/garbagecollector``:

**Monitors.** One informer per resource that discovery says can be listed, watched and deleted
(events excepted, as in Kubernetes' default ignore list), custom resources included. The set
follows discovery: :mod:`~kybernetes.controllers.discovery` is refreshed every ~30 s, and at once
when a CustomResourceDefinition changes; monitors of resources that went away are stopped (and
restarted, relisting, if they come back). Every monitor event is applied to the
:class:`~kybernetes.controllers.gc_graph.Graph` right in the handler.

**One work queue, two kinds of items.** ``delete:<uid>`` ("attempt to delete") and
``orphan:<uid>`` ("attempt to orphan"), keyed by node uid so an item is processed by one worker
at a time and coalesces repeated triggers.

*Attempt to delete* a node — never from the graph alone: the node's object is read live and each
owner is checked by a live GET with a uid comparison (a 404, or an object of the same name with
another uid, means the owner is gone; absences are cached). Then, as in Kubernetes:

- a virtual node whose object is absent is dropped from the graph (its dependents get their turn);
  one that exists but no monitor has shown yet is looked at again later, with backoff;
- an owner in foreground deletion waits until no dependent with ``blockOwnerDeletion: true``
  remains (asking those dependents to be deleted), then loses its ``foregroundDeletion``
  finalizer and the API server deletes it;
- a dependent with at least one live owner keeps living, but references to owners that are gone
  or waiting for their dependents are removed (patch);
- a dependent whose owners are all gone is deleted (``Background``, or what its own finalizers
  ask for); one whose owners wait for it in foreground deletion and that has dependents of its
  own is deleted in ``Foreground``, so the wait propagates down the tree.

*Attempt to orphan* an owner being deleted with the ``orphan`` finalizer: remove its uid from the
ownerReferences of all its dependents, then remove the finalizer.

A cluster-scoped object naming a namespaced owner is invalid (it can never resolve): it is left
alone and an ``OwnerRefInvalidNamespace`` warning event is recorded once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.client.informer import Informer
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.discovery import APIResource, Snapshot, group_version, shared_discovery
from kybernetes.controllers.gc_graph import (
    FOREGROUND_FINALIZER,
    ORPHAN_FINALIZER,
    Graph,
    Identity,
    Node,
    has_finalizer,
)

log = logging.getLogger(__name__)

IGNORED_RESOURCES = frozenset({("", "events"), ("events.k8s.io", "events")})
CRD_API_VERSION = "apiextensions.k8s.io/v1"


@dataclass
class Monitor:
    resource: APIResource
    informer: Informer
    active: bool = True


class _InvalidOwner(Exception):
    """A cluster-scoped dependent names a namespaced owner: retrying cannot help."""


class _AbsentOwners:
    """A small LRU of owner coordinates known to be absent (saves a GET per sibling dependent)."""

    def __init__(self, size: int = 1000) -> None:
        self.size = size
        self._d: OrderedDict[tuple[str, ...], None] = OrderedDict()

    def add(self, key: tuple[str, ...]) -> None:
        self._d[key] = None
        self._d.move_to_end(key)
        while len(self._d) > self.size:
            self._d.popitem(last=False)

    def __contains__(self, key: tuple[str, ...]) -> bool:
        return key in self._d


class GarbageCollector(Controller):
    name = "garbage-collector-controller"
    service_account = "generic-garbage-collector"
    workers = 4

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.discovery = shared_discovery(ctx.client)
        self.interval = float(ctx.option("discovery-refresh-period", self.discovery.interval))
        self.graph = Graph(self._enqueue_delete, self._enqueue_orphan, self._is_invalid_owner)
        self.monitors: dict[tuple[str, str], Monitor] = {}
        self.absent = _AbsentOwners()
        self._virtual_retries: dict[str, int] = {}
        self._kick = asyncio.Event()
        self._reported_invalid: set[tuple[str, str]] = set()
        self._background: set[asyncio.Task[None]] = set()  # strong references: the loop keeps only weak ones
        # New CRDs must be monitored soon, not at the next periodic refresh.
        crds = self.informer(CRD_API_VERSION, "customresourcedefinitions")
        crds.add_handler(on_add=lambda _o: self._kick.set(), on_update=lambda _o, _n: self._kick.set(),
                         on_delete=lambda _o: self._kick.set())

    # -- queue keys ----------------------------------------------------------------------------

    def _enqueue_delete(self, node: Node) -> None:
        self.queue.add(f"delete:{node.uid}")

    def _enqueue_orphan(self, node: Node) -> None:
        self.queue.add(f"orphan:{node.uid}")

    # -- monitors ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.discovery.on_change(self._sync_monitors)
        try:
            self._sync_monitors(await self.discovery.get(max_age=0))
        except errors.StatusError as e:
            log.warning("garbage collector: initial discovery failed: %s", e)
        refresher = asyncio.create_task(self._refresh_loop(), name="gc-discovery")
        try:
            await super().run()
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    async def _refresh_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await wait_for(self._kick.wait(), timeout=self.interval)
            self._kick.clear()
            await asyncio.sleep(0.05)  # let a burst of CRD events settle into one refresh
            try:
                await self.discovery.refresh()
            except Exception as e:  # the next round may succeed
                log.warning("garbage collector: discovery refresh failed: %s", e)

    def deletable(self, snap: Snapshot) -> list[APIResource]:
        return [r for r in snap.preferred
                if r.supports("list", "watch", "delete") and (r.group, r.plural) not in IGNORED_RESOURCES]

    def _sync_monitors(self, snap: Snapshot) -> None:
        wanted = {(r.group, r.plural): r for r in self.deletable(snap)}
        failed_groups = {group_version(gv)[0] for gv in snap.failed}
        for key, old in self.monitors.items():
            if key not in wanted and old.active and key[0] not in failed_groups:
                old.active = False
                self._spawn(old.informer.stop())
        for key, r in wanted.items():
            mon = self.monitors.get(key)
            if mon is not None and mon.resource.version == r.version:
                if not mon.active:
                    mon.active = True
                    mon.informer.start()  # relists: the graph hears what changed meanwhile
                continue
            if mon is not None:  # the preferred version changed: watch the new one instead
                mon.active = False
                self._spawn(mon.informer.stop())
            self._add_monitor(r)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _add_monitor(self, r: APIResource) -> None:
        inf = self.informer(r.api_version, r.plural)
        mon = Monitor(r, inf)
        self.monitors[(r.group, r.plural)] = mon

        def on_add(obj: Obj) -> None:
            if mon.active:
                self._observe(mon, obj)

        def on_update(_old: Obj, new: Obj) -> None:
            if mon.active:
                self._observe(mon, new)

        def on_delete(obj: Obj) -> None:
            if mon.active:
                uid = (obj.get("metadata") or {}).get("uid")
                if uid:
                    self.graph.forget(uid)
                    self._virtual_retries.pop(uid, None)

        # The factory starts it (at once if it has started already).
        inf.add_handler(on_add=on_add, on_update=on_update, on_delete=on_delete)

    def _observe(self, mon: Monitor, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return
        r = mon.resource
        self.graph.observe(Identity(r.api_version, r.kind, meta.get("namespace") or "", meta.get("name", ""), uid),
                           obj)
        while self.graph.invalid_refs_seen:
            dep, ref = self.graph.invalid_refs_seen.pop()
            if (dep.uid, ref["uid"]) in self._reported_invalid:
                continue
            self._reported_invalid.add((dep.uid, ref["uid"]))
            msg = (f"ownerRef [{ref.get('apiVersion')}/{ref.get('kind')}, namespace: , name: {ref.get('name')}, "
                   f"uid: {ref.get('uid')}] does not exist in namespace \"\"")
            log.info("garbage collector: %s: %s", dep, msg)
            self._event(obj, "Warning", "OwnerRefInvalidNamespace", msg)

    def _event(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        try:
            self.recorder.event(obj, type_, reason, message)
        except Exception:
            log.exception("garbage collector: recording an event failed")

    def _is_invalid_owner(self, ref: Obj, dependent_namespace: str) -> bool:
        if dependent_namespace:
            return False
        r = self.discovery.mapping(str(ref.get("apiVersion", "")), str(ref.get("kind", "")))
        return r is not None and r.namespaced

    # -- workers -------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        what, _, uid = key.partition(":")
        node = self.graph.get(uid)
        if node is None:
            self._virtual_retries.pop(uid, None)
            return
        if what == "orphan":
            await self._attempt_to_orphan(node)
        else:
            await self._attempt_to_delete(node)

    async def _resource(self, api_version: str, kind: str) -> APIResource | None:
        """The resource of a kind; None when discovery succeeded and nothing serves it."""
        r = await self.discovery.resolve(api_version, kind)
        if r is None and group_version(api_version)[0] in {group_version(gv)[0]
                                                          for gv in self.discovery.snapshot.failed}:
            raise errors.ServiceUnavailable(f"discovery failed for {api_version}; cannot map {kind}")
        return r

    async def _get_live(self, ident: Identity) -> tuple[APIResource | None, Obj | None]:
        """The object of ``ident`` now, or None when it is absent or has another uid."""
        r = await self._resource(ident.api_version, ident.kind)
        if r is None:
            return None, None
        ns = ident.namespace if r.namespaced else ""
        try:
            obj = await self.client.get(r.api_version, r.plural, ident.name, ns)
        except errors.NotFound:
            return r, None
        if (obj.get("metadata") or {}).get("uid") != ident.uid:
            return r, None
        return r, obj

    async def _attempt_to_delete(self, node: Node) -> None:
        if node.being_deleted and not node.deleting_dependents:
            return  # one way to go: wait for the delete event, then look at the dependents
        r, latest = await self._get_live(node.identity)
        if latest is None or r is None:
            # Gone (or replaced by a namesake): as if we had seen it deleted.
            self.graph.forget(node.uid)
            self._virtual_retries.pop(node.uid, None)
            return
        if (latest.get("metadata") or {}).get("deletionTimestamp") and not has_finalizer(latest, FOREGROUND_FINALIZER):
            return  # being deleted already (our graph had not heard yet): nothing more to ask for
        if node.deleting_dependents:
            await self._process_deleting_dependents(node, r, latest)
        else:
            try:
                await self._collect_if_orphaned(node, r, latest)
            except _InvalidOwner:
                return  # reported when observed; retrying cannot help
        if node.virtual and self.graph.get(node.uid) is node:
            # It exists but no monitor has shown it (yet): look again, less and less often, so that
            # a virtual node cannot get stuck in the graph when the object goes unseen.
            n = self._virtual_retries.get(node.uid, 0)
            self._virtual_retries[node.uid] = n + 1
            self.queue.add_after(f"delete:{node.uid}", min(0.5 * 2**n, 30.0))
        else:
            self._virtual_retries.pop(node.uid, None)

    async def _collect_if_orphaned(self, node: Node, r: APIResource, latest: Obj) -> None:
        refs = [ref for ref in (latest.get("metadata") or {}).get("ownerReferences") or [] if ref.get("uid")]
        if not refs:
            return
        solid: list[Obj] = []
        dangling: list[Obj] = []
        waiting: list[Obj] = []
        for ref in refs:
            gone, owner = await self._is_dangling(ref, node)
            if gone:
                dangling.append(ref)
            elif owner is not None and (owner.get("metadata") or {}).get("deletionTimestamp") \
                    and has_finalizer(owner, FOREGROUND_FINALIZER):
                waiting.append(ref)
            else:
                solid.append(ref)
        ns = node.identity.namespace if r.namespaced else ""
        if solid:
            if dangling or waiting:
                drop = {ref["uid"] for ref in dangling + waiting}
                await self._patch_owner_refs(r, latest, lambda refs: [x for x in refs if x.get("uid") not in drop])
            return
        if waiting and node.dependents:
            if any(dep.deleting_dependents for dep in node.dependents.values()):
                # A dependent waits for us while our owner waits for us: unblock to break the cycle.
                await self._patch_owner_refs(
                    r, latest, lambda refs: [{**x, "blockOwnerDeletion": False} if x.get("blockOwnerDeletion")
                                             else x for x in refs])
            await self._delete(r, ns, node, "Foreground")
            return
        if has_finalizer(latest, ORPHAN_FINALIZER):
            policy = "Orphan"
        elif has_finalizer(latest, FOREGROUND_FINALIZER):
            policy = "Foreground"
        else:
            policy = "Background"
        log.info("garbage collector: deleting %s (%s): no owner remains", node.identity, policy)
        await self._delete(r, ns, node, policy)

    async def _is_dangling(self, ref: Obj, node: Node) -> tuple[bool, Obj | None]:
        api_version, kind, name, uid = (str(ref.get(k, "")) for k in ("apiVersion", "kind", "name", "uid"))
        key_cluster = (uid, api_version, kind, "", name)
        key_ns = (uid, api_version, kind, node.identity.namespace, name)
        if key_cluster in self.absent or key_ns in self.absent:
            return True, None
        r = await self._resource(api_version, kind)
        if r is None:
            return True, None  # no such kind is served any more: its objects are gone
        if r.namespaced and not node.identity.namespace:
            raise _InvalidOwner(f"{node.identity}: namespaced owner {kind} {name}")
        ns = node.identity.namespace if r.namespaced else ""
        try:
            owner = await self.client.get(r.api_version, r.plural, name, ns)
        except errors.NotFound:
            self.absent.add(key_ns if r.namespaced else key_cluster)
            return True, None
        if (owner.get("metadata") or {}).get("uid") != uid:
            self.absent.add(key_ns if r.namespaced else key_cluster)
            return True, None
        return False, owner

    async def _delete(self, r: APIResource, ns: str, node: Node, policy: str) -> None:
        try:
            await self.client.delete(r.api_version, r.plural, node.identity.name, ns, propagation_policy=policy,
                                     preconditions={"uid": node.uid})
        except errors.NotFound:
            pass
        except errors.Conflict as e:
            if "Precondition failed" not in e.message:
                raise
            # Another object of that name now: ours is gone already.

    async def _process_deleting_dependents(self, node: Node, r: APIResource, latest: Obj) -> None:
        blocking = node.blocking_dependents()
        if not blocking:
            await self._patch_finalizers(r, latest, FOREGROUND_FINALIZER)
            return
        for dep in blocking:
            if not dep.deleting_dependents:
                self._enqueue_delete(dep)
        # No requeue: each blocking dependent's delete event brings this owner back to the queue.

    async def _attempt_to_orphan(self, node: Node) -> None:
        async def orphan(dep: Node) -> None:
            r, latest = await self._get_live(dep.identity)
            if r is None or latest is None:
                return
            await self._patch_owner_refs(r, latest, lambda refs: [x for x in refs if x.get("uid") != node.uid])

        await asyncio.gather(*(orphan(dep) for dep in list(node.dependents.values())))
        r, latest = await self._get_live(node.identity)
        if r is None or latest is None:
            return
        await self._patch_finalizers(r, latest, ORPHAN_FINALIZER)

    # -- writes with compare-and-swap retries --------------------------------------------------

    async def _patch_owner_refs(self, r: APIResource, latest: Obj, change: Any) -> None:
        await self._patch_meta(r, latest, "ownerReferences", change)

    async def _patch_finalizers(self, r: APIResource, latest: Obj, finalizer: str) -> None:
        await self._patch_meta(r, latest, "finalizers", lambda fins: [f for f in fins if f != finalizer])

    async def _patch_meta(self, r: APIResource, latest: Obj, field: str, change: Any) -> None:
        """Set ``metadata.<field>`` to ``change(current)``, pinned to the resourceVersion we read.

        A merge patch replaces lists whole, and the resourceVersion in it makes the write a
        compare-and-swap: on a conflict, read again (checking the uid) and recompute.
        """
        obj = latest
        uid = (obj.get("metadata") or {}).get("uid")
        for _attempt in range(10):
            meta = obj.get("metadata") or {}
            current = list(meta.get(field) or [])
            new = change(current)
            if new == current:
                return
            patch = {"metadata": {field: new or None, "resourceVersion": meta.get("resourceVersion")}}
            ns = meta.get("namespace", "") if r.namespaced else ""
            try:
                await self.client.patch(r.api_version, r.plural, meta["name"], patch, ns, patch_type="merge")
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                try:
                    obj = await self.client.get(r.api_version, r.plural, meta["name"], ns)
                except errors.NotFound:
                    return
                if (obj.get("metadata") or {}).get("uid") != uid:
                    return
        raise errors.Conflict.of(r.plural, str((latest.get("metadata") or {}).get("name")),
                                 r.group, why="too many conflicting writes")


CONTROLLERS: list[type[Controller]] = [GarbageCollector]
