"""The pod status, computed from what the runtime says, and written only when it changed.

`generate_status` is Kubernetes' generateAPIPodStatus over a `PodRuntime` (the pod's sandboxes and
container instances, newest first, read from the CRI by `sync`):

- containerStatuses / initContainerStatuses, one per spec container: `state` from the newest
  instance (running / terminated with exit code, reason Completed|Error|OOMKilled and the
  termination message / waiting), `lastState` from the one before, `restartCount` (the instance's
  restartCount annotation), `ready`, `started`, `image`, `imageID`, `containerID containerd://ID`.
  A container that has not run yet waits with ContainerCreating (PodInitializing while init
  containers are pending); one the last sync could not start waits with that sync's reason
  (ErrImagePull, ImagePullBackOff, CrashLoopBackOff, CreateContainerConfigError...), keeping the
  instance that died as lastState;
- sidecars (init containers with restartPolicy Always) have `started` and `ready` from their probes
  like app containers; they count as initialized once started, and for ContainersReady/Ready;
- phase: Pending until init containers are done (sidecars: started) and every container has run;
  Running while one runs, a sidecar included (or will be restarted); Succeeded when all app
  containers exited 0 and none will restart (stopped sidecars do not count); Failed when one failed
  and restartPolicy is Never (or an init container did), or with the (reason, message) of a pod sync
  handler (`evicted`: activeDeadlineSeconds) — and, a terminal phase is never left, as in Kubernetes;
  an unchanged phase keeps its reason and message;
- conditions PodReadyToStartContainers, Initialized ("containers with incomplete status: [a]"),
  ContainersReady and Ready ("containers with unready status: [c]", readiness gates, PodCompleted
  for finished pods) and PodScheduled (set if the scheduler did not), keeping each condition's
  lastTransitionTime while its status stays;
- ephemeralContainerStatuses the same way (never ready; no effect on phase or conditions);
- podIP(s) from the sandbox, hostIP(s), startTime (kept once set).

`StatusManager.update` writes the status with a strategic-merge PATCH of pods/NAME/status, which
merges conditions by type — conditions other components own survive — and only when the status
differs from what the pod (or our last write) already says, so a restarted kubelet that finds its
pods unchanged writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.podutil import readiness_gates_unmet
from kybernetes.api.timeutil import format_rfc3339
from kybernetes.client import Client
from kybernetes.kubelet.cri import api

log = logging.getLogger(__name__)

MAX_MESSAGE = 4096
FALLBACK_LINES = 80
FALLBACK_BYTES = 2048
OWNED = ("phase", "reason", "message", "conditions", "hostIP", "hostIPs", "podIP", "podIPs", "startTime",
         "containerStatuses", "initContainerStatuses", "ephemeralContainerStatuses", "qosClass")


def rfc3339(ns: int | float | None = None) -> str:
    """An API timestamp from nanoseconds since the epoch (now, if None)."""
    return format_rfc3339(None if ns is None else ns / 1e9)


@dataclass
class ContainerRecord:
    """One container instance of a pod, as the runtime reports it."""

    id: str
    name: str
    init: bool
    state: int  # api.ContainerState
    restart_count: int
    hash: str
    created_at: int = 0
    started_at: int = 0
    finished_at: int = 0
    exit_code: int = 0
    reason: str = ""
    message: str = ""
    image: str = ""
    image_ref: str = ""
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == api.CONTAINER_RUNNING

    @property
    def exited(self) -> bool:
        return self.state in (api.CONTAINER_EXITED, api.CONTAINER_UNKNOWN)

    def terminated(self) -> Obj:
        out: Obj = {"exitCode": self.exit_code, "reason": self.reason or ("Completed" if self.exit_code == 0 else "Error"),
                    "startedAt": rfc3339(self.started_at) if self.started_at else None,
                    "finishedAt": rfc3339(self.finished_at) if self.finished_at else None,
                    "containerID": f"containerd://{self.id}"}
        if self.message:
            out["message"] = self.message
        return out


@dataclass
class PodRuntime:
    """A pod's sandboxes and container instances in the runtime (newest first)."""

    uid: str
    sandboxes: list[api.PodSandbox] = field(default_factory=list)
    containers: dict[str, list[ContainerRecord]] = field(default_factory=dict)
    sandbox_id: str = ""  # the newest sandbox, if it is ready
    pod_ip: str = ""

    def latest(self, name: str) -> ContainerRecord | None:
        records = self.containers.get(name)
        return records[0] if records else None

    def running(self) -> list[ContainerRecord]:
        return [r for records in self.containers.values() for r in records if r.running]

    def all(self) -> list[ContainerRecord]:
        return [r for records in self.containers.values() for r in records]


