"""The EndpointSlice controller: ``discovery.k8s.io/v1`` slices for every Service with a selector.

Keys are Services. ``sync`` computes the desired endpoints from the Pods in the informer cache
(the same pod filters and port resolution as the endpoints controller, but terminating pods stay
in, with conditions ``ready``/``serving``/``terminating``), groups them by address family and by
resolved port set (pods that resolve a named port differently need a slice of their own), and
reconciles the existing slices with the least churn, as Kubernetes' reconciler does:

1. every existing slice keeps those of its endpoints that are still desired (updated in place
   when their content changed) and loses the others;
2. endpoints not placed yet go first into slices that are being rewritten anyway, then into new
   slices of at most :data:`MAX_ENDPOINTS_PER_SLICE`, except that a remainder fitting into an
   existing slice goes there instead of into a new one;
3. slices left empty are deleted — but a Service without any endpoint keeps exactly one empty
   placeholder slice, as in Kubernetes.

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
from collections.abc import Iterable
from typing import Any

from kybernetes import errors
from kybernetes.api.podutil import is_pod_ready
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.endpoints import (
    HEADLESS_LABEL,
    TRIGGER_TIME_ANNOTATION,
    PodServiceIndex,
    TriggerTimeTracker,
    find_port,
    ip_family,
    is_headless,
    pod_ips,
    service_selects,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)

Obj = dict[str, Any]

API_VERSION = "discovery.k8s.io/v1"
PLURAL = "endpointslices"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100

PortKey = tuple[tuple[str, int, str, str], ...]
GroupKey = tuple[str, PortKey]  # (addressType, ports)


def _port_key(ports: Iterable[Obj]) -> PortKey:
    return tuple(sorted((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports))


def _clean(x: Any) -> Any:
    """Drop None values and empty containers, so our dicts compare equal to what the server stored."""
    if isinstance(x, dict):
        out = {k: _clean(v) for k, v in x.items() if k != "resourceVersion"}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != [] and v != ""}
    if isinstance(x, list):
        return [_clean(v) for v in x]
    return x


def _endpoint_key(ep: Obj) -> str:
    return str((ep.get("addresses") or [""])[0])


def service_families(svc: Obj) -> list[str]:
    spec = svc.get("spec") or {}
    fams = [str(f) for f in spec.get("ipFamilies") or []]
    if fams:
        return fams
    ip = spec.get("clusterIP")
    if ip and ip != "None":
        return [ip_family(ip)]
    return ["IPv4"]


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
        desired, ports_of = self._desired(svc, pods)
        await self._reconcile(key, svc, existing, desired, ports_of, trigger)
        self.tracker.commit(key)

    def _desired(self, svc: Obj, pods: list[Obj]) -> tuple[dict[GroupKey, dict[str, Obj]], dict[GroupKey, list[Obj]]]:
        """Desired endpoints per (addressType, port set), in pod order, and the ports of each group."""
        spec = svc.get("spec") or {}
        publish = bool(spec.get("publishNotReadyAddresses"))
        families = service_families(svc)
        desired: dict[GroupKey, dict[str, Obj]] = {}
        ports_of: dict[GroupKey, list[Obj]] = {}
        for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
            if not should_pod_be_in_endpoints(pod, True):
                continue
            ports = []
            for sp in spec.get("ports") or []:
                num = find_port(pod, sp)
                if num is None:
                    continue
                ep_port: Obj = {"name": sp.get("name") or "", "port": num, "protocol": sp.get("protocol") or "TCP"}
                if sp.get("appProtocol"):
                    ep_port["appProtocol"] = sp["appProtocol"]
                ports.append(ep_port)
            serving = is_pod_ready(pod)
            terminating = bool(pod["metadata"].get("deletionTimestamp"))
            node_name = (pod.get("spec") or {}).get("nodeName")
            for fam in families:
                ip = next((i for i in pod_ips(pod) if ip_family(i) == fam), None)
                if ip is None:
                    continue
                ep: Obj = {
                    "addresses": [ip],
                    "conditions": {"ready": publish or (serving and not terminating),
                                   "serving": serving, "terminating": terminating},
                }
                if should_set_hostname(pod, svc):
                    ep["hostname"] = pod["spec"]["hostname"]
                if node_name:
                    ep["nodeName"] = node_name
                    node = self.nodes.store.get(node_name)
                    zone = ((node or {}).get("metadata", {}).get("labels") or {}).get(ZONE_LABEL)
                    if zone:
                        ep["zone"] = zone
                ep["targetRef"] = target_ref(pod)
                gk: GroupKey = (fam, _port_key(ports))
                desired.setdefault(gk, {})[ip] = ep
                ports_of.setdefault(gk, ports)
        return desired, ports_of

    async def _reconcile(self, key: str, svc: Obj, existing: dict[str, Obj],
                         desired: dict[GroupKey, dict[str, Obj]], ports_of: dict[GroupKey, list[Obj]],
                         trigger: str | None) -> None:
        ns = svc["metadata"]["namespace"]
        labels = self._labels(svc)
        limit = self.max_per_slice
        # name -> new endpoint list, for every existing slice we keep; None: delete.
        plan: dict[str, list[Obj] | None] = {}
        changed: set[str] = set()
        to_create: list[tuple[GroupKey, list[Obj]]] = []
        by_group: dict[GroupKey, list[str]] = {}
        for sname, sl in sorted(existing.items()):
            gk: GroupKey = (sl.get("addressType") or "IPv4", _port_key(sl.get("ports") or []))
            by_group.setdefault(gk, []).append(sname)

        total = sum(len(d) for d in desired.values())
        for gk, want in desired.items():
            placed: set[str] = set()
            names = by_group.pop(gk, [])
            for sname in names:
                keep = []
                for ep in existing[sname].get("endpoints") or []:
                    k = _endpoint_key(ep)
                    if k in want and k not in placed:
                        keep.append(want[k])
                        placed.add(k)
                plan[sname] = keep
                if _clean(keep) != _clean(existing[sname].get("endpoints") or []):
                    changed.add(sname)
            remaining = [want[k] for k in want if k not in placed]
            # Slices rewritten anyway take new endpoints first: no extra writes.
            for sname in names:
                eps = plan[sname]
                if not remaining or eps is None or sname not in changed:
                    continue
                room = limit - len(eps)
                if room > 0:
                    eps.extend(remaining[:room])
                    remaining = remaining[room:]
            while remaining:
                fits = [n for n in names if plan[n] is not None and n not in changed
                        and len(plan[n] or []) + len(remaining) <= limit]
                if len(remaining) < limit and fits:
                    target = max(fits, key=lambda n: len(plan[n] or []))
                    (plan[target] or []).extend(remaining)
                    changed.add(target)
                    remaining = []
                else:
                    to_create.append((gk, remaining[:limit]))
                    remaining = remaining[limit:]
            for sname in names:
                if not plan[sname]:
                    plan[sname] = None
        for names in by_group.values():  # port sets or families no longer wanted
            for sname in names:
                plan[sname] = None

        if total == 0:
            # Kubernetes keeps one empty placeholder slice per Service without endpoints.
            fam = service_families(svc)[0]
            keepers = [n for n in sorted(existing) if existing[n].get("addressType") == fam]
            if keepers:
                plan[keepers[0]] = []
                if existing[keepers[0]].get("endpoints") or existing[keepers[0]].get("ports"):
                    changed.add(keepers[0])
                ports_of[(fam, ())] = []
            else:
                to_create.append(((fam, ()), []))
                ports_of[(fam, ())] = []

        for sname, eps in plan.items():
            sl = existing[sname]
            if eps is None:
                await self._delete(key, ns, sname)
                continue
            meta = sl.get("metadata") or {}
            if sname not in changed and (meta.get("labels") or {}) == labels:
                continue
            new = dict(sl)
            new["metadata"] = {k: v for k, v in meta.items() if k != "managedFields"}
            new["metadata"]["labels"] = labels
            ann = dict(meta.get("annotations") or {})
            if trigger and sname in changed:
                ann[TRIGGER_TIME_ANNOTATION] = trigger
            new["metadata"]["annotations"] = ann
            new["endpoints"] = eps
            if total == 0:
                new["ports"] = []
            try:
                res = await self.client.update(API_VERSION, PLURAL, new, ns)
            except errors.NotFound:
                continue  # deleted under us: its delete event brings us back
            self.expectations.expect(key, sname, str(res["metadata"]["resourceVersion"]))

        for gk, eps in to_create:
            new = self._new_slice(svc, gk[0], ports_of.get(gk, []), eps, labels, trigger)
            try:
                res = await self.client.create(API_VERSION, PLURAL, new, ns)
            except errors.Forbidden:
                return  # terminating namespace
            self.expectations.expect(key, res["metadata"]["name"], str(res["metadata"]["resourceVersion"]))

    async def _delete(self, key: str, ns: str, sname: str) -> None:
        try:
            await self.client.delete(API_VERSION, PLURAL, sname, ns)
        except errors.NotFound:
            pass
        self.expectations.expect(key, sname, None)

    @staticmethod
    def _labels(svc: Obj) -> dict[str, str]:
        labels = {k: v for k, v in ((svc.get("metadata") or {}).get("labels") or {}).items()
                  if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
        if is_headless(svc):
            labels[HEADLESS_LABEL] = ""
        labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
        labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
        return labels

    @staticmethod
    def _new_slice(svc: Obj, family: str, ports: list[Obj], eps: list[Obj], labels: dict[str, str],
                   trigger: str | None) -> Obj:
        m = svc["metadata"]
        meta: Obj = {
            "generateName": f"{m['name']}-",
            "namespace": m["namespace"],
            "labels": labels,
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": m["name"], "uid": m["uid"],
                                 "controller": True, "blockOwnerDeletion": True}],
        }
        if trigger:
            meta["annotations"] = {TRIGGER_TIME_ANNOTATION: trigger}
        return {"apiVersion": API_VERSION, "kind": "EndpointSlice", "metadata": meta,
                "addressType": family, "endpoints": eps, "ports": ports}


CONTROLLERS: list[type[Controller]] = [EndpointSliceController]
