"""The kubelet's resource side, wired: the cgroup hierarchy, node allocatable and the eviction manager.

Contract (what :class:`~kybernetes.kubelet.kubelet.Kubelet` calls, each in one place):

- ``pod_cgroup(pod)`` before a sandbox is created: the pod's cgroup made (``cgroupsPerQOS``) and its
  path returned for the sandbox's ``cgroup_parent`` ("" with ``cgroupsPerQOS: false``: the runtime's
  default placement, as the kubelet).
- ``allocatable(capacity)`` for the node status: capacity less kubeReserved, systemReserved and the
  hard eviction thresholds; ``pressure()`` the pressure conditions that are True.
- ``eviction_pending(uid)`` / ``evict(pod)`` from the pod worker: an eviction the manager asked for
  is carried out in the pod's own worker (so no sync runs at the same time): the pod is killed
  with the eviction's grace, its status written Failed/Evicted, a Warning ``Evicted`` event
  recorded. ``status_override(uid, status)`` keeps that status on every later write. The first
  time a pod that the runtime does not run yet comes by, it is admitted or refused as the
  eviction manager's Admit does under pressure (refused: Failed/Evicted, ``The node had condition:
  [MemoryPressure]. ``).
- ``forget(uid)`` when the pod is cleaned up (its cgroup removed); ``remove_orphans(live)`` in the
  housekeeping removes the cgroups of pods that exist nowhere (after a kubelet restart).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kybernetes.api.obj import Obj
from kybernetes.api.quantity import to_bytes
from kybernetes.api.timeutil import format_rfc3339
from kybernetes.kubelet import cgroups, machine
from kybernetes.kubelet.cm import CgroupManager, node_allocatable
from kybernetes.kubelet.eviction import (
    REASON,
    EvictionManager,
    admission_refusal,
    hard_eviction_reservation,
    observe,
    parse_thresholds,
    runtime_pod_usage,
)

if TYPE_CHECKING:
    from kybernetes.kubelet.kubelet import Kubelet

log = logging.getLogger(__name__)

PRESSURE_EVENTS = {"MemoryPressure": ("NodeHasSufficientMemory", "NodeHasInsufficientMemory"),
                   "DiskPressure": ("NodeHasNoDiskPressure", "NodeHasDiskPressure"),
                   "PIDPressure": ("NodeHasSufficientPID", "NodeHasInsufficientPID")}
"""Condition -> the kubelet's events for it turning False / True."""

ORPHAN_MIN_AGE = 60.0
"""Seconds a pod cgroup of no pod this kubelet knows must exist before it is removed (only an empty
one can be: a live pod of another kubelet sharing kubepods keeps its own)."""


@dataclass(frozen=True)
class _Eviction:
    grace: int
    message: str
    condition: Obj | None