def termination_message(status: api.ContainerStatus, policy: str, log_root: str = "") -> str:
    """The container's termination-message file (found through its mount), or with
    FallbackToLogsOnError and a failure, the tail of its log."""
    path = status.annotations.get("io.kubernetes.container.terminationMessagePath", "")
    text = ""
    for mount in status.mounts:
        if path and mount.container_path == path:
            try:
                with open(mount.host_path, "rb") as f:
                    text = f.read(MAX_MESSAGE).decode(errors="replace")
            except OSError:
                pass
    if not text and policy == "FallbackToLogsOnError" and status.exit_code != 0 and status.log_path:
        try:
            data = Path(status.log_path).read_bytes()[-64 * 1024:]
            lines = [line.split(b" ", 3)[-1] for line in data.splitlines()[-FALLBACK_LINES:]]
            text = b"\n".join(lines)[-FALLBACK_BYTES:].decode(errors="replace")
        except OSError:
            pass
    return text


def _condition(old: list[Obj], ctype: str, status: bool, reason: str = "", message: str = "") -> Obj:
    value = "True" if status else "False"
    prev = next((c for c in old if c.get("type") == ctype), None)
    since = prev.get("lastTransitionTime") if prev and prev.get("status") == value else None
    cond: Obj = {"type": ctype, "status": value, "lastProbeTime": None, "lastTransitionTime": since or rfc3339()}
    if reason:
        cond["reason"] = reason
    if message:
        cond["message"] = message
    return cond


def will_restart(policy: str, record: ContainerRecord) -> bool:
    return policy == "Always" or (policy == "OnFailure" and record.exit_code != 0)


def generate_status(pod: Obj, rt: PodRuntime, *, waiting: dict[str, tuple[str, str]],
                    is_ready: Callable[[str], bool], is_started: Callable[[str], bool],
                    host_ip: str, terminating: bool = False, evicted: tuple[str, str] | None = None) -> Obj:
    """The pod's status from what runs (the kubelet's generateAPIPodStatus): container statuses,
    phase, conditions and IPs, carrying over what the old status holds (start time, QoS class,
    condition transition times, the reason and message of an unchanged phase). `evicted`: the
    (reason, message) with which a pod sync handler (activeDeadlineSeconds) fails the pod."""
    spec = pod.get("spec") or {}
    old = pod.get("status") or {}
    old_conditions = list(old.get("conditions") or [])
    policy = spec.get("restartPolicy") or "Always"
    inits = spec.get("initContainers") or []

    init = _init_progress(inits, rt, waiting, policy, is_ready, is_started)
    apps_ran = any(r.running or r.exited for c in spec.get("containers") or [] for r in rt.containers.get(c["name"], []))
    if apps_ran and not init.failed:
        # Initialized for good once an app container ran, even while a sidecar restarts.
        init.done, init.incomplete = True, []
    default_wait = "ContainerCreating" if init.done else "PodInitializing"
    apps = _app_progress(spec.get("containers") or [], rt, waiting, default_wait, is_ready, is_started)
    phase = _phase(old.get("phase"), init, apps, policy, terminating, apps_ran)
    if evicted is not None:
        phase = "Failed"
    conditions = _pod_conditions(spec, old_conditions, rt, phase, init, init.unready + apps.unready)

    out: Obj = {"phase": phase, "conditions": conditions, "hostIP": host_ip,
                "hostIPs": [{"ip": host_ip}] if host_ip else [],
                "startTime": old.get("startTime") or rfc3339(), "containerStatuses": apps.statuses}
    pod_ip = rt.pod_ip or old.get("podIP") or ""
    if spec.get("hostNetwork"):
        pod_ip = host_ip
    if pod_ip:
        out["podIP"] = pod_ip
        out["podIPs"] = [{"ip": pod_ip}]
    if inits:
        out["initContainerStatuses"] = init.statuses
    if spec.get("ephemeralContainers"):
        out["ephemeralContainerStatuses"] = ephemeral_statuses(spec, rt, waiting)
    if old.get("qosClass"):
        out["qosClass"] = old["qosClass"]
    if evicted is not None:
        out["reason"], out["message"] = evicted
    elif phase == old.get("phase") and old.get("reason"):
        out["reason"], out["message"] = old["reason"], old.get("message", "")
    return out


