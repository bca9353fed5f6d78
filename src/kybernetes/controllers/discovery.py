"""What the API server serves, as controllers that work on *every* resource need to know it.

The namespace controller (delete everything in a namespace) and the garbage collector (follow
ownerReferences across all kinds) cannot work from a fixed list: custom resources come and go
with their CRDs. Both ask this module, which reads the legacy discovery documents
(``/api``, ``/api/v1``, ``/apis``, ``/apis/<group>/<version>``) the way client-go's
``ServerPreferredResources`` does:

- ``preferred()``: one entry per (group, resource) in the group's preferred version, without
  subresources — what to list, watch and delete;
- ``mapping(api_version, kind)``: the RESTMapper — which plural and scope a ``kind`` has, for any
  served version (ownerReferences name a kind, not a resource);
- ``failed``: groups whose version document could not be read. Kubernetes keeps going with what it
  could discover and reports the rest (the namespace controller's
  ``NamespaceDeletionDiscoveryFailure`` condition); so does this.

A snapshot is cached and refreshed when older than ``max_age`` (on demand) and by
:meth:`ResourceDiscovery.run` every ``interval`` seconds; listeners registered with
:meth:`on_change` hear when the set of resources changed. One instance is shared per client
(:func:`shared_discovery`) so two controllers do not each fetch the documents.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kybernetes import errors
from kybernetes.client.rest import Client

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 30.0


@dataclass(frozen=True)
class APIResource:
    """One served resource in one group-version."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    verbs: frozenset[str]

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``resource.group`` as Kubernetes prints it (``configmaps.`` for the core group)."""
        return f"{self.plural}.{self.group}"

    def supports(self, *verbs: str) -> bool:
        return all(v in self.verbs for v in verbs)


@dataclass
class Snapshot:
    """One consistent read of discovery."""

    preferred: list[APIResource] = field(default_factory=list)
    all_versions: list[APIResource] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """group/version -> error message, for group-versions that could not be read."""
    taken_at: float = 0.0

    def keys(self) -> frozenset[tuple[str, str, str]]:
        return frozenset((r.group, r.version, r.plural) for r in self.preferred)


def group_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    return group, version


class ResourceDiscovery:
    """A cached view of discovery, refreshed periodically and on demand."""

    def __init__(self, client: Client, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.client = client
        self.interval = interval
        self._snap = Snapshot()
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[Snapshot], Any]] = []
        self._by_kind: dict[tuple[str, str, str], APIResource] = {}
        self._by_group_kind: dict[tuple[str, str], APIResource] = {}

    # -- reading -------------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        return self._snap

    async def get(self, max_age: float | None = None) -> Snapshot:
        """The cached snapshot, refreshed first if older than ``max_age`` (default: interval)."""
        age = time.monotonic() - self._snap.taken_at
        if not self._snap.taken_at or age > (self.interval if max_age is None else max_age):
            await self.refresh()
        return self._snap

    def preferred(self, *verbs: str, namespaced: bool | None = None) -> list[APIResource]:
        return [r for r in self._snap.preferred
                if r.supports(*verbs) and (namespaced is None or r.namespaced == namespaced)]

    def mapping(self, api_version: str, kind: str) -> APIResource | None:
        """The resource serving ``kind`` in ``api_version`` (or, failing that, in its group)."""
        group, version = group_version(api_version)
        r = self._by_kind.get((group, version, kind))
        return r if r is not None else self._by_group_kind.get((group, kind))

    async def resolve(self, api_version: str, kind: str) -> APIResource | None:
        """:meth:`mapping`; an unknown kind is looked up again in discovery read *after* this call.

        "Not served" must not come from a snapshot older than the question: a CRD created a
        moment ago would look absent, and the garbage collector would take the objects it owns
        for orphans. Concurrent callers share one refresh that started after they asked.
        """
        r = self.mapping(api_version, kind)
        if r is None:
            await self.refresh(newer_than=time.monotonic())
            r = self.mapping(api_version, kind)
        return r

    def on_change(self, listener: Callable[[Snapshot], Any]) -> None:
        """Call ``listener(snapshot)`` whenever a refresh sees a different set of resources."""
        self._listeners.append(listener)

    # -- refreshing ----------------------------------------------------------------------------

    async def refresh(self, newer_than: float = 0.0) -> Snapshot:
        """Read discovery again (unless a snapshot begun after ``newer_than`` exists by then)."""
        async with self._lock:
            old = self._snap
            if newer_than and old.taken_at >= newer_than:
                return old
            snap = await self._fetch()
            if snap.failed and old.taken_at:
                # Keep what we knew about groups that failed this time, rather than forgetting them
                # (a transient error must not make the GC drop its monitors for a whole group).
                seen = {(r.group, r.plural) for r in snap.preferred}
                failed_groups = {group_version(gv)[0] for gv in snap.failed}
                for r in old.preferred:
                    if r.group in failed_groups and (r.group, r.plural) not in seen:
                        snap.preferred.append(r)
                        snap.all_versions.append(r)
            self._snap = snap
            self._by_kind = {(r.group, r.version, r.kind): r for r in snap.all_versions}
            self._by_group_kind = {}
            for r in snap.preferred:
                self._by_group_kind.setdefault((r.group, r.kind), r)
            for r in snap.all_versions:
                self._by_group_kind.setdefault((r.group, r.kind), r)
        if snap.keys() != old.keys():
            for listener in list(self._listeners):
                try:
                    res = listener(snap)
                    if asyncio.iscoroutine(res):
                        await res
                except Exception:
                    log.exception("discovery listener failed")
        return snap

    async def run(self) -> None:
        """Refresh every ``interval`` seconds until cancelled."""
        while True:
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the next round may well succeed
                log.warning("discovery refresh failed: %s", e)
            await asyncio.sleep(self.interval)

    async def _fetch(self) -> Snapshot:
        snap = Snapshot(taken_at=time.monotonic())
        # (group, version, preferred?) for every served group-version.
        gvs: list[tuple[str, str, bool]] = []
        try:
            core = await self.client.request("GET", "/api")
            for v in (core or {}).get("versions") or []:
                gvs.append(("", v, v == "v1"))
        except errors.StatusError as e:
            snap.failed["v1"] = e.message
        try:
            groups = await self.client.request("GET", "/apis")
            for g in (groups or {}).get("groups") or []:
                pref = (g.get("preferredVersion") or {}).get("version")
                versions = [v.get("version") for v in g.get("versions") or [] if v.get("version")]
                pref = pref or (versions[0] if versions else None)
                for v in versions:
                    gvs.append((g["name"], v, v == pref))
        except errors.StatusError as e:
            snap.failed["apis"] = e.message

        async def one(group: str, version: str) -> list[APIResource] | errors.StatusError:
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                doc = await self.client.request("GET", path)
            except errors.StatusError as e:
                return e
            return list(_parse_resource_list(group, version, doc))

        results = await asyncio.gather(*(one(g, v) for g, v, _ in gvs))
        for (g, v, pref), res in zip(gvs, results, strict=True):
            if isinstance(res, errors.StatusError):
                if isinstance(res, errors.NotFound):
                    continue  # a CRD version that went away between the two reads
                snap.failed[f"{g}/{v}" if g else v] = res.message
                continue
            snap.all_versions.extend(res)
            if pref:
                snap.preferred.extend(res)
        return snap


def _parse_resource_list(group: str, version: str, doc: Any) -> Iterable[APIResource]:
    for entry in (doc or {}).get("resources") or []:
        name = entry.get("name") or ""
        if not name or "/" in name:  # subresources are not resources of their own
            continue
        yield APIResource(group, version, name, entry.get("kind") or "", bool(entry.get("namespaced")),
                          frozenset(entry.get("verbs") or ()))


_shared: weakref.WeakKeyDictionary[Client, ResourceDiscovery] = weakref.WeakKeyDictionary()


def shared_discovery(client: Client, *, interval: float = DEFAULT_INTERVAL) -> ResourceDiscovery:
    """The one :class:`ResourceDiscovery` of ``client`` (created on first use)."""
    d = _shared.get(client)
    if d is None:
        d = _shared[client] = ResourceDiscovery(client, interval=interval)
    return d
