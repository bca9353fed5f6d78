"""Precomputed views of pods and nodes: what every plugin reads, computed once per object version.

Plugins run thousands of times per second, so nothing here is recomputed in a Filter or Score:

- :class:`PodInfo` parses a pod once: effective resource requests as plain ints (cpu in
  millicores, everything else in units), the "non-zero" cpu/memory used for scoring, host ports,
  tolerations, priority, and the (anti-)affinity terms with compiled label selectors.
- :class:`NodeInfo` is the scheduler cache's per-node aggregate: allocatable and requested as
  ``dict[str, int]``, the pods on the node, used host ports, image names, and the pods that carry
  (anti-)affinity (InterPodAffinity only walks those).

Requests are :func:`kybernetes.api.podutil.pod_requests` (Kubernetes' ``PodRequests``) and
tolerations are compiled by :func:`kybernetes.api.scheduling.toleration_tuple`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import orjson

from kybernetes.api.label_selectors import LabelSelector, from_label_selector_object
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import container_requests, pod_requests, resource_list
from kybernetes.api.scheduling import toleration_tuple

CPU = "cpu"
MEMORY = "memory"
EPHEMERAL = "ephemeral-storage"
PODS = "pods"

# Kubernetes' schedutil.DefaultMilliCPURequest / DefaultMemoryRequest: scoring pretends a pod with no
# request asks for this much so that "free" pods still spread.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024

HOSTNAME_LABEL = "kubernetes.io/hostname"
ZONE_LABEL = "topology.kubernetes.io/zone"


class AffinityTerm:
    """A compiled ``PodAffinityTerm``: which pods (selector + namespaces) and over which topology."""

    __slots__ = ("match_key", "namespace_selector", "namespaces", "selector", "topology_key")

    def __init__(self, term: Mapping[str, Any], pod_namespace: str) -> None:
        self.selector: LabelSelector = from_label_selector_object(term.get("labelSelector"), none_matches=False)
        self.topology_key: str = term.get("topologyKey") or ""
        ns = term.get("namespaces") or []
        nss = term.get("namespaceSelector")
        # Kubernetes: no namespaces and no namespaceSelector means "the pod's own namespace";
        # an empty namespaceSelector ({}) means "every namespace".
        self.namespace_selector: LabelSelector | None = (
            from_label_selector_object(nss) if nss is not None else None)
        self.namespaces: frozenset[str] = frozenset(ns) if ns or nss is not None else frozenset((pod_namespace,))
        # Equal for terms that match the same pods (the pods of one workload carry identical
        # terms): a scheduling cycle evaluates each distinct term against a pod once.
        self.match_key: tuple[bytes, frozenset[str], bytes] = (
            orjson.dumps(term.get("labelSelector"), option=orjson.OPT_SORT_KEYS), self.namespaces,
            orjson.dumps(nss, option=orjson.OPT_SORT_KEYS))

    def matches(self, pi: PodInfo, ns_labels: Mapping[str, Mapping[str, str]]) -> bool:
        if pi.namespace not in self.namespaces and (
                self.namespace_selector is None
                or not self.namespace_selector.matches(ns_labels.get(pi.namespace) or {})):
            return False
        return self.selector.matches(pi.labels)


def _terms(aff: Mapping[str, Any] | None, ns: str) -> tuple[list[AffinityTerm], list[tuple[int, AffinityTerm]]]:
    if not aff:
        return [], []
    required = [AffinityTerm(t, ns) for t in aff.get("requiredDuringSchedulingIgnoredDuringExecution") or ()]
    preferred = [(int(w.get("weight") or 0), AffinityTerm(w.get("podAffinityTerm") or {}, ns))
                 for w in aff.get("preferredDuringSchedulingIgnoredDuringExecution") or ()]
    return required, preferred


class PodInfo:
    """Everything the plugins need from one pod, parsed once."""

    __slots__ = ("has_affinity", "host_ports", "images", "key", "labels", "labels_key", "name", "namespace",
                 "node_name", "nonzero_cpu", "nonzero_mem", "pod", "preemption_policy",
                 "preferred_affinity", "preferred_anti_affinity", "priority", "requests",
                 "required_affinity", "required_anti_affinity", "start_time", "terminating",
                 "tolerations", "uid")

    def __init__(self, pod: Obj) -> None:
        meta = pod.get("metadata") or {}
        spec = pod.get("spec") or {}
        self.pod = pod
        self.namespace: str = meta.get("namespace") or ""
        self.name: str = meta.get("name") or ""
        self.key = f"{self.namespace}/{self.name}"
        self.uid: str = meta.get("uid") or ""
        self.labels: dict[str, str] = meta.get("labels") or {}
        self.labels_key = (self.namespace, tuple(sorted(self.labels.items())))
        """Equal for pods that every affinity term matches alike (namespace and labels)."""
        self.node_name: str = spec.get("nodeName") or ""
        self.priority: int = int(spec.get("priority") or 0)
        self.preemption_policy: str = spec.get("preemptionPolicy") or "PreemptLowerPriority"
        self.terminating = meta.get("deletionTimestamp") is not None
        self.start_time: str = (pod.get("status") or {}).get("startTime") or meta.get("creationTimestamp") or ""
        self.requests = pod_requests(pod)
        cpu = self.requests.get(CPU, 0)
        mem = self.requests.get(MEMORY, 0)
        # Non-zero requests per container, as schedutil.GetNonzeroRequests does, summed.
        nz_cpu = nz_mem = 0
        for c in spec.get("containers") or ():
            r = container_requests(c)
            nz_cpu += r.get(CPU) or DEFAULT_MILLI_CPU
            nz_mem += r.get(MEMORY) or DEFAULT_MEMORY
        self.nonzero_cpu = max(nz_cpu, cpu)
        self.nonzero_mem = max(nz_mem, mem)
        ports: list[tuple[str, str, int]] = []
        images: list[str] = []
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            if c.get("image"):
                images.append(c["image"])
            for p in c.get("ports") or ():
                hp = p.get("hostPort")
                if hp:
                    ports.append((p.get("hostIP") or "0.0.0.0", p.get("protocol") or "TCP", int(hp)))
        self.host_ports = ports
        self.images = images
        self.tolerations = [toleration_tuple(t) for t in spec.get("tolerations") or ()]
        aff = spec.get("affinity") or {}
        self.required_affinity, self.preferred_affinity = _terms(aff.get("podAffinity"), self.namespace)
        self.required_anti_affinity, self.preferred_anti_affinity = _terms(aff.get("podAntiAffinity"), self.namespace)
        self.has_affinity = bool(self.required_affinity or self.preferred_affinity
                                 or self.required_anti_affinity or self.preferred_anti_affinity)

    def __repr__(self) -> str:
        return f"PodInfo({self.key})"


def normalize_image(name: str) -> str:
    """ImageLocality's normalisation: an image without tag or digest means ``:latest``."""
    if "@" in name or ":" in name.rsplit("/", 1)[-1]:
        return name
    return name + ":latest"


