"""The console's model: watch-fed caches of the resources it shows, with rows precomputed per change.

Contract:

- One :class:`ResourceCache` per resource of :data:`~kybernetes.console.rows.KINDS`, made and
  started on first use (:meth:`Model.ensure`) and kept for the life of the process. It watches
  with the user's own credentials: cluster-wide when a SelfSubjectAccessReview allows ``list`` and
  ``watch`` on the resource everywhere, else in the one namespace asked for when allowed there
  (a user who may read one namespace sees that namespace), else the answer is *forbidden*
  (re-asked at most every :data:`DENIED_TTL` seconds). Leases are watched in ``kube-system`` and
  ``kube-node-lease`` only.
- Every add, update or delete recomputes that object's row (:mod:`.rows`) and problems
  (:mod:`.problems`) and bumps the resource's ``version``; nothing is computed per request over
  all objects except filtering and sorting of the precomputed rows (a sorted order is reused
  while the version stands).
- An EndpointSlice change recomputes its Service's row (the ``endpoints`` column), so it bumps
  ``services`` too; new node usage (:meth:`Model.set_node_usage`) bumps ``nodes``.
- :meth:`Model.page` is ``/api/list``'s answer; :meth:`Model.wait_changed` wakes the event streams.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import parse_label_selector
from kybernetes.client import Client, Informer
from kybernetes.console import problems as problems_mod
from kybernetes.console.rows import (
    KINDS,
    Kind,
    Row,
    columns,
    make_row,
    node_extras,
    ready_endpoints,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]

DENIED_TTL = 10.0
SYNC_TIMEOUT = 20.0
LEASE_NAMESPACES = ("kube-system", "kube-node-lease")
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEPENDS = {"services": ("endpointslices",)}
"""Caches a resource's rows read (services' ``endpoints`` column counts their EndpointSlices)."""


def _key(obj: Obj) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace") or ""
    return f"{ns}/{meta.get('name') or ''}" if ns else str(meta.get("name") or "")


def _involved(ev: Obj) -> list[str]:
    o = ev.get("involvedObject") or {}
    return [f"{o.get('kind', '')}/{o.get('namespace') or ''}/{o.get('name', '')}"]


def _service_of(sl: Obj) -> list[str]:
    meta = sl.get("metadata") or {}
    svc = (meta.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{meta.get('namespace') or ''}/{svc}"] if svc else []


class Forbidden(Exception):
    """The user may not list and watch this resource here (``forbidden: true`` in the answer)."""


class ResourceCache:
    """One resource: its informers (cluster-wide, or per allowed namespace), rows and version."""

    def __init__(self, model: Model, kind: Kind) -> None:
        self.model = model
        self.kind = kind
        self.informers: dict[str, Informer] = {}
        self.rows: dict[str, Row] = {}
        self.version = 0
        self._denied: dict[str, float] = {}
        self._sorted: dict[tuple[str, bool], tuple[int, list[str]]] = {}
        self._lock = asyncio.Lock()
        self._selected: dict[tuple[str, str, str, bool], list[str]] = {}
        self._selected_version = -1
        self._stopping: set[asyncio.Task[None]] = set()

    # -- access and start ---------------------------------------------------------------------

    async def ensure(self, namespace: str = "") -> None:
        """Start watching what the user may see of ``namespace`` ("" = all); :class:`Forbidden` if nothing."""
        async with self._lock:  # concurrent first uses start one informer, not one each
            inf = self.informers.get("") or self.informers.get(namespace)
            if inf is None:
                inf = await self._start_allowed(namespace)
        await self._wait(inf)

    async def _start_allowed(self, namespace: str) -> Informer:
        for scope in ("", namespace) if namespace and self.kind.namespaced else ("",):
            if time.monotonic() < self._denied.get(scope, 0.0):
                continue
            if await self.model.allowed(self.kind, scope):
                return self._start(scope)
            self._denied[scope] = time.monotonic() + DENIED_TTL
        raise Forbidden(self.kind.resource)

    def start_in(self, namespace: str) -> None:
        """Watch one namespace (the leases of kube-system and kube-node-lease), access checked by the caller."""
        if namespace not in self.informers:
            self._start(namespace)

    def _start(self, scope: str) -> Informer:
        inf = Informer(self.model.client, self.kind.api_version, self.kind.resource, scope)
        if self.kind.resource == "events":
            inf.store.add_indexers({"involved": _involved})
        if self.kind.resource == "endpointslices":
            inf.store.add_indexers({"service": _service_of})
        inf.add_handler(self._on_add, self._on_update, self._on_delete)
        if scope == "":  # the cluster-wide informer supersedes the per-namespace ones
            for other in list(self.informers.values()):
                task = asyncio.get_running_loop().create_task(other.stop())
                self._stopping.add(task)
                task.add_done_callback(self._stopping.discard)
            self.informers.clear()
            self.rows.clear()  # the new informer's first list brings back every object that still exists
            self.model.forget(self.kind.resource)
        self.informers[scope] = inf
        inf.start()
        return inf

    @staticmethod
    async def _wait(inf: Informer) -> None:
        if not inf.has_synced and not await inf.wait_for_sync(SYNC_TIMEOUT):
            log.warning("%r has not synced after %ss; answering with what it holds", inf, SYNC_TIMEOUT)

    @property
    def synced(self) -> bool:
        return bool(self.informers) and all(i.has_synced for i in self.informers.values())

    # -- reads --------------------------------------------------------------------------------

    def get(self, namespace: str, name: str) -> Obj | None:
        key = f"{namespace}/{name}" if namespace else name
        for inf in self.informers.values():
            obj = inf.store.get(key)
            if obj is not None:
                return obj
        return None

    def objects(self, namespace: str = "") -> Iterator[Obj]:
        for inf in list(self.informers.values()):
            yield from inf.store.by_index("namespace", namespace) if namespace else inf.store.list()

    def by_index(self, index: str, value: str) -> list[Obj]:
        return [o for inf in self.informers.values() for o in inf.store.by_index(index, value)]

    def __len__(self) -> int:
        return sum(len(i.store) for i in self.informers.values())

    # -- changes ------------------------------------------------------------------------------

    def _on_add(self, obj: Obj) -> None:
        self._changed(obj, deleted=False)

    def _on_update(self, old: Obj, new: Obj) -> None:
        self._changed(new, deleted=False)

    def _on_delete(self, obj: Obj) -> None:
        self._changed(obj, deleted=True)

    def _changed(self, obj: Obj, *, deleted: bool) -> None:
        key = _key(obj)
        if deleted:
            self.rows.pop(key, None)
        else:
            self.rows[key] = self.make_row(obj, datetime.now(UTC))
        self.model.object_changed(self.kind.resource, key, None if deleted else obj)
        self.bump()

    def make_row(self, obj: Obj, now: datetime) -> Row:
        return make_row(self.kind, obj, now, self.model.extras(self.kind.resource, obj))

    def refresh(self, namespace: str, name: str) -> None:
        """Recompute one row (its extras changed) and bump the version."""
        obj = self.get(namespace, name)
        if obj is not None:
            self.rows[_key(obj)] = self.make_row(obj, datetime.now(UTC))
            self.bump()

    def bump(self) -> None:
        self.version += 1
        self.model.notify()

    # -- pages --------------------------------------------------------------------------------

    def selected(self, namespace: str, q: str, sort: str, desc: bool) -> list[str]:
        """Row keys of a list's query in order; cached per version (pages of one query are cheap)."""
        if self._selected_version != self.version:
            self._selected.clear()
            self._selected_version = self.version
        query = (namespace, q, sort, desc)
        keys = self._selected.get(query)
        if keys is None:
            keys = _select(self.rows, self.ordered(sort, desc), namespace, q)
            if len(self._selected) > 32:
                self._selected.clear()
            self._selected[query] = keys
        return keys

    def ordered(self, sort: str, desc: bool) -> list[str]:
        """Row keys in order of column ``sort`` ("" = namespace, name); cached per version."""
        cached = self._sorted.get((sort, desc))
        if cached is not None and cached[0] == self.version:
            return cached[1]
        rows = self.rows
        if not sort or sort in ("name", "namespace"):
            keys = sorted(rows, key=lambda k: (rows[k].cells["namespace"], rows[k].cells["name"]), reverse=desc)
        elif sort in ("age", "lastSeen"):
            # Ascending age is newest first: timestamps in reverse (RFC 3339 strings sort as times).
            keys = sorted(rows, key=lambda k: (rows[k].times.get(sort, ""), rows[k].cells["name"]), reverse=not desc)
        else:
            keys = sorted(rows, key=lambda k: rows[k].key(sort), reverse=desc)
        self._sorted[(sort, desc)] = (self.version, keys)
        return keys


