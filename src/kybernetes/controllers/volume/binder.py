"""The PV controller (``persistentvolume-binder-controller``): binds claims to volumes, hands
claims to external provisioners, and carries out reclaim policies.

Kubernetes' ``pkg/controller/volume/persistentvolume``; the decisions are in
:mod:`.binder_plan` (pure), this module reads the informers and writes what a plan says, in
Kubernetes' order: a binding writes the volume's ``claimRef``, the volume's phase, the claim's
``volumeName`` and annotations, then the claim's status, each on the object the previous write
returned (a stale read loses the compare-and-swap and the key is retried).

One queue holds both kinds of keys: a claim's is ``namespace/name``, a volume's (cluster-scoped) is
its bare name. A volume becoming Available, and every StorageClass change, requeues the unbound
claims (Kubernetes waits for its 15 s resync instead; the outcome is the same, sooner), and an
unbound claim is synced again every ``pvclaimbinder-sync-period`` seconds. Events are written as
``persistentvolume-controller``, the component name ``kubectl describe`` shows for Kubernetes'.
"""

from __future__ import annotations

import copy
import logging

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import (
    ANN_BIND_COMPLETED,
    annotations_of,
    bind_volume_to_claim,
    is_delay_binding,
)
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.podutil import meta, spec_of, status_of
from kybernetes.controllers.volume import binder_plan as bp
from kybernetes.controllers.volumeprotection import claim_names

log = logging.getLogger(__name__)

EVENT_COMPONENT = "persistentvolume-controller"
DEFAULT_SYNC_PERIOD = 15.0


