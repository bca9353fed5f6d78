"""The in-tree plugins, one module each, and the registry profiles are built from.

Names are kube-scheduler's, so a KubeSchedulerConfiguration written for Kubernetes enables and
configures the same behaviour here.
"""

from __future__ import annotations

from kybernetes.scheduler.framework import Plugin
from kybernetes.scheduler.plugins.default_binder import DefaultBinder
from kybernetes.scheduler.plugins.default_preemption import DefaultPreemption
from kybernetes.scheduler.plugins.image_locality import ImageLocality
from kybernetes.scheduler.plugins.inter_pod_affinity import InterPodAffinity
from kybernetes.scheduler.plugins.node_affinity import NodeAffinity
from kybernetes.scheduler.plugins.node_name import NodeName
from kybernetes.scheduler.plugins.node_ports import NodePorts
from kybernetes.scheduler.plugins.node_resources_balanced import NodeResourcesBalancedAllocation
from kybernetes.scheduler.plugins.node_resources_fit import NodeResourcesFit
from kybernetes.scheduler.plugins.node_unschedulable import NodeUnschedulable
from kybernetes.scheduler.plugins.node_volume_limits import NodeVolumeLimits
from kybernetes.scheduler.plugins.pod_topology_spread import PodTopologySpread
from kybernetes.scheduler.plugins.taint_toleration import TaintToleration
from kybernetes.scheduler.plugins.volume_binding import VolumeBinding
from kybernetes.scheduler.plugins.volume_restrictions import VolumeRestrictions

REGISTRY: dict[str, type[Plugin]] = {
    cls.name: cls
    for cls in (NodeUnschedulable, NodeName, TaintToleration, NodeAffinity, NodePorts, NodeResourcesFit,
                VolumeRestrictions, NodeVolumeLimits, VolumeBinding, PodTopologySpread, InterPodAffinity, DefaultPreemption, NodeResourcesBalancedAllocation,
                ImageLocality, DefaultBinder)
}

__all__ = ["REGISTRY"]
