"""The endpoints controller: one ``Endpoints`` object per Service with a selector.

Keys are Services (``namespace/name``). ``sync`` reads the Service and the Pods of its namespace
from the informer caches (pods are indexed by namespace, so a sync costs the namespace, not the
cluster) and writes the Endpoints that Kubernetes' ``pkg/controller/endpoint`` would:

- pods that are terminal (Succeeded/Failed), have no IP, or are terminating (unless
  ``publishNotReadyAddresses``) are left out;
- each address carries ``ip`` (of the Service's IP family), ``nodeName``, ``hostname`` (when the
  pod's subdomain names the Service) and a ``targetRef`` to the Pod; ready pods (or all, with
  ``publishNotReadyAddresses``) go to ``addresses``, the rest to ``notReadyAddresses``;
- each Service port is resolved per pod: a numeric ``targetPort`` as is, a named one through the
  pod's container ports (a pod without that name is skipped for that port only); a headless
  Service without ports lists bare addresses;
- subsets are then repacked (addresses sharing the same port set form one subset) and sorted, so
  equal content compares equal and no-op writes are skipped;
- labels are the Service's, plus ``service.kubernetes.io/headless`` for headless Services; the
  ``endpoints.kubernetes.io/last-change-trigger-time`` annotation follows the trigger-time
  tracker's rule (the earliest pod/service change this write reflects); over 1000 addresses are
  truncated and annotated ``endpoints.kubernetes.io/over-capacity: truncated``.

Services without a selector are left alone (their Endpoints are user-managed); when a Service
goes, its Endpoints are deleted; Endpoints left over without a Service are found at start-up.

Pod events enqueue only the Services of the pod's namespace whose selector matches the pod's old
or new labels, and only when something an endpoint shows changed. The helpers at the top are
shared with the EndpointSlice controller.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterable
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_ready, is_pod_terminal, pod_condition
from kybernetes.client.informer import key_of
from kybernetes.client.workqueue import WorkQueue
from kybernetes.controllers.base import Controller, ControllerContext, split_key

log = logging.getLogger(__name__)

HEADLESS_LABEL = "service.kubernetes.io/headless"
TRIGGER_TIME_ANNOTATION = "endpoints.kubernetes.io/last-change-trigger-time"
OVER_CAPACITY_ANNOTATION = "endpoints.kubernetes.io/over-capacity"
LEADER_ELECTION_ANNOTATION = "control-plane.alpha.kubernetes.io/leader"
TOLERATE_UNREADY_ANNOTATION = "service.alpha.kubernetes.io/tolerate-unready-endpoints"
MAX_CAPACITY = 1000


# -- helpers shared with the EndpointSlice controller --------------------------------------------


def service_selects(svc: Obj, labels: dict[str, str] | None) -> bool:
    """Whether a Service's selector (a plain map; absent selects nothing) matches ``labels``."""
    sel = (svc.get("spec") or {}).get("selector")
    if sel is None:
        return False
    labels = labels or {}
    return all(labels.get(k) == v for k, v in sel.items())


def is_headless(svc: Obj) -> bool:
    ip = (svc.get("spec") or {}).get("clusterIP")
    return not ip or ip == "None"


def publish_not_ready(svc: Obj) -> bool:
    if (svc.get("spec") or {}).get("publishNotReadyAddresses"):
        return True
    # The pre-1.11 annotation is still honoured by Kubernetes' controllers.
    ann = (svc.get("metadata") or {}).get("annotations") or {}
    return str(ann.get(TOLERATE_UNREADY_ANNOTATION, "")).lower() == "true"


def pod_ips(pod: Obj) -> list[str]:
    st = pod.get("status") or {}
    ips = [p.get("ip") for p in st.get("podIPs") or [] if p.get("ip")]
    if not ips and st.get("podIP"):
        ips = [st["podIP"]]
    return ips


def should_pod_be_in_endpoints(pod: Obj, include_terminating: bool) -> bool:
    if is_pod_terminal(pod) or not pod_ips(pod):
        return False
    return include_terminating or not (pod.get("metadata") or {}).get("deletionTimestamp")


