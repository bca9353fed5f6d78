"""The kubelet's eviction manager: node-pressure signals, thresholds, conditions and pod eviction.

Contract (kubelet 1.32's ``pkg/kubelet/eviction``):

- Thresholds (:func:`parse_thresholds`): ``--eviction-hard`` / ``evictionHard`` and the soft ones
  with their grace periods, ``signal<quantity`` or ``signal<percent%`` (of the signal's
  capacity); ``0%`` and ``100%`` are ignored; errors use the kubelet's wording (``unsupported
  eviction signal X``, ``grace period must be specified for the soft eviction threshold X``...).
- Signals (:func:`observe`): ``memory.available`` = memory capacity - the root cgroup's working
  set (:mod:`kybernetes.kubelet.cgroups`); ``nodefs.*`` from statvfs of the kubelet's data
  directory, ``imagefs.*`` of the runtime's image store (``containerfs.*`` are nodefs's);
  ``pid.available`` = min(pid_max, threads-max) - the tasks running.
- Each round (:meth:`EvictionManager.synchronize`, every ``monitoring_period``, the kubelet's 10 s):
  first pods whose emptyDir volumes exceed their ``sizeLimit`` are evicted (at once, grace 0,
  ``Usage of EmptyDir volume "V" exceeds the limit "Q". ``). Then a hard threshold that is met
  counts at once, a soft one after it was met for its grace period without a break. The
  conditions of the met thresholds (MemoryPressure, DiskPressure, PIDPressure) are reported and
  stay for ``pressure_transition_period`` after the last time they were met (the node lifecycle
  controller turns them into the ``node.kubernetes.io/*-pressure:NoSchedule`` taints). With a
  threshold met, at most one pod is evicted per round, the first by the kubelet's ranking:
  memory: pods whose usage exceeds their request first, then lower priority, then more usage
  above the request; disk the same with ephemeral storage; PIDs by priority then process count.
  Static pods and pods of system-critical priority are never evicted for node pressure.
- An eviction (the ``evict`` callback) is the kubelet's: the pod is killed with grace 1 s for a
  hard threshold, or min(``evictionMaxPodGracePeriod``, the pod's) for a soft one; its status
  becomes phase Failed, reason ``Evicted`` and the message :func:`eviction_message` writes
  (``The node was low on resource: memory. Threshold quantity: 100Mi, available: 512Ki. ...``),
  with a DisruptionTarget condition (reason TerminationByKubelet) for node-pressure evictions;
  a Warning event ``Evicted`` carries the same message.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import struct
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kybernetes.api.obj import Obj
from kybernetes.api.podutil import pod_requests
from kybernetes.api.quantity import BINARY_SI, DECIMAL_SI, canonical, format_quantity, parse_quantity
from kybernetes.api.timeutil import parse_duration
from kybernetes.kubelet import cgroups

log = logging.getLogger(__name__)

REASON = "Evicted"
NODE_LOW_MESSAGE = "The node was low on resource: {}. "
NODE_CONDITION_MESSAGE = "The node had condition: {}. "
THRESHOLD_MET_MESSAGE = "Threshold quantity: {}, available: {}. "
CONTAINER_MESSAGE = "Container {} was using {}, request is {}, has larger consumption of {}. "
EMPTY_DIR_MESSAGE = 'Usage of EmptyDir volume "{}" exceeds the limit "{}". '
DISRUPTION_TARGET_REASON = "TerminationByKubelet"
IMMEDIATE_GRACE_SECONDS = 1  # the kubelet's immediateEvictionGracePeriodSeconds
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
MEMORY_PRESSURE, DISK_PRESSURE, PID_PRESSURE = "MemoryPressure", "DiskPressure", "PIDPressure"

_SIGNAL_ORDER = {MEMORY_PRESSURE: 0, DISK_PRESSURE: 1, PID_PRESSURE: 2}
SIGNALS: dict[str, tuple[str, str]] = {
    # signal -> (node condition, resource reclaimed)
    "memory.available": (MEMORY_PRESSURE, "memory"),
    "allocatableMemory.available": (MEMORY_PRESSURE, "memory"),
    "nodefs.available": (DISK_PRESSURE, "ephemeral-storage"),
    "nodefs.inodesFree": (DISK_PRESSURE, "inodes"),
    "imagefs.available": (DISK_PRESSURE, "ephemeral-storage"),
    "imagefs.inodesFree": (DISK_PRESSURE, "inodes"),
    "containerfs.available": (DISK_PRESSURE, "ephemeral-storage"),
    "containerfs.inodesFree": (DISK_PRESSURE, "inodes"),
    "pid.available": (PID_PRESSURE, "pids"),
}


def _float32(value: float) -> float:
    result: float = struct.unpack("f", struct.pack("f", value))[0]
    return result


@dataclass(frozen=True)
class Threshold:
    """``signal < value``: an absolute quantity, or a fraction of the signal's capacity (float32,
    as the kubelet keeps it); ``grace_period`` 0 is a hard threshold."""

    signal: str
    quantity: int | None = None
    percentage: float | None = None
    grace_period: float = 0.0

    @property
    def hard(self) -> bool:
        return self.grace_period == 0

    def value(self, capacity: int) -> int:
        """The threshold in the signal's units (the kubelet's GetThresholdQuantity)."""
        if self.quantity is not None:
            return self.quantity
        return int(float(capacity) * float(self.percentage or 0.0))


def _parse_statement(signal: str, text: str) -> Threshold | None:
    if signal not in SIGNALS:
        raise ValueError(f"unsupported eviction signal {signal}")
    text = text.strip()
    if text.endswith("%"):
        if text in ("0%", "100%"):
            return None
        try:
            percentage = _float32(_float32(float(text.rstrip("%"))) / 100)
        except ValueError:
            raise ValueError(f'strconv.ParseFloat: parsing "{text.rstrip("%")}": invalid syntax') from None
        if percentage < 0:
            raise ValueError(f"eviction percentage threshold {signal} must be >= 0%: {text}")
        if percentage > 1:
            raise ValueError(f"eviction percentage threshold {signal} must be <= 100%: {text}")
        return Threshold(signal, percentage=percentage)
    amount = parse_quantity(text)
    if amount <= 0:
        raise ValueError(f"eviction threshold {signal} must be positive: {canonical(text)}")
    return Threshold(signal, quantity=int(-(-amount // 1)))


def parse_thresholds(hard: Mapping[str, str], soft: Mapping[str, str] | None = None,
                     soft_grace_period: Mapping[str, str] | None = None) -> list[Threshold]:
    """The kubelet's ParseThresholdConfig (hard first, then soft with their grace periods)."""
    out = [t for t in (_parse_statement(s, v) for s, v in hard.items()) if t is not None]
    periods: dict[str, float] = {}
    for signal, text in (soft_grace_period or {}).items():
        if signal not in SIGNALS:
            raise ValueError(f"unsupported eviction signal {signal}")
        seconds = parse_duration(text)
        if seconds < 0:
            raise ValueError(f"invalid eviction grace period specified: {text}, must be a positive value")
        periods[signal] = seconds
    for signal, text in (soft or {}).items():
        threshold = _parse_statement(signal, text)
        if threshold is None:
            continue
        if signal not in periods:
            raise ValueError(f"grace period must be specified for the soft eviction threshold {signal}")
        out.append(Threshold(signal, threshold.quantity, threshold.percentage, periods[signal]))
    return out


