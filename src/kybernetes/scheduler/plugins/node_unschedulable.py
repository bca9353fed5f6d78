"""NodeUnschedulable: a cordoned node (``spec.unschedulable``) only takes pods that tolerate
``node.kubernetes.io/unschedulable:NoSchedule``."""

from __future__ import annotations

from kybernetes.api.scheduling import tuples_tolerate_taint
from kybernetes.scheduler.framework import CycleState, Plugin, Status, unresolvable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON = "node(s) were unschedulable"
_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable(Plugin):
    name = "NodeUnschedulable"

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        if ni.unschedulable and not tuples_tolerate_taint(pi.tolerations, _TAINT):
            return unresolvable(REASON)
        return None
