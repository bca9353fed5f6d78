"""Node lifecycle: notice dead kubelets, taint their nodes, and evict pods from NoExecute taints.

Kubernetes' ``node_lifecycle_controller.go`` plus the taint-eviction controller, simplified to one
sync per node.

**Health.** Every ``node-monitor-period`` seconds each node is synced. Like Kubernetes, the
controller does not trust the kubelet's clock: it remembers, on its own clock (``ctx.clock``),
when it last *saw a change* in the node's Lease ``renewTime`` (``kube-node-lease``) or in the Ready
condition's ``lastHeartbeatTime``. If nothing moved for ``node-monitor-grace-period`` seconds
(``node-startup-grace-period`` for a node that never reported Ready), the Ready, MemoryPressure,
DiskPressure and PIDPressure conditions become ``Unknown`` (reason ``NodeStatusUnknown``,
"Kubelet stopped posting node status.", or ``NodeStatusNeverUpdated`` for conditions that never
existed) through the node's ``/status``; its pods' Ready conditions turn False; a ``NodeNotReady``
event is recorded. The controller never sets Ready back to True - the kubelet does.

**Taints.** From the Ready condition: ``Unknown`` -> ``node.kubernetes.io/unreachable``,
``False`` -> ``node.kubernetes.io/not-ready``, each as NoExecute (with ``timeAdded``) and
NoSchedule; pressure conditions and ``spec.unschedulable`` give their NoSchedule taints. Taints
the controller owns are added and removed to match; every other taint is left alone.

**Taint eviction.** For every pod on a node with NoExecute taints (whoever set them): if some
taint is not tolerated the pod is deleted at once; if all are, it is deleted once the smallest
``tolerationSeconds`` among the tolerations used has passed since the taints' ``timeAdded``
(measured on ``ctx.clock`` from the moment the controller saw that set of taints); tolerations
without ``tolerationSeconds`` keep it forever. Deleted pods get the ``DisruptionTarget`` condition
and a ``TaintManagerEviction`` event first. Healthy nodes lose their taints and pending evictions
are forgotten.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import datetime as dt
import logging
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_terminal
from kybernetes.api.scheduling import tolerates
from kybernetes.api.timeutil import format_rfc3339, parse_rfc3339
from kybernetes.controllers.base import Controller, ControllerContext, split_key

log = logging.getLogger(__name__)

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
CONDITION_TAINTS = {
    "MemoryPressure": "node.kubernetes.io/memory-pressure",
    "DiskPressure": "node.kubernetes.io/disk-pressure",
    "PIDPressure": "node.kubernetes.io/pid-pressure",
    "NetworkUnavailable": "node.kubernetes.io/network-unavailable",
}
OWNED_TAINT_KEYS = frozenset({NOT_READY, UNREACHABLE, UNSCHEDULABLE, *CONDITION_TAINTS.values()})
UNKNOWN_CONDITIONS = ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure")
LEASE_NAMESPACE = "kube-node-lease"


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _wall() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def condition(node: Obj, ctype: str) -> Obj | None:
    for c in _d(node.get("status")).get("conditions") or []:
        if _d(c).get("type") == ctype:
            return c  # type: ignore[no-any-return]
    return None


def toleration_window(pod: Obj, taints: list[Obj]) -> float | None:
    """Seconds the pod may stay: 0 = not tolerated (go now), None = forever, else the minimum."""
    tolerations = [_d(t) for t in _d(pod.get("spec")).get("tolerations") or []]
    window: float | None = None
    for taint in taints:
        used = [t for t in tolerations if tolerates(t, taint)]
        if not used:
            return 0.0
        for t in used:
            secs = t.get("tolerationSeconds")
            if secs is None:
                continue
            secs = max(0.0, float(secs))
            window = secs if window is None else min(window, secs)
    return window


def desired_taints(node: Obj) -> list[Obj]:
    """The taints this controller owns that the node's conditions call for (without timeAdded)."""
    out: list[Obj] = []
    ready = condition(node, "Ready")
    status = _d(ready).get("status") if ready else None
    if status == "Unknown":
        out += [{"key": UNREACHABLE, "effect": "NoExecute"}, {"key": UNREACHABLE, "effect": "NoSchedule"}]
    elif status == "False":
        out += [{"key": NOT_READY, "effect": "NoExecute"}, {"key": NOT_READY, "effect": "NoSchedule"}]
    for ctype, key in CONDITION_TAINTS.items():
        c = condition(node, ctype)
        if c is not None and c.get("status") == "True":
            out.append({"key": key, "effect": "NoSchedule"})
    if _d(node.get("spec")).get("unschedulable"):
        out.append({"key": UNSCHEDULABLE, "effect": "NoSchedule"})
    return out


class _Health:
    """What the controller last saw of a node, and when (on its own clock)."""

    def __init__(self, seen: tuple[str, str], at: float) -> None:
        self.seen = seen
        self.probe = at


