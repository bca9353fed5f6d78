"""The EndpointSlice controller's decisions, as pure functions: (Service, its pods, its slices) -> plan.

:func:`desired_endpoints` turns the selected pods into endpoints grouped by address family and
resolved port set; :func:`plan_slices` compares them with the existing slices and decides, with
the least churn, as Kubernetes' reconciler does:

1. every existing slice keeps those of its endpoints that are still desired (updated in place
   when their content changed) and loses the others;
2. endpoints not placed yet go first into slices that are being rewritten anyway, then into new
   slices of at most ``max_per_slice``, except that a remainder fitting into an existing slice
   goes there instead of into a new one;
3. slices left empty are deleted, but a Service without any endpoint keeps exactly one empty
   placeholder slice, as in Kubernetes.

The result is a :class:`SlicePlan` of whole objects to update, names to delete and objects to
create; ``EndpointSliceController`` carries it out. Nothing here reads an informer or the network.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_ready
from kybernetes.controllers.endpoints import (
    HEADLESS_LABEL,
    TRIGGER_TIME_ANNOTATION,
    find_port,
    ip_family,
    is_headless,
    pod_ips,
    should_pod_be_in_endpoints,
    should_set_hostname,
    target_ref,
)

API_VERSION = "discovery.k8s.io/v1"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
CONTROLLER_NAME = "endpointslice-controller.k8s.io"
ZONE_LABEL = "topology.kubernetes.io/zone"
MAX_ENDPOINTS_PER_SLICE = 100

PortKey = tuple[tuple[str, int, str, str], ...]
GroupKey = tuple[str, PortKey]  # (addressType, ports)


@dataclass
class Desired:
    """Endpoints per (addressType, port set), keyed by address in pod order, and each group's ports."""

    endpoints: dict[GroupKey, dict[str, Obj]] = field(default_factory=dict)
    ports: dict[GroupKey, list[Obj]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(len(d) for d in self.endpoints.values())


@dataclass
class SlicePlan:
    update: list[Obj] = field(default_factory=list)
    """Existing slices with their new content (managedFields dropped)."""
    delete: list[str] = field(default_factory=list)
    create: list[Obj] = field(default_factory=list)


def port_key(ports: Iterable[Obj]) -> PortKey:
    return tuple(sorted((p.get("name") or "", int(p.get("port") or 0), p.get("protocol") or "TCP",
                         p.get("appProtocol") or "") for p in ports))


def clean(x: Any) -> Any:
    """Drop None values and empty containers, so our dicts compare equal to what the server stored."""
    if isinstance(x, dict):
        out = {k: clean(v) for k, v in x.items() if k != "resourceVersion"}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != [] and v != ""}
    if isinstance(x, list):
        return [clean(v) for v in x]
    return x


def endpoint_key(ep: Obj) -> str:
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


def slice_labels(svc: Obj) -> dict[str, str]:
    labels = {k: v for k, v in ((svc.get("metadata") or {}).get("labels") or {}).items()
              if k not in (SERVICE_NAME_LABEL, MANAGED_BY_LABEL, HEADLESS_LABEL)}
    if is_headless(svc):
        labels[HEADLESS_LABEL] = ""
    labels[SERVICE_NAME_LABEL] = svc["metadata"]["name"]
    labels[MANAGED_BY_LABEL] = CONTROLLER_NAME
    return labels