class NodeResources:
    """See the module contract."""

    def __init__(self, kubelet: Kubelet, *, fs_root: Path = cgroups.CGROUP_ROOT) -> None:
        cfg = kubelet.config
        self.kubelet = kubelet
        self.thresholds = parse_thresholds(cfg.eviction_hard, cfg.eviction_soft, cfg.eviction_soft_grace_period)
        self.cgroups = CgroupManager(cfg.cgroup_root, fs_root=fs_root, pids_limit=cfg.pod_pids_limit) \
            if cfg.cgroups_per_qos else None
        self._pending: dict[str, _Eviction] = {}
        self._evicted: dict[str, _Eviction] = {}
        self._admitted: set[str] = set()
        self.eviction: EvictionManager | None = None

    # ---- cgroups and allocatable ----

    def setup(self) -> None:
        if self.cgroups is None:
            return
        cfg = self.kubelet.config
        enforced = None
        if "pods" in cfg.enforce_node_allocatable:
            enforced = node_allocatable(self._capacity(), cfg.kube_reserved, cfg.system_reserved)
        self.cgroups.setup(enforced)

    def _capacity(self) -> dict[str, str]:
        info = machine.machine_info(self.kubelet.data_dir)
        return {"cpu": str(info.cpu), "memory": str(info.memory), "ephemeral-storage": str(info.ephemeral_storage),
                "pods": str(self.kubelet.config.max_pods)}

    def pod_cgroup(self, pod: Obj) -> str:
        return self.cgroups.ensure_pod(pod) if self.cgroups is not None else ""

    def allocatable(self, capacity: dict[str, str]) -> dict[str, str]:
        cfg = self.kubelet.config
        amounts = {k: to_bytes(v) for k, v in capacity.items() if k in ("memory", "ephemeral-storage")}
        return node_allocatable(capacity, cfg.kube_reserved, cfg.system_reserved,
                                hard_eviction_reservation(self.thresholds, amounts))

    def pressure(self) -> Collection[str]:
        return self.eviction.pressure() if self.eviction is not None else ()

    # ---- the eviction manager ----

    async def run(self) -> None:
        kl, cfg = self.kubelet, self.kubelet.config
        containerd = kl.containerd
        imagefs = containerd.root if containerd is not None and not containerd.external else kl.data_dir
        memory = machine.memory_bytes()

        def observations() -> dict[str, Any]:
            return observe(memory, kl.data_dir, imagefs if Path(imagefs).exists() else kl.data_dir)

        reported: set[str] = set()

        def notify() -> None:
            # The kubelet's node status events on each pressure transition ("Node N status is now: ...").
            now = set(self.pressure())
            for condition, (good, bad) in PRESSURE_EVENTS.items():
                if (condition in now) != (condition in reported):
                    event = bad if condition in now else good
                    kl._record_node("Normal", event, f"Node {kl.node_name} status is now: {event}")
            reported.clear()
            reported.update(now)
            if kl.node_status is not None:
                kl.node_status.notify()

        self.eviction = EvictionManager(
            self.thresholds, observe=observations, active_pods=self._active_pods, pod_usage=self._pod_usage,
            volume_usage=self._volume_usage, evict=self._request, record_node=kl._record_node, on_change=notify,
            pressure_transition_period=cfg.eviction_pressure_transition_period,
            max_pod_grace_period=cfg.eviction_max_pod_grace_period, monitoring_period=cfg.eviction_monitoring_period)
        await self.eviction.run()

    def _active_pods(self) -> list[Obj]:
        return [p for p in self.kubelet.pods()
                if (p.get("metadata") or {}).get("uid") not in self._pending
                and (p.get("metadata") or {}).get("uid") not in self._evicted]

    async def _pod_usage(self, pods: list[Obj]) -> dict[str, Any]:
        from kybernetes.kubelet import runtime as rtcfg
        from kybernetes.kubelet.volumes import EMPTY_DIR

        kl = self.kubelet
        assert kl.cri is not None

        def disk_dirs(pod: Obj) -> list[Path]:
            uid = str((pod.get("metadata") or {}).get("uid", ""))
            return [rtcfg.pod_log_dir(kl.log_root, pod), kl.pods_dir / uid / "volumes" / EMPTY_DIR]

        return await runtime_pod_usage(kl.cri, pods, disk_dirs=disk_dirs, pod_pids=self._pod_pids)

    def _pod_pids(self, uid: str) -> int:
        if self.cgroups is None:
            return 0
        for name in self.cgroups.pod_cgroup_candidates(uid):
            path = cgroups.controller_dir(name, "pids", self.cgroups.fs_root) / "pids.current"
            try:
                return int(path.read_text())
            except (OSError, ValueError):
                continue
        return 0

    def _volume_usage(self, uid: str, name: str) -> int | None:
        from kybernetes.kubelet.eviction import disk_usage
        from kybernetes.kubelet.volumes import EMPTY_DIR

        directory = self.kubelet.volumes.volume_dir(uid, EMPTY_DIR, name)
        return disk_usage(directory) if directory.is_dir() else None

    async def _request(self, pod: Obj, grace: int, message: str, condition: Obj | None) -> None:
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        if condition is not None:
            condition = {**condition, "lastProbeTime": None, "lastTransitionTime": format_rfc3339(time.time())}
        self._pending[uid] = _Eviction(grace, message, condition)
        log.info("evicting pod %s/%s: %s", (pod.get("metadata") or {}).get("namespace"),
                 (pod.get("metadata") or {}).get("name"), message)
        self.kubelet.workers.update(uid)

    # ---- in the pod worker ----

    def eviction_pending(self, uid: str) -> bool:
        if uid in self._pending:
            return True
        if uid in self._admitted:
            return False
        self._admitted.add(uid)
        pod = self.kubelet.pod_for(uid)
        status = (pod or {}).get("status") or {}
        relister = self.kubelet.relister
        if pod is None or status.get("phase") in ("Succeeded", "Failed") or status.get("startTime") or (
                relister is not None and uid in relister.runtime_uids()):
            return False  # gone, finished, or admitted before (startTime: a kubelet started it)
        refusal = admission_refusal(pod, self.pressure())
        if refusal is None:
            return False
        self._pending[uid] = _Eviction(0, refusal, None)
        return True

    async def evict(self, pod: Obj) -> None:
        kl = self.kubelet
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        request = self._pending.pop(uid)
        self._evicted[uid] = request
        rt = await kl.syncer.runtime_state(uid)
        await kl.syncer.terminate(pod, rt, request.grace)
        rt = await kl.syncer.runtime_state(uid)
        await kl._write_status(pod, rt)
        kl.record(pod, "Warning", REASON, request.message)

    def status_override(self, uid: str, status: Obj) -> Obj:
        request = self._evicted.get(uid)
        if request is None:
            return status
        out = {**status, "phase": "Failed", "reason": REASON, "message": request.message}
        if request.condition is not None:
            kept = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionTarget"]
            out["conditions"] = [*kept, request.condition]
        return out

    # ---- clean-up ----

    async def forget(self, uid: str) -> None:
        self._admitted.discard(uid)
        self._pending.pop(uid, None)
        self._evicted.pop(uid, None)
        if self.cgroups is not None and not await asyncio.to_thread(self.cgroups.remove_pod, uid):
            log.warning("the cgroup of pod %s is still in use", uid)

    async def remove_orphans(self, live: Collection[str]) -> None:
        """Removes the cgroups of pods in none of `live` or finished (Succeeded/Failed: their
        sandboxes are stopped, their cgroups empty, as the kubelet's cleanupOrphanedPodCgroups)."""
        if self.cgroups is None:
            return
        finished = {str((p.get("metadata") or {}).get("uid", "")) for p in self.kubelet.pods()
                    if (p.get("status") or {}).get("phase") in ("Succeeded", "Failed")}
        for uid in await asyncio.to_thread(self.cgroups.pod_uids, ORPHAN_MIN_AGE):
            if uid not in live or uid in finished:
                await asyncio.to_thread(self.cgroups.remove_pod, uid)
