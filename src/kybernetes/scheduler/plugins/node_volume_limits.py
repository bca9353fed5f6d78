"""NodeVolumeLimits: a node takes no more CSI volumes per driver than its CSINode allows.

As kube-scheduler's ``nodevolumelimits`` (CSILimits): a pod with no claim, ephemeral or CSI inline
volume is skipped in PreFilter. A node whose CSINode lists no driver with ``allocatable.count`` (or
that has no CSINode) is unlimited -- kybernetes' local and hostPath volumes are not CSI volumes, so
they never count. Otherwise the distinct volumes of each driver already used by the node's pods plus
the pod's new ones must not exceed the count ("node(s) exceed max volume count", Unschedulable:
evicting pods frees attachments). A volume is identified by its PV's ``csi.volumeHandle``; a claim
still to be provisioned counts for its class's provisioner, once per claim.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kybernetes.api.storageutil import claim_class, pod_claims
from kybernetes.scheduler.framework import SKIP, CycleState, Plugin, Status, unschedulable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo
from kybernetes.scheduler.volumes import VolumeStore

REASON_MAX_VOLUME_COUNT = "node(s) exceed max volume count"


def csi_volumes(pod: Mapping[str, Any], store: VolumeStore) -> set[tuple[str, str]]:
    """(driver, volume id) of each CSI volume the pod uses (non-CSI volumes are left out)."""
    meta = pod.get("metadata") or {}
    ns = meta.get("namespace") or ""
    out: set[tuple[str, str]] = set()
    for name, _ in pod_claims(pod):
        pvc = store.pvc(ns, name)
        if pvc is None:
            continue
        vol_name = (pvc.get("spec") or {}).get("volumeName")
        pv = store.pv(vol_name) if vol_name else None
        if pv is not None:
            csi = (pv.get("spec") or {}).get("csi")
            if csi:
                out.add((csi.get("driver") or "", csi.get("volumeHandle") or ""))
        elif not vol_name:
            provisioner = (store.classes.get(claim_class(pvc)) or {}).get("provisioner")
            if provisioner:
                out.add((provisioner, f"{ns}/{name}"))
    for vol in (pod.get("spec") or {}).get("volumes") or ():
        csi = vol.get("csi")
        if csi:
            out.add((csi.get("driver") or "", f"{meta.get('uid') or ''}/{vol.get('name') or ''}"))
    return out


def driver_limits(csinode: Mapping[str, Any] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in ((csinode or {}).get("spec") or {}).get("drivers") or ():
        count = (d.get("allocatable") or {}).get("count")
        if count is not None:
            out[d.get("name") or ""] = int(count)
    return out


class NodeVolumeLimits(Plugin):
    name = "NodeVolumeLimits"

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        for vol in (pi.pod.get("spec") or {}).get("volumes") or ():
            if vol.get("persistentVolumeClaim") is not None or vol.get("ephemeral") is not None or vol.get("csi"):
                return None
        return SKIP

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        store = self.handle.volumes
        limits = driver_limits(store.csinodes.get(ni.name))
        if not limits:
            return None
        new = {v for v in csi_volumes(pi.pod, store) if v[0] in limits}
        if not new:
            return None
        attached: set[tuple[str, str]] = set()
        for other in ni.pods.values():
            if other.key != pi.key:
                attached |= csi_volumes(other.pod, store)
        new -= attached
        for driver, limit in limits.items():
            used = sum(1 for d, _ in attached if d == driver)
            wanted = sum(1 for d, _ in new if d == driver)
            if wanted and used + wanted > limit:
                return unschedulable(REASON_MAX_VOLUME_COUNT)
        return None