def new_slice(svc: Obj, family: str, ports: list[Obj], eps: list[Obj], labels: dict[str, str],
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


# --- what is wanted ----------------------------------------------------------------------------


def desired_endpoints(svc: Obj, pods: list[Obj], zone_of: Callable[[str], str | None]) -> Desired:
    """The endpoints of ``pods`` (already selected by the Service), with ready/serving/terminating
    conditions; ``zone_of(node name)`` gives a node's zone label."""
    spec = svc.get("spec") or {}
    publish = bool(spec.get("publishNotReadyAddresses"))
    families = service_families(svc)
    out = Desired()
    for pod in sorted(pods, key=lambda p: p["metadata"]["name"]):
        if not should_pod_be_in_endpoints(pod, True):
            continue
        ports = _pod_ports(pod, spec.get("ports") or [])
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
                if zone := zone_of(node_name):
                    ep["zone"] = zone
            ep["targetRef"] = target_ref(pod)
            gk: GroupKey = (fam, port_key(ports))
            out.endpoints.setdefault(gk, {})[ip] = ep
            out.ports.setdefault(gk, ports)
    return out


def _pod_ports(pod: Obj, service_ports: list[Obj]) -> list[Obj]:
    ports = []
    for sp in service_ports:
        num = find_port(pod, sp)
        if num is None:
            continue
        ep_port: Obj = {"name": sp.get("name") or "", "port": num, "protocol": sp.get("protocol") or "TCP"}
        if sp.get("appProtocol"):
            ep_port["appProtocol"] = sp["appProtocol"]
        ports.append(ep_port)
    return ports


# --- the plan ----------------------------------------------------------------------------------


def plan_slices(svc: Obj, existing: dict[str, Obj], desired: Desired, *, trigger: str | None,
                max_per_slice: int = MAX_ENDPOINTS_PER_SLICE) -> SlicePlan:
    """What to write so that ``existing`` (this Service's slices by name) holds ``desired``."""
    contents, changed, to_create = _place_endpoints(existing, desired, max_per_slice)
    ports = dict(desired.ports)
    if desired.total == 0:
        # Kubernetes keeps one empty placeholder slice per Service without endpoints.
        fam = service_families(svc)[0]
        ports[(fam, ())] = []
        keepers = [n for n in sorted(existing) if existing[n].get("addressType") == fam]
        if keepers:
            contents[keepers[0]] = []
            if existing[keepers[0]].get("endpoints") or existing[keepers[0]].get("ports"):
                changed.add(keepers[0])
        else:
            to_create.append(((fam, ()), []))

    labels = slice_labels(svc)
    out = SlicePlan()
    for sname, eps in contents.items():
        sl = existing[sname]
        if eps is None:
            out.delete.append(sname)
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
        if desired.total == 0:
            new["ports"] = []
        out.update.append(new)
    out.create = [new_slice(svc, gk[0], ports.get(gk, []), eps, labels, trigger) for gk, eps in to_create]
    return out


def _place_endpoints(existing: dict[str, Obj], desired: Desired, limit: int) -> tuple[
        dict[str, list[Obj] | None], set[str], list[tuple[GroupKey, list[Obj]]]]:
    """Steps 1-3 of the module doc: each existing slice's new endpoints (None: delete it), the
    slices whose endpoints changed, and the new slices' (group, endpoints)."""
    contents: dict[str, list[Obj] | None] = {}
    changed: set[str] = set()
    to_create: list[tuple[GroupKey, list[Obj]]] = []
    by_group: dict[GroupKey, list[str]] = {}
    for sname, sl in sorted(existing.items()):
        gk: GroupKey = (sl.get("addressType") or "IPv4", port_key(sl.get("ports") or []))
        by_group.setdefault(gk, []).append(sname)

    for gk, want in desired.endpoints.items():
        placed: set[str] = set()
        names = by_group.pop(gk, [])
        for sname in names:
            keep = []
            for ep in existing[sname].get("endpoints") or []:
                k = endpoint_key(ep)
                if k in want and k not in placed:
                    keep.append(want[k])
                    placed.add(k)
            contents[sname] = keep
            if clean(keep) != clean(existing[sname].get("endpoints") or []):
                changed.add(sname)
        remaining = [want[k] for k in want if k not in placed]
        # Slices rewritten anyway take new endpoints first: no extra writes.
        for sname in names:
            eps = contents[sname]
            if not remaining or eps is None or sname not in changed:
                continue
            room = limit - len(eps)
            if room > 0:
                eps.extend(remaining[:room])
                remaining = remaining[room:]
        while remaining:
            fits = [n for n in names if contents[n] is not None and n not in changed
                    and len(contents[n] or []) + len(remaining) <= limit]
            if len(remaining) < limit and fits:
                target = max(fits, key=lambda n: len(contents[n] or []))
                (contents[target] or []).extend(remaining)
                changed.add(target)
                remaining = []
            else:
                to_create.append((gk, remaining[:limit]))
                remaining = remaining[limit:]
        for sname in names:
            if not contents[sname]:
                contents[sname] = None
    for names in by_group.values():  # port sets or families no longer wanted
        for sname in names:
            contents[sname] = None
    return contents, changed, to_create
