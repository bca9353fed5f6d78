"""The EndpointSlice controller: ``discovery.k8s.io/v1`` slices for every Service with a selector.

Keys are Services. ``sync`` takes the pods the Service selects from the informer cache (the same
pod filters and port resolution as the endpoints controller, but terminating pods stay in, with
conditions ``ready``/``serving``/``terminating``), lets ``endpointslice_plan`` decide what to
write with the least churn, and writes it in Kubernetes' order: creates, then updates, then
deletes, so a Service's endpoints never drop out between two writes.

Slices are created with ``generateName: <service>-``, the labels ``kubernetes.io/service-name``
and ``endpointslice.kubernetes.io/managed-by`` (plus the Service's own labels and the headless
label) and a controller ownerReference to the Service, so the garbage collector removes them
with the Service (this controller also deletes them when it sees the Service gone).

Because generated names are only known after the create, the cache may lag behind our own
writes; :class:`SliceExpectations` remembers what we wrote and makes a sync wait (requeue) until
the informer has seen it, which is what keeps two quick syncs from creating duplicate slices.
"""

from __future__ import annotations

import time

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.endpoints import PodServiceIndex, TriggerTimeTracker, service_selects
from kybernetes.controllers.endpointslice_plan import (
    API_VERSION,
    CONTROLLER_NAME,
    MANAGED_BY_LABEL,
    MAX_ENDPOINTS_PER_SLICE,
    SERVICE_NAME_LABEL,
    ZONE_LABEL,
    SlicePlan,
    desired_endpoints,
    plan_slices,
)

PLURAL = "endpointslices"

class SliceExpectations:
    """What this controller wrote per Service and the informer has not reflected yet.

    ``name -> resourceVersion`` for created/updated slices, ``name -> None`` for deleted ones.
    A Service's sync proceeds only once the cache has caught up (or after ``timeout`` seconds, so
    a lost event cannot wedge a Service forever).
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._pending: dict[str, tuple[float, dict[str, str | None]]] = {}

    def expect(self, key: str, name: str, rv: str | None) -> None:
        _started, names = self._pending.setdefault(key, (time.monotonic(), {}))
        names[name] = rv

    def satisfied(self, key: str, cached: dict[str, Obj]) -> bool:
        entry = self._pending.get(key)
        if entry is None:
            return True
        started, names = entry
        for name, rv in names.items():
            have = cached.get(name)
            if rv is None:
                if have is not None:
                    break
            elif have is None or _rv(have) < _rv_str(rv):
                break
        else:
            del self._pending[key]
            return True
        if time.monotonic() - started > self.timeout:
            del self._pending[key]
            return True
        return False

    def forget(self, key: str) -> None:
        self._pending.pop(key, None)


def _rv_str(rv: str) -> int:
    try:
        return int(rv)
    except ValueError:
        return 0


def _rv(obj: Obj) -> int:
    return _rv_str(str((obj.get("metadata") or {}).get("resourceVersion") or "0"))


class EndpointSliceController(Controller):
    name = "endpointslice-controller"
    queue_name = "endpoint_slice"
    service_account = "endpointslice-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.max_per_slice = int(ctx.option("max-endpoints-per-slice", MAX_ENDPOINTS_PER_SLICE))
        self.services = self.informer("v1", "services")
        self.pods = self.informer("v1", "pods")
        self.nodes = self.informer("v1", "nodes")
        self.slices = self.informer(API_VERSION, PLURAL)
        self.index = PodServiceIndex(self.services, self.queue)
        self.tracker = TriggerTimeTracker()
        self.expectations = SliceExpectations()
        self.services.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                  on_delete=self.enqueue)
        self.pods.add_handler(on_add=self.index.pod_added, on_update=self.index.pod_updated,
                              on_delete=self.index.pod_added)
        self.slices.add_handler(on_add=self._slice_changed, on_update=lambda _o, n: self._slice_changed(n),
                                on_delete=self._slice_changed)

    # -- event handlers ------------------------------------------------------------------------

    def _slice_changed(self, sl: Obj) -> None:
        # Our own slices changed by someone else (or deleted) are put right by a sync of the Service.
        meta = sl.get("metadata") or {}
        labels = meta.get("labels") or {}
        if labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME and labels.get(SERVICE_NAME_LABEL):
            self.queue.add(f"{meta.get('namespace', '')}/{labels[SERVICE_NAME_LABEL]}")

    # -- sync ----------------------------------------------------------------------------------

    def _owned_slices(self, ns: str, name: str) -> dict[str, Obj]:
        out = {}
        for sl in self.slices.store.by_index("namespace", ns):
            labels = (sl.get("metadata") or {}).get("labels") or {}
            if labels.get(SERVICE_NAME_LABEL) == name and labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME:
                out[sl["metadata"]["name"]] = sl
        return out

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        existing = self._owned_slices(ns, name)
        if not self.expectations.satisfied(key, existing):
            self.queue.add_after(key, 0.2)
            return
        svc = self.services.store.get(key)
        if svc is None or (svc.get("metadata") or {}).get("deletionTimestamp"):
            self.tracker.forget(key)
            # The garbage collector would remove them through the ownerReference; do not wait for it.
            for sname in existing:
                await self._delete(key, ns, sname)
            return
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" or spec.get("selector") is None:
            return
        uid = svc["metadata"].get("uid")
        # Slices of an earlier Service of the same name belong to nobody now.
        stale = [n for n, sl in existing.items()
                 if not any(r.get("uid") == uid for r in (sl["metadata"].get("ownerReferences") or []))]
        for sname in stale:
            await self._delete(key, ns, sname)
            del existing[sname]

        pods = [p for p in self.pods.store.by_index("namespace", ns)
                if service_selects(svc, (p.get("metadata") or {}).get("labels"))]
        trigger = self.tracker.compute(key, svc, pods)
        desired = desired_endpoints(svc, pods, self._zone_of)
        await self._apply(key, ns, plan_slices(svc, existing, desired, trigger=trigger,
                                               max_per_slice=self.max_per_slice))
        self.tracker.commit(key)

    def _zone_of(self, node_name: str) -> str | None:
        node = self.nodes.store.get(node_name)
        return ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)

    async def _apply(self, key: str, ns: str, plan: SlicePlan) -> None:
        for new in plan.create:
            try:
                res = await self.client.create(API_VERSION, PLURAL, new, ns)
            except errors.Forbidden:
                return  # terminating namespace
            self.expectations.expect(key, res["metadata"]["name"], str(res["metadata"]["resourceVersion"]))
        for new in plan.update:
            try:
                res = await self.client.update(API_VERSION, PLURAL, new, ns)
            except errors.NotFound:
                continue  # deleted under us: its delete event brings us back
            self.expectations.expect(key, new["metadata"]["name"], str(res["metadata"]["resourceVersion"]))
        for sname in plan.delete:
            await self._delete(key, ns, sname)

    async def _delete(self, key: str, ns: str, sname: str) -> None:
        try:
            await self.client.delete(API_VERSION, PLURAL, sname, ns)
        except errors.NotFound:
            pass
        self.expectations.expect(key, sname, None)

CONTROLLERS: list[type[Controller]] = [EndpointSliceController]
