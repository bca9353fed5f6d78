"""The scheduler cache: per-node aggregates kept current from informer events and assumptions.

The cache owns one :class:`~kybernetes.scheduler.framework.Snapshot`, updated in place: the
scheduling cycle never awaits between reading it and assuming its decision, and informer handlers
run on the same event loop, so the cycle always sees a consistent state without copying 5,000
NodeInfos per pod (kube-scheduler copies incrementally because its informers run concurrently).

A pod's life in the cache (``schedulerCache``):

- **assumed**: the scheduler chose a node; the pod's requests count on that node at once, so the
  next cycle does not double-book it, while the bind call is still in flight;
- **finish_binding**: the bind returned; with a TTL, an assumed pod that the informer has not
  confirmed by ``ttl`` seconds later expires (``cleanup_expired``); TTL 0 (Kubernetes' default
  since 1.26) keeps it until confirmed or forgotten;
- **forget**: the bind failed: the pod is taken off the node again;
- **confirmed**: the informer delivered the bound pod (``add_pod``); from then on it is an
  ordinary pod, updated and removed by informer events.

Pods in a terminal phase (Succeeded/Failed) hold no resources and are dropped. Pods may arrive
before their node: they wait in a NodeInfo that is not in the snapshot's node list.
"""

from __future__ import annotations

import logging

from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_terminal
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.scheduler.framework import Snapshot
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo
from kybernetes.scheduler.queue import pod_key

log = logging.getLogger(__name__)


class Cache:
    def __init__(self, clock: Clock | None = None, ttl: float = 0.0) -> None:
        self.clock: Clock = clock or RealClock()
        self.ttl = ttl
        self.snapshot = Snapshot(change_log=True)
        self.infos: dict[str, NodeInfo] = {}
        """Every NodeInfo, including those of nodes not (yet / any more) known but holding pods."""
        self.pods: dict[str, PodInfo] = {}
        self.assumed: dict[str, float | None] = {}
        """key -> expiry deadline (None while binding is in flight or without TTL)."""

    # --- nodes -----------------------------------------------------------------------------------

    def _info(self, name: str) -> NodeInfo:
        ni = self.infos.get(name)
        if ni is None:
            ni = self.infos[name] = NodeInfo(name)
        return ni

    def _images(self, ni: NodeInfo, delta: int) -> None:
        counts = self.snapshot.image_nodes
        for img in ni.images:
            n = counts.get(img, 0) + delta
            if n > 0:
                counts[img] = n
            else:
                counts.pop(img, None)

    def add_node(self, node: Obj) -> NodeInfo:
        name = node["metadata"]["name"]
        ni = self._info(name)
        known = ni.node is not None
        if known:
            self._images(ni, -1)
        ni.set_node(node)
        self._images(ni, +1)
        snap = self.snapshot
        snap.note(name)
        if not known:
            snap.nodes[name] = ni
            snap.node_list.append(ni)
            snap.track(ni)
        return ni

    update_node = add_node

    def remove_node(self, node: Obj) -> None:
        name = node["metadata"]["name"]
        ni = self.infos.get(name)
        if ni is None or ni.node is None:
            return
        self._images(ni, -1)
        snap = self.snapshot
        snap.nodes.pop(name, None)
        snap.node_list = [n for n in snap.node_list if n.name != name]
        snap.track(ni)
        snap.note(name)
        ni.node = None
        if not ni.pods:
            del self.infos[name]

    # --- pods ------------------------------------------------------------------------------------

    def _place(self, pi: PodInfo) -> None:
        ni = self._info(pi.node_name)
        ni.add_pod(pi)
        self.pods[pi.key] = pi
        self.snapshot.note(ni.name)
        if pi.has_affinity:
            self.snapshot.affinity_pods += 1
            if pi.required_anti_affinity:
                self.snapshot.anti_affinity_pods += 1
            if pi.required_affinity or pi.preferred_affinity or pi.preferred_anti_affinity:
                self.snapshot.scoring_affinity_pods += 1
            self.snapshot.track(ni)

    def _unplace(self, pi: PodInfo) -> None:
        ni = self.infos.get(pi.node_name)
        if ni is not None and ni.remove_pod(pi):
            self.snapshot.note(ni.name)
            if pi.has_affinity:
                self.snapshot.affinity_pods -= 1
                if pi.required_anti_affinity:
                    self.snapshot.anti_affinity_pods -= 1
                if pi.required_affinity or pi.preferred_affinity or pi.preferred_anti_affinity:
                    self.snapshot.scoring_affinity_pods -= 1
                self.snapshot.track(ni)
            if ni.node is None and not ni.pods:
                del self.infos[ni.name]
        if self.pods.get(pi.key) is pi:
            del self.pods[pi.key]

    def add_pod(self, pod: Obj) -> None:
        """An assigned pod from the informer (new, or confirming an assumed one)."""
        if not (pod.get("spec") or {}).get("nodeName"):
            return
        key = pod_key(pod)
        if is_pod_terminal(pod):
            self.remove_pod(pod)
            return
        cur = self.pods.get(key)
        pi = PodInfo(pod)
        if cur is not None:
            if key in self.assumed:
                del self.assumed[key]
                if cur.node_name != pi.node_name:
                    log.warning("pod %s was assumed on %s but bound to %s", key, cur.node_name, pi.node_name)
            self._unplace(cur)
        self._place(pi)

    update_pod = add_pod

    def remove_pod(self, pod: Obj) -> None:
        key = pod_key(pod)
        cur = self.pods.get(key)
        if cur is not None:
            self.assumed.pop(key, None)
            self._unplace(cur)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def assume(self, pi: PodInfo, node_name: str) -> None:
        if pi.key in self.pods:
            raise ValueError(f"pod {pi.key} is already in the cache")
        pi.node_name = node_name
        self._place(pi)
        self.assumed[pi.key] = None

    def finish_binding(self, pi: PodInfo) -> None:
        if pi.key in self.assumed and self.ttl > 0:
            self.assumed[pi.key] = self.clock.now() + self.ttl

    def forget(self, pi: PodInfo) -> None:
        if pi.key in self.assumed and self.pods.get(pi.key) is pi:
            del self.assumed[pi.key]
            self._unplace(pi)

    def cleanup_expired(self) -> list[str]:
        now = self.clock.now()
        expired = [k for k, deadline in self.assumed.items() if deadline is not None and deadline <= now]
        for k in expired:
            log.warning("assumed pod %s expired before the informer confirmed its binding", k)
            del self.assumed[k]
            pi = self.pods.get(k)
            if pi is not None:
                self._unplace(pi)
        return expired

    # --- convenience -----------------------------------------------------------------------------

    @classmethod
    def from_objects(cls, nodes: list[Obj], pods: list[Obj]) -> Cache:
        """A cache filled from listed objects (explain, tests)."""
        c = cls()
        for n in nodes:
            c.add_node(n)
        for p in pods:
            c.add_pod(p)
        return c
