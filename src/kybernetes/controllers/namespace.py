"""The namespace controller: empties a deleted namespace, then lets it go.

Deleting a Namespace only marks it (``deletionTimestamp``, phase ``Terminating``) because its
``spec.finalizers`` holds ``kubernetes``. This controller owns that finalizer, as Kubernetes'
``pkg/controller/namespace/deletion`` does. For a marked namespace, ``sync``:

1. discovers every namespaced resource that can be listed and deleted (through the shared
   :mod:`~kybernetes.controllers.discovery`, refreshed on demand so a CRD created a moment ago
   is covered); groups that fail discovery are reported and the namespace is *not* finalized
   (their content might still be there);
2. per resource, deletes the whole collection in one request where ``deletecollection`` is
   served, else lists and deletes object by object (Background propagation: dependents in the
   same namespace are deleted by this same pass anyway);
3. lists again to see what is left: objects with finalizers, pods waiting for their kubelet;
4. writes the status conditions Kubernetes sets (``NamespaceDeletionDiscoveryFailure``,
   ``NamespaceDeletionGroupVersionParsingFailure``, ``NamespaceDeletionContentFailure``,
   ``NamespaceContentRemaining``, ``NamespaceFinalizersRemaining``) — only when they changed;
5. if anything remains, looks again after ``namespace-sync-period`` seconds (content removal has
   no event of its own on the namespace); otherwise removes ``kubernetes`` from
   ``spec.finalizers`` through ``PUT /api/v1/namespaces/<name>/finalize``, and the API server
   deletes the namespace once no finalizer remains.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.discovery import APIResource, shared_discovery

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"

DISCOVERY_FAILURE = "NamespaceDeletionDiscoveryFailure"
PARSING_FAILURE = "NamespaceDeletionGroupVersionParsingFailure"
CONTENT_FAILURE = "NamespaceDeletionContentFailure"
CONTENT_REMAINING = "NamespaceContentRemaining"
FINALIZERS_REMAINING = "NamespaceFinalizersRemaining"

# type -> (reason, message) when the condition is False, i.e. all is well.
_OK: dict[str, tuple[str, str]] = {
    DISCOVERY_FAILURE: ("ResourcesDiscovered", "All resources successfully discovered"),
    PARSING_FAILURE: ("ParsedGroupVersions", "All legacy kube types successfully parsed"),
    CONTENT_FAILURE: ("ContentDeleted", "All content successfully deleted, may be waiting on finalization"),
    CONTENT_REMAINING: ("ContentRemoved", "All content successfully removed"),
    FINALIZERS_REMAINING: ("ContentHasNoFinalizers", "All content-preserving finalizers finished"),
}
_ORDER = [DISCOVERY_FAILURE, PARSING_FAILURE, CONTENT_FAILURE, CONTENT_REMAINING, FINALIZERS_REMAINING]


@dataclass
class DeletionReport:
    """What one pass over a namespace's content found."""

    discovery_failures: dict[str, str] = field(default_factory=dict)
    delete_failures: list[str] = field(default_factory=list)
    remaining: Counter[str] = field(default_factory=Counter)
    """``resource.group`` -> objects left."""
    finalizers: Counter[str] = field(default_factory=Counter)
    """finalizer -> objects left that carry it."""

    @property
    def done(self) -> bool:
        return not (self.discovery_failures or self.delete_failures or self.remaining)

    def conditions(self) -> dict[str, tuple[str, str, str]]:
        """type -> (status, reason, message), as Kubernetes words them."""
        out = {t: ("False", *_OK[t]) for t in _ORDER}
        if self.discovery_failures:
            failed = ", ".join(f"{gv}: {msg}" for gv, msg in sorted(self.discovery_failures.items()))
            out[DISCOVERY_FAILURE] = ("True", "DiscoveryFailed",
                                      f"Discovery failed for some groups, {len(self.discovery_failures)} "
                                      f"failing: {failed}")
        if self.delete_failures:
            out[CONTENT_FAILURE] = ("True", "ContentDeletionFailed",
                                    f"Failed to delete all resource types, {len(self.delete_failures)} "
                                    f"remaining: {', '.join(sorted(self.delete_failures))}")
        if self.remaining:
            msg = ", ".join(f"{gr} has {n} resource instances" for gr, n in sorted(self.remaining.items()))
            out[CONTENT_REMAINING] = ("True", "SomeResourcesRemain", f"Some resources are remaining: {msg}")
        if self.finalizers:
            msg = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(self.finalizers.items()))
            out[FINALIZERS_REMAINING] = ("True", "SomeFinalizersRemain",
                                         f"Some content in the namespace has finalizers remaining: {msg}")
        return out


