"""Graceful node shutdown: the kubelet's node shutdown manager (pkg/kubelet/nodeshutdown).

The kubelet learns of a shutdown from systemd's inhibitor; here it is the signal the agent (or a
user) sends the kubelet when the node goes down: SIGTERM (`kyb kubelet`'s handler calls
:meth:`Kubelet.stop` with ``node_shutdown=True``). With shutdownGracePeriod unset (0) nothing of
this runs and pods are left running, as before.

Guarantees of :func:`shutdown_node`, in the kubelet's order:

- a `NodeShutdown` event on the Node ("Shutdown manager detected shutdown event") and the Node
  NotReady ("node is shutting down");
- the pod workers stop (nothing is started or restarted any more);
- the active pods are split as the kubelet's migrated configuration does: pods with priority of
  at least system-critical (2000000000) get shutdownGracePeriodCriticalPods, the others the rest
  of shutdownGracePeriod; the non-critical group is killed first, the critical one after it;
- each pod is killed with min(its group's period, its terminationGracePeriodSeconds) (preStop
  hooks included), and reported Failed with reason `Terminated`, message "Pod was terminated in
  response to imminent node shutdown." and a `DisruptionTarget` condition (reason
  `TerminationByKubelet`); a group is waited for at most its period;
- a pod bound to the node meanwhile is not admitted (`reject_pod`): Failed with reason
  `NodeShutdown`, message "Pod was rejected: Pod was rejected as the node is shutting down." and a
  `NodeShutdown` Warning event, as the kubelet's rejectPod; the shutdown waits for those writes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any

from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.api.timeutil import now_rfc3339

log = logging.getLogger(__name__)

NODE_SHUTDOWN_REASON = "Terminated"
NODE_SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."
NODE_SHUTDOWN_EVENT = "Shutdown manager detected shutdown event"
NODE_SHUTTING_DOWN = "node is shutting down"
NOT_ADMITTED_REASON = "NodeShutdown"
NOT_ADMITTED_MESSAGE = "Pod was rejected as the node is shutting down."
SYSTEM_CRITICAL_PRIORITY = 2_000_000_000
DEFAULT_PRIORITY = 0  # scheduling.DefaultPriorityWhenNoDefaultClassExists
LAST_KILLS_TIMEOUT = 5.0


@dataclass
class ShutdownGroup:
    """Pods of priority >= `priority` (and below the next group's), killed within `grace` seconds."""

    priority: int
    grace: int
    pods: list[Obj] = field(default_factory=list)


def shutdown_groups(grace_period: float, critical_grace_period: float) -> list[ShutdownGroup]:
    """The kubelet's migrateConfig: shutdownGracePeriod(CriticalPods) as priority groups, lowest
    priority first; none (shutdown not graceful) when the period is 0 or shorter than the critical one."""
    if grace_period <= 0 or critical_grace_period > grace_period:
        return []
    return [ShutdownGroup(DEFAULT_PRIORITY, int(grace_period - critical_grace_period)),
            ShutdownGroup(SYSTEM_CRITICAL_PRIORITY, int(critical_grace_period))]


def group_by_priority(groups: list[ShutdownGroup], pods: list[Obj]) -> list[ShutdownGroup]:
    """Puts each pod in the group of the highest priority not above its own (the lowest group
    for anything below it)."""
    for pod in pods:
        priority = int((pod.get("spec") or {}).get("priority") or 0)
        index = 0
        for i, group in enumerate(groups):
            if group.priority <= priority:
                index = i
        groups[index].pods.append(pod)
    return groups


def shutdown_status() -> Obj:
    """What a pod killed by the shutdown reports, over its generated status."""
    return {"phase": "Failed", "reason": NODE_SHUTDOWN_REASON, "message": NODE_SHUTDOWN_MESSAGE,
            "conditions": [{"type": "DisruptionTarget", "status": "True", "reason": "TerminationByKubelet",
                            "message": NODE_SHUTDOWN_MESSAGE, "lastTransitionTime": now_rfc3339()}]}


async def shutdown_node(kubelet: Any) -> None:
    """Kills the kubelet's active pods for a node shutdown (module doc). `kubelet` is the
    :class:`~kybernetes.kubelet.kubelet.Kubelet`."""
    cfg = kubelet.config
    groups = shutdown_groups(cfg.shutdown_grace_period, cfg.shutdown_grace_period_critical_pods)
    if not groups:
        return
    log.info("node shutdown: killing pods within %ss (%ss for critical pods)", cfg.shutdown_grace_period,
             cfg.shutdown_grace_period_critical_pods)
    kubelet._record_node("Normal", "NodeShutdown", NODE_SHUTDOWN_EVENT)
    if kubelet.node_status is not None:
        kubelet.node_status.set_ready(False, NODE_SHUTTING_DOWN)
        with contextlib.suppress(Exception):
            await wait_for(kubelet.node_status.update_status(force=True), 5)
    await kubelet.workers.stop()
    active = [pod for pod in kubelet.pods() if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    pending: set[asyncio.Task[None]] = set()
    for group in group_by_priority(groups, active):
        if not group.pods:
            continue
        kills = {asyncio.create_task(_kill(kubelet, pod, group.grace)) for pod in group.pods}
        # The kubelet waits for a group at most its period; its kills go on meanwhile.
        _, late = await asyncio.wait(kills, timeout=group.grace)
        if late:
            log.warning("node shutdown: pods of priority %d took longer than %ds", group.priority, group.grace)
        pending |= late
    pending |= kubelet._node_shutdown_rejections
    if pending:  # a last moment for what is still being killed (a grace of 0 still takes a signal)
        _, late = await asyncio.wait(pending, timeout=LAST_KILLS_TIMEOUT)
        for task in late:
            task.cancel()


def reject_pod(kubelet: Any, pod: Obj) -> None:
    """Fails a pod that reached the kubelet after the shutdown began (the admit handler's answer)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return
    kubelet.record(pod, "Warning", NOT_ADMITTED_REASON, NOT_ADMITTED_MESSAGE)
    status = {"phase": "Failed", "reason": NOT_ADMITTED_REASON, "message": "Pod was rejected: " + NOT_ADMITTED_MESSAGE}
    task = asyncio.ensure_future(kubelet.status.update(pod, status))
    kubelet._node_shutdown_rejections.add(task)


async def _kill(kubelet: Any, pod: Obj, group_grace: int) -> None:
    grace = group_grace
    own = (pod.get("spec") or {}).get("terminationGracePeriodSeconds")
    if own is not None and int(own) <= grace:
        grace = int(own)
    uid = (pod.get("metadata") or {}).get("uid", "")
    try:
        await kubelet.syncer.terminate(pod, await kubelet.syncer.runtime_state(uid), grace)
        await kubelet._write_status(pod, await kubelet.syncer.runtime_state(uid), override=shutdown_status())
    except asyncio.CancelledError:
        raise
    except Exception as err:
        log.warning("node shutdown: killing pod %s failed: %s", uid, err)


__all__ = ["NODE_SHUTDOWN_MESSAGE", "NODE_SHUTDOWN_REASON", "NOT_ADMITTED_MESSAGE", "NOT_ADMITTED_REASON",
           "ShutdownGroup", "group_by_priority", "reject_pod", "shutdown_groups", "shutdown_node", "shutdown_status"]
