"""VolumeRestrictions: a ReadWriteOncePod claim is used by one pod in the whole cluster.

As kube-scheduler's ``volumerestrictions`` plugin: PreFilter looks up the pod's
``persistentVolumeClaim`` volumes (a missing claim: ``persistentvolumeclaim "x" not found``,
UnschedulableAndUnresolvable) and counts those with the ``ReadWriteOncePod`` access mode that a
scheduled pod already uses. With a conflict every node is rejected as Unschedulable (preemption may
free the claim) with Kubernetes' reason. The legacy in-tree disk conflicts are checked per node too
("node(s) had no available disk"): the same GCE PD or iSCSI IQN, unless every mount is read-only; the
same AWS EBS volume; the same RBD image (overlapping monitors, pool, image) unless all read-only. A pod
with neither kind of volume is skipped.
"""

from __future__ import annotations

from kybernetes.api.storageutil import READ_WRITE_ONCE_POD
from kybernetes.scheduler.framework import SKIP, CycleState, Plugin, Status, unresolvable, unschedulable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON_RWOP_CONFLICT = "node has pod using PersistentVolumeClaim with the same name and ReadWriteOncePod access mode"
REASON_DISK_CONFLICT = "node(s) had no available disk"
_DISKS = ("gcePersistentDisk", "awsElasticBlockStore", "iscsi", "rbd")


def _conflict(kind: str, v: dict, e: dict) -> bool:
    """``isVolumeConflict`` for one volume source of the pod and one of that kind on the node."""
    both_ro = bool(v.get("readOnly")) and bool(e.get("readOnly"))
    if kind == "gcePersistentDisk":
        return v.get("pdName") == e.get("pdName") and not both_ro
    if kind == "awsElasticBlockStore":
        return v.get("volumeID") == e.get("volumeID")
    if kind == "iscsi":
        return v.get("iqn") == e.get("iqn") and not both_ro
    return (bool(set(v.get("monitors") or ()) & set(e.get("monitors") or ()))
            and (v.get("pool") or "rbd") == (e.get("pool") or "rbd") and v.get("image") == e.get("image")
            and not both_ro)


def _disks(pod: dict) -> list[tuple[str, dict]]:
    return [(k, vol[k]) for vol in (pod.get("spec") or {}).get("volumes") or () for k in _DISKS if vol.get(k)]


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
        rwop_conflict = bool(rwop) and self._used(pi, rwop)
        disks = _disks(pi.pod)
        if not rwop_conflict and not disks:
            return SKIP
        state.data[self.name] = (rwop_conflict, disks)
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
        rwop_conflict, disks = state.data[self.name]
        if disks:
            for other in ni.pods.values():
                if other.key == pi.key:
                    continue
                theirs = _disks(other.pod)
                if any(k == ek and _conflict(k, v, e) for k, v in disks for ek, e in theirs):
                    return unschedulable(REASON_DISK_CONFLICT)
        return unschedulable(REASON_RWOP_CONFLICT) if rwop_conflict else None