class Model:
    """Every resource's cache, shared by all requests and event streams of the console."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.caches: dict[str, ResourceCache] = {}
        self.node_usage: dict[str, dict[str, str]] = {}
        self.problems: dict[tuple[str, str], list[Obj]] = {}
        self._generation = 0
        self._wake = asyncio.Event()
        self._access: dict[tuple[str, str], tuple[bool, float]] = {}
        self._slice_services: dict[str, list[str]] = {}

    def cache(self, resource: str) -> ResourceCache:
        c = self.caches.get(resource)
        if c is None:
            c = self.caches[resource] = ResourceCache(self, KINDS[resource])
        return c

    async def ensure(self, resource: str, namespace: str = "") -> ResourceCache:
        """The resource's cache, started and synced for ``namespace``; :class:`Forbidden` if denied."""
        c = self.cache(resource)
        if resource == "leases":
            for ns in LEASE_NAMESPACES:
                if ns not in c.informers and await self.allowed(c.kind, ns):
                    c.start_in(ns)
            for inf in list(c.informers.values()):
                await inf.wait_for_sync(2.0)  # health can wait for the next round: do not hold the answer
            return c
        for needed in DEPENDS.get(resource, ()):  # first: the rows read them
            await self.ensure_quietly(needed, namespace)
        await c.ensure(namespace)
        return c

    async def ensure_quietly(self, resource: str, namespace: str = "") -> ResourceCache:
        """As :meth:`ensure`, but a denied resource is just an empty cache."""
        try:
            return await self.ensure(resource, namespace)
        except Forbidden:
            return self.cache(resource)

    async def allowed(self, kind: Kind, namespace: str) -> bool:
        """Whether the user may list and watch ``kind`` in ``namespace`` ("" = everywhere)."""
        now = time.monotonic()
        cached = self._access.get((kind.resource, namespace))
        if cached is not None and now < cached[1]:
            return cached[0]
        ok = True
        for verb in ("list", "watch"):
            attrs = {"verb": verb, "group": kind.group, "resource": kind.resource}
            if namespace:
                attrs["namespace"] = namespace
            review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                      "spec": {"resourceAttributes": attrs}}
            try:
                out = await self.client.create("authorization.k8s.io/v1", "selfsubjectaccessreviews", review)
            except errors.StatusError as e:
                log.info("access review for %s failed: %s", kind.resource, e)
                ok = False
                break
            if not (out.get("status") or {}).get("allowed"):
                ok = False
                break
        self._access[(kind.resource, namespace)] = (ok, now + DENIED_TTL)
        return ok

    # -- change plumbing ----------------------------------------------------------------------

    def notify(self) -> None:
        self._generation += 1
        self._wake.set()

    async def wait_changed(self, generation: int, timeout: float) -> int:
        """Wait until the model moved past ``generation`` (or the timeout); the current generation."""
        if self._generation == generation:
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
        return self._generation

    @property
    def generation(self) -> int:
        return self._generation

    def versions(self) -> dict[str, int]:
        return {name: c.version for name, c in self.caches.items()}

    def object_changed(self, resource: str, key: str, obj: Obj | None) -> None:
        """An object changed (``obj`` None: deleted): its problems, and the rows that depend on it."""
        found = problems_mod.object_problems(resource, obj) if obj is not None else []
        if found:
            self.problems[(resource, key)] = found
        else:
            self.problems.pop((resource, key), None)
        if resource == "endpointslices":
            ns, _, _ = key.partition("/")
            for svc in _service_of(obj) if obj is not None else self._slice_services.pop(key, []):
                self.cache("services").refresh(ns, svc.partition("/")[2])
            if obj is not None:
                self._slice_services[key] = _service_of(obj)

    def forget(self, resource: str) -> None:
        """Drop a resource's problems (its cache starts over)."""
        for key in [k for k in self.problems if k[0] == resource]:
            del self.problems[key]

    def extras(self, resource: str, obj: Obj) -> Mapping[str, Any] | None:
        """The console's own columns of a row (see :mod:`.rows`)."""
        if resource == "nodes":
            return node_extras(obj, self.node_usage.get(str((obj.get("metadata") or {}).get("name"))))
        if resource == "services":
            meta = obj.get("metadata") or {}
            slices = self.cache("endpointslices").by_index("service", f"{meta.get('namespace')}/{meta.get('name')}")
            return {"endpoints": sum(ready_endpoints(s) for s in slices)}
        return None

    def set_node_usage(self, usage: dict[str, dict[str, str]]) -> None:
        """Node usage from metrics.k8s.io: rows of nodes whose usage changed are recomputed."""
        nodes = self.cache("nodes")
        for name in set(usage) | set(self.node_usage):
            if usage.get(name) != self.node_usage.get(name):
                self.node_usage[name] = usage.get(name) or {}
                nodes.refresh("", name)

    # -- reads shared by the views ------------------------------------------------------------

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        c = self.caches.get(resource)
        return c.get(namespace, name) if c is not None else None

    def owned(self, resource: str, uid: str) -> list[Obj]:
        c = self.caches.get(resource)
        return c.by_index("owner", uid) if c is not None else []

    def events_for(self, kind: str, namespace: str, name: str) -> list[Obj]:
        c = self.caches.get("events")
        return c.by_index("involved", f"{kind}/{namespace}/{name}") if c is not None else []

    def objects(self, resource: str, namespace: str = "") -> list[Obj]:
        c = self.caches.get(resource)
        return list(c.objects(namespace)) if c is not None else []

    def page(self, resource: str, *, namespace: str = "", q: str = "", sort: str = "", desc: bool = False,
             offset: int = 0, limit: int = 100) -> Obj:
        """One page of a list (``/api/list``): filtered, sorted, rows re-printed at the current time."""
        c = self.cache(resource)
        keys = c.selected(namespace if c.kind.namespaced else "", q.strip(), sort, desc)
        now = datetime.now(UTC)
        items = []
        for k in keys[offset:offset + limit]:
            ns, _, name = k.rpartition("/")
            obj = c.get(ns, name)
            # Re-printed for the page only: ages and "2m ago" are relative to now.
            items.append(c.make_row(obj, now).cells if obj is not None else c.rows[k].cells)
        return {"resource": resource, "version": c.version, "total": len(keys), "offset": offset, "limit": limit,
                "columns": columns(c.kind), "items": items, "forbidden": False, "synced": c.synced}


def _select(rows: dict[str, Row], keys: list[str], namespace: str, q: str) -> list[str]:
    """``keys`` of ``namespace`` ("" = all) matching ``q``: a label selector when it holds ``=``
    (or `` in ``, or starts with ``!``), else a case-insensitive name substring."""
    if namespace:
        keys = [k for k in keys if rows[k].cells["namespace"] == namespace]
    if not q:
        return keys
    if "=" in q or " in " in q or q.startswith("!"):
        selector = parse_label_selector(q)  # errors.BadRequest on a bad selector
        return [k for k in keys if selector.matches(rows[k].labels)]
    needle = q.lower()
    return [k for k in keys if needle in rows[k].search]