def ip_family(ip: str) -> str:
    return "IPv6" if ":" in ip else "IPv4"


def service_ip_family(svc: Obj) -> str | None:
    """The address family the Service's endpoints use (None: any, for headless without families)."""
    spec = svc.get("spec") or {}
    fams = spec.get("ipFamilies") or []
    if fams:
        return str(fams[0])
    ip = spec.get("clusterIP")
    if ip and ip != "None":
        return ip_family(ip)
    return None


def pod_ip_for_service(svc: Obj, pod: Obj) -> str | None:
    ips = pod_ips(pod)
    fam = service_ip_family(svc)
    if fam is None:
        return ips[0] if ips else None
    return next((ip for ip in ips if ip_family(ip) == fam), None)


def should_set_hostname(pod: Obj, svc: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (bool(spec.get("hostname")) and spec.get("subdomain") == svc["metadata"]["name"]
            and svc["metadata"].get("namespace") == pod["metadata"].get("namespace"))


def find_port(pod: Obj, svc_port: Obj) -> int | None:
    """The pod's port for a Service port: ``targetPort`` by number, or by name in the containers."""
    target = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(target, int):
        return target
    if not isinstance(target, str) or not target:
        return None
    protocol = svc_port.get("protocol") or "TCP"
    spec = pod.get("spec") or {}
    # Sidecars (init containers that keep running) serve traffic too.
    containers = list(spec.get("containers") or []) + [
        c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    for c in containers:
        for p in c.get("ports") or []:
            if p.get("name") == target and (p.get("protocol") or "TCP") == protocol:
                return int(p["containerPort"])
    return None


def target_ref(pod: Obj) -> Obj:
    m = pod["metadata"]
    return {"kind": "Pod", "namespace": m.get("namespace", ""), "name": m["name"], "uid": m.get("uid", "")}


def pod_endpoint_digest(pod: Obj) -> tuple[Any, ...]:
    """What of a pod shows in endpoints; pod updates that keep it equal enqueue nothing."""
    m = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    ports = [(c.get("name"), tuple((p.get("name"), p.get("containerPort"), p.get("protocol"))
                                   for p in c.get("ports") or []))
             for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or [])]
    return (tuple(pod_ips(pod)), is_pod_ready(pod), is_pod_terminal(pod), bool(m.get("deletionTimestamp")),
            spec.get("nodeName"), spec.get("hostname"), spec.get("subdomain"), tuple(ports))


def pod_trigger_time(pod: Obj) -> str | None:
    """When the pod last changed state as the tracker sees it: its Ready condition's transition."""
    ready = pod_condition(pod, "Ready")
    return str(ready["lastTransitionTime"]) if ready and ready.get("lastTransitionTime") else None


class TriggerTimeTracker:
    """Kubernetes' ``TriggerTimeTracker``: the earliest change a sync is about to publish.

    Per Service it remembers the trigger time of each pod and of the Service as of the last sync;
    pods (or the Service) whose trigger time differs from that memory changed since, and the
    minimum of their times is the annotation's value. No change: no annotation.
    """

    def __init__(self) -> None:
        self._state: dict[str, tuple[dict[str, str], str]] = {}
        self._pending: dict[str, tuple[dict[str, str], str]] = {}

    def compute(self, key: str, svc: Obj, pods: Iterable[Obj]) -> str | None:
        """The trigger time for a sync; remembered only once :meth:`commit` says the sync succeeded.

        (Kubernetes remembers at once, so a write that fails and is retried loses its annotation.)
        """
        old_pods, old_svc = self._state.get(key, ({}, ""))
        new_pods: dict[str, str] = {}
        candidates: list[str] = []
        for pod in pods:
            t = pod_trigger_time(pod)
            name = pod["metadata"]["name"]
            if t is None:
                continue
            new_pods[name] = t
            if old_pods.get(name) != t:
                candidates.append(t)
        svc_t = str(svc["metadata"].get("creationTimestamp") or "")
        if svc_t and svc_t != old_svc:
            candidates.append(svc_t)
        self._pending[key] = (new_pods, svc_t)
        return min(candidates) if candidates else None

    def commit(self, key: str) -> None:
        state = self._pending.pop(key, None)
        if state is not None:
            self._state[key] = state

    def forget(self, key: str) -> None:
        self._state.pop(key, None)
        self._pending.pop(key, None)


class PodServiceIndex:
    """Maps pod events to the keys of the Services that select the pod (old or new labels), and
    queues those keys: the pod handlers of the Endpoints and EndpointSlice controllers."""

    def __init__(self, services: Any, queue: WorkQueue) -> None:
        self.services = services
        self.queue = queue

    def services_for(self, pod: Obj) -> set[str]:
        meta = pod.get("metadata") or {}
        ns = meta.get("namespace", "")
        labels = meta.get("labels") or {}
        return {f"{ns}/{s['metadata']['name']}" for s in self.services.store.by_index("namespace", ns)
                if service_selects(s, labels)}

    def pod_added(self, pod: Obj) -> None:
        """Added or deleted: the Services selecting the pod."""
        for key in self.services_for(pod):
            self.queue.add(key)

    def pod_updated(self, old: Obj, new: Obj) -> None:
        """Only a change of labels or of what the endpoints show counts (not every status write)."""
        old_labels = (old.get("metadata") or {}).get("labels") or {}
        new_labels = (new.get("metadata") or {}).get("labels") or {}
        if old_labels == new_labels and pod_endpoint_digest(old) == pod_endpoint_digest(new):
            return
        for key in self.services_for(new) | self.services_for(old):
            self.queue.add(key)


# -- the endpoints controller --------------------------------------------------------------------


def _addr_sort_key(a: Obj) -> tuple[str, str]:
    return (a.get("ip", ""), (a.get("targetRef") or {}).get("uid", ""))


def _port_sort_key(p: Obj) -> tuple[str, int, str]:
    return (p.get("name", ""), int(p.get("port", 0)), p.get("protocol", ""))


def repack_subsets(entries: list[tuple[Obj, Obj | None, bool]]) -> list[Obj]:
    """Group (address, port, ready) entries into subsets of addresses sharing one port set.

    Kubernetes' ``RepackSubsets``: an address (with its readiness) collects every port it was
    seen with; addresses with identical port sets form one subset. Sorted for stable output.
    """
    addr_ports: dict[tuple[Any, ...], tuple[Obj, bool, dict[tuple[Any, ...], Obj]]] = {}
    for addr, port, ready in entries:
        akey = (ready, addr.get("ip"), addr.get("hostname"), addr.get("nodeName"),
                (addr.get("targetRef") or {}).get("uid"))
        slot = addr_ports.setdefault(akey, (addr, ready, {}))
        if port is not None:
            slot[2][(port.get("name"), port.get("port"), port.get("protocol"), port.get("appProtocol"))] = port
    groups: dict[tuple[Any, ...], tuple[list[Obj], list[Obj], list[Obj]]] = {}
    for addr, ready, ports in addr_ports.values():
        pkey = tuple(sorted(ports, key=lambda k: tuple(str(x) for x in k)))
        ready_list, not_ready_list, port_list = groups.setdefault(pkey, ([], [], list(ports.values())))
        (ready_list if ready else not_ready_list).append(addr)
    subsets = []
    for ready_list, not_ready_list, port_list in groups.values():
        subset: Obj = {}
        if ready_list:
            subset["addresses"] = sorted(ready_list, key=_addr_sort_key)
        if not_ready_list:
            subset["notReadyAddresses"] = sorted(not_ready_list, key=_addr_sort_key)
        if port_list:
            subset["ports"] = sorted(port_list, key=_port_sort_key)
        subsets.append(subset)

    def subset_key(s: Obj) -> tuple[Any, ...]:
        first = (s.get("addresses") or s.get("notReadyAddresses") or [{}])[0]
        return (_addr_sort_key(first), [_port_sort_key(p) for p in s.get("ports") or []])

    return sorted(subsets, key=subset_key)


def truncate_subsets(subsets: list[Obj]) -> bool:
    """Keep at most MAX_CAPACITY addresses, ready ones first, proportionally per subset."""
    total_ready = sum(len(s.get("addresses") or []) for s in subsets)
    total_not_ready = sum(len(s.get("notReadyAddresses") or []) for s in subsets)
    if total_ready + total_not_ready <= MAX_CAPACITY:
        return False
    truncate_ready = total_ready > MAX_CAPACITY
    limit = MAX_CAPACITY if truncate_ready else MAX_CAPACITY - total_ready
    total = total_ready if truncate_ready else total_not_ready
    room = limit
    for s in subsets:
        field = "addresses" if truncate_ready else "notReadyAddresses"
        addrs = s.get(field) or []
        take = min(math.ceil(len(addrs) / total * limit), room) if total else 0
        s[field] = addrs[:take]
        room -= len(s[field])
        if truncate_ready:
            s.pop("notReadyAddresses", None)
        for f in ("addresses", "notReadyAddresses"):
            if f in s and not s[f]:
                del s[f]
    return True


def desired_subsets(svc: Obj, pods: Iterable[Obj]) -> list[Obj]:
    tolerate = publish_not_ready(svc)
    spec = svc.get("spec") or {}
    ports = spec.get("ports") or []
    entries: list[tuple[Obj, Obj | None, bool]] = []
    for pod in pods:
        if not should_pod_be_in_endpoints(pod, tolerate):
            continue
        ip = pod_ip_for_service(svc, pod)
        if ip is None:
            continue  # no address of the Service's family (a single-stack pod on a dual-stack node)
        addr: Obj = {"ip": ip}
        if should_set_hostname(pod, svc):
            addr["hostname"] = pod["spec"]["hostname"]
        if (pod.get("spec") or {}).get("nodeName"):
            addr["nodeName"] = pod["spec"]["nodeName"]
        addr["targetRef"] = target_ref(pod)
        ready = tolerate or is_pod_ready(pod)
        if not ports:
            if is_headless(svc):
                entries.append((addr, None, ready))
            continue
        for sp in ports:
            num = find_port(pod, sp)
            if num is None:
                continue
            epp: Obj = {"port": num, "protocol": sp.get("protocol") or "TCP"}
            if sp.get("name"):
                epp["name"] = sp["name"]
            if sp.get("appProtocol"):
                epp["appProtocol"] = sp["appProtocol"]
            entries.append((addr, epp, ready))
    return repack_subsets(entries)


def _normalise_subsets(subsets: Any) -> list[Obj]:
    """Existing subsets in the same shape as ours (the server may add or drop empty fields)."""
    out = []
    for s in subsets or []:
        n: Obj = {}
        for f in ("addresses", "notReadyAddresses"):
            if s.get(f):
                n[f] = [{k: v for k, v in a.items() if v not in (None, "")} for a in s[f]]
                for a in n[f]:
                    if "targetRef" in a:
                        a["targetRef"] = {k: v for k, v in a["targetRef"].items()
                                          if k != "resourceVersion" and v not in (None, "")}
        if s.get("ports"):
            n["ports"] = [{k: v for k, v in p.items() if v not in (None, "")} for p in s["ports"]]
        out.append(n)
    return out


class EndpointsController(Controller):
    name = "endpoints-controller"
    queue_name = "endpoint"
    service_account = "endpoint-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.services = self.informer("v1", "services")
        self.pods = self.informer("v1", "pods")
        self.endpoints = self.informer("v1", "endpoints")
        self.index = PodServiceIndex(self.services, self.queue)
        self.tracker = TriggerTimeTracker()
        self._written: dict[str, tuple[int, float]] = {}
        """Service key -> resourceVersion of the Endpoints we last wrote, until the cache has it."""
        self.services.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                                  on_delete=self.enqueue)
        self.pods.add_handler(on_add=self.index.pod_added, on_update=self.index.pod_updated,
                              on_delete=self.index.pod_added)
        self.endpoints.add_handler(on_delete=self._endpoints_deleted)

    def _endpoints_deleted(self, ep: Obj) -> None:
        # Someone deleted Endpoints we manage: put them back (the sync ignores non-selector Services).
        # The cache is past anything we wrote before, too.
        self._written.pop(key_of(ep), None)
        self.enqueue(ep)

    def _cache_is_stale(self, key: str, current: Obj | None) -> bool:
        """Whether the cache still lacks our last write of this key (an update now would conflict)."""
        entry = self._written.get(key)
        if entry is None:
            return False
        written, at = entry
        # Give up waiting after a while: a lost event must not wedge the Service.
        if (current is not None and _rv_int(current) >= written) or time.monotonic() - at > 10.0:
            del self._written[key]
            return False
        return True

    async def run(self) -> None:
        # Once, at start: Endpoints whose Service is gone (deleted while we were down).
        await self.services.wait_for_sync()
        await self.endpoints.wait_for_sync()
        for ep in self.endpoints.store.list():
            if LEADER_ELECTION_ANNOTATION not in ((ep.get("metadata") or {}).get("annotations") or {}):
                self.enqueue(ep)
        await super().run()

    async def sync(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.services.store.get(key)
        if svc is None:
            self.tracker.forget(key)
            try:
                await self.client.delete("v1", "endpoints", name, ns)
            except errors.NotFound:
                pass
            return
        spec = svc.get("spec") or {}
        if spec.get("type") == "ExternalName" or spec.get("selector") is None:
            return
        pods = [p for p in self.pods.store.by_index("namespace", ns)
                if service_selects(svc, (p.get("metadata") or {}).get("labels"))]
        current = self.endpoints.store.get(key)
        if self._cache_is_stale(key, current):
            self.queue.add_after(key, 0.1)
            return
        trigger = self.tracker.compute(key, svc, pods)
        subsets = desired_subsets(svc, pods)
        svc_labels = dict((svc.get("metadata") or {}).get("labels") or {})
        if current is not None:
            cur_labels = dict((current.get("metadata") or {}).get("labels") or {})
            cur_labels.pop(HEADLESS_LABEL, None)
            cur_ann = (current.get("metadata") or {}).get("annotations") or {}
            over = sum(len(s.get("addresses") or []) + len(s.get("notReadyAddresses") or []) for s in subsets)
            capacity_ok = over <= MAX_CAPACITY and OVER_CAPACITY_ANNOTATION not in cur_ann
            if (_normalise_subsets(current.get("subsets")) == subsets and cur_labels == svc_labels
                    and capacity_ok):
                self.tracker.commit(key)
                return
        new: Obj = {"apiVersion": "v1", "kind": "Endpoints"}
        meta: Obj = dict(current["metadata"]) if current is not None else {"name": name, "namespace": ns}
        annotations = dict(meta.get("annotations") or {})
        if trigger:
            annotations[TRIGGER_TIME_ANNOTATION] = trigger
        else:
            annotations.pop(TRIGGER_TIME_ANNOTATION, None)
        if truncate_subsets(subsets):
            annotations[OVER_CAPACITY_ANNOTATION] = "truncated"
        else:
            annotations.pop(OVER_CAPACITY_ANNOTATION, None)
        labels = dict(svc_labels)
        if is_headless(svc):
            labels[HEADLESS_LABEL] = ""
        meta["labels"] = labels
        meta["annotations"] = annotations
        meta.pop("managedFields", None)
        new["metadata"] = meta
        new["subsets"] = subsets
        try:
            if current is None:
                res = await self.client.create("v1", "endpoints", new, ns)
            else:
                res = await self.client.update("v1", "endpoints", new, ns)
            self._written[key] = (_rv_int(res), time.monotonic())
            self.tracker.commit(key)
        except errors.Forbidden:
            return  # the namespace is terminating: nothing will be allowed in it any more
        except errors.AlreadyExists:
            # Our cache has not seen the Endpoints yet; the add event is not watched, so look again soon.
            self.queue.add_after(key, 0.5)
        except errors.StatusError as e:
            self.recorder.event(svc, "Warning", "FailedToUpdateEndpoint",
                                f"Failed to update endpoint {ns}/{name}: {e.message}")
            raise


def _rv_int(obj: Obj) -> int:
    try:
        return int((obj.get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


CONTROLLERS: list[type[Controller]] = [EndpointsController]