def hard_eviction_reservation(thresholds: Iterable[Threshold], capacity: Mapping[str, int]) -> dict[str, int]:
    """What the hard memory.available and nodefs.available thresholds take off allocatable."""
    out: dict[str, int] = {}
    for t in thresholds:
        if not t.hard:
            continue
        if t.signal == "memory.available" and "memory" in capacity:
            out["memory"] = t.value(capacity["memory"])
        elif t.signal == "nodefs.available" and "ephemeral-storage" in capacity:
            out["ephemeral-storage"] = t.value(capacity["ephemeral-storage"])
    return out


# ---- signals ----


@dataclass(frozen=True)
class Observation:
    available: int
    capacity: int


def _fs(path: Path) -> tuple[Observation, Observation]:
    st = os.statvfs(path)
    return (Observation(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize),
            Observation(st.f_ffree, st.f_files))


def pid_observation(proc_root: Path = cgroups.PROC_ROOT) -> Observation:
    """min(pid_max, threads-max) as capacity; the tasks in /proc/loadavg as usage (sysinfo's procs)."""
    capacity = min(int((proc_root / "sys/kernel/pid_max").read_text()),
                   int((proc_root / "sys/kernel/threads-max").read_text()))
    running = int((proc_root / "loadavg").read_text().split()[3].split("/")[1])
    return Observation(capacity - running, capacity)