_GENERATIONS = itertools.count(1)
"""NodeInfo generations are unique in the process: a (generation) names one set of pods on one
node, so results computed from a node's pods can be remembered by it (PodTopologySpread)."""


class ScoreMemo:
    """Per-node results (scores, filter verdicts) by node generation, for one pod shape at a time.

    A result that depends only on the node's state (allocatable, requested, taints: all of it
    covered by its generation) and on a few numbers of the pod (``pod_key``) is the same in the
    next cycle for every node but the one the last pod went to: it is looked up instead of
    computed for each of the ~500 nodes a cycle filters and scores at 5,000 nodes.
    """

    __slots__ = ("pod_key", "scores")

    MAX = 100_000

    def __init__(self) -> None:
        self.pod_key: Any = None
        self.scores: dict[int, int] = {}

    def for_pod(self, pod_key: Any) -> dict[int, int]:
        """generation -> score for pods with ``pod_key``; fill it with what is missing."""
        if pod_key != self.pod_key or len(self.scores) >= self.MAX:
            self.pod_key = pod_key
            self.scores = {}
        return self.scores


class NodeInfo:
    """The scheduler cache's aggregate for one node (``framework.NodeInfo``)."""

    # alloc_*/req_* mirror the cpu, memory and pods entries of the dicts as plain attributes:
    # the default Filter and Score plugins read them for every node of every cycle.
    __slots__ = ("alloc_cpu", "alloc_mem", "alloc_pods", "allocatable", "generation", "images", "labels",
                 "name", "node", "nonzero_cpu", "nonzero_mem", "pods", "pods_with_affinity",
                 "pods_with_required_anti_affinity", "req_cpu", "req_mem", "requested", "taints",
                 "unschedulable", "used_ports")

    def __init__(self, name: str, node: Obj | None = None) -> None:
        self.name = name
        self.node: Obj | None = None
        self.labels: dict[str, str] = {}
        self.taints: list[Obj] = []
        self.unschedulable = False
        self.allocatable: dict[str, int] = {}
        self.alloc_cpu = self.alloc_mem = self.alloc_pods = 0
        self.req_cpu = self.req_mem = 0
        self.images: dict[str, int] = {}
        self.requested: dict[str, int] = {}
        self.nonzero_cpu = 0
        self.nonzero_mem = 0
        self.pods: dict[str, PodInfo] = {}
        self.used_ports: list[tuple[str, str, int]] = []
        self.pods_with_affinity: list[PodInfo] = []
        self.pods_with_required_anti_affinity: list[PodInfo] = []
        self.generation = next(_GENERATIONS)
        if node is not None:
            self.set_node(node)

    def set_node(self, node: Obj) -> None:
        self.node = node
        meta = node.get("metadata") or {}
        spec = node.get("spec") or {}
        status = node.get("status") or {}
        self.labels = meta.get("labels") or {}
        self.taints = list(spec.get("taints") or ())
        self.unschedulable = bool(spec.get("unschedulable"))
        self.allocatable = resource_list(status.get("allocatable") or status.get("capacity"))
        self.alloc_cpu = self.allocatable.get(CPU, 0)
        self.alloc_mem = self.allocatable.get(MEMORY, 0)
        self.alloc_pods = self.allocatable.get(PODS, 0)
        images: dict[str, int] = {}
        for img in status.get("images") or ():
            size = int(img.get("sizeBytes") or 0)
            for n in img.get("names") or ():
                images[normalize_image(n)] = size
        self.images = images
        self.generation = next(_GENERATIONS)

    def add_pod(self, pi: PodInfo) -> None:
        old = self.pods.get(pi.key)
        if old is not None:
            self.remove_pod(old)
        self.pods[pi.key] = pi
        req = self.requested
        for k, v in pi.requests.items():
            req[k] = req.get(k, 0) + v
        self.req_cpu = req.get(CPU, 0)
        self.req_mem = req.get(MEMORY, 0)
        self.nonzero_cpu += pi.nonzero_cpu
        self.nonzero_mem += pi.nonzero_mem
        if pi.host_ports:
            self.used_ports.extend(pi.host_ports)
        if pi.has_affinity:
            self.pods_with_affinity.append(pi)
            if pi.required_anti_affinity:
                self.pods_with_required_anti_affinity.append(pi)
        self.generation = next(_GENERATIONS)

    def remove_pod(self, pi: PodInfo) -> bool:
        cur = self.pods.pop(pi.key, None)
        if cur is None:
            return False
        req = self.requested
        for k, v in cur.requests.items():
            req[k] = req.get(k, 0) - v
        self.req_cpu = req.get(CPU, 0)
        self.req_mem = req.get(MEMORY, 0)
        self.nonzero_cpu -= cur.nonzero_cpu
        self.nonzero_mem -= cur.nonzero_mem
        for p in cur.host_ports:
            self.used_ports.remove(p)
        if cur.has_affinity:
            self.pods_with_affinity = [p for p in self.pods_with_affinity if p is not cur]
            self.pods_with_required_anti_affinity = [
                p for p in self.pods_with_required_anti_affinity if p is not cur]
        self.generation = next(_GENERATIONS)
        return True

    def clone(self) -> NodeInfo:
        """A copy whose pod set can change without touching the cache (preemption's dry run)."""
        c = NodeInfo.__new__(NodeInfo)
        c.name = self.name
        c.node = self.node
        c.labels = self.labels
        c.taints = self.taints
        c.unschedulable = self.unschedulable
        c.allocatable = self.allocatable
        c.alloc_cpu, c.alloc_mem, c.alloc_pods = self.alloc_cpu, self.alloc_mem, self.alloc_pods
        c.req_cpu, c.req_mem = self.req_cpu, self.req_mem
        c.images = self.images
        c.requested = dict(self.requested)
        c.nonzero_cpu = self.nonzero_cpu
        c.nonzero_mem = self.nonzero_mem
        c.pods = dict(self.pods)
        c.used_ports = list(self.used_ports)
        c.pods_with_affinity = list(self.pods_with_affinity)
        c.pods_with_required_anti_affinity = list(self.pods_with_required_anti_affinity)
        c.generation = self.generation
        return c

    def __repr__(self) -> str:
        return f"NodeInfo({self.name}, pods={len(self.pods)})"