class PersistentVolumeBinderController(Controller):
    name = "persistentvolume-binder-controller"
    service_account = "persistent-volume-binder"
    workers = 1

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.recorder = ctx.recorder(EVENT_COMPONENT)
        self.sync_period = float(ctx.option("pvclaimbinder-sync-period", DEFAULT_SYNC_PERIOD))
        self.claims = self.informer("v1", "persistentvolumeclaims")
        self.volumes = self.informer("v1", "persistentvolumes")
        self.classes = self.informer("storage.k8s.io/v1", "storageclasses")
        self.pods = self.informer("v1", "pods")
        self.claims.add_handler(on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new),
                                on_delete=self._claim_deleted)
        self.volumes.add_handler(on_add=self._volume_changed, on_update=lambda old, new: self._volume_changed(new),
                                 on_delete=self._volume_deleted)
        self.classes.add_handler(on_add=lambda sc: self._requeue_unbound_claims(),
                                 on_update=lambda old, new: self._requeue_unbound_claims())

    # -- handlers -----------------------------------------------------------------------------

    def _claim_deleted(self, claim: Obj) -> None:
        ns, name = meta(claim).get("namespace"), meta(claim).get("name")
        for pv in self.volumes.store.list():
            ref = spec_of(pv).get("claimRef")
            if isinstance(ref, dict) and ref.get("namespace") == ns and ref.get("name") == name:
                self.enqueue(pv)

    def _volume_changed(self, pv: Obj) -> None:
        self.enqueue(pv)
        self._requeue_claim_of(pv)
        if spec_of(pv).get("claimRef") is None and status_of(pv).get("phase") == "Available":
            # a volume any claim may now get (not on every write: unbound claims' syncs emit events)
            self._requeue_unbound_claims()

    def _volume_deleted(self, pv: Obj) -> None:
        self._requeue_claim_of(pv)

    def _requeue_claim_of(self, pv: Obj) -> None:
        ref = spec_of(pv).get("claimRef")
        if isinstance(ref, dict) and ref.get("name"):
            self.queue.add(f"{ref.get('namespace') or ''}/{ref['name']}")

    def _requeue_unbound_claims(self) -> None:
        for claim in self.claims.store.list():
            if ANN_BIND_COMPLETED not in annotations_of(claim):
                self.enqueue(claim)

    # -- sync ---------------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        if "/" in key:
            await self._sync_claim(key)
        else:
            await self._sync_volume(key)

    def _volumes_by_name(self) -> dict[str, Obj]:
        return {meta(pv)["name"]: pv for pv in self.volumes.store.list()}

    def _classes_by_name(self) -> dict[str, Obj]:
        return {meta(sc)["name"]: sc for sc in self.classes.store.list()}

    def _unscheduled_pods(self, claim: Obj) -> list[str]:
        """``findNonScheduledPodsByPVC``: the claim's pods with no node yet, by name."""
        ns, name = meta(claim).get("namespace", ""), meta(claim).get("name")
        return sorted(meta(p)["name"] for p in self.pods.store.by_index("namespace", ns)
                      if not spec_of(p).get("nodeName") and name in claim_names(p))

    def _emit(self, events: list[bp.Event], claim: Obj | None, pv: Obj | None) -> None:
        for e in events:
            target = claim if e.on == "claim" else pv
            if target is not None:
                self.recorder.event(target, e.type, e.reason, e.message)

    async def _sync_claim(self, key: str) -> None:
        claim = self.claims.store.get(key)
        if claim is None:
            return
        classes = self._classes_by_name()
        unscheduled = self._unscheduled_pods(claim) if is_delay_binding(claim, classes) else []
        plan = bp.plan_claim(claim, self._volumes_by_name(), classes, unscheduled)
        if plan.action == "lost":
            if status_of(claim).get("phase") != "Lost":
                claim = await self._claim_status(claim, "Lost", None)
                self._emit(plan.events, claim, None)
            return
        if plan.action == "provision":
            edited = bp.with_provisioner(claim, plan.provisioner)
            if edited is not None:
                claim = await self.client.update("v1", "persistentvolumeclaims", edited)
        self._emit(plan.events, claim, plan.volume)
        if plan.action == "bind":
            assert plan.volume is not None
            await self._bind(plan.volume, claim)
        elif plan.action == "pending":
            await self._claim_status(claim, "Pending", None)
        elif plan.action == "assign_class":
            edited = copy.deepcopy(claim)
            edited["spec"]["storageClassName"] = plan.class_name
            await self.client.update("v1", "persistentvolumeclaims", edited)
        elif plan.action == "error":
            raise RuntimeError(plan.error)
        if plan.action != "bind" and self.sync_period > 0:
            self.enqueue_after(claim, self.sync_period)

    async def _bind(self, pv: Obj, claim: Obj) -> None:
        """``bind``: the volume first, then the claim; each write on the last one's result."""
        edited = bind_volume_to_claim(pv, claim)
        if edited is not None:
            pv = await self.client.update("v1", "persistentvolumes", edited)
        pv = await self._volume_phase(pv, "Bound")
        edited = bp.bind_claim(claim, meta(pv)["name"])
        if edited is not None:
            claim = await self.client.update("v1", "persistentvolumeclaims", edited)
        await self._claim_status(claim, "Bound", pv)
        log.info("bound claim %s/%s to volume %s", meta(claim).get("namespace"), meta(claim).get("name"),
                 meta(pv)["name"])

    async def _claim_status(self, claim: Obj, phase: str, pv: Obj | None) -> Obj:
        edited = bp.claim_status(claim, phase, pv)
        if edited is None:
            return claim
        out: Obj = await self.client.update("v1", "persistentvolumeclaims", edited, subresource="status")
        return out

    async def _volume_phase(self, pv: Obj, phase: str, message: str = "") -> Obj:
        """``updateVolumePhase``: nothing when the phase is set already."""
        if status_of(pv).get("phase") == phase:
            return pv
        edited = copy.deepcopy(pv)
        status = edited.setdefault("status", {})
        status["phase"] = phase
        if message:
            status["message"] = message
        else:
            status.pop("message", None)
        out: Obj = await self.client.update("v1", "persistentvolumes", edited, subresource="status")
        return out

    async def _referenced_claim(self, pv: Obj) -> Obj | None:
        """The claim the volume's claimRef names with its uid (None: it was deleted). The cache
        may lag a claim that was just created, so a miss is confirmed with the API server, as in
        Kubernetes (not for a volume already Released or Failed)."""
        ref = spec_of(pv).get("claimRef") or {}
        ns, name = str(ref.get("namespace") or ""), str(ref.get("name") or "")
        claim = self.claims.store.get(f"{ns}/{name}")
        if claim is None and status_of(pv).get("phase") not in ("Released", "Failed"):
            claim = await self._get_claim(ns, name)
        if claim is not None and meta(claim).get("uid") != ref.get("uid"):
            claim = await self._get_claim(ns, name)
            if claim is not None and meta(claim).get("uid") != ref.get("uid"):
                claim = None
        return claim

    async def _get_claim(self, ns: str, name: str) -> Obj | None:
        try:
            claim: Obj = await self.client.get("v1", "persistentvolumeclaims", name, ns)
        except errors.NotFound:
            return None
        return claim

    async def _sync_volume(self, name: str) -> None:
        pv = self.volumes.store.get(name)
        if pv is None:
            return
        ref = spec_of(pv).get("claimRef")
        claim = await self._referenced_claim(pv) if isinstance(ref, dict) and ref.get("uid") else None
        plan = bp.plan_volume(pv, claim)
        self._emit(plan.events, claim, pv)
        if plan.action == "phase":
            await self._volume_phase(pv, plan.phase)
        elif plan.action == "enqueue_claim" and claim is not None:
            self.enqueue(claim)
        elif plan.action == "unbind":
            pv = await self.client.update("v1", "persistentvolumes", bp.unbind_volume(pv))
            await self._volume_phase(pv, "Available")
        elif plan.action == "release":
            await self._release(pv, plan.reclaim or bp.Reclaim(failed=False))

    async def _release(self, pv: Obj, reclaim: bp.Reclaim) -> None:
        if status_of(pv).get("phase") not in ("Released", "Failed"):
            pv = await self._volume_phase(pv, "Released")
            log.info("volume %s is released; reclaim policy %s", meta(pv)["name"],
                     spec_of(pv).get("persistentVolumeReclaimPolicy"))
        if reclaim.failed and status_of(pv).get("phase") != "Failed":
            pv = await self._volume_phase(pv, "Failed", reclaim.message)
            self.recorder.event(pv, bp.WARNING, reclaim.reason, reclaim.message)



CONTROLLERS: list[type[Controller]] = [PersistentVolumeBinderController]