def observe(memory_capacity: int, nodefs: Path, imagefs: Path, *, cgroup_root: Path = cgroups.CGROUP_ROOT,
            proc_root: Path = cgroups.PROC_ROOT) -> dict[str, Observation]:
    """Every signal's available amount and capacity now (see the module contract)."""
    usage = cgroups.node_usage(cgroup_root, proc_root)
    out = {"memory.available": Observation(max(0, memory_capacity - usage.working_set), memory_capacity)}
    node_bytes, node_inodes = _fs(nodefs)
    image_bytes, image_inodes = _fs(imagefs)
    out.update({"nodefs.available": node_bytes, "nodefs.inodesFree": node_inodes,
                "containerfs.available": node_bytes, "containerfs.inodesFree": node_inodes,
                "imagefs.available": image_bytes, "imagefs.inodesFree": image_inodes})
    with contextlib.suppress(OSError, ValueError, IndexError):
        out["pid.available"] = pid_observation(proc_root)
    return out


def _format(resource: str, amount: int) -> str:
    return format_quantity(amount, DECIMAL_SI if resource in ("inodes", "pids") else BINARY_SI)


# ---- pods: usage, ranking, messages ----


@dataclass
class PodUsage:
    """One pod's usage of what is reclaimed: memory working set, disk bytes, process count."""

    memory: dict[str, int] = field(default_factory=dict)  # container name -> working set
    disk: int = 0
    pids: int = 0


def priority(pod: Obj) -> int:
    value = (pod.get("spec") or {}).get("priority")
    return int(value) if isinstance(value, int) else 0


def is_critical(pod: Obj) -> bool:
    """Never evicted for node pressure: static and mirror pods, system-critical priority."""
    from kybernetes.kubelet.staticpods import is_mirror, is_static

    return is_static(pod) or is_mirror(pod) or priority(pod) >= SYSTEM_CRITICAL_PRIORITY


def rank(pods: list[Obj], resource: str, usage: Mapping[str, PodUsage]) -> list[Obj]:
    """Pods in eviction order for `resource` (the kubelet's rankMemoryPressure and friends)."""
    def uid(pod: Obj) -> str:
        return str((pod.get("metadata") or {}).get("uid", ""))

    def key(pod: Obj) -> tuple[int, int, int]:
        used = usage.get(uid(pod)) or PodUsage()
        if resource == "pids":
            return (0, priority(pod), -used.pids)
        if resource == "memory":
            amount, request = sum(used.memory.values()), pod_requests(pod).get("memory", 0)
        else:
            amount, request = used.disk, pod_requests(pod).get("ephemeral-storage", 0)
        return (0 if amount > request else 1, priority(pod), -(amount - request))

    return sorted(pods, key=key)


def eviction_message(resource: str, pod: Obj, threshold: Threshold | None, observation: Observation | None,
                     usage: PodUsage | None) -> str:
    """The kubelet's evictionMessage: the resource, the threshold met, containers above their request."""
    message = NODE_LOW_MESSAGE.format(resource)
    if threshold is not None and observation is not None:
        unit = "inodes" if resource == "inodes" else resource
        message += THRESHOLD_MET_MESSAGE.format(_format(unit, threshold.value(observation.capacity)),
                                                _format(unit, observation.available))
    if resource == "memory" and usage is not None:
        for c in (pod.get("spec") or {}).get("containers") or []:
            used = usage.memory.get(c.get("name", ""))
            request = ((c.get("resources") or {}).get("requests") or {}).get("memory")
            request_bytes = int(parse_quantity(request)) if request is not None else 0
            if used is not None and used > request_bytes:
                message += CONTAINER_MESSAGE.format(c.get("name"), _format("memory", used),
                                                    canonical(request) if request is not None else "0", resource)
    return message


