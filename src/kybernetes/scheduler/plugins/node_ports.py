"""NodePorts: a requested ``hostPort`` must be free on the node.

Two ports conflict when protocol and port are equal and either host IP is the wildcard
``0.0.0.0`` or both are the same address (``HostPortInfo.CheckConflict``).
"""

from __future__ import annotations

from kybernetes.scheduler.framework import SKIP, CycleState, Plugin, Status, unschedulable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON = "node(s) didn't have free ports for the requested pod ports"
WILDCARD = "0.0.0.0"


def conflicts(want: tuple[str, str, int], used: list[tuple[str, str, int]]) -> bool:
    ip, proto, port = want
    for uip, uproto, uport in used:
        if uport == port and uproto == proto and (ip in (WILDCARD, uip) or uip == WILDCARD):
            return True
    return False


class NodePorts(Plugin):
    name = "NodePorts"

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        return None if pi.host_ports else SKIP

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        used = ni.used_ports
        if used:
            for p in pi.host_ports:
                if conflicts(p, used):
                    return unschedulable(REASON)
        return None
