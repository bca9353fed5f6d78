"""ImageLocality: prefer nodes that already have the pod's images.

Per container image present on the node: ``size * nodes_with_image / all_nodes`` (spread
scaling, so an image on every node does not make one node special); the sum is clamped to
[23 MiB, 1000 MiB x containers] and mapped linearly onto 0-100 (``calculatePriority``).
"""

from __future__ import annotations

from collections.abc import Sequence

from kybernetes.scheduler.framework import MAX_NODE_SCORE, CycleState, Plugin
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo, normalize_image

MB = 1024 * 1024
MIN_THRESHOLD = 23 * MB
MAX_CONTAINER_THRESHOLD = 1000 * MB


class ImageLocality(Plugin):
    name = "ImageLocality"

    def score_all(self, state: CycleState, pi: PodInfo, nodes: Sequence[NodeInfo]) -> list[int]:  # type: ignore[override]
        score = self.score
        return [score(state, pi, ni) if ni.images else 0 for ni in nodes]

    def score(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> int:
        if not ni.images or not pi.images:
            return 0
        snap = self.handle.snapshot
        total_nodes = len(snap.node_list) or 1
        s = 0.0
        for img in pi.images:
            name = normalize_image(img)
            size = ni.images.get(name)
            if size:
                s += size * (snap.image_nodes.get(name, 1) / total_nodes)
        max_threshold = MAX_CONTAINER_THRESHOLD * len(pi.images)
        s = min(max(s, MIN_THRESHOLD), max_threshold)
        return int(MAX_NODE_SCORE * (s - MIN_THRESHOLD) / (max_threshold - MIN_THRESHOLD))