def admission_refusal(pod: Obj, conditions: Iterable[str]) -> str | None:
    """Why a new pod is refused under pressure (the eviction manager's Admit), None to admit it:
    critical pods always run; under MemoryPressure alone, pods that are not BestEffort, or that
    tolerate the memory-pressure taint; under any other pressure no pod."""
    from kybernetes.api.scheduling import tolerations_tolerate_taint
    from kybernetes.kubelet.cm import qos_class

    present = sorted(conditions, key=lambda c: _SIGNAL_ORDER.get(c, 9))
    if not present or is_critical(pod):
        return None
    if present == [MEMORY_PRESSURE]:
        if qos_class(pod) != "BestEffort":
            return None
        taint = {"key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule"}
        if tolerations_tolerate_taint((pod.get("spec") or {}).get("tolerations") or [], taint):
            return None
    return NODE_CONDITION_MESSAGE.format("[" + " ".join(present) + "]")


def empty_dir_overuse(pod: Obj, volume_usage: Callable[[str], int | None]) -> str | None:
    """The eviction message when one of the pod's emptyDir volumes is above its sizeLimit."""
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        source = volume.get("emptyDir")
        if not isinstance(source, dict) or source.get("sizeLimit") is None:
            continue
        used = volume_usage(str(volume.get("name", "")))
        if used is not None and used > parse_quantity(source["sizeLimit"]):
            return EMPTY_DIR_MESSAGE.format(volume.get("name"), canonical(source["sizeLimit"]))
    return None


