"""VolumeRestrictions: a ReadWriteOncePod claim is used by one pod in the whole cluster.

As kube-scheduler's ``volumerestrictions`` plugin: PreFilter looks up the pod's
``persistentVolumeClaim`` volumes (a missing claim: ``persistentvolumeclaim "x" not found``,
UnschedulableAndUnresolvable) and counts those with the ``ReadWriteOncePod`` access mode that a
scheduled pod already uses; a pod with no such conflict is skipped. With a conflict every node is
rejected as Unschedulable (preemption may free the claim) with Kubernetes' reason. The legacy in-tree
disk conflicts (GCE PD, AWS EBS, RBD, iSCSI) are not checked: kybernetes has none of those volumes.
"""

from __future__ import annotations

from kybernetes.api.pvutil import READ_WRITE_ONCE_POD
from kybernetes.scheduler.framework import SKIP, CycleState, Plugin, Status, unresolvable, unschedulable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON_RWOP_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"


def _pvc_volume_names(pod: dict) -> set[str]:
    return {v["persistentVolumeClaim"].get("claimName") or ""
            for v in (pod.get("spec") or {}).get("volumes") or () if v.get("persistentVolumeClaim") is not None}


class VolumeRestrictions(Plugin):
    name = "VolumeRestrictions"

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        vols = (pi.pod.get("spec") or {}).get("volumes")
        if not vols:
            return SKIP
        store = self.handle.volumes
        rwop: set[str] = set()
        for name in _pvc_volume_names(pi.pod):
            pvc = store.pvc(pi.namespace, name)
            if pvc is None:
                return unresolvable(f'persistentvolumeclaim "{name}" not found')
            if READ_WRITE_ONCE_POD in ((pvc.get("spec") or {}).get("accessModes") or ()):
                rwop.add(name)
        if not rwop or not self._used(pi, rwop):
            return SKIP
        state.data[self.name] = True
        return None

    def _used(self, pi: PodInfo, claims: set[str]) -> bool:
        """Whether a scheduled (or assumed) pod other than ``pi`` uses one of the claims."""
        for ni in self.handle.snapshot.node_list:
            for other in ni.pods.values():
                if other.namespace == pi.namespace and other.key != pi.key \
                        and claims & _pvc_volume_names(other.pod):
                    return True
        return False

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        return unschedulable(REASON_RWOP_CONFLICT) if state.data.get(self.name) else None
