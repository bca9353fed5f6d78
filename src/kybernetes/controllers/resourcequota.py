"""ResourceQuota controller: keep each quota's ``status.hard`` and ``status.used`` true.

Kubernetes' ``pkg/controller/resourcequota``: the admission plugin charges a quota optimistically
when an object is created; this controller recomputes the truth - ``status.hard`` copied from
``spec.hard`` and ``status.used`` summed over the namespace's objects - and writes it when it
differs. It uses the admission's evaluators (:mod:`kybernetes.api.quota_usage`) so both agree on
what a pod or a Service costs.

A quota is synced when it is created or its spec changes, when a pod, Service, PVC, ConfigMap or
Secret of its namespace changes (a deletion or a pod reaching a terminal phase frees usage that
nothing else would give back), and every ``resource-quota-sync-period`` seconds (default 300)
for everything else (``count/<resource>`` of other kinds). Usage is read with fresh consistent
LISTs rather than from informer caches, so a recount is never older than the charges already on
the quota. The status write carries the quota's resourceVersion (compare-and-swap); a conflict
with a concurrent admission simply syncs again.
"""

from __future__ import annotations

import logging
from typing import Any

from kybernetes import errors
from kybernetes.api import quantity as q
from kybernetes.api.obj import Obj
from kybernetes.api.quota_usage import quota_usage, sources_for
from kybernetes.api.resources import Catalogue
from kybernetes.controllers.base import Controller, ControllerContext

log = logging.getLogger(__name__)

# How long a lower count must hold, against an unchanged quota, before it is written.
DECREASE_CONFIRM_DELAY = 1.0

# Kinds whose changes trigger an immediate recount of their namespace's quotas.
WATCHED = (("v1", "pods"), ("v1", "services"), ("v1", "persistentvolumeclaims"), ("v1", "configmaps"),
           ("v1", "secrets"))


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def same_usage(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal as resource lists: same names, equal quantities (``1000m`` == ``1``)."""
    if set(a) != set(b):
        return False
    try:
        return all(q.compare(str(a[k]), str(b[k])) == 0 for k in a)
    except Exception:
        return a == b


def lowers(recorded: dict[str, Any], counted: dict[str, str]) -> bool:
    """Whether ``counted`` gives back anything ``recorded`` holds (a name dropped or a smaller value)."""
    for k, v in recorded.items():
        if k not in counted:
            continue  # no longer limited: nothing is handed back that a create could use
        try:
            if q.compare(str(counted[k]), str(v)) < 0:
                return True
        except Exception:
            return True
    return False


class ResourceQuotaController(Controller):
    name = "resourcequota-controller"
    queue_name = "resourcequota_primary"
    service_account = "resourcequota-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.resync = float(ctx.option("resource-quota-sync-period", 300.0))
        # quota key -> (resourceVersion, usage, first seen) of a lower count waiting to be confirmed
        self._lower: dict[str, tuple[str, dict[str, str], float]] = {}
        self.catalogue = Catalogue.builtin()
        self.quotas = self.informer("v1", "resourcequotas")
        self.quotas.add_handler(on_add=self.enqueue, on_update=self._quota_updated)
        for api_version, plural in WATCHED:
            inf = self.informer(api_version, plural)
            inf.add_handler(on_update=self._object_updated, on_delete=self._object_changed)

    def _quota_updated(self, old: Obj, new: Obj) -> None:
        # Our own status writes come back here too; only a spec change needs a recount.
        if _d(old.get("spec")) != _d(new.get("spec")):
            self.enqueue(new)

    def _object_updated(self, old: Obj, new: Obj) -> None:
        # Only what changes a cost matters: a terminal phase, deletion marks, a Service's type.
        if (_d(old.get("status")).get("phase") != _d(new.get("status")).get("phase")
                or _d(old.get("metadata")).get("deletionTimestamp") != _d(new.get("metadata")).get("deletionTimestamp")
                or _d(old.get("spec")) != _d(new.get("spec"))):
            self._object_changed(new)

    def _object_changed(self, obj: Obj) -> None:
        ns = _d(obj.get("metadata")).get("namespace")
        if ns:
            for quota in self.quotas.store.by_index("namespace", ns):
                self.enqueue(quota)

    def _api_version(self, group: str, plural: str) -> str | None:
        for r in self.catalogue.all():
            if r.group == group and r.plural == plural and r.namespaced:
                return r.api_version
        return None

    async def sync(self, key: str) -> None:
        quota = self.quotas.store.get(key)
        if quota is None:
            self._lower.pop(key, None)
            return
        ns = quota["metadata"]["namespace"]
        hard = dict(_d(_d(quota.get("spec")).get("hard")))
        lists: dict[tuple[str, str], list[Obj]] = {}
        for group, plural in sources_for(hard):
            api_version = self._api_version(group, plural)
            if api_version is None:
                continue  # a custom resource this controller does not know: counts as zero
            try:
                lists[(group, plural)], _ = await self.client.list_all(api_version, plural, ns)
            except errors.NotFound:
                lists[(group, plural)] = []
        used = quota_usage(quota, lambda g, p: lists.get((g, p), []))
        status = _d(quota.get("status"))
        recorded = _d(status.get("used"))
        if not (same_usage(_d(status.get("hard")), hard) and same_usage(recorded, used)):
            rv = str(quota["metadata"].get("resourceVersion", ""))
            if lowers(recorded, used):
                seen = self._lower.get(key)
                now = self.ctx.clock.now()
                if seen is None or seen[:2] != (rv, used):
                    # First sight of this lower count (or the quota moved since): confirm it later.
                    self._lower[key] = (rv, used, now)
                    self.queue.add_after(key, DECREASE_CONFIRM_DELAY)
                    return
                if now - seen[2] < DECREASE_CONFIRM_DELAY:
                    self.queue.add_after(key, DECREASE_CONFIRM_DELAY - (now - seen[2]))
                    return
            self._lower.pop(key, None)
            new = {**quota, "status": {**status, "hard": hard, "used": used}}
            try:
                await self.client.update("v1", "resourcequotas", new, ns, subresource="status")
            except errors.Conflict:
                # An admission charged the quota meanwhile: count again with what it wrote.
                self.queue.add(key)
                return
            except errors.NotFound:
                return
        else:
            self._lower.pop(key, None)
        self.queue.add_after(key, self.resync)


CONTROLLERS: list[type[Controller]] = [ResourceQuotaController]
