"""The scheduling queue (``PriorityQueue``): activeQ, backoffQ, unschedulablePods, and the nominator.

- **activeQ** is a heap ordered by pod priority (high first), then by the time the pod entered the
  queue (PrioritySort). ``pop()`` awaits until a pod is there.
- **backoffQ** holds pods that failed recently, ordered by when their backoff ends. The backoff is
  per pod and exponential in the number of attempts: ``initial * 2**(attempts-1)`` capped at
  ``max`` (1 s -> 10 s by default). ``flush_backoff()`` moves expired ones to activeQ.
- **unschedulablePods** holds pods that were rejected by the plugins. They leave it when a cluster
  event could make them schedulable (``move_all``: node added/updated, assigned pod deleted or
  changed -- the event names which plugins it can help and only pods rejected by one of those move),
  or after ``max_unschedulable`` seconds (5 min) by ``flush_unschedulable()``. A pod that leaves
  while still inside its backoff window goes to backoffQ, otherwise straight to activeQ.
- A cluster event that arrives *while* a pod is being scheduled (``move_request_cycle`` >= the
  pod's cycle) sends a failed pod to backoffQ instead of unschedulablePods, so the event is not
  lost (Kubernetes' ``moveRequestCycle``).

Heaps use lazy deletion: each entry carries a generation; a deleted or moved pod just bumps it.
Time comes from a clock with ``now()`` (seconds), so tests drive backoff with a fake clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Iterable

from kybernetes.api.obj import Obj
from kybernetes.client.workqueue import Clock, RealClock
from kybernetes.scheduler.nodeinfo import PodInfo

ACTIVE = "active"
BACKOFF = "backoff"
UNSCHEDULABLE = "unschedulable"
IN_FLIGHT = "in-flight"

ALL_PLUGINS = None
"""An event hint meaning "this event may help any pod" (node added, ...)."""


def pod_key(pod: Obj) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace') or ''}/{meta.get('name') or ''}"


class QueuedPod:
    """A pod's life in the queue: attempts, timestamps, which plugins rejected it."""

    __slots__ = ("attempts", "cycle", "gen", "initial_attempt", "key", "pod", "timestamp",
                 "unschedulable_plugins", "where")

    def __init__(self, pod: Obj, now: float) -> None:
        self.pod = pod
        self.key = pod_key(pod)
        self.timestamp = now
        self.initial_attempt: float | None = None
        self.attempts = 0
        self.unschedulable_plugins: set[str] = set()
        self.where = ""
        self.gen = 0
        self.cycle = 0

    @property
    def priority(self) -> int:
        return int((self.pod.get("spec") or {}).get("priority") or 0)

    def __repr__(self) -> str:
        return f"QueuedPod({self.key}, {self.where}, attempts={self.attempts})"


