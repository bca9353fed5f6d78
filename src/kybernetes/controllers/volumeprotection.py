"""pvc-protection and pv-protection: let a protected claim or volume go once nothing uses it.

kube-controller-manager's ``pkg/controller/volume/pvcprotection`` and ``pvprotection``. The
StorageObjectInUseProtection admission plugin puts ``kubernetes.io/pvc-protection`` on every new
PersistentVolumeClaim and ``kubernetes.io/pv-protection`` on every new PersistentVolume; a delete
then only marks them (deletionTimestamp). These controllers remove the finalizer, so the object
really goes, once it is not in use:

* a claim is in use while a scheduled pod (``spec.nodeName`` set) in its namespace names it in a
  ``persistentVolumeClaim`` volume, or has a generic ephemeral volume whose claim (``<pod>-<volume>``,
  controlled by that pod) it is, unless the pod is shut down (deletionTimestamp with a zero grace
  period). The informer's cache says "unused" first; a live list of the namespace's pods confirms
  it before the finalizer goes, as Kubernetes does, because the cache may lag a new pod.
* a volume is in use while its ``status.phase`` is ``Bound``.

Every pod event requeues the claims the pod names, so a claim goes when its last pod does.

Both controllers also put their finalizer on a claim or volume that is not being deleted and lacks
it (``NeedToAddFinalizer``: one created while the admission plugin was off), as Kubernetes' do.
"""

from __future__ import annotations

import logging
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import pod_claims, volume_is_for_pod
from kybernetes.controllers.base import Controller, ControllerContext, split_key
from kybernetes.controllers.podutil import meta, spec_of

log = logging.getLogger(__name__)

PVC_FINALIZER = "kubernetes.io/pvc-protection"
PV_FINALIZER = "kubernetes.io/pv-protection"


def is_deletion_candidate(obj: Obj, finalizer: str) -> bool:
    """Deleted (deletionTimestamp set) and still held by ``finalizer``."""
    m = meta(obj)
    return bool(m.get("deletionTimestamp")) and finalizer in (m.get("finalizers") or [])


def needs_finalizer(obj: Obj, finalizer: str) -> bool:
    """Not being deleted and not held by ``finalizer`` (``NeedToAddFinalizer``)."""
    m = meta(obj)
    return not m.get("deletionTimestamp") and finalizer not in (m.get("finalizers") or [])


def pod_is_shut_down(pod: Obj) -> bool:
    """The kubelet is done with the pod, or it was force-deleted (``podIsShutDown``)."""
    m = meta(pod)
    return bool(m.get("deletionTimestamp")) and m.get("deletionGracePeriodSeconds") == 0


def claim_names(pod: Obj) -> list[str]:
    """The claims a pod's volumes name: ``persistentVolumeClaim.claimName`` and ``<pod>-<volume>``
    for generic ephemeral volumes."""
    return [name for name, _ in pod_claims(pod) if name]


def pod_uses_claim(pod: Obj, claim: Obj) -> bool:
    """``podUsesPVC``: only a scheduled pod counts (the kubelet refuses to start a pod whose claim
    is being deleted); an ephemeral volume counts only for the claim the pod controls, and not once
    the pod is shut down."""
    if not spec_of(pod).get("nodeName") or meta(pod).get("namespace") != meta(claim).get("namespace"):
        return False
    name = meta(claim).get("name")
    return any(claim_name == name and (not ephemeral or (not pod_is_shut_down(pod)
                                                         and not volume_is_for_pod(pod, claim)))
               for claim_name, ephemeral in pod_claims(pod))


def volume_in_use(pv: Obj) -> bool:
    """A PersistentVolume is in use while it is bound to a claim (``isBeingUsed``)."""
    return (pv.get("status") or {}).get("phase") == "Bound"


def _removal_patch(finalizer: str) -> dict[str, Any]:
    return {"metadata": {"$deleteFromPrimitiveList/finalizers": [finalizer]}}


def _addition_patch(finalizer: str) -> dict[str, Any]:
    # finalizers merge in a strategic merge patch: the others stay
    return {"metadata": {"finalizers": [finalizer]}}


class PVCProtectionController(Controller):
    name = "persistentvolumeclaim-protection-controller"
    queue_name = "pvcprotection"
    service_account = "pvc-protection-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.claims = self.informer("v1", "persistentvolumeclaims")
        self.pods = self.informer("v1", "pods")
        self.claims.add_handler(on_add=self._claim_changed, on_update=lambda old, new: self._claim_changed(new))
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new),
                              on_delete=self._pod_changed)

    def _claim_changed(self, claim: Obj) -> None:
        if is_deletion_candidate(claim, PVC_FINALIZER) or needs_finalizer(claim, PVC_FINALIZER):
            self.enqueue(claim)

    def _pod_changed(self, pod: Obj) -> None:
        ns = meta(pod).get("namespace", "")
        for name in claim_names(pod):
            self.queue.add(f"{ns}/{name}")

    async def sync(self, key: str) -> None:
        claim = self.claims.store.get(key)
        ns, name = split_key(key)
        if claim is not None and needs_finalizer(claim, PVC_FINALIZER):
            await self._patch(ns, name, _addition_patch(PVC_FINALIZER))
            return
        if claim is None or not is_deletion_candidate(claim, PVC_FINALIZER):
            return
        if any(pod_uses_claim(p, claim) for p in self.pods.store.by_index("namespace", ns)):
            return
        live = await self.client.list("v1", "pods", ns)
        if any(pod_uses_claim(p, claim) for p in live.get("items") or []):
            return
        if await self._patch(ns, name, _removal_patch(PVC_FINALIZER)):
            log.info("removed %s from unused claim %s", PVC_FINALIZER, key)

    async def _patch(self, ns: str, name: str, body: dict[str, Any]) -> bool:
        try:
            await self.client.patch("v1", "persistentvolumeclaims", name, body, ns, patch_type="strategic")
        except errors.NotFound:
            return False
        return True


class PVProtectionController(Controller):
    name = "persistentvolume-protection-controller"
    queue_name = "pvprotection"
    service_account = "pv-protection-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.volumes = self.informer("v1", "persistentvolumes")
        self.volumes.add_handler(on_add=self._changed, on_update=lambda old, new: self._changed(new))

    def _changed(self, pv: Obj) -> None:
        if is_deletion_candidate(pv, PV_FINALIZER) or needs_finalizer(pv, PV_FINALIZER):
            self.enqueue(pv)

    async def sync(self, key: str) -> None:
        pv = self.volumes.store.get(key)
        if pv is not None and needs_finalizer(pv, PV_FINALIZER):
            await self._patch(key, _addition_patch(PV_FINALIZER))
            return
        if pv is None or not is_deletion_candidate(pv, PV_FINALIZER) or volume_in_use(pv):
            return
        if await self._patch(key, _removal_patch(PV_FINALIZER)):
            log.info("removed %s from unused volume %s", PV_FINALIZER, key)

    async def _patch(self, name: str, body: dict[str, Any]) -> bool:
        try:
            await self.client.patch("v1", "persistentvolumes", name, body, patch_type="strategic")
        except errors.NotFound:
            return False
        return True


CONTROLLERS: list[type[Controller]] = [PVCProtectionController, PVProtectionController]
