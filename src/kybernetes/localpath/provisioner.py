"""The local-path provisioner's control loops: provision, delete, expand (`kyb local-path-provisioner`).

Informers on PersistentVolumeClaims, PersistentVolumes and StorageClasses feed two work queues:

``claims``   a claim assigned to us (`volume.kubernetes.io/storage-provisioner`, set by the PV
             controller once the scheduler chose a node: `volume.kubernetes.io/selected-node`)
             and Pending: event `Provisioning`, a helper pod on the node makes the directory,
             the PV is created (`plan.persistent_volume`), event `ProvisioningSucceeded`. A bound
             claim of ours asking for more than its PV has: expansion (below).
``volumes``  a Released PV of ours with policy Delete: a helper pod on its node removes the
             directory, then the PV object is deleted. Retain leaves both alone.

A failure (no such class or node, no root for the node, a helper pod that fails or does not
finish within `helper_timeout`) emits `ProvisioningFailed` on the claim (`VolumeFailedDelete` on
the PV) with the reason, worded as sig-storage-lib-external-provisioner words them, and the key
is retried with the work queue's per-key exponential back-off. Every step is idempotent: a PV
that exists already is not made again, a helper pod left by an earlier attempt is replaced.

Expansion, as external-resizer does it for a volume that needs no file system step: condition
`Resizing` on the claim and event `Resizing` ("External resizer is resizing volume NAME"), the
PV's `spec.capacity.storage` set to the request, then the claim's `status.capacity` (and
`allocatedResources`) set, the condition dropped and event `VolumeResizeSuccessful`. A
directory has no quota: the size is recorded, not enforced.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from kybernetes import errors
from kybernetes.api.localpath import PROVISIONER
from kybernetes.api.obj import Obj
from kybernetes.api.storageutil import claim_class, claim_provisioner, storage_capacity, storage_request
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.client.events import EventRecorder
from kybernetes.client.informer import SharedInformerFactory, key_of
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import Clock, RealClock, WorkQueue, run_workers
from kybernetes.localpath import plan

log = logging.getLogger(__name__)

COMPONENT = "kybernetes.io/local-path"
"""The events' source (the external provisioner names its recorder after the provisioner)."""


@dataclass
class ProvisionerConfig:
    namespace: str = "kube-system"
    """Where helper pods run (the provisioner's own namespace)."""
    name: str = PROVISIONER
    helper_image: str = plan.HELPER_IMAGE
    helper_timeout: float = 120.0
    """Seconds a helper pod may take to finish."""
    poll_interval: float = 0.5
    workers: int = 4


class HelperFailed(Exception):
    pass


