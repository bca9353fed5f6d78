"""Init containers and sidecars (init containers with ``restartPolicy: Always``), as kubelet 1.32
runs them (``computeInitContainerActions``, ``kuberuntime_termination_order.go``).

`init_actions(pod, rt, probes)` is one pass's decision over the init containers. Walking them from
the last one that ever ran (earlier ones are done: completed ones may since have been removed):

- a plain init container that runs: wait for it; one that exited 0: start the next (or the pod is
  initialized if it was the last); one that failed: restart it, or with restartPolicy Never the pod
  has failed;
- a sidecar that runs: with a startup probe, wait until it passed (kill and restart it if it failed:
  "Init container S failed startup probe"); once started, start the next init container (or the pod
  is initialized). A changed definition ("Init container S definition changed") or a failed liveness
  probe ("Init container S failed liveness probe") restarts it;
- a sidecar that exited is restarted — whatever the pod's restartPolicy, with the usual back-off;
- sidecars before that one are kept running the same way (restarted when they exited or vanished).

Once any app container runs, the pod counts as initialized for good: plain init containers never run
again, sidecars are only kept running.

`TerminationOrdering` is the order of a pod's shutdown: every container's preStop hook runs at once,
app containers are stopped first, each sidecar waits for the app containers and the sidecars after it
(so they stop in reverse order), never beyond its grace period.

`app_containers_done(pod, rt)`: with restartPolicy Never or OnFailure, once no app container runs or
is going to be (re)started, the kubelet kills the pod, sidecars included (Jobs complete).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Protocol

from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.kubelet import runtime as rtcfg
from kybernetes.kubelet.lifecycle import REASON_LIVENESS, REASON_STARTUP
from kybernetes.kubelet.status import ContainerRecord, PodRuntime, will_restart


class ProbeResults(Protocol):
    def is_started(self, pod_uid: str, name: str) -> bool: ...
    def startup_failed(self, pod_uid: str, name: str) -> bool: ...
    def liveness_failed(self, pod_uid: str, name: str) -> bool: ...


def is_sidecar(container: Obj) -> bool:
    """An init container that keeps running (``restartPolicy: Always``)."""
    return container.get("restartPolicy") == "Always"


def sidecars(spec: Obj) -> list[Obj]:
    return [c for c in spec.get("initContainers") or [] if is_sidecar(c)]


def long_running(spec: Obj) -> list[Obj]:
    """Containers whose probes and readiness count: the sidecars, then the app containers."""
    return sidecars(spec) + list(spec.get("containers") or [])


@dataclass
class Kill:
    record: ContainerRecord
    message: str
    reason: str = ""  # REASON_LIVENESS / REASON_STARTUP: the probe's grace period applies


@dataclass
class InitActions:
    start: list[Obj] = field(default_factory=list)
    """Init containers to start (or restart), in spec order."""
    kill: list[Kill] = field(default_factory=list)
    initialized: bool = False
    failed: bool = False
    """A plain init container failed and restartPolicy is Never: the pod is over."""


def _uid(pod: Obj) -> str:
    return str((pod.get("metadata") or {}).get("uid", ""))


def init_actions(pod: Obj, rt: PodRuntime, probes: ProbeResults) -> InitActions:
    """What to do about the init containers in this pass (module doc)."""
    spec = pod.get("spec") or {}
    inits = list(spec.get("initContainers") or [])
    out = InitActions()
    if not inits:
        out.initialized = True
        return out
    out.initialized = any((r := rt.latest(c["name"])) is not None and not r.exited
                          for c in spec.get("containers") or [])
    before_done = out.initialized
    restart_on_failure = (spec.get("restartPolicy") or "Always") != "Never"
    to_start: list[int] = []
    uid = _uid(pod)
    for i in range(len(inits) - 1, -1, -1):
        c = inits[i]
        sidecar = is_sidecar(c)
        latest = rt.latest(c["name"])
        if latest is None:
            if before_done and sidecar:
                to_start.append(i)
            continue
        if before_done and not sidecar:
            continue
        if latest.running and sidecar:
            _running_sidecar(c, i, inits, latest, uid, probes, before_done, to_start, out)
        elif latest.exited and sidecar:
            to_start.append(i)
        elif latest.exited:
            if latest.exit_code != 0:
                if not restart_on_failure:
                    out.failed = True
                    out.start = []
                    return out
                to_start.append(i)
            elif i == len(inits) - 1:
                out.initialized = True
            else:
                to_start.append(i + 1)
        elif not latest.running:  # created but never started: start it again
            to_start.append(i)
        before_done = True
    if not before_done:
        to_start.append(0)
    out.start = [inits[i] for i in sorted(set(to_start))]
    return out


def _running_sidecar(c: Obj, i: int, inits: list[Obj], latest: ContainerRecord, uid: str, probes: ProbeResults,
                     before_done: bool, to_start: list[int], out: InitActions) -> None:
    name = c["name"]
    if c.get("startupProbe") and not probes.is_started(uid, name):
        if probes.startup_failed(uid, name):
            out.kill.append(Kill(latest, f"Init container {name} failed startup probe", REASON_STARTUP))
            to_start.append(i)
        return
    if i == len(inits) - 1:
        out.initialized = True
    elif not before_done:
        to_start.append(i + 1)
    if latest.hash and latest.hash != rtcfg.container_hash(c):
        out.kill.append(Kill(latest, f"Init container {name} definition changed"))
        to_start.append(i)
    elif c.get("livenessProbe") and probes.liveness_failed(uid, name):
        out.kill.append(Kill(latest, f"Init container {name} failed liveness probe", REASON_LIVENESS))
        to_start.append(i)


def app_containers_done(pod: Obj, rt: PodRuntime) -> bool:
    """restartPolicy Never/OnFailure and no app container runs or will be (re)started: the pod is
    done and its sidecars are to be stopped (computePodActions' keepCount == 0)."""
    spec = pod.get("spec") or {}
    policy = spec.get("restartPolicy") or "Always"
    if policy == "Always" or not sidecars(spec):
        return False
    for c in spec.get("containers") or []:
        latest = rt.latest(c["name"])
        if latest is None or not latest.exited or will_restart(policy, latest):
            return False
    return True


class TerminationOrdering:
    """Who waits for whom when a pod with sidecars stops (module doc)."""

    def __init__(self, pod: Obj, running: list[str]) -> None:
        spec = pod.get("spec") or {}
        self._done: dict[str, asyncio.Event] = {}
        self._prereqs: dict[str, list[asyncio.Event]] = {}
        running_set = set(running)
        apps = []
        for c in spec.get("containers") or []:
            apps.append(self._event(c["name"], c["name"] in running_set))
        later: asyncio.Event | None = None
        for c in reversed(spec.get("initContainers") or []):
            event = self._event(c["name"], c["name"] in running_set)
            if is_sidecar(c):
                self._prereqs[c["name"]] = apps + ([later] if later is not None else [])
                later = event

    def _event(self, name: str, running: bool) -> asyncio.Event:
        event = asyncio.Event()
        if not running:
            event.set()
        self._done[name] = event
        return event

    async def wait_for_turn(self, name: str, grace: float) -> float:
        """Waits until `name` may be stopped, at most `grace` seconds; returns the seconds waited."""
        if grace <= 0:
            return 0.0
        started = time.monotonic()
        deadline = started + grace
        for event in self._prereqs.get(name, []):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                await wait_for(event.wait(), left)
            except TimeoutError:
                break
        return time.monotonic() - started

    def terminated(self, name: str) -> None:
        event = self._done.get(name)
        if event is not None:
            event.set()
