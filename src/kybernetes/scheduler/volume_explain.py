"""``kyb explain-scheduling``'s advice for a pod held back by its volumes.

Each volume reason the plugins give maps to the smallest change that would remove it:

- a claim that does not exist -> create it;
- an unbound claim of an Immediate class (or of none) -> bind it: create a PersistentVolume that
  matches it (class, access modes, capacity), since the PV controller binds Immediate claims alone;
- a WaitForFirstConsumer claim no node can serve ("didn't find available persistent volumes to
  bind") -> create a matching PersistentVolume, or give its class a provisioner / allowedTopologies
  that cover a node;
- a bound PV whose node affinity excludes the nodes ("volume node affinity conflict") -> the nodes
  it does allow, so that one of them can be made available;
- a claim bound to a PV that is gone -> recreate that PV;
- "node(s) exceed max volume count" / a ReadWriteOncePod claim in use -> what holds them.
"""

from __future__ import annotations

from collections.abc import Mapping

from kybernetes.api.storageutil import (
    claim_class,
    is_claim_bound,
    is_delay_binding,
    node_affinity_matcher,
    pod_claims,
)
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo
from kybernetes.scheduler.plugins.node_volume_limits import REASON_MAX_VOLUME_COUNT
from kybernetes.scheduler.plugins.volume_binding import (
    REASON_BIND_CONFLICT,
    REASON_NODE_CONFLICT,
    REASON_PV_NOT_EXIST,
    REASON_UNBOUND_IMMEDIATE,
)
from kybernetes.scheduler.plugins.volume_restrictions import REASON_RWOP_CONFLICT
from kybernetes.scheduler.volumes import VolumeStore


def _pv_spec(pvc: Mapping) -> str:
    spec = pvc.get("spec") or {}
    size = ((spec.get("resources") or {}).get("requests") or {}).get("storage") or "its size"
    cls = claim_class(pvc)
    modes = ",".join(spec.get("accessModes") or ()) or "its access modes"
    return (f"storageClassName {cls!r}, accessModes {modes}, capacity >= {size}" if cls
            else f"no storageClassName, accessModes {modes}, capacity >= {size}")


def suggest_volumes(store: VolumeStore, nodes: Mapping[str, NodeInfo], pi: PodInfo, pre_filter: str,
                    node_reasons: Mapping[str, list[str]]) -> list[str]:
    """Advice for each volume reason in ``pre_filter`` or ``node_reasons`` (node -> its reasons)."""
    out: list[str] = []
    reasons = {r for rs in node_reasons.values() for r in rs}
    for name, ephemeral in pod_claims(pi.pod):
        pvc = store.pvc(pi.namespace, name)
        if pvc is None:
            if f'"{name}"' in pre_filter:
                out.append(f"the ephemeral volume controller has not created claim {name!r} yet" if ephemeral
                           else f"create PersistentVolumeClaim {name!r} in namespace {pi.namespace!r}")
            continue
        if is_claim_bound(pvc):
            vol = pvc["spec"]["volumeName"]
            pv = store.pv(vol)
            if pv is None and REASON_PV_NOT_EXIST in reasons:
                out.append(f"claim {name!r} is bound to PersistentVolume {vol!r}, which does not exist: recreate it")
            elif pv is not None and REASON_NODE_CONFLICT in reasons:
                fits = node_affinity_matcher(pv)
                ok = sorted(n for n, ni in nodes.items() if fits is None or fits(ni))
                out.append(f"claim {name!r} is bound to PersistentVolume {vol!r}, whose node affinity "
                           f"allows only {', '.join(ok) if ok else 'nodes that do not exist'}: make one of "
                           f"those nodes available to the pod")
            continue
        if REASON_UNBOUND_IMMEDIATE in pre_filter:
            if not is_delay_binding(pvc, store.classes):
                out.append(f"claim {name!r} is not bound and is bound only by the PV controller: create a "
                           f"PersistentVolume for it ({_pv_spec(pvc)})")
        elif REASON_BIND_CONFLICT in reasons:
            out.append(f"create a PersistentVolume for claim {name!r} ({_pv_spec(pvc)}) with node affinity "
                       f"to a node the pod fits, or let its StorageClass provision on such a node "
                       f"(provisioner, allowedTopologies)")
    if REASON_MAX_VOLUME_COUNT in reasons:
        out.append("the nodes' CSINode volume limits are reached: move or delete pods using volumes of that driver")
    if REASON_RWOP_CONFLICT in reasons:
        out.append("a ReadWriteOncePod claim of the pod is in use by another pod: delete that pod first")
    return out