@dataclass
class _InitProgress:
    """Where the init containers stand."""

    statuses: list[Obj] = field(default_factory=list)
    done: bool = True
    failed: bool = False
    incomplete: list[str] = field(default_factory=list)
    """Names of the init containers that have not succeeded (sidecars: started) yet."""
    sidecars_running: int = 0
    sidecars_pending: int = 0
    sidecars_waiting: int = 0
    unready: list[str] = field(default_factory=list)
    """Sidecars that are not ready (they count for ContainersReady)."""


@dataclass
class _AppProgress:
    """Where the app containers stand: their statuses and how many are in which state."""

    statuses: list[Obj] = field(default_factory=list)
    unready: list[str] = field(default_factory=list)
    running: int = 0
    waiting: int = 0
    stopped: int = 0
    succeeded: int = 0


def _init_progress(inits: list[Obj], rt: PodRuntime, waiting: dict[str, tuple[str, str]], policy: str,
                   is_ready: Callable[[str], bool], is_started: Callable[[str], bool]) -> _InitProgress:
    """Plain init containers are done once they exited 0; sidecars (restartPolicy Always) once
    they run and started (their startup probe passed, or they have none)."""
    out = _InitProgress()
    for c in inits:
        name = c["name"]
        latest = rt.latest(name)
        running = bool(latest and latest.running)
        if c.get("restartPolicy") == "Always":
            started = running and is_started(name)
            out.statuses.append(_container_status(c, rt, waiting, "PodInitializing", ready=started and is_ready(name),
                                                  started=started))
            _count_sidecar(out, out.statuses[-1], started)
            if not started:
                out.done = False
                out.incomplete.append(name)
            continue
        done = latest is not None and latest.exited and latest.exit_code == 0
        if not done:
            out.done = False
            out.incomplete.append(name)
            if latest is not None and latest.exited and policy == "Never":
                out.failed = True
        out.statuses.append(_container_status(c, rt, waiting, "PodInitializing", ready=done, started=running))
    return out


def _count_sidecar(out: _InitProgress, status: Obj, started: bool) -> None:
    """getPhase's view of a sidecar: running counts as running (pending until started); one that
    never ran is pending; one that stopped counts for nothing."""
    state = status["state"]
    if "running" in state:
        out.sidecars_running += 1
        out.sidecars_pending += 0 if started else 1
    elif "waiting" in state and not status.get("lastState", {}).get("terminated"):
        out.sidecars_pending += 1
        out.sidecars_waiting += 1
    if not status["ready"]:
        out.unready.append(status["name"])


def _app_progress(apps: list[Obj], rt: PodRuntime, waiting: dict[str, tuple[str, str]], default_wait: str,
                  is_ready: Callable[[str], bool], is_started: Callable[[str], bool]) -> _AppProgress:
    out = _AppProgress()
    for c in apps:
        name = c["name"]
        latest = rt.latest(name)
        ready = bool(latest and latest.running and is_ready(name))
        if not ready:
            out.unready.append(name)
        status = _container_status(c, rt, waiting, default_wait, ready=ready,
                                   started=bool(latest and latest.running and is_started(name)))
        out.statuses.append(status)
        state = status["state"]
        if "running" in state:
            out.running += 1
        elif "terminated" in state:
            out.stopped += 1
            if state["terminated"].get("exitCode") == 0:
                out.succeeded += 1
        elif status.get("lastState", {}).get("terminated"):
            out.stopped += 1
        else:
            out.waiting += 1
    return out


