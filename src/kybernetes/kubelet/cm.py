"""The kubelet's container manager: the QoS cgroup hierarchy, pod cgroups and node allocatable.

Contract (the kubelet's cgroupfs driver, ``cgroupsPerQOS: true``):

- :meth:`CgroupManager.setup` makes ``ROOT/kubepods`` and its ``burstable`` and ``besteffort``
  children (ROOT is ``cgroupRoot``, ``/`` by default). With ``enforceNodeAllocatable`` naming
  ``pods``, ``kubepods`` gets the node's allocatable (capacity less kube- and system-reserved; the
  eviction thresholds are not taken off the cgroup) as cpu shares, memory limit and pids limit;
  ``besteffort`` gets the minimum cpu shares (2), ``burstable`` the sum of its pods' cpu requests.
- :meth:`CgroupManager.ensure_pod` makes the pod's cgroup ``pod<uid>`` under its QoS class's
  cgroup (Guaranteed pods directly under ``kubepods``) and writes its limits
  (:func:`pod_resources`: cpu shares from the requests; a CFS quota and a memory limit only when
  every container declares one, as the kubelet's ``ResourceConfigForPod``; ``podPidsLimit``). It
  returns the cgroup's path, which the sandbox gets as CRI ``cgroup_parent``: containerd's
  cgroupfs driver then puts the sandbox and every container at ``<parent>/<id>``.
- :meth:`CgroupManager.remove_pod` removes the pod's cgroup from every hierarchy (runc removes
  the containers' own; what it leaves empty, e.g. in v1 hierarchies it created on the way, goes
  too); a cgroup still holding a process stays and the call says False.
- cgroup v2 (one tree, ``cpu.weight``/``cpu.max``/``memory.max``/``pids.max``, controllers enabled
  level by level through ``cgroup.subtree_control``) and v1 (``cpu.shares``/``cpu.cfs_*``/
  ``memory.limit_in_bytes``/``pids.max`` in their controllers' hierarchies) alike; where a cgroup
  lives is :mod:`kybernetes.kubelet.cgroups`' to say.
- A write the kernel refuses (a controller that is not there, a limit below current usage) is
  logged and skipped: a pod must still start on a machine that lacks a controller.
- :func:`node_allocatable`: capacity less reservations (kube, system, hard eviction), floored at 0.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kybernetes.api.obj import Obj
from kybernetes.api.podutil import pod_qos_class, pod_resource_totals, resource_list
from kybernetes.api.quantity import (
    BINARY_SI,
    DECIMAL_SI,
    cpu_millis,
    format_millicores,
    format_quantity,
    to_bytes,
)
from kybernetes.kubelet import cgroups

log = logging.getLogger(__name__)

KUBEPODS = "kubepods"
BURSTABLE = "burstable"
BESTEFFORT = "besteffort"
POD_PREFIX = "pod"
MIN_SHARES = 2
MAX_SHARES = 262_144
SHARES_PER_CPU = 1024
CPU_PERIOD = 100_000  # microseconds, the kubelet's CFS period
MIN_QUOTA = 1000
V1_CONTROLLERS = ("cpu", "cpuacct", "memory", "pids")
"""The v1 hierarchies made here; runc makes the others (cpuset copies its parent's) on the way."""
V2_CONTROLLERS = ("cpu", "memory", "pids")


def shares(millis: int) -> int:
    """The kubelet's MilliCPUToShares: 1024 per CPU, at least 2."""
    return min(MAX_SHARES, max(MIN_SHARES, millis * SHARES_PER_CPU // 1000)) if millis else MIN_SHARES


def quota(millis: int) -> int:
    """The kubelet's MilliCPUToQuota for the 100 ms period, at least 1 ms."""
    return max(MIN_QUOTA, millis * CPU_PERIOD // 1000)


def weight(cpu_shares: int) -> int:
    """cgroup v2 ``cpu.weight`` for v1 shares (runc's conversion: 2..262144 -> 1..10000)."""
    return 1 + ((cpu_shares - 2) * 9999) // 262142


@dataclass(frozen=True)
class Resources:
    """What is written to a cgroup: None leaves the kernel's default (no limit)."""

    cpu_shares: int = MIN_SHARES
    cpu_quota: int | None = None
    memory_limit: int | None = None
    pids_limit: int | None = None


def qos_class(pod: Obj) -> str:
    """status.qosClass (set by the API server), computed from the spec when it is missing."""
    found = (pod.get("status") or {}).get("qosClass")
    if found:
        return str(found)
    return pod_qos_class(pod.get("spec") or {})


def _limits_of(container: Mapping[str, object]) -> dict[str, int]:
    res = container.get("resources") or {}
    return resource_list(res.get("limits") if isinstance(res, dict) else None)


def _requests_of(container: Mapping[str, object]) -> dict[str, int]:
    res = container.get("resources") or {}
    if not isinstance(res, dict):
        return {}
    out = resource_list(res.get("limits"))
    out.update(resource_list(res.get("requests")))
    return out


def pod_resources(pod: Obj, pids_limit: int = -1) -> Resources:
    """The pod cgroup's limits (the kubelet's ResourceConfigForPod, see the module contract)."""
    spec = pod.get("spec") or {}
    overhead = resource_list(spec.get("overhead"))
    requests = pod_resource_totals(spec, _requests_of, lambda a, b: a + b, lambda a, b: a > b, overhead)
    limits = pod_resource_totals(spec, _limits_of, lambda a, b: a + b, lambda a, b: a > b, overhead)
    running = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    running += [c for c in spec.get("initContainers") or [] if isinstance(c, dict) and c.get("restartPolicy") == "Always"]
    cpu_declared = bool(running) and all(_limits_of(c).get("cpu") for c in running)
    memory_declared = bool(running) and all(_limits_of(c).get("memory") for c in running)
    pids = pids_limit if pids_limit > 0 else None
    if qos_class(pod) == "BestEffort":
        return Resources(pids_limit=pids)
    return Resources(cpu_shares=shares(requests.get("cpu", 0)),
                     cpu_quota=quota(limits["cpu"]) if cpu_declared and limits.get("cpu") else None,
                     memory_limit=limits["memory"] if memory_declared and limits.get("memory") else None,
                     pids_limit=pids)


def node_allocatable(capacity: Mapping[str, str], *reservations: Mapping[str, str | int]) -> dict[str, str]:
    """``capacity`` less every reservation (quantities or plain integers), each floored at 0 and
    printed as the kubelet prints it (cpu in millicores when not whole, the rest in capacity's format)."""
    out = dict(capacity)
    for resource, value in capacity.items():
        taken = 0
        for reserved in reservations:
            if resource in reserved:
                amount = reserved[resource]
                taken += amount if isinstance(amount, int) else (
                    cpu_millis(amount) if resource == "cpu" else to_bytes(amount))
        if not taken:
            continue
        if resource == "cpu":
            out[resource] = format_millicores(max(0, cpu_millis(value) - taken))
        else:
            fmt = DECIMAL_SI if resource == "pods" else BINARY_SI
            out[resource] = format_quantity(max(0, to_bytes(value) - taken), fmt)
    return out


class CgroupManager:
    """The QoS hierarchy and the pod cgroups of one kubelet (see the module contract)."""

    def __init__(self, cgroup_root: str = "/", *, fs_root: Path = cgroups.CGROUP_ROOT, pids_limit: int = -1) -> None:
        self.fs_root = Path(fs_root)
        self.kubepods = posixpath.join("/", cgroup_root.strip("/"), KUBEPODS)
        self.pids_limit = pids_limit
        self.v2 = cgroups.is_v2(self.fs_root)
        self._burstable_millis: dict[str, int] = {}  # uid -> cpu request of a Burstable pod made here
        self._made: dict[str, str] = {}  # uid -> its cgroup, made by ensure_pod since the last removal
        self._lock = threading.Lock()  # the kubelet calls in from worker threads

    # ---- names ----

    def qos_cgroup(self, qos: str) -> str:
        if qos == "Guaranteed":
            return self.kubepods
        return posixpath.join(self.kubepods, BURSTABLE if qos == "Burstable" else BESTEFFORT)

    def pod_cgroup(self, pod: Obj) -> str:
        """The pod's cgroup path (what the sandbox's cgroup_parent is)."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        return posixpath.join(self.qos_cgroup(qos_class(pod)), POD_PREFIX + uid)

    def pod_cgroup_candidates(self, uid: str) -> list[str]:
        return [posixpath.join(self.qos_cgroup(q), POD_PREFIX + uid) for q in ("Guaranteed", "Burstable", "BestEffort")]

    # ---- making and removing ----

    def setup(self, allocatable: Mapping[str, str] | None = None) -> None:
        """The QoS hierarchy; ``allocatable`` (None: not enforced) limits ``kubepods``."""
        node = Resources()
        if allocatable is not None:
            pids = allocatable.get("pids")
            node = Resources(cpu_shares=shares(cpu_millis(allocatable["cpu"])) if "cpu" in allocatable else MIN_SHARES,
                             memory_limit=to_bytes(allocatable["memory"]) if "memory" in allocatable else None,
                             pids_limit=to_bytes(pids) if pids is not None else None)
        self._make(self.kubepods, node if allocatable is not None else None)
        self._make(self.qos_cgroup("Burstable"), Resources(cpu_shares=shares(sum(self._burstable_millis.values()))))
        self._make(self.qos_cgroup("BestEffort"), Resources())

    def ensure_pod(self, pod: Obj) -> str:
        """Makes the pod's cgroup with its limits (once: pod resources do not change); returns its path."""
        name = self.pod_cgroup(pod)
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        if self._made.get(uid) == name and self._exists(name):
            return name
        with self._lock:
            return self._make_pod(pod, uid, name)

    def _make_pod(self, pod: Obj, uid: str, name: str) -> str:
        if not self._exists(self.kubepods):
            self.setup()
        self._make(name, pod_resources(pod, self.pids_limit))
        self._made[uid] = name
        if qos_class(pod) == "Burstable":
            self._burstable_millis[uid] = pod_resource_totals(
                pod.get("spec") or {}, _requests_of, lambda a, b: a + b, lambda a, b: a > b, {}).get("cpu", 0)
            self._update_burstable()
        return name

    def remove_pod(self, uid: str) -> bool:
        """Removes the pod's cgroup everywhere (see the module contract); True when none is left."""
        left = False
        with self._lock:
            self._made.pop(uid, None)
            for name in self.pod_cgroup_candidates(uid):
                left |= not cgroups.remove(name, self.fs_root)
            if self._burstable_millis.pop(uid, None) is not None:
                self._update_burstable()
        return not left

    def pod_uids(self, older_than: float = 0.0) -> set[str]:
        """UIDs of the pod cgroups that exist (to find those of pods that are gone), made at least
        `older_than` seconds ago: other kubelets of the machine share ``kubepods``, and a cgroup
        they just made for a sandbox about to start is not an orphan."""
        found: set[str] = set()
        now = time.time()
        for qos in ("Guaranteed", "Burstable", "BestEffort"):
            for directory in cgroups.cgroup_dirs(self.qos_cgroup(qos), self.fs_root):
                with contextlib.suppress(OSError):
                    found |= {p.name[len(POD_PREFIX):] for p in directory.iterdir()
                              if p.is_dir() and p.name.startswith(POD_PREFIX)
                              and now - p.stat().st_ctime >= older_than}
        return found

    # ---- the files ----

    def _exists(self, name: str) -> bool:
        return cgroups.controller_dir(name, "memory", self.fs_root).is_dir()

    def _update_burstable(self) -> None:
        total = sum(self._burstable_millis.values())
        self._write(self.qos_cgroup("Burstable"), "cpu", "cpu.weight" if self.v2 else "cpu.shares",
                    str(weight(shares(total)) if self.v2 else shares(total)))

    def _make(self, name: str, res: Resources | None) -> None:
        if self.v2:
            self._make_v2(name)
        else:
            for controller in V1_CONTROLLERS:
                directory = cgroups.controller_dir(name, controller, self.fs_root)
                if (self.fs_root / controller).is_dir():
                    with contextlib.suppress(FileExistsError):
                        directory.mkdir(parents=True)
        if res is not None:
            self._apply(name, res)

    def _make_v2(self, name: str) -> None:
        """Makes each level of `name` and enables the controllers for the level below it."""
        parts = [p for p in name.strip("/").split("/") if p]
        directory = self.fs_root
        for part in parts:
            self._enable_controllers(directory)
            directory = directory / part
            with contextlib.suppress(FileExistsError):
                directory.mkdir()

    def _enable_controllers(self, directory: Path) -> None:
        control = directory / "cgroup.subtree_control"
        try:
            enabled = set(control.read_text().split())
            available = set((directory / "cgroup.controllers").read_text().split())
        except OSError:
            return
        for controller in V2_CONTROLLERS:
            if controller in available and controller not in enabled:
                try:
                    control.write_text(f"+{controller}")
                except OSError as err:
                    log.warning("enabling %s in %s: %s", controller, directory, err)

    def _apply(self, name: str, res: Resources) -> None:
        if self.v2:
            self._write(name, "cpu", "cpu.weight", str(weight(res.cpu_shares)))
            self._write(name, "cpu", "cpu.max", f"{res.cpu_quota if res.cpu_quota else 'max'} {CPU_PERIOD}")
            self._write(name, "memory", "memory.max", str(res.memory_limit) if res.memory_limit else "max")
            self._write(name, "pids", "pids.max", str(res.pids_limit) if res.pids_limit else "max")
            return
        self._write(name, "cpu", "cpu.shares", str(res.cpu_shares))
        self._write(name, "cpu", "cpu.cfs_period_us", str(CPU_PERIOD))
        self._write(name, "cpu", "cpu.cfs_quota_us", str(res.cpu_quota) if res.cpu_quota else "-1")
        self._write(name, "memory", "memory.limit_in_bytes", str(res.memory_limit) if res.memory_limit else "-1")
        self._write(name, "pids", "pids.max", str(res.pids_limit) if res.pids_limit else "max")

    def _write(self, name: str, controller: str, filename: str, value: str) -> None:
        path = cgroups.controller_dir(name, controller, self.fs_root) / filename
        if not path.parent.is_dir():
            return
        try:
            path.write_text(value)
        except OSError as err:
            log.warning("writing %s to %s: %s", value, path, err)


__all__ = ["CgroupManager", "Resources", "node_allocatable", "pod_resources", "qos_class", "quota", "shares",
           "weight"]
