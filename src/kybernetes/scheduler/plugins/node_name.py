"""NodeName: a pod that names its node (``spec.nodeName``) fits only that node."""

from __future__ import annotations

from kybernetes.scheduler.framework import SKIP, CycleState, Plugin, Status, unresolvable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON = "node(s) didn't match the requested node name"


class NodeName(Plugin):
    name = "NodeName"

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        if not pi.node_name:
            return SKIP
        state.data.setdefault("prefilter_result_plugins", []).append(self.name)
        state.node_names = {pi.node_name} if state.node_names is None else state.node_names & {pi.node_name}
        return None

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        if pi.node_name and pi.node_name != ni.name:
            return unresolvable(REASON)
        return None