def ephemeral_statuses(spec: Obj, rt: PodRuntime, waiting: dict[str, tuple[str, str]]) -> list[Obj]:
    """``ephemeralContainerStatuses``: as other containers' (the kubelet converts them the same
    way, waiting with PodInitializing in a pod that has init containers), never ready, and no
    ``started``, which only probed containers report; they do not count towards the phase."""
    default_wait = "PodInitializing" if spec.get("initContainers") else "ContainerCreating"
    out = []
    for c in spec.get("ephemeralContainers") or []:
        status = _container_status(c, rt, waiting, default_wait, ready=False, started=False)
        status.pop("started", None)
        out.append(status)
    return out


def _phase(old_phase: str | None, init: _InitProgress, apps: _AppProgress, policy: str, terminating: bool,
           apps_ran: bool) -> str:
    """The pod phase, as the kubelet's getPhase decides it; a terminal phase never changes. Sidecars
    count as running while they run and as pending until started; stopped ones do not count."""
    if old_phase in ("Succeeded", "Failed"):
        return old_phase
    if init.failed:
        return "Failed"
    pending_init = not init.done or init.sidecars_pending > 0
    if (pending_init and not apps_ran) or apps.waiting > 0 or init.sidecars_waiting > 0:
        return "Pending"
    running = apps.running + init.sidecars_running
    if running > 0 and not terminating:
        return "Running"
    if apps.stopped > 0 and running == 0:
        if terminating:
            return "Succeeded" if apps.stopped == apps.succeeded else "Failed"
        if policy == "Always":
            return "Running"
        if apps.stopped == apps.succeeded:
            return "Succeeded"
        if policy == "Never":
            return "Failed"
        return "Running"
    if running > 0:
        return "Running"
    return "Pending"


def _pod_conditions(spec: Obj, old_conditions: list[Obj], rt: PodRuntime, phase: str, init: _InitProgress,
                    unready: list[str]) -> list[Obj]:
    """PodScheduled (kept if present), PodReadyToStartContainers, Initialized, ContainersReady, Ready."""
    terminal = phase in ("Succeeded", "Failed")
    inits = spec.get("initContainers") or []
    conditions = []
    if not any(c.get("type") == "PodScheduled" for c in old_conditions):
        conditions.append(_condition(old_conditions, "PodScheduled", True))
    conditions.append(_condition(old_conditions, "PodReadyToStartContainers",
                                 bool(rt.sandbox_id) and not terminal))
    if init.done or (terminal and not init.failed and not inits):
        conditions.append(_condition(old_conditions, "Initialized", True))
    else:
        conditions.append(_condition(old_conditions, "Initialized", False, "ContainersNotInitialized",
                                     f"containers with incomplete status: [{' '.join(init.incomplete)}]"))
    missing_gates = readiness_gates_unmet(spec, old_conditions)
    if terminal:
        conditions.append(_condition(old_conditions, "ContainersReady", False, "PodCompleted"))
        conditions.append(_condition(old_conditions, "Ready", False, "PodCompleted"))
    elif not init.done:
        msg = f"containers with incomplete status: [{' '.join(init.incomplete)}]"
        conditions.append(_condition(old_conditions, "ContainersReady", False, "ContainersNotInitialized", msg))
        conditions.append(_condition(old_conditions, "Ready", False, "ContainersNotInitialized", msg))
    elif unready:
        msg = f"containers with unready status: [{' '.join(unready)}]"
        conditions.append(_condition(old_conditions, "ContainersReady", False, "ContainersNotReady", msg))
        conditions.append(_condition(old_conditions, "Ready", False, "ContainersNotReady", msg))
    else:
        conditions.append(_condition(old_conditions, "ContainersReady", True))
        if missing_gates:
            conditions.append(_condition(old_conditions, "Ready", False, "ReadinessGatesNotReady",
                                         f"corresponding condition of pod readiness gate \"{missing_gates[0]}\" does not exist."))
        else:
            conditions.append(_condition(old_conditions, "Ready", True))
    return conditions