class SchedulingQueue:
    def __init__(self, clock: Clock | None = None, *, initial_backoff: float = 1.0,
                 max_backoff: float = 10.0, max_unschedulable: float = 300.0) -> None:
        self.clock: Clock = clock or RealClock()
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self.max_unschedulable = max_unschedulable
        self.pods: dict[str, QueuedPod] = {}
        self._active: list[tuple[int, float, int, int, str]] = []
        self._backoff: list[tuple[float, int, int, str]] = []
        self._seq = itertools.count()
        self._event = asyncio.Event()
        self.scheduling_cycle = 0
        self.move_request_cycle = -1
        self.closed = False

    # --- placement -------------------------------------------------------------------------------

    def _push_active(self, qp: QueuedPod) -> None:
        qp.gen += 1
        qp.where = ACTIVE
        heapq.heappush(self._active, (-qp.priority, qp.timestamp, next(self._seq), qp.gen, qp.key))
        self._event.set()

    def _push_backoff(self, qp: QueuedPod) -> None:
        qp.gen += 1
        qp.where = BACKOFF
        heapq.heappush(self._backoff, (self.backoff_expiry(qp), next(self._seq), qp.gen, qp.key))

    def _to_unschedulable(self, qp: QueuedPod) -> None:
        qp.gen += 1
        qp.where = UNSCHEDULABLE

    def backoff_duration(self, qp: QueuedPod) -> float:
        d = self.initial_backoff
        for _ in range(1, qp.attempts):
            d *= 2
            if d >= self.max_backoff:
                return self.max_backoff
        return min(d, self.max_backoff)

    def backoff_expiry(self, qp: QueuedPod) -> float:
        return qp.timestamp + self.backoff_duration(qp)

    def is_backing_off(self, qp: QueuedPod) -> bool:
        return qp.attempts > 0 and self.backoff_expiry(qp) > self.clock.now()

    # --- informer-driven changes -----------------------------------------------------------------

    def add(self, pod: Obj) -> None:
        """A new pending pod (or one seen again after a relist)."""
        key = pod_key(pod)
        qp = self.pods.get(key)
        if qp is not None:
            self.update(qp.pod, pod)
            return
        qp = self.pods[key] = QueuedPod(pod, self.clock.now())
        self._push_active(qp)

    def update(self, old: Obj | None, new: Obj) -> None:
        key = pod_key(new)
        qp = self.pods.get(key)
        if qp is None:
            self.add(new)
            return
        if (qp.pod.get("metadata") or {}).get("uid") != (new.get("metadata") or {}).get("uid"):
            # Same name, new pod: start over.
            self.delete(qp.pod)
            self.add(new)
            return
        changed = _scheduling_relevant(qp.pod, new)
        qp.pod = new
        if qp.where == ACTIVE and changed:
            self._push_active(qp)  # priority may have changed: re-heap (old entry goes stale)
        elif qp.where == UNSCHEDULABLE and changed:
            # The pod itself changed (tolerations, requests, labels...): worth another try.
            if self.is_backing_off(qp):
                self._push_backoff(qp)
            else:
                self._push_active(qp)

    def delete(self, pod: Obj) -> None:
        qp = self.pods.pop(pod_key(pod), None)
        if qp is not None:
            qp.gen += 1
            qp.where = ""

    def __contains__(self, key: str) -> bool:
        return key in self.pods

    def __len__(self) -> int:
        return len(self.pods)

    # --- the scheduling loop's side --------------------------------------------------------------

    def pop_nowait(self) -> QueuedPod | None:
        while self._active:
            _, _, _, gen, key = heapq.heappop(self._active)
            qp = self.pods.get(key)
            if qp is None or qp.gen != gen or qp.where != ACTIVE:
                continue
            qp.where = IN_FLIGHT
            qp.attempts += 1
            if qp.initial_attempt is None:
                qp.initial_attempt = self.clock.now()
            self.scheduling_cycle += 1
            qp.cycle = self.scheduling_cycle
            return qp
        self._event.clear()
        return None

    async def pop(self) -> QueuedPod:
        while True:
            qp = self.pop_nowait()
            if qp is not None:
                return qp
            if self.closed:
                raise asyncio.CancelledError
            await self._event.wait()

    def done(self, qp: QueuedPod) -> None:
        """The pod was bound (or given up on): forget it."""
        cur = self.pods.get(qp.key)
        if cur is qp:
            del self.pods[qp.key]
            qp.where = ""

    def add_unschedulable(self, qp: QueuedPod, plugins: Iterable[str] = ()) -> None:
        """A pod the plugins rejected: park it until an event can help (or it times out)."""
        if self.pods.get(qp.key) is not qp:
            return  # deleted meanwhile
        qp.timestamp = self.clock.now()
        qp.unschedulable_plugins = set(plugins)
        if self.move_request_cycle >= qp.cycle or not qp.unschedulable_plugins:
            self._push_backoff(qp)
        else:
            self._to_unschedulable(qp)

    def add_backoff(self, qp: QueuedPod) -> None:
        """A pod that failed for a non-plugin reason (bind error, API error): retry after backoff."""
        if self.pods.get(qp.key) is not qp:
            return
        qp.timestamp = self.clock.now()
        self._push_backoff(qp)

    # --- moving pods back ------------------------------------------------------------------------

    def move_all(self, plugins: Iterable[str] | None = ALL_PLUGINS) -> int:
        """A cluster event: move unschedulable pods that one of ``plugins`` rejected."""
        self.move_request_cycle = self.scheduling_cycle
        hint = set(plugins) if plugins is not None else None
        moved = 0
        for qp in list(self.pods.values()):
            if qp.where != UNSCHEDULABLE:
                continue
            if hint is not None and qp.unschedulable_plugins and not (qp.unschedulable_plugins & hint):
                continue
            if self.is_backing_off(qp):
                self._push_backoff(qp)
            else:
                self._push_active(qp)
            moved += 1
        return moved

    def flush_backoff(self) -> int:
        now = self.clock.now()
        moved = 0
        while self._backoff and self._backoff[0][0] <= now:
            _, _, gen, key = heapq.heappop(self._backoff)
            qp = self.pods.get(key)
            if qp is None or qp.gen != gen or qp.where != BACKOFF:
                continue
            self._push_active(qp)
            moved += 1
        return moved

    def flush_unschedulable(self) -> int:
        now = self.clock.now()
        moved = 0
        for qp in list(self.pods.values()):
            if qp.where == UNSCHEDULABLE and now - qp.timestamp > self.max_unschedulable:
                if self.is_backing_off(qp):
                    self._push_backoff(qp)
                else:
                    self._push_active(qp)
                moved += 1
        return moved

    async def run_flushers(self) -> None:
        """Background task: backoffQ every second, unschedulablePods every 30 s."""
        ticks = 0
        while not self.closed:
            await asyncio.sleep(1.0)
            self.flush_backoff()
            ticks += 1
            if ticks % 30 == 0:
                self.flush_unschedulable()

    def close(self) -> None:
        self.closed = True
        self._event.set()

    def pending_counts(self) -> dict[str, int]:
        """Pods waiting in active, backoff and unschedulable (``scheduler_pending_pods``; in-flight
        pods are in none of them, as in Kubernetes)."""
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0}
        for qp in self.pods.values():
            if qp.where in out:
                out[qp.where] += 1
        return out

    def stats(self) -> dict[str, int]:
        out = {ACTIVE: 0, BACKOFF: 0, UNSCHEDULABLE: 0, IN_FLIGHT: 0}
        for qp in self.pods.values():
            out[qp.where] = out.get(qp.where, 0) + 1
        return out


