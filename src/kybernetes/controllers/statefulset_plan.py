"""The StatefulSet controller's decisions, as pure functions: (set, its pods, revisions) -> plan.

:func:`plan_update` is steps 2-5 of one sync (see ``statefulset.py``): it sorts the pods into
replicas and condemned ones and walks them in Kubernetes' order, deciding the actions of this
sync. With ``OrderedReady`` the walk ends at the first action or at the first pod that blocks
ordered progress, so a sync takes at most one step; with ``Parallel`` it collects every action.
The controller carries the actions out in the order given. :func:`rollout_status` is step 6's
"the update revision becomes current". Nothing here reads an informer or the network; the one
time-dependent input (how long until a pod counts as available) is read by the caller's helpers.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

from kybernetes.api.obj import Obj
from kybernetes.api.podutil import is_pod_terminal, is_running_and_ready
from kybernetes.controllers import history
from kybernetes.controllers.podutil import (
    int_field,
    is_pod_available,
    is_terminating,
    labels_of,
    meta,
    seconds_until_available,
    spec_of,
    status_of,
)

POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
POD_INDEX_LABEL = "apps.kubernetes.io/pod-index"

ActionKind = Literal["create", "delete", "condemn", "restore"]


@dataclass(frozen=True)
class Action:
    """``create`` ordinal from revision; ``delete`` pod; ``condemn`` pod (hand its claims to it,
    then delete it: a scale-down); ``restore`` the identity labels of pod at ordinal."""

    kind: ActionKind
    ordinal: int
    pod: Obj | None = None
    revision: Obj | None = None


@dataclass
class UpdatePlan:
    status: dict[str, Any]
    actions: list[Action] = field(default_factory=list)
    requeue_after: float | None = None
    """When a pod becomes available by minReadySeconds, plus a little."""


def ordinal_of(pod: Obj, set_name: str) -> int | None:
    """The ordinal in ``<set>-<ordinal>``, or None if the name is not of that form."""
    name = str(meta(pod).get("name") or "")
    prefix = f"{set_name}-"
    if not name.startswith(prefix):
        return None
    tail = name[len(prefix):]
    return int(tail) if tail.isdigit() else None


def start_ordinal(sts: Obj) -> int:
    return int_field(spec_of(sts).get("ordinals") or {}, "start")


def claim_name(template: dict[str, Any], sts: Obj, ordinal: int) -> str:
    return f"{meta(template).get('name')}-{meta(sts).get('name')}-{ordinal}"


def replica_counts(pods: list[Obj], cur_name: str, upd_name: str, min_ready: int) -> dict[str, int]:
    counts = {"replicas": 0, "readyReplicas": 0, "availableReplicas": 0, "currentReplicas": 0,
              "updatedReplicas": 0}
    for p in pods:
        counts["replicas"] += 1
        if is_running_and_ready(p):
            counts["readyReplicas"] += 1
            if is_pod_available(p, min_ready):
                counts["availableReplicas"] += 1
        if not is_terminating(p):
            rev = labels_of(p).get(history.CONTROLLER_REVISION_HASH)
            if rev == cur_name:
                counts["currentReplicas"] += 1
            if rev == upd_name:
                counts["updatedReplicas"] += 1
    return counts


def plan_update(sts: Obj, pods: list[Obj], current: Obj, update: Obj, collision: int) -> UpdatePlan:
    """This sync's status and actions (steps 2-5 of the controller's sync)."""
    spec = spec_of(sts)
    name = meta(sts)["name"]
    start = start_ordinal(sts)
    want = int_field(spec, "replicas", 1)
    min_ready = int_field(spec, "minReadySeconds")
    monotonic = spec.get("podManagementPolicy", "OrderedReady") != "Parallel"
    strategy = spec.get("updateStrategy") or {}
    rolling = strategy.get("type", "RollingUpdate") == "RollingUpdate"
    partition = int_field(strategy.get("rollingUpdate") or {}, "partition") if rolling else 0
    cur_name, upd_name = meta(current)["name"], meta(update)["name"]

    status: dict[str, Any] = copy.deepcopy(status_of(sts))
    status.update(observedGeneration=int_field(meta(sts), "generation"), collisionCount=collision,
                  currentRevision=cur_name, updateRevision=upd_name)
    status.update(replica_counts(pods, cur_name, upd_name, min_ready))
    plan = UpdatePlan(status)

    replicas: list[Obj | None] = [None] * want
    condemned: list[Obj] = []
    for p in pods:
        o = ordinal_of(p, name)
        assert o is not None
        if start <= o < start + want:
            replicas[o - start] = p
        else:
            condemned.append(p)
    condemned.sort(key=lambda p: ordinal_of(p, name) or 0, reverse=True)

    first_unhealthy = _plan_replicas(plan, replicas, start, current if rolling else update, update,
                                     partition if rolling else 0, min_ready, monotonic)
    if first_unhealthy is False:
        return plan
    if not _plan_condemned(plan, condemned, name, first_unhealthy, monotonic):
        return plan
    if rolling:
        _plan_rolling(plan, replicas, start, partition, upd_name, min_ready)
    return plan


def _plan_replicas(plan: UpdatePlan, replicas: list[Obj | None], start: int, below: Obj, update: Obj,
                   partition: int, min_ready: int, monotonic: bool) -> Obj | Literal[False] | None:
    """Replace finished replicas and create missing ones (below the partition from ``below``);
    the first unhealthy replica, or False when ordered progress stops here."""
    first_unhealthy: Obj | None = None
    for i, pod in enumerate(replicas):
        ordinal = start + i
        if pod is not None and is_pod_terminal(pod):
            # A failed pod is replaced: delete now, recreate when the deletion is seen.
            if not is_terminating(pod):
                plan.actions.append(Action("delete", ordinal, pod=pod))
            if monotonic:
                return False
            continue
        if pod is None:
            plan.actions.append(Action("create", ordinal, revision=below if i < partition else update))
            if monotonic:
                return False
            continue
        if is_terminating(pod):
            if monotonic:
                return False
            continue
        if not (is_running_and_ready(pod) and is_pod_available(pod, min_ready)):
            wait = seconds_until_available(pod, min_ready)
            if wait is not None:
                plan.requeue_after = min(plan.requeue_after or wait + 0.2, wait + 0.2)
            if first_unhealthy is None:
                first_unhealthy = pod
            if monotonic:
                return False
            continue
        if identity_changed(pod, ordinal):
            plan.actions.append(Action("restore", ordinal, pod=pod))
    return first_unhealthy


def _plan_condemned(plan: UpdatePlan, condemned: list[Obj], name: str, first_unhealthy: Obj | None,
                    monotonic: bool) -> bool:
    """Scale down from the highest ordinal; False when ordered progress stops here."""
    for pod in condemned:
        if is_terminating(pod):
            if monotonic:
                return False
            continue
        if monotonic and first_unhealthy is not None and first_unhealthy is not pod:
            return False
        plan.actions.append(Action("condemn", ordinal_of(pod, name) or 0, pod=pod))
        if monotonic:
            return False
    return True


def _plan_rolling(plan: UpdatePlan, replicas: list[Obj | None], start: int, partition: int, upd_name: str,
                  min_ready: int) -> None:
    """Highest ordinal first, one pod at a time, and only while everything is healthy."""
    for i in range(len(replicas) - 1, partition - 1, -1):
        pod = replicas[i]
        if pod is None:
            continue
        if labels_of(pod).get(history.CONTROLLER_REVISION_HASH) != upd_name and not is_terminating(pod):
            plan.actions.append(Action("delete", start + i, pod=pod))
            return
        if not (is_running_and_ready(pod) and is_pod_available(pod, min_ready)):
            return


def identity_changed(pod: Obj, ordinal: int) -> bool:
    """Whether the identity labels went missing or wrong (``updateIdentity`` restores them)."""
    labels = labels_of(pod)
    return not (labels.get(POD_NAME_LABEL) == meta(pod)["name"] and labels.get(POD_INDEX_LABEL) == str(ordinal))


def rollout_status(sts: Obj, status: dict[str, Any]) -> dict[str, Any]:
    """The rollout is complete once every pod runs the update revision and is ready: the update
    revision becomes the current one."""
    strategy = spec_of(sts).get("updateStrategy") or {}
    want = int_field(spec_of(sts), "replicas", 1)
    if (strategy.get("type", "RollingUpdate") == "RollingUpdate"
            and status.get("updatedReplicas") == want and status.get("readyReplicas") == want
            and status.get("replicas") == want):
        status = dict(status, currentRevision=status["updateRevision"], currentReplicas=status["updatedReplicas"])
    return status
