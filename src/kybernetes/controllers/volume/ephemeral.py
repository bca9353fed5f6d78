"""The ephemeral volume controller (``ephemeral-volume-controller``): a claim for every generic
ephemeral volume.

Kubernetes' ``pkg/controller/volume/ephemeral``. For each pod that is not being deleted, each
volume with ``ephemeral.volumeClaimTemplate`` gets the PersistentVolumeClaim ``<pod>-<volume>`` in
the pod's namespace: the template's labels, annotations and spec, owned by the pod (``controller:
true``, ``blockOwnerDeletion: true``), so the garbage collector deletes it with the pod. A claim of
that name that the pod does not own is never taken over: the pod gets a ``FailedBinding`` event
and the key is retried (the kubelet refuses to use such a claim too). A deleted claim requeues the
pods whose volumes name it, so it is created again while its pod lives.
"""

from __future__ import annotations

import logging

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import ephemeral_claim_name, volume_is_for_pod
from kybernetes.controllers.base import Controller, ControllerContext
from kybernetes.controllers.podutil import meta, spec_of

log = logging.getLogger(__name__)

EVENT_COMPONENT = "ephemeral_volume"


def ephemeral_volumes(pod: Obj) -> list[Obj]:
    return [v for v in spec_of(pod).get("volumes") or [] if isinstance(v, dict) and v.get("ephemeral") is not None]


def claim_for(pod: Obj, volume: Obj) -> Obj:
    """The claim of ``volume`` (a generic ephemeral volume of ``pod``), owned by the pod."""
    template = (volume.get("ephemeral") or {}).get("volumeClaimTemplate") or {}
    tmeta = template.get("metadata") or {}
    m = meta(pod)
    claim_meta: Obj = {
        "name": ephemeral_claim_name(pod, volume), "namespace": m.get("namespace"),
        "ownerReferences": [{"apiVersion": "v1", "kind": "Pod", "name": m.get("name"), "uid": m.get("uid"),
                             "controller": True, "blockOwnerDeletion": True}],
    }
    for key in ("labels", "annotations"):
        if tmeta.get(key):
            claim_meta[key] = dict(tmeta[key])
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": claim_meta,
            "spec": dict(template.get("spec") or {})}


class EphemeralVolumeController(Controller):
    name = "ephemeral-volume-controller"
    queue_name = "ephemeral_volume"
    service_account = "ephemeral-volume-controller"
    workers = 1

    def __init__(self, ctx: ControllerContext) -> None:
        super().__init__(ctx)
        self.recorder = ctx.recorder(EVENT_COMPONENT)
        self.pods = self.informer("v1", "pods")
        self.claims = self.informer("v1", "persistentvolumeclaims")
        self.pods.add_handler(on_add=self._pod_changed, on_update=lambda old, new: self._pod_changed(new))
        self.claims.add_handler(on_delete=self._claim_deleted)

    def _pod_changed(self, pod: Obj) -> None:
        if not meta(pod).get("deletionTimestamp") and ephemeral_volumes(pod):
            self.enqueue(pod)

    def _claim_deleted(self, claim: Obj) -> None:
        ns = meta(claim).get("namespace", "")
        for pod in self.pods.store.by_index("namespace", ns):
            if any(ephemeral_claim_name(pod, v) == meta(claim).get("name") for v in ephemeral_volumes(pod)):
                self._pod_changed(pod)

    async def sync(self, key: str) -> None:
        pod = self.pods.store.get(key)
        if pod is None or meta(pod).get("deletionTimestamp"):
            return
        for volume in ephemeral_volumes(pod):
            problem = await self._ensure_claim(pod, volume)
            if problem:
                self.recorder.event(pod, "Warning", "FailedBinding", f"ephemeral volume {volume.get('name')}: {problem}")
                raise RuntimeError(f"pod {key}, ephemeral volume {volume.get('name')}: {problem}")

    async def _ensure_claim(self, pod: Obj, volume: Obj) -> str:
        """Create the volume's claim unless it exists; "" on success, else what is wrong."""
        ns = str(meta(pod).get("namespace", ""))
        existing = self.claims.store.get(f"{ns}/{ephemeral_claim_name(pod, volume)}")
        if existing is not None:
            return volume_is_for_pod(pod, existing)
        try:
            await self.client.create("v1", "persistentvolumeclaims", claim_for(pod, volume), ns)
        except errors.AlreadyExists:
            live = await self.client.get("v1", "persistentvolumeclaims", ephemeral_claim_name(pod, volume), ns)
            return volume_is_for_pod(pod, live)
        except errors.StatusError as e:
            return f"create PVC {ephemeral_claim_name(pod, volume)}: {e}"
        log.info("created claim %s/%s for pod %s", ns, ephemeral_claim_name(pod, volume), meta(pod).get("name"))
        return ""


CONTROLLERS: list[type[Controller]] = [EphemeralVolumeController]