def _scheduling_relevant(old: Obj, new: Obj) -> bool:
    """Did anything the scheduler looks at change (not just status/managedFields/resourceVersion)?"""
    if old.get("spec") != new.get("spec"):
        return True
    om = old.get("metadata") or {}
    nm = new.get("metadata") or {}
    return om.get("labels") != nm.get("labels") or om.get("annotations") != nm.get("annotations")


class Nominator:
    """Pods nominated to a node by preemption, so that others do not take the space meanwhile."""

    def __init__(self) -> None:
        self.by_node: dict[str, dict[str, PodInfo]] = {}
        self.node_of: dict[str, str] = {}

    def add(self, pi: PodInfo, node: str) -> None:
        self.remove(pi)
        self.by_node.setdefault(node, {})[pi.key] = pi
        self.node_of[pi.key] = node

    def remove(self, pi: PodInfo | str) -> None:
        key = pi if isinstance(pi, str) else pi.key
        node = self.node_of.pop(key, None)
        if node is not None:
            pods = self.by_node.get(node)
            if pods is not None:
                pods.pop(key, None)
                if not pods:
                    del self.by_node[node]

    def nominated_on(self, node: str) -> list[PodInfo]:
        return list((self.by_node.get(node) or {}).values())

    def update_from_pod(self, pod: Obj) -> None:
        """Track ``status.nominatedNodeName`` of pending pods as the informer reports it."""
        key = pod_key(pod)
        node = (pod.get("status") or {}).get("nominatedNodeName")
        if (pod.get("spec") or {}).get("nodeName") or not node:
            if (key in self.node_of and not node) or (pod.get("spec") or {}).get("nodeName"):
                self.remove(key)
            return
        if self.node_of.get(key) != node:
            self.add(PodInfo(pod), node)
