"""VolumeBinding: place a pod where its PersistentVolumeClaims can be (or are) satisfied, then bind them.

As kube-scheduler's ``volumebinding`` plugin, over :class:`~kybernetes.scheduler.volumes.VolumeStore`:

- **PreFilter**: a pod without claims (``persistentVolumeClaim`` or generic ``ephemeral`` volumes) is
  skipped at once -- the only cost plain pods pay. A missing claim (``persistentvolumeclaim "x" not
  found``), a claim being deleted, or an ephemeral claim not (yet) owned by the pod rejects the pod as
  UnschedulableAndUnresolvable; so does an unbound claim that is not WaitForFirstConsumer ("pod has
  unbound immediate PersistentVolumeClaims": the PV controller binds those, not the scheduler). A claim
  whose StorageClass does not exist is rejected the same way (``storageclass.storage.k8s.io "x" not
  found``); Kubernetes returns that as an error and retries on backoff, here the pod waits for a
  StorageClass event instead.
- **Filter** per node, reasons in Kubernetes' order: a bound claim's PV must exist ("node(s)
  unavailable due to one or more pvc(s) bound to non-existent pv(s)") and its node affinity match
  ("node(s) had volume node affinity conflict"); each unbound WaitForFirstConsumer claim needs either a
  PV of its class that matches it and the node (``storageutil.find_matching_volume``, Kubernetes'
  ``FindMatchingVolume`` with the node; smallest claims choose first) or dynamic provisioning there -- the class
  has a provisioner other than ``kubernetes.io/no-provisioner`` and its ``allowedTopologies`` admit the
  node; a claim already given ``volume.kubernetes.io/selected-node`` fits only that node ("node(s) didn't
  find available persistent volumes to bind" otherwise).
- **Reserve/Unreserve** assume/revert the chosen PV bindings and node selections in the store.
- **PreBind** writes them -- the PV's ``claimRef`` for a static bind, the claim's selected-node
  annotation for provisioning -- then waits, at most ``bindTimeoutSeconds`` (600 s by default), for
  the PV controller and the provisioner to bind every claim. A provisioner that gives up removes the
  annotation ("provisioning failed for PVC ..."), the PV controller may reset a written claimRef, the
  pod may be deleted meanwhile: each of these, like the timeout, fails the bind and the pod (if
  still there) returns to the queue.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable, Mapping
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import (
    ANN_SELECTED_NODE,
    NOT_SUPPORTED_PROVISIONER,
    WAIT_FOR_FIRST_CONSUMER,
    annotations_of,
    bind_volume_to_claim,
    claim_class,
    claim_key,
    find_matching_volume,
    is_claim_bound,
    is_volume_bound_to_claim,
    node_affinity_matcher,
    pod_claims,
    storage_request,
    topology_matches,
    volume_class,
    volume_is_for_pod,
)
from kybernetes.scheduler.framework import SKIP, Code, CycleState, Plugin, Status, unresolvable
from kybernetes.scheduler.nodeinfo import NodeInfo, PodInfo

REASON_BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
REASON_NODE_CONFLICT = "node(s) had volume node affinity conflict"
REASON_PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"
REASON_UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
VOLUME_REASONS = (REASON_BIND_CONFLICT, REASON_NODE_CONFLICT, REASON_PV_NOT_EXIST)
DEFAULT_BIND_TIMEOUT = 600.0


class _PodVolumes:
    """What one node needs for the pod: PVs to bind (pv, claim) and claims to provision.

    After Reserve, ``writes`` are the PVs with the claimRef to write and ``provisions`` the claims
    with the selected-node annotation to write.
    """

    __slots__ = ("bindings", "provisions", "writes")

    def __init__(self) -> None:
        self.bindings: list[tuple[Obj, Obj]] = []
        self.provisions: list[Obj] = []
        self.writes: list[Obj] = []


_Matcher = Callable[[Any], bool] | None
"""A PV's compiled node affinity (None: any node)."""


class _State:
    __slots__ = ("affinity", "all_bound", "bound", "by_node", "delayed")

    def __init__(self, bound: list[tuple[Obj, Obj | None, _Matcher]],
                 delayed: list[tuple[Obj, list[Obj]]], affinity: dict[str, _Matcher]) -> None:
        self.bound = bound
        """(claim, its PV or None, the PV's node affinity)."""
        self.delayed = delayed
        """(unbound WaitForFirstConsumer claim, the PVs of its class by name)."""
        self.affinity = affinity
        """PV name -> its compiled node affinity, for the PVs in ``delayed``."""
        self.by_node: dict[str, _PodVolumes] = {}
        self.all_bound = True

    def fits(self, pv: Obj, ni: NodeInfo) -> bool:
        matcher = self.affinity.get(pv["metadata"]["name"])
        return matcher is None or matcher(ni)