class NamespaceController(Controller):
    name = "namespace-controller"
    queue_name = "namespace"
    service_account = "namespace-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.resync = float(ctx.option("namespace-sync-period", 2.0))
        self.discovery = shared_discovery(ctx.client)
        self.namespaces = self.informer("v1", "namespaces")
        self.namespaces.add_handler(on_add=self._changed, on_update=lambda _o, n: self._changed(n))

    def _changed(self, ns: Obj) -> None:
        if (ns.get("metadata") or {}).get("deletionTimestamp"):
            self.enqueue(ns)

    async def sync(self, key: str) -> None:
        ns = self.namespaces.store.get(key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return  # already finalized; other finalizers are someone else's
        report = await self.delete_content(key)
        ns = await self._write_conditions(ns, report)
        if not report.done:
            self.queue.add_after(key, self.resync)
            return
        await self._finalize(key, ns)

    async def delete_content(self, namespace: str) -> DeletionReport:
        report = DeletionReport()
        snap = await self.discovery.get(max_age=1.0)
        report.discovery_failures = dict(snap.failed)
        resources = [r for r in snap.preferred if r.namespaced and r.supports("list", "delete")]
        for r in resources:
            try:
                await self._delete_all(r, namespace)
            except errors.NotFound:
                continue  # the resource went away with its CRD
            except errors.MethodNotAllowed:
                continue
            except errors.StatusError as e:
                report.delete_failures.append(f"{r.group_resource}: {e.message}")
                log.warning("namespace %s: deleting %s failed: %s", namespace, r.group_resource, e)
                continue
            try:
                items, _rv = await self.client.list_all(r.api_version, r.plural, namespace)
            except errors.NotFound:
                continue
            except errors.StatusError as e:
                report.delete_failures.append(f"{r.group_resource}: {e.message}")
                continue
            if items:
                report.remaining[r.group_resource] += len(items)
                for obj in items:
                    for f in (obj.get("metadata") or {}).get("finalizers") or []:
                        report.finalizers[f] += 1
        return report

    async def _delete_all(self, r: APIResource, namespace: str) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": "Background"}
        if r.supports("deletecollection"):
            prefix = f"/apis/{r.group}/{r.version}" if r.group else f"/api/{r.version}"
            await self.client.request("DELETE", f"{prefix}/namespaces/{namespace}/{r.plural}", body=body)
            return
        items, _rv = await self.client.list_all(r.api_version, r.plural, namespace)
        for obj in items:
            meta = obj.get("metadata") or {}
            if meta.get("deletionTimestamp"):
                continue
            try:
                await self.client.delete(r.api_version, r.plural, meta["name"], namespace,
                                         propagation_policy="Background")
            except errors.NotFound:
                pass

    async def _write_conditions(self, ns: Obj, report: DeletionReport) -> Obj:
        status = ns.get("status") or {}
        current = {c.get("type"): c for c in status.get("conditions") or []}
        wanted = report.conditions()
        conditions = [c for c in status.get("conditions") or [] if c.get("type") not in wanted]
        dirty = status.get("phase") != "Terminating"
        for t in _ORDER:
            st, reason, msg = wanted[t]
            old = current.get(t)
            if old and (old.get("status"), old.get("reason"), old.get("message")) == (st, reason, msg):
                conditions.append(old)
                continue
            dirty = True
            ts = old["lastTransitionTime"] if old and old.get("status") == st and old.get("lastTransitionTime") \
                else now_rfc3339()
            conditions.append({"type": t, "status": st, "lastTransitionTime": ts, "reason": reason, "message": msg})
        if not dirty:
            return ns
        new = dict(ns)
        new["status"] = {**status, "phase": "Terminating", "conditions": conditions}
        try:
            res: Obj = await self.client.update("v1", "namespaces", new, subresource="status")
            return res
        except errors.NotFound:
            return ns
        except errors.Conflict:
            # Written meanwhile (by ourselves, a moment ago): read it again and write the conditions next time.
            self.queue.add_after(ns["metadata"]["name"], 0.2)
            return ns

    async def _finalize(self, key: str, ns: Obj) -> None:
        for _attempt in range(5):
            fins = [f for f in (ns.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
            new = dict(ns)
            new["spec"] = {**(ns.get("spec") or {}), "finalizers": fins}
            try:
                await self.client.update("v1", "namespaces", new, subresource="finalize")
                return
            except errors.NotFound:
                return
            except errors.Conflict:
                try:
                    ns = await self.client.get("v1", "namespaces", key)
                except errors.NotFound:
                    return
        raise errors.Conflict.of("namespaces", key, why="could not finalize after repeated conflicts")


CONTROLLERS: list[type[Controller]] = [NamespaceController]