class NodeLifecycleController(Controller):
    name = "node-controller"
    queue_name = "node_lifecycle_controller"
    service_account = "node-controller"
    workers = 2

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.grace = float(ctx.option("node-monitor-grace-period", 40.0))
        self.startup_grace = float(ctx.option("node-startup-grace-period", 60.0))
        self.period = float(ctx.option("node-monitor-period", 5.0))
        self.taint_eviction = bool(ctx.option("enable-taint-manager", True))
        self.clock = ctx.clock
        self.nodes = self.informer("v1", "nodes")
        self.leases = self.informer("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE)
        self.pods = self.informer("v1", "pods")
        self.nodes.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                               on_delete=self._forget_node)
        self.leases.add_handler(on_add=self._lease_changed, on_update=lambda _o, n: self._lease_changed(n))
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda _o, n: self._pod_changed(n),
                              on_delete=self._pod_deleted)
        self.health: dict[str, _Health] = {}
        self.deadlines: dict[str, tuple[tuple[Any, ...], float]] = {}
        """Pod uid -> (the NoExecute taints it was judged against, clock time it must go)."""

    # --- event handlers -----------------------------------------------------------------------

    def _lease_changed(self, lease: Obj) -> None:
        self.queue.add(_d(lease.get("metadata")).get("name", ""))

    def _pod_changed(self, pod: Obj) -> None:
        node = _d(pod.get("spec")).get("nodeName")
        if node:
            self.queue.add(node)

    def _pod_deleted(self, pod: Obj) -> None:
        self.deadlines.pop(_d(pod.get("metadata")).get("uid", ""), None)

    def _forget_node(self, node: Obj) -> None:
        self.health.pop(_d(node.get("metadata")).get("name", ""), None)

    # --- the loop -------------------------------------------------------------------------------

    async def run(self) -> None:
        ticker = asyncio.create_task(self._tick(), name="node-monitor")
        try:
            await super().run()
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker

    async def _tick(self) -> None:
        while True:
            for node in self.nodes.store.list():
                self.enqueue(node)
            await self.clock.sleep(self.period)

    async def sync(self, key: str) -> None:
        _, name = split_key(key)
        node = self.nodes.store.get(name)
        if node is None:
            self.health.pop(name, None)
            return
        node = await self._check_health(name, node)
        node = await self._reconcile_taints(name, node)
        if self.taint_eviction:
            await self._evict(name, node)

    # --- health -----------------------------------------------------------------------------------

    async def _check_health(self, name: str, node: Obj) -> Obj:
        now = self.clock.now()
        lease = self.leases.store.get(f"{LEASE_NAMESPACE}/{name}")
        renew = str(_d(_d(lease).get("spec")).get("renewTime") or "")
        ready = condition(node, "Ready")
        heartbeat = str(_d(ready).get("lastHeartbeatTime") or "")
        seen = (renew, heartbeat)
        h = self.health.get(name)
        if h is None:
            h = self.health[name] = _Health(seen, now)
        elif h.seen != seen:
            h.seen, h.probe = seen, now
        grace = self.grace if ready is not None else self.startup_grace
        if now - h.probe < grace:
            return node
        if ready is not None and ready.get("status") == "Unknown" and all(
                _d(condition(node, c)).get("status") == "Unknown" for c in UNKNOWN_CONDITIONS):
            return node
        return await self._mark_unknown(name, node)

    async def _mark_unknown(self, name: str, node: Obj) -> Obj:
        for _attempt in range(5):
            new = copy.deepcopy(node)
            status = new.setdefault("status", {})
            conds = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
            stamp = format_rfc3339(_wall())
            was_ready = _d(condition(node, "Ready")).get("status") == "True"
            for ctype in UNKNOWN_CONDITIONS:
                c = next((c for c in conds if c.get("type") == ctype), None)
                if c is None:
                    conds.append({"type": ctype, "status": "Unknown", "reason": "NodeStatusNeverUpdated",
                                  "message": "Kubelet never posted node status.",
                                  "lastHeartbeatTime": _d(node.get("metadata")).get("creationTimestamp"),
                                  "lastTransitionTime": stamp})
                elif c.get("status") != "Unknown":
                    c.update(status="Unknown", reason="NodeStatusUnknown",
                             message="Kubelet stopped posting node status.", lastTransitionTime=stamp)
            status["conditions"] = conds
            try:
                node = await self.client.update("v1", "nodes", new, subresource="status")
            except errors.Conflict:
                node = await self.client.get("v1", "nodes", name)
                continue
            log.info("node %s: kubelet stopped posting node status", name)
            if was_ready:
                self.recorder.event(node, "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady")
            await self._mark_pods_not_ready(name)
            return node
        raise errors.Conflict.of("nodes", name, why="too many conflicting writes marking the node unknown")

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        for pod in self.pods.store.by_index("nodeName", node_name):
            conds = _d(pod.get("status")).get("conditions") or []
            if not any(_d(c).get("type") == "Ready" and _d(c).get("status") != "False" for c in conds):
                continue
            new = copy.deepcopy(pod)
            for c in new["status"]["conditions"]:
                if c.get("type") == "Ready":
                    c["status"] = "False"
                    c["lastTransitionTime"] = format_rfc3339(_wall())
            try:
                await self.client.update("v1", "pods", new, subresource="status")
            except (errors.Conflict, errors.NotFound):
                continue  # the pod moved on; the next pass looks again
            self.recorder.event(pod, "Warning", "NodeNotReady", "Node is not ready")

    # --- taints -----------------------------------------------------------------------------------

    async def _reconcile_taints(self, name: str, node: Obj) -> Obj:
        for _attempt in range(5):
            current = [_d(t) for t in _d(node.get("spec")).get("taints") or []]
            want = desired_taints(node)
            kept = [t for t in current if t.get("key") not in OWNED_TAINT_KEYS]
            out = list(kept)
            for w in want:
                have = next((t for t in current if t.get("key") == w["key"] and t.get("effect") == w["effect"]), None)
                if have is not None:
                    out.append(have)
                elif w["effect"] == "NoExecute":
                    out.append({**w, "timeAdded": format_rfc3339(_wall())})
                else:
                    out.append(w)
            owned_now = sorted((t.get("key"), t.get("effect")) for t in current if t.get("key") in OWNED_TAINT_KEYS)
            owned_want = sorted((w["key"], w["effect"]) for w in want)
            if owned_now == owned_want:
                return node
            new = copy.deepcopy(node)
            new.setdefault("spec", {})["taints"] = out
            if not out:
                del new["spec"]["taints"]
            try:
                # The node's resourceVersion rides along: a compare-and-swap.
                return await self.client.update("v1", "nodes", new)
            except errors.Conflict:
                node = await self.client.get("v1", "nodes", name)
        raise errors.Conflict.of("nodes", name, why="too many conflicting writes on the node's taints")

    # --- taint eviction -------------------------------------------------------------------------

    async def _evict(self, name: str, node: Obj) -> None:
        taints = [_d(t) for t in _d(node.get("spec")).get("taints") or [] if _d(t).get("effect") == "NoExecute"]
        signature = tuple(sorted((t.get("key"), t.get("value"), t.get("timeAdded")) for t in taints))
        now = self.clock.now()
        wake: float | None = None
        for pod in self.pods.store.by_index("nodeName", name):
            meta = _d(pod.get("metadata"))
            uid = meta.get("uid", "")
            if not taints or meta.get("deletionTimestamp"):
                self.deadlines.pop(uid, None)
                continue
            if is_pod_terminal(pod):
                continue
            window = toleration_window(pod, taints)
            if window is None:
                self.deadlines.pop(uid, None)
                continue
            known = self.deadlines.get(uid)
            if known is None or known[0] != signature:
                added = [a for a in (parse_rfc3339(t.get("timeAdded")) for t in taints) if a is not None]
                # Time already spent under these taints (the latest one started the clock).
                spent = max(0.0, (_wall() - max(added)).total_seconds()) if added else 0.0
                known = (signature, now + window - spent)
                self.deadlines[uid] = known
            remaining = known[1] - now
            if remaining > 0:
                wake = remaining if wake is None else min(wake, remaining)
                continue
            await self._delete_pod(pod)
            self.deadlines.pop(uid, None)
        if wake is not None:
            self.queue.add_after(name, wake)

    async def _delete_pod(self, pod: Obj) -> None:
        meta = pod["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        self.recorder.event(pod, "Normal", "TaintManagerEviction", f"Marking for deletion Pod {ns}/{name}")
        new = copy.deepcopy(pod)
        conds = [c for c in _d(new.get("status")).get("conditions") or [] if _d(c).get("type") != "DisruptionTarget"]
        conds.append({"type": "DisruptionTarget", "status": "True", "reason": "DeletionByTaintManager",
                      "message": "Taint manager: deleting due to NoExecute taint",
                      "lastProbeTime": None, "lastTransitionTime": format_rfc3339(_wall())})
        new.setdefault("status", {})["conditions"] = conds
        with contextlib.suppress(errors.Conflict, errors.NotFound):
            # Best effort: the condition only explains the deletion.
            await self.client.update("v1", "pods", new, subresource="status")
        try:
            await self.client.delete("v1", "pods", name, ns, preconditions={"uid": meta.get("uid")})
        except (errors.NotFound, errors.Conflict):
            return
        log.info("taint eviction: deleted pod %s/%s", ns, name)


CONTROLLERS: list[type[Controller]] = [NodeLifecycleController]
