"""Hollow nodes: many simulated kubelets in one process, against a real API server (like kwok).

``nodes`` (the fleet: Node registration, Leases, node status), ``pods`` (the pod half of the
kubelet), ``objects`` (what the objects look like), ``schedule`` (one timeline for all periodic
writes) and ``cmd`` (``kyb hollow-nodes``).
"""

from kybernetes.hollow.nodes import HollowConfig, HollowNodes
from kybernetes.hollow.objects import NodeShape

__all__ = ["HollowConfig", "HollowNodes", "NodeShape"]