class LocalPathProvisioner:
    """See the module doc. `run()` serves until cancelled."""

    def __init__(self, client: Client, config: ProvisionerConfig | None = None, *,
                 clock: Clock | None = None) -> None:
        self.client = client
        self.config = config or ProvisionerConfig()
        self.clock: Clock = clock or RealClock()
        self.factory = SharedInformerFactory(client)
        self.claims = self.factory.informer("v1", "persistentvolumeclaims")
        self.volumes = self.factory.informer("v1", "persistentvolumes")
        self.classes = self.factory.informer("storage.k8s.io/v1", "storageclasses")
        self.claim_queue = WorkQueue("local-path-claims", clock=self.clock)
        self.volume_queue = WorkQueue("local-path-volumes", clock=self.clock)
        self.recorder = EventRecorder(client, COMPONENT)
        self._emptied: set[str] = set()
        """UIDs of PVs whose directory is removed already: the updates their own deletion brings
        (deletionTimestamp, finalizers going) do not run another helper pod."""
        self.claims.add_handler(self._on_claim, lambda _old, new: self._on_claim(new))
        self.volumes.add_handler(self._on_volume, lambda _old, new: self._on_volume(new),
                                 lambda pv: self._emptied.discard(str(pv.get("metadata", {}).get("uid"))))

    # -- handlers -----------------------------------------------------------------------------------

    def _on_claim(self, pvc: Obj) -> None:
        if claim_provisioner(pvc) == self.config.name or (pvc.get("spec") or {}).get("volumeName"):
            self.claim_queue.add(key_of(pvc))

    def _on_volume(self, pv: Obj) -> None:
        if not plan.provisioned_by_us(pv, self.config.name):
            return
        self.volume_queue.add(key_of(pv))
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("namespace") and ref.get("name"):  # a resize waits on the PV too
            self.claim_queue.add(f"{ref['namespace']}/{ref['name']}")

    # -- run ----------------------------------------------------------------------------------------

    async def run(self) -> None:
        await self.factory.start()
        try:
            await self.factory.wait_for_sync()
            log.info("local-path provisioner %s: informers synced", self.config.name)
            await asyncio.gather(run_workers(self.claim_queue, self.sync_claim, self.config.workers),
                                 run_workers(self.volume_queue, self.sync_volume, self.config.workers))
        finally:
            self.claim_queue.shutdown()
            self.volume_queue.shutdown()
            await self.factory.stop()
            await self.recorder.close()

    # -- claims -------------------------------------------------------------------------------------

    async def sync_claim(self, key: str) -> None:
        pvc = self.claims.store.get(key)
        if pvc is None:
            return
        if plan.claim_to_provision(pvc, self.config.name):
            await self._provision(pvc)
            return
        volume = str((pvc.get("spec") or {}).get("volumeName") or "")
        pv = self.volumes.store.get(volume) if volume else None
        sc = self.classes.store.get(claim_class(pvc))
        size = plan.expansion(pvc, pv, sc, self.config.name)
        if size is not None and pv is not None:
            await self._expand(pvc, pv, size)

    async def _provision(self, pvc: Obj) -> None:
        name = plan.volume_name(pvc)
        if self.volumes.store.get(name) is not None:
            return  # made already; the PV controller binds it
        class_name = claim_class(pvc)
        try:
            sc = plan.check_class(pvc, self.classes.store.get(class_name), self.config.name)
            node = await self._node(plan.selected_node(pvc))
            path = plan.volume_path(pvc, sc, node)
            pv = plan.persistent_volume(pvc, sc, node, path, self.config.name)
            self.recorder.event(pvc, "Normal", "Provisioning",
                                f'External provisioner is provisioning volume for claim "{key_of(pvc)}"')
            await self._run_helper("create", name, plan.placement(pv))
        except (plan.PlanError, HelperFailed) as err:
            self.recorder.event(pvc, "Warning", "ProvisioningFailed",
                                f'failed to provision volume with StorageClass "{class_name}": {err}')
            raise
        try:
            await self.client.create("v1", "persistentvolumes", pv)
        except errors.AlreadyExists:
            return
        log.info("provisioned %s for claim %s at %s", name, key_of(pvc), path)
        self.recorder.event(pvc, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {name}")

    async def _node(self, name: str) -> Obj:
        try:
            return await self.client.get("v1", "nodes", name)
        except errors.NotFound:
            raise plan.PlanError(f'node "{name}" not found') from None

    # -- expansion ----------------------------------------------------------------------------------

    async def _expand(self, pvc: Obj, pv: Obj, size: str) -> None:
        ns, claim = key_of(pvc).split("/", 1)
        pv_name = pv["metadata"]["name"]
        if storage_capacity(pv) < storage_request(pvc):
            self.recorder.event(pvc, "Normal", "Resizing", f"External resizer is resizing volume {pv_name}")
            await self._claim_status(ns, claim, {
                "conditions": [{"type": "Resizing", "status": "True", "lastTransitionTime": now_rfc3339()}],
                "allocatedResources": {"storage": size},
                "allocatedResourceStatuses": {"storage": "ControllerResizeInProgress"}})
            await self.client.patch("v1", "persistentvolumes", pv_name, {"spec": {"capacity": {"storage": size}}})
        await self._claim_status(ns, claim, {"capacity": {"storage": size}, "conditions": None,
                                             "allocatedResources": {"storage": size},
                                             "allocatedResourceStatuses": None})
        log.info("resized %s for claim %s to %s", pv_name, key_of(pvc), size)
        self.recorder.event(pvc, "Normal", "VolumeResizeSuccessful", "Resize volume succeeded")

    async def _claim_status(self, namespace: str, name: str, status: Obj) -> None:
        await self.client.patch("v1", "persistentvolumeclaims", name, {"status": status}, namespace,
                                subresource="status")

    # -- volumes ------------------------------------------------------------------------------------

    async def sync_volume(self, key: str) -> None:
        pv = self.volumes.store.get(key)
        if pv is None or not plan.volume_to_delete(pv, self.config.name):
            return
        uid = str(pv["metadata"].get("uid"))
        if uid not in self._emptied:
            try:
                where = plan.placement(pv)
                await self._node(where.node)
                await self._run_helper("delete", key, where)
            except (plan.PlanError, HelperFailed) as err:
                self.recorder.event(pv, "Warning", "VolumeFailedDelete", str(err))
                raise
            self._emptied.add(uid)
            log.info("removed the directory of %s: %s on %s", key, where.path, where.node)
        try:
            await self.client.delete("v1", "persistentvolumes", key,
                                     preconditions={"uid": pv["metadata"].get("uid")})
        except errors.NotFound:
            pass

    # -- helper pods --------------------------------------------------------------------------------

    async def _run_helper(self, action: str, pv_name: str, where: plan.Placement) -> None:
        """Runs the helper pod to its end; HelperFailed unless it succeeded in time. The pod is
        removed either way (one left by an earlier attempt first)."""
        pod = plan.helper_pod(action, pv_name, where, self.config.namespace, self.config.helper_image)
        name, ns = pod["metadata"]["name"], self.config.namespace
        await self._delete_pod(name)
        try:
            await self.client.create("v1", "pods", pod, ns)
            deadline = self.clock.now() + self.config.helper_timeout
            while True:
                status = (await self.client.get("v1", "pods", name, ns)).get("status") or {}
                phase = status.get("phase")
                if phase == "Succeeded":
                    return
                if phase == "Failed":
                    raise HelperFailed(f"helper pod {ns}/{name} on node {where.node} failed: {_why(status)}")
                if self.clock.now() >= deadline:
                    raise HelperFailed(f"helper pod {ns}/{name} on node {where.node} did not finish within "
                                       f"{self.config.helper_timeout:g}s (phase {phase or 'unknown'})")
                await self.clock.sleep(self.config.poll_interval)
        finally:
            await self._delete_pod(name)

    async def _delete_pod(self, name: str) -> None:
        ns = self.config.namespace
        try:
            await self.client.delete("v1", "pods", name, ns, grace_period_seconds=0)
        except errors.NotFound:
            return
        deadline = self.clock.now() + self.config.helper_timeout
        while self.clock.now() < deadline:
            try:
                await self.client.get("v1", "pods", name, ns)
            except errors.NotFound:
                return
            await self.clock.sleep(self.config.poll_interval)
        raise HelperFailed(f"helper pod {ns}/{name} was not removed within {self.config.helper_timeout:g}s")


def _why(status: Obj) -> str:
    for cs in status.get("containerStatuses") or []:
        term = (cs.get("state") or {}).get("terminated") or {}
        if term:
            return f"exit code {term.get('exitCode')}" + (f": {term['message']}" if term.get("message") else "")
    return str(status.get("message") or status.get("reason") or "unknown reason")


__all__ = ["COMPONENT", "HelperFailed", "LocalPathProvisioner", "ProvisionerConfig"]