def _container_status(c: Obj, rt: PodRuntime, waiting: dict[str, tuple[str, str]], default_wait: str,
                      *, ready: bool, started: bool) -> Obj:
    name = c["name"]
    records = rt.containers.get(name) or []
    out: Obj = {"name": name, "image": c.get("image", ""), "imageID": "", "ready": ready,
                "restartCount": 0, "started": started, "lastState": {}, "state": {}}
    reason, message = waiting.get(name, ("", ""))
    if not records:
        out["state"] = {"waiting": _waiting(reason or default_wait, message)}
        return out
    latest = records[0]
    out["restartCount"] = latest.restart_count
    out["containerID"] = f"containerd://{latest.id}"
    out["imageID"] = latest.image_ref
    previous = next((r for r in records[1:] if r.exited), None)
    if previous is not None:
        out["lastState"] = {"terminated": previous.terminated()}
    if latest.running:
        out["state"] = {"running": {"startedAt": rfc3339(latest.started_at or latest.created_at)}}
    elif latest.exited and reason:
        # It will be started again (the last sync said why it has not been yet).
        out["state"] = {"waiting": _waiting(reason, message)}
        out["lastState"] = {"terminated": latest.terminated()}
    elif latest.exited:
        out["state"] = {"terminated": latest.terminated()}
    else:
        out["state"] = {"waiting": _waiting(reason or "ContainerCreating", message)}
    return out


def _waiting(reason: str, message: str) -> Obj:
    return {"reason": reason, "message": message} if message else {"reason": reason}


def _comparable(status: Obj) -> Obj:
    out = {k: status.get(k) for k in OWNED if status.get(k) not in (None, [], {})}
    conds = out.get("conditions")
    if conds:
        out["conditions"] = sorted(({k: v for k, v in c.items() if k != "lastProbeTime" and v is not None}
                                    for c in conds), key=lambda c: c["type"])
    return out


class StatusManager:
    """Writes pod statuses with strategic-merge patches, skipping writes that change nothing."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._last: dict[str, Obj] = {}

    def forget(self, uid: str) -> None:
        self._last.pop(uid, None)

    def last(self, uid: str) -> Obj | None:
        return self._last.get(uid)

    async def update(self, pod: Obj, status: Obj, *, api_uid: str = "") -> Obj | None:
        """PATCHes `status` onto the API pod (`api_uid`: the mirror pod's uid for static pods);
        returns the patched pod, or None when nothing had to be written or the pod is gone."""
        m = pod.get("metadata") or {}
        uid = m.get("uid", "")
        wanted = _comparable(status)
        current = pod.get("status") or {}
        merged_current = _comparable({**current, "conditions": _merge_conditions(current.get("conditions"), [])})
        if self._last.get(uid) == wanted or merged_current == _comparable(
                {**status, "conditions": _merge_conditions(current.get("conditions"), status.get("conditions"))}):
            self._last[uid] = wanted
            return None
        body: Obj = {"metadata": {"uid": api_uid or uid}, "status": status}
        try:
            out = await self.client.patch("v1", "pods", m.get("name", ""), body, m.get("namespace", ""),
                                          patch_type="strategic", subresource="status")
        except (errors.NotFound, errors.Conflict, errors.Invalid) as err:
            log.info("status of pod %s/%s not written: %s", m.get("namespace"), m.get("name"), err)
            return None
        self._last[uid] = wanted
        return out


def _merge_conditions(old: list[Obj] | None, new: list[Obj] | None) -> list[Obj]:
    by_type = {c.get("type"): c for c in old or []}
    for c in new or []:
        by_type[c.get("type")] = c
    return list(by_type.values())
