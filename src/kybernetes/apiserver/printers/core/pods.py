"""Printers of the core workloads: Pod (its STATUS column, as ``kubectl get pods`` shows it),
PodTemplate and ReplicationController.

Like every core printer, each row function mirrors Kubernetes' ``printX`` for the kind (see
:mod:`kybernetes.apiserver.printers.core`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from kybernetes.api.timeutil import parse_rfc3339
from kybernetes.apiserver.printers._common import (
    CONTAINERS_DESC,
    IMAGES_DESC,
    JSON,
    Cells,
    Printer,
    age,
    age_col,
    col,
    container_cells,
    dig,
    dint,
    dlist,
    dmap,
    dstr,
    format_labels,
    is_deleting,
    name_col,
    name_of,
    replicas_printer,
    since,
)

_NODE_LOST = "NodeLost"  # the reason the node lifecycle controller gives pods on an unreachable node


def _restartable(init_spec: dict[str, JSON], name: str) -> bool:
    """A sidecar: an init container with ``restartPolicy: Always``."""
    return init_spec.get(name, {}).get("restartPolicy") == "Always"


def _condition_true(conditions: list[Any], type_: str) -> bool:
    for c in conditions:
        if isinstance(c, dict) and c.get("type") == type_:
            return c.get("status") == "True"
    return False


def _later(current: datetime | None, finished: Any) -> datetime | None:
    t = parse_rfc3339(finished)
    if t is not None and (current is None or current < t):
        return t
    return current


class _Tally:
    """What :func:`pod_status` adds up over a pod's container statuses."""

    __slots__ = ("last_restart", "last_sidecar_restart", "ready", "reason", "restarts", "sidecar_restarts")

    def __init__(self, reason: str) -> None:
        self.ready = 0
        self.restarts = 0
        self.sidecar_restarts = 0
        self.last_restart: datetime | None = None
        self.last_sidecar_restart: datetime | None = None
        self.reason = reason


def pod_status(pod: JSON) -> tuple[int, int, str, int, datetime | None]:
    """(ready containers, total containers, STATUS reason, restarts, last restart time) of a pod."""
    spec, status = dmap(pod, "spec"), dmap(pod, "status")
    init_specs = {str(c.get("name")): c for c in dlist(spec, "initContainers") if isinstance(c, dict)}
    conditions = dlist(status, "conditions")
    phase = dstr(status, "phase")

    total = len(dlist(spec, "containers")) + sum(1 for n in init_specs if _restartable(init_specs, n))
    tally = _Tally(dstr(status, "reason") or phase)
    for c in conditions:
        if isinstance(c, dict) and c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            tally.reason = "SchedulingGated"

    init_statuses = [s for s in dlist(status, "initContainerStatuses") if isinstance(s, dict)]
    initializing = _tally_init_containers(tally, init_specs, init_statuses)
    if not initializing or _condition_true(conditions, "Initialized"):
        # Only sidecar restarts count once the pod is initialised.
        tally.restarts, tally.last_restart = tally.sidecar_restarts, tally.last_sidecar_restart
        statuses = [s for s in dlist(status, "containerStatuses") if isinstance(s, dict)]
        _tally_containers(tally, statuses, conditions)

    reason = tally.reason
    if is_deleting(pod) and dstr(status, "reason") == _NODE_LOST:
        reason = "Unknown"
    elif is_deleting(pod) and phase not in ("Succeeded", "Failed"):
        reason = "Terminating"
    return tally.ready, total, reason, tally.restarts, tally.last_restart


def _tally_init_containers(tally: _Tally, init_specs: dict[str, JSON], init_statuses: list[JSON]) -> bool:
    """Add up the init containers' restarts and ready sidecars; True (with the Init: reason set)
    while an init container has not yet finished."""
    for i, cs in enumerate(init_statuses):
        cname = str(cs.get("name"))
        count = dint(cs, "restartCount")
        tally.restarts += count
        finished = dig(cs, "lastState", "terminated", "finishedAt")
        tally.last_restart = _later(tally.last_restart, finished)
        if _restartable(init_specs, cname):
            tally.sidecar_restarts += count
            tally.last_sidecar_restart = _later(tally.last_sidecar_restart, finished)
        terminated = dmap(cs, "state", "terminated")
        waiting = dmap(cs, "state", "waiting")
        has_terminated = isinstance(dig(cs, "state", "terminated"), dict)
        if has_terminated and dint(terminated, "exitCode") == 0:
            continue
        if _restartable(init_specs, cname) and cs.get("started") is True:
            if cs.get("ready") is True:
                tally.ready += 1
            continue
        if has_terminated:
            # Initialisation failed.
            if terminated.get("reason"):
                tally.reason = "Init:" + str(terminated["reason"])
            elif dint(terminated, "signal"):
                tally.reason = f"Init:Signal:{dint(terminated, 'signal')}"
            else:
                tally.reason = f"Init:ExitCode:{dint(terminated, 'exitCode')}"
        elif waiting.get("reason") and waiting.get("reason") != "PodInitializing":
            tally.reason = "Init:" + str(waiting["reason"])
        else:
            tally.reason = f"Init:{i}/{len(init_specs)}"
        return True
    return False