def disk_usage(path: Path) -> int:
    """Bytes a directory tree takes on disk (allocated blocks, hard links once; du -s)."""
    total, seen = 0, set()
    for root, dirs, files in os.walk(path, onerror=lambda err: None):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(root, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


async def runtime_pod_usage(cri: object, pods: list[Obj], *, disk_dirs: Callable[[Obj], list[Path]],
                            pod_pids: Callable[[str], int]) -> dict[str, PodUsage]:
    """Each pod's usage: containers' working sets and writable layers from the CRI's
    ListContainerStats, plus the bytes under `disk_dirs(pod)` (logs, local volumes) and
    `pod_pids(uid)` processes (the pod cgroup's pids.current)."""
    from kybernetes.kubelet.runtime import LABEL_CONTAINER_NAME, LABEL_POD_UID

    wanted = {str((p.get("metadata") or {}).get("uid", "")): p for p in pods}
    out = {uid: PodUsage() for uid in wanted}
    for st in await cri.list_container_stats():  # type: ignore[attr-defined]
        labels = st.attributes.labels
        used = out.get(labels.get(LABEL_POD_UID, ""))
        if used is None:
            continue
        used.memory[labels.get(LABEL_CONTAINER_NAME, st.attributes.metadata.name)] = int(
            st.memory.working_set_bytes.value)
        used.disk += int(st.writable_layer.used_bytes.value)

    def measure() -> None:
        for uid, pod in wanted.items():
            out[uid].disk += sum(disk_usage(d) for d in disk_dirs(pod) if d.is_dir())
            out[uid].pids = pod_pids(uid)

    await asyncio.to_thread(measure)
    return out


Evict = Callable[[Obj, int, str, "Obj | None"], Awaitable[None]]
"""(pod, grace seconds, message, DisruptionTarget condition or None): kill the pod, mark it Evicted."""


class EvictionManager:
    """Runs the rounds of the module contract; `pressure()` is what the node status reports."""

    def __init__(self, thresholds: list[Threshold], *, observe: Callable[[], dict[str, Observation]],
                 active_pods: Callable[[], list[Obj]],
                 pod_usage: Callable[[list[Obj]], Awaitable[dict[str, PodUsage]]],
                 volume_usage: Callable[[str, str], int | None], evict: Evict,
                 record_node: Callable[[str, str, str], None], on_change: Callable[[], None],
                 pressure_transition_period: float = 300.0, max_pod_grace_period: int = 0,
                 monitoring_period: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.thresholds = thresholds
        self._observe, self._active_pods, self._pod_usage = observe, active_pods, pod_usage
        self._volume_usage, self._evict, self._record_node, self._on_change = volume_usage, evict, record_node, on_change
        self.pressure_transition_period = pressure_transition_period
        self.max_pod_grace_period = max_pod_grace_period
        self.monitoring_period = monitoring_period
        self._clock = clock
        self._first_met: dict[Threshold, float] = {}
        self._condition_seen: dict[str, float] = {}
        self._conditions: frozenset[str] = frozenset()
        self.observations: dict[str, Observation] = {}

    def pressure(self) -> frozenset[str]:
        """The pressure conditions that are True now."""
        return self._conditions

    async def run(self) -> None:
        while True:
            try:
                await self.synchronize()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("eviction manager")
            await asyncio.sleep(self.monitoring_period)

    async def synchronize(self) -> list[Obj]:
        """One round; returns the pods it evicted."""
        pods = [p for p in self._active_pods() if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
        evicted = await self._local_storage(pods)
        if evicted:
            return evicted
        self.observations = await asyncio.to_thread(self._observe)
        met = self._update_conditions()
        if not met:
            return []
        threshold = min(met, key=lambda t: _SIGNAL_ORDER[SIGNALS[t.signal][0]])
        resource = SIGNALS[threshold.signal][1]
        self._record_node("Warning", "EvictionThresholdMet", f"Attempting to reclaim {resource}")
        candidates = [p for p in pods if not is_critical(p)]
        if not candidates:
            log.warning("eviction manager: no pod to evict for %s", threshold.signal)
            return []
        usage = await self._pod_usage(candidates)
        pod = rank(candidates, resource, usage)[0]
        grace = IMMEDIATE_GRACE_SECONDS
        if not threshold.hard:
            own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
            grace = min(self.max_pod_grace_period, int(own)) if isinstance(own, int) else self.max_pod_grace_period
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        message = eviction_message(resource, pod, threshold, self.observations.get(threshold.signal), usage.get(uid))
        condition = {"type": "DisruptionTarget", "status": "True", "reason": DISRUPTION_TARGET_REASON,
                     "message": message}
        await self._evict(pod, grace, message, condition)
        return [pod]

    def _update_conditions(self) -> list[Threshold]:
        """Thresholds met now (soft ones only past their grace period); conditions updated."""
        now = self._clock()
        met: list[Threshold] = []
        for t in self.thresholds:
            seen = self.observations.get(t.signal)
            if seen is None or seen.available >= t.value(seen.capacity):
                self._first_met.pop(t, None)
                continue
            if now - self._first_met.setdefault(t, now) >= t.grace_period:
                met.append(t)
                self._condition_seen[SIGNALS[t.signal][0]] = now
        conditions = frozenset(c for c, at in self._condition_seen.items()
                               if at == now or now - at < self.pressure_transition_period)
        if conditions != self._conditions:
            self._conditions = conditions
            self._on_change()
        return met

    async def _local_storage(self, pods: list[Obj]) -> list[Obj]:
        """Pods with an emptyDir above its sizeLimit, evicted at once."""
        sized = [p for p in pods if any(isinstance(v.get("emptyDir"), dict) and v["emptyDir"].get("sizeLimit")
                                        for v in (p.get("spec") or {}).get("volumes") or [])]
        evicted = []
        for pod in sized:
            uid = str((pod.get("metadata") or {}).get("uid", ""))
            message = await asyncio.to_thread(empty_dir_overuse, pod, functools.partial(self._volume_usage, uid))
            if message is not None:
                await self._evict(pod, 0, message, None)
                evicted.append(pod)
        return evicted


__all__ = [
    "REASON",
    "SIGNALS",
    "EvictionManager",
    "Observation",
    "PodUsage",
    "Threshold",
    "admission_refusal",
    "empty_dir_overuse",
    "eviction_message",
    "hard_eviction_reservation",
    "observe",
    "parse_thresholds",
    "rank",
    "runtime_pod_usage",
]