class VolumeBinding(Plugin):
    name = "VolumeBinding"

    def __init__(self, args: Mapping[str, Any] | None, handle: Any) -> None:
        super().__init__(args, handle)
        self.bind_timeout = float(self.args.get("bindTimeoutSeconds") or DEFAULT_BIND_TIMEOUT)

    # --- PreFilter -------------------------------------------------------------------------------

    def pre_filter(self, state: CycleState, pi: PodInfo) -> Status | None:
        claims = pod_claims(pi.pod)
        if not claims:
            return SKIP
        store = self.handle.volumes
        bound: list[tuple[Obj, Obj | None, _Matcher]] = []
        delayed: list[Obj] = []
        immediate = False
        for name, ephemeral in claims:
            pvc = store.pvc(pi.namespace, name)
            if pvc is None:
                if ephemeral:
                    return unresolvable(
                        f'waiting for ephemeral volume controller to create the persistentvolumeclaim "{name}"')
                return unresolvable(f'persistentvolumeclaim "{name}" not found')
            if (pvc.get("status") or {}).get("phase") == "Lost":
                return unresolvable(f'persistentvolumeclaim "{name}" bound to non-existent persistentvolume '
                                    f'"{(pvc.get("spec") or {}).get("volumeName") or ""}"')
            if (pvc.get("metadata") or {}).get("deletionTimestamp") is not None:
                return unresolvable(f'persistentvolumeclaim "{name}" is being deleted')
            if ephemeral and (not_for_pod := volume_is_for_pod(pi.pod, pvc)):
                return unresolvable(not_for_pod)
            if is_claim_bound(pvc):
                pv = store.pv(pvc["spec"]["volumeName"])
                bound.append((pvc, pv, node_affinity_matcher(pv) if pv is not None else None))
                continue
            cls_name = claim_class(pvc)
            sc = store.classes.get(cls_name) if cls_name else None
            if cls_name and sc is None:
                return unresolvable(f'storageclass.storage.k8s.io "{cls_name}" not found')
            if sc is not None and sc.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER \
                    and not (pvc.get("spec") or {}).get("volumeName"):
                delayed.append(pvc)
            else:
                immediate = True  # pre-bound claims too: the PV controller finishes those
        if immediate:
            return unresolvable(REASON_UNBOUND_IMMEDIATE)
        # Once per cycle: each claim's PVs (those of its class, as the scheduler's PV cache lists them,
        # less those another claim holds, which no node changes) and their node affinities; Filter
        # matches them against each node.
        by_class: dict[str, list[Obj]] = {}
        for pv in sorted(store.all_pvs() if delayed else [], key=lambda pv: pv["metadata"]["name"]):
            by_class.setdefault(volume_class(pv), []).append(pv)
        candidates = [(pvc, [pv for pv in by_class.get(claim_class(pvc), [])
                             if not (pv.get("spec") or {}).get("claimRef") or is_volume_bound_to_claim(pv, pvc)])
                      for pvc in delayed]
        affinity = {pv["metadata"]["name"]: node_affinity_matcher(pv) for _, pvs in candidates for pv in pvs}
        state.data[self.name] = _State(bound, candidates, affinity)
        return None

    # --- Filter ----------------------------------------------------------------------------------

    def filter(self, state: CycleState, pi: PodInfo, ni: NodeInfo) -> Status | None:
        s: _State = state.data[self.name]
        pv_missing = node_conflict = False
        for _, pv, fits in s.bound:
            if pv is None:
                pv_missing = True
            elif fits is not None and not fits(ni):
                node_conflict = True
        bind_conflict = False
        pv_for_node: _PodVolumes | None = None
        if s.delayed:
            pv_for_node = self._find_unbound(s, ni)
            bind_conflict = pv_for_node is None
        if node_conflict or bind_conflict or pv_missing:
            reasons = [r for r, on in ((REASON_NODE_CONFLICT, node_conflict), (REASON_BIND_CONFLICT, bind_conflict),
                                       (REASON_PV_NOT_EXIST, pv_missing)) if on]
            return unresolvable(*reasons)
        if pv_for_node is not None:
            s.by_node[ni.name] = pv_for_node
        return None

    def _find_unbound(self, s: _State, ni: NodeInfo) -> _PodVolumes | None:
        """Static bindings and provisions that satisfy every delayed claim on ``ni``, or None."""
        out = _PodVolumes()
        to_match = []
        for pvc, candidates in s.delayed:
            selected = annotations_of(pvc).get(ANN_SELECTED_NODE)
            if selected is None:
                to_match.append((pvc, candidates))
            elif selected != ni.name:
                return None
            else:
                out.provisions.append(pvc)
        chosen: set[str] = set()
        to_match.sort(key=lambda c: storage_request(c[0]))  # smallest claims pick first, as Kubernetes
        for pvc, candidates in to_match:
            pv = find_matching_volume(pvc, candidates, node_fits=lambda pv: s.fits(pv, ni), excluded=chosen)
            if pv is not None:
                chosen.add(pv["metadata"]["name"])
                out.bindings.append((pv, pvc))
            elif self._can_provision(pvc, ni):
                out.provisions.append(pvc)
            else:
                return None
        return out

    def _can_provision(self, pvc: Obj, ni: NodeInfo) -> bool:
        sc = self.handle.volumes.classes.get(claim_class(pvc)) or {}
        provisioner = sc.get("provisioner")
        return bool(provisioner) and provisioner != NOT_SUPPORTED_PROVISIONER \
            and topology_matches(sc.get("allowedTopologies"), ni.labels)

    # --- Reserve / Unreserve ---------------------------------------------------------------------

    def reserve(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        s: _State | None = state.data.get(self.name)
        pv_for_node = s.by_node.get(node_name) if s is not None else None
        if s is None or pv_for_node is None:
            if s is not None:
                s.all_bound = True
            return None
        store = self.handle.volumes
        assumed_bindings = []
        for pv, pvc in pv_for_node.bindings:
            new = bind_volume_to_claim(pv, pvc)
            if new is None:
                continue  # bound to this very claim already: nothing to write, only to wait for
            new.update(apiVersion="v1", kind="PersistentVolume")
            store.assume_pv(new)
            assumed_bindings.append(new)
        assumed_provisions = []
        for pvc in pv_for_node.provisions:
            new = copy.deepcopy(pvc)
            new.update(apiVersion="v1", kind="PersistentVolumeClaim")
            new["metadata"].setdefault("annotations", {})[ANN_SELECTED_NODE] = node_name
            store.assume_pvc(new)
            assumed_provisions.append(new)
        pv_for_node.writes = assumed_bindings
        pv_for_node.provisions = assumed_provisions
        s.all_bound = not pv_for_node.bindings and not assumed_provisions
        return None

    def unreserve(self, state: CycleState, pi: PodInfo, node_name: str) -> None:
        s: _State | None = state.data.get(self.name)
        pv_for_node = s.by_node.get(node_name) if s is not None else None
        if pv_for_node is None:
            return
        store = self.handle.volumes
        for pv in pv_for_node.writes:
            store.revert_pv(pv["metadata"]["name"])
        for pvc in pv_for_node.provisions:
            store.revert_pvc(claim_key(pvc["metadata"].get("namespace") or "", pvc["metadata"]["name"]))

    # --- PreBind ---------------------------------------------------------------------------------

    async def pre_bind(self, state: CycleState, pi: PodInfo, node_name: str) -> Status | None:
        s: _State | None = state.data.get(self.name)
        if s is None or s.all_bound:
            return None
        pv_for_node = s.by_node.get(node_name)
        if pv_for_node is None:
            return Status(Code.ERROR, f'no pod volumes found for node "{node_name}"')
        client = self.handle.client
        try:
            for pv in pv_for_node.writes:
                await client.update("v1", "persistentvolumes", pv)
            for pvc in pv_for_node.provisions:
                await client.update("v1", "persistentvolumeclaims", pvc, pvc["metadata"].get("namespace") or "")
        except errors.StatusError as e:
            return Status(Code.ERROR, f"binding volumes: {e}")
        return await self._wait_bound(pi, pv_for_node, node_name)

    async def _wait_bound(self, pi: PodInfo, pv_for_node: _PodVolumes, node_name: str) -> Status | None:
        store = self.handle.volumes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.bind_timeout
        claims = [pvc for _, pvc in pv_for_node.bindings] + pv_for_node.provisions
        provisioned = {claim_key(p["metadata"].get("namespace") or "", p["metadata"]["name"])
                       for p in pv_for_node.provisions}
        static = [pv["metadata"]["name"] for pv, _ in pv_for_node.bindings]
        nodes = self.handle.snapshot.nodes
        while True:
            ni = nodes.get(node_name)
            if ni is None or pi.key not in ni.pods:
                # Deleted while we waited (the cache dropped its assumption): stop waiting for it.
                return Status(Code.ERROR, f'binding volumes: pod does not exist any more: pods "{pi.name}" not found')
            for name in static:
                ref = ((store.pv(name) or {}).get("spec") or {}).get("claimRef") or {}
                if not ref.get("uid"):
                    return Status(Code.ERROR, f'binding volumes: ClaimRef got reset for pv "{name}"')
            pending = 0
            for want in claims:
                meta = want["metadata"]
                key = claim_key(meta.get("namespace") or "", meta["name"])
                cur = store.pvc(meta.get("namespace") or "", meta["name"])
                if cur is None:
                    return Status(Code.ERROR, f'binding volumes: persistentvolumeclaim "{meta["name"]}" not found')
                if key in provisioned and ANN_SELECTED_NODE not in annotations_of(cur) and not is_claim_bound(cur):
                    return Status(Code.ERROR, f'binding volumes: provisioning failed for PVC "{meta["name"]}"')
                if not is_claim_bound(cur):
                    pending += 1
                    continue
                pv = store.pv(cur["spec"]["volumeName"])
                fits = node_affinity_matcher(pv) if pv is not None else None
                if fits is not None and not fits(ni):
                    return Status(Code.ERROR, f'binding volumes: pv "{cur["spec"]["volumeName"]}" node affinity '
                                              f'doesn\'t match node "{node_name}"')
            if not pending:
                return None
            left = deadline - loop.time()
            if left <= 0:
                return Status(Code.ERROR, "binding volumes: context deadline exceeded")
            await store.wait_changed(min(left, 5.0))