def _tally_containers(tally: _Tally, statuses: list[JSON], conditions: list[Any]) -> None:
    """Add up the app containers' restarts and readiness; the reason is the first container's state."""
    has_running = False
    # Walk backwards so the first container's state wins, as in Kubernetes.
    for cs in reversed(statuses):
        tally.restarts += dint(cs, "restartCount")
        tally.last_restart = _later(tally.last_restart, dig(cs, "lastState", "terminated", "finishedAt"))
        waiting = dmap(cs, "state", "waiting")
        terminated_v = dig(cs, "state", "terminated")
        terminated = terminated_v if isinstance(terminated_v, dict) else {}
        if waiting.get("reason"):
            tally.reason = str(waiting["reason"])
        elif isinstance(terminated_v, dict) and terminated.get("reason"):
            tally.reason = str(terminated["reason"])
        elif isinstance(terminated_v, dict):
            if dint(terminated, "signal"):
                tally.reason = f"Signal:{dint(terminated, 'signal')}"
            else:
                tally.reason = f"ExitCode:{dint(terminated, 'exitCode')}"
        elif cs.get("ready") is True and isinstance(dig(cs, "state", "running"), dict):
            has_running = True
            tally.ready += 1
    # A "Completed" container next to a running one means the pod as a whole is still up.
    if tally.reason == "Completed" and has_running:
        tally.reason = "Running" if _condition_true(conditions, "Ready") else "NotReady"


def _pod_cells(pod: JSON, now: datetime) -> Cells:
    spec, status = dmap(pod, "spec"), dmap(pod, "status")
    ready, total, reason, restarts, last_restart = pod_status(pod)
    restarts_cell = str(restarts)
    if restarts and last_restart is not None:
        restarts_cell = f"{restarts} ({since(last_restart.isoformat(), now)} ago)"
    ips = [p.get("ip") for p in dlist(status, "podIPs") if isinstance(p, dict)]
    ip = (ips[0] if ips else "") or dstr(status, "podIP") or "<none>"
    gates = [g for g in dlist(spec, "readinessGates") if isinstance(g, dict)]
    gates_cell = "<none>"
    if gates:
        conditions = [c for c in dlist(status, "conditions") if isinstance(c, dict)]
        true_count = 0
        for g in gates:
            for c in conditions:
                if c.get("type") == g.get("conditionType"):
                    true_count += c.get("status") == "True"
                    break
        gates_cell = f"{true_count}/{len(gates)}"
    return [
        name_of(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        age(pod, now),
        ip,
        dstr(spec, "nodeName") or "<none>",
        dstr(status, "nominatedNodeName") or "<none>",
        gates_cell,
    ]


def _pod_conditions(pod: JSON) -> list[JSON]:
    phase = dstr(pod, "status", "phase")
    if phase == "Succeeded":
        return [{"type": "Completed", "status": "True", "reason": "Succeeded",
                 "message": "The pod has completed successfully."}]
    if phase == "Failed":
        return [{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}]
    return []


POD = Printer(
    (
        name_col(),
        col("Ready", description="The aggregate readiness state of this pod for accepting traffic."),
        col("Status", description="The aggregate status of the containers in this pod."),
        col("Restarts", description="How many times the pod's containers restarted, and when the last did."),
        age_col(),
        col("IP", description="The pod's IP address.", priority=1),
        col("Node", description="The node the pod is bound to.", priority=1),
        col("Nominated Node", description="The node the scheduler nominated by preemption.", priority=1),
        col("Readiness Gates", description="How many of the pod's readiness gates are true.", priority=1),
    ),
    _pod_cells,
    _pod_conditions,
)


def _pod_template_cells(obj: JSON, now: datetime) -> Cells:
    names, images = container_cells(dig(obj, "template", "spec"))
    return [name_of(obj), names, images, format_labels(dig(obj, "template", "metadata", "labels"))]


POD_TEMPLATE = Printer(
    (
        name_col(),
        col("Containers", description=CONTAINERS_DESC),
        col("Images", description=IMAGES_DESC),
        col("Pod Labels", description="The labels for the pod template."),
    ),
    _pod_template_cells,
)


REPLICATION_CONTROLLER = replicas_printer(format_labels, "The label selector of the replicas.")
