"""The PV controller and the ephemeral volume controller against a real API server, under their
own identities: static binding, the phases Kubernetes reports, Retain keeping a deleted claim's
data, Delete failing without a deleter or left to the external provisioner, the hand-off to an
external provisioner, claims nothing can satisfy, and ephemeral volumes' claims."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

from kybernetes.client.rest import Client
from kybernetes.controllers.volume import binder_plan as bp
from kybernetes.controllers.volume.binder import PersistentVolumeBinderController
from kybernetes.controllers.volume.ephemeral import EphemeralVolumeController
from kybernetes.controllers.volumeprotection import PVCProtectionController, PVProtectionController
from kybernetes.testing import ServerProcess
from tests.controllers.harness import events_for, get_or_none, namespace, patch, running, wait_for

Obj = dict[str, Any]
_names = itertools.count()
BINDER = (PersistentVolumeBinderController, PVCProtectionController, PVProtectionController)


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


def local_pv(name: str, path: Path, *, size: str = "1Gi", cls: str = "", policy: str = "Retain",
             modes: tuple[str, ...] = ("ReadWriteOnce",), annotations: dict[str, str] | None = None,
             claim_ref: Obj | None = None) -> Obj:
    spec: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "storageClassName": cls,
                 "persistentVolumeReclaimPolicy": policy, "local": {"path": str(path)},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-1"]}]}]}}}
    if claim_ref:
        spec["claimRef"] = claim_ref
    return {"apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}


def claim(name: str, *, size: str = "1Gi", cls: str | None = "", modes: tuple[str, ...] = ("ReadWriteOnce",),
          volume: str = "", annotations: dict[str, str] | None = None) -> Obj:
    spec: Obj = {"accessModes": list(modes), "resources": {"requests": {"storage": size}}}
    if cls is not None:
        spec["storageClassName"] = cls
    if volume:
        spec["volumeName"] = volume
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}


async def phase_of(client: Client, plural: str, name: str, ns: str = "") -> str | None:
    obj = await get_or_none(client, "v1", plural, name, ns)
    return (obj.get("status") or {}).get("phase") if obj else None


async def wait_phase(client: Client, plural: str, name: str, phase: str, ns: str = "") -> Obj:
    async def reached() -> Obj | None:
        obj = await get_or_none(client, "v1", plural, name, ns)
        return obj if obj and (obj.get("status") or {}).get("phase") == phase else None
    got: Obj = await wait_for(reached, what=f"{plural} {name} {phase}")
    return got


async def wait_event(client: Client, ns: str, name: str, reason: str) -> Obj:
    async def found() -> Obj | None:
        return next((e for e in await events_for(client, ns, name) if e.get("reason") == reason), None)
    got: Obj = await wait_for(found, what=f"event {reason} on {name}")
    return got


async def test_static_binding_picks_the_smallest_fitting_volume(srv: ServerProcess, tmp_path: Path) -> None:
    async with running(srv, *BINDER) as client:
        ns = await namespace(client, "bind")
        cls = unique("manual")
        big, small = unique("big"), unique("small")
        await client.create("v1", "persistentvolumes", local_pv(big, tmp_path, size="10Gi", cls=cls))
        await client.create("v1", "persistentvolumes", local_pv(small, tmp_path, size="2Gi", cls=cls))
        for name in (big, small):  # a new volume is Pending until the controller makes it Available
            await wait_phase(client, "persistentvolumes", name, "Available")
        await client.create("v1", "persistentvolumeclaims", claim("data", cls=cls), ns)
        bound = await wait_phase(client, "persistentvolumeclaims", "data", "Bound", ns)
        assert bound["spec"]["volumeName"] == small
        assert bound["metadata"]["annotations"] == {bp.ANN_BIND_COMPLETED: "yes", bp.ANN_BOUND_BY_CONTROLLER: "yes"}
        assert bound["status"]["capacity"] == {"storage": "2Gi"}
        assert bound["status"]["accessModes"] == ["ReadWriteOnce"]
        pv = await wait_phase(client, "persistentvolumes", small, "Bound")
        assert pv["spec"]["claimRef"]["uid"] == bound["metadata"]["uid"]
        assert pv["metadata"]["annotations"] == {bp.ANN_BOUND_BY_CONTROLLER: "yes"}
        assert await phase_of(client, "persistentvolumes", big) == "Available"


async def test_pre_bound_volume_and_named_volume(srv: ServerProcess, tmp_path: Path) -> None:
    async with running(srv, *BINDER) as client:
        ns = await namespace(client, "prebind")
        cls = unique("manual")
        reserved, named = unique("reserved"), unique("named")
        await client.create("v1", "persistentvolumes", local_pv(
            reserved, tmp_path, cls=cls, claim_ref={"namespace": ns, "name": "mine"}))
        await client.create("v1", "persistentvolumes", local_pv(named, tmp_path, size="5Gi", cls=cls))
        for name in (reserved, named):
            await wait_phase(client, "persistentvolumes", name, "Available")
        await client.create("v1", "persistentvolumeclaims", claim("other", cls=cls, size="100Mi"), ns)
        await client.create("v1", "persistentvolumeclaims", claim("mine", cls=cls), ns)
        mine = await wait_phase(client, "persistentvolumeclaims", "mine", "Bound", ns)
        assert mine["spec"]["volumeName"] == reserved
        other = await wait_phase(client, "persistentvolumeclaims", "other", "Bound", ns)
        assert other["spec"]["volumeName"] == named  # the reserved volume, though smaller, is not its
        pv = await client.get("v1", "persistentvolumes", reserved)
        assert bp.ANN_BOUND_BY_CONTROLLER not in (pv["metadata"].get("annotations") or {})
        # a claim naming a volume that is too small waits, and says why
        tiny = unique("tiny")
        await client.create("v1", "persistentvolumes", local_pv(tiny, tmp_path, size="1Mi", cls=cls))
        await client.create("v1", "persistentvolumeclaims", claim("wants-tiny", cls=cls, volume=tiny), ns)
        event = await wait_event(client, ns, "wants-tiny", "VolumeMismatch")
        assert event["message"] == f'Cannot bind to requested volume "{tiny}": requested PV is too small'
        assert await phase_of(client, "persistentvolumeclaims", "wants-tiny", ns) == "Pending"


async def test_retain_keeps_the_data_of_a_deleted_claim(srv: ServerProcess, tmp_path: Path) -> None:
    data = tmp_path / "vol"
    data.mkdir()
    (data / "file").write_bytes(b"precious bytes")
    async with running(srv, *BINDER) as client:
        ns = await namespace(client, "retain")
        cls, name = unique("manual"), unique("kept")
        await client.create("v1", "persistentvolumes", local_pv(name, data, cls=cls, policy="Retain"))
        await client.create("v1", "persistentvolumeclaims", claim("data", cls=cls), ns)
        await wait_phase(client, "persistentvolumeclaims", "data", "Bound", ns)
        await client.delete("v1", "persistentvolumeclaims", "data", ns)
        await wait_for(lambda: _gone(client, "persistentvolumeclaims", "data", ns), what="claim gone")
        released = await wait_phase(client, "persistentvolumes", name, "Released")
        assert released["spec"]["claimRef"]["name"] == "data"
        assert (data / "file").read_bytes() == b"precious bytes"
        # A new claim of the same name, even naming the volume, does not get the released volume:
        # its claimRef keeps the old claim's uid until an administrator clears it.
        await client.create("v1", "persistentvolumeclaims", claim("data", cls=cls, volume=name), ns)
        event = await wait_event(client, ns, "data", "FailedBinding")
        assert event["message"] == f'volume "{name}" already bound to a different claim.'
        assert await phase_of(client, "persistentvolumes", name) == "Released"
        assert await phase_of(client, "persistentvolumeclaims", "data", ns) == "Pending"


async def _gone(client: Client, plural: str, name: str, ns: str = "") -> bool:
    return await get_or_none(client, "v1", plural, name, ns) is None


async def test_delete_policy_without_a_deleter_fails(srv: ServerProcess, tmp_path: Path) -> None:
    async with running(srv, *BINDER) as client:
        ns = await namespace(client, "delete")
        cls = unique("manual")
        local, provisioned = unique("local"), unique("provisioned")
        await client.create("v1", "persistentvolumes", local_pv(local, tmp_path, cls=cls, policy="Delete"))
        await client.create("v1", "persistentvolumeclaims", claim("a", cls=cls), ns)
        await wait_phase(client, "persistentvolumeclaims", "a", "Bound", ns)
        await client.delete("v1", "persistentvolumeclaims", "a", ns)
        failed = await wait_phase(client, "persistentvolumes", local, "Failed")
        message = f'error getting deleter volume plugin for volume "{local}": no deletable volume plugin matched'
        assert failed["status"]["message"] == message
        event = await wait_event(client, "default", local, "VolumeFailedDelete")
        assert (event["type"], event["message"], event["source"]["component"]) == (
            "Warning", message, "persistentvolume-controller")
        assert tmp_path.exists()
        # an external provisioner's volume is left Released for it to delete
        await client.create("v1", "persistentvolumes", local_pv(
            provisioned, tmp_path, cls=cls, policy="Delete", annotations={bp.ANN_PROVISIONED_BY: "example.com/x"}))
        await client.create("v1", "persistentvolumeclaims", claim("b", cls=cls), ns)
        await wait_phase(client, "persistentvolumeclaims", "b", "Bound", ns)
        await client.delete("v1", "persistentvolumeclaims", "b", ns)
        await wait_phase(client, "persistentvolumes", provisioned, "Released")


async def test_claims_nothing_can_satisfy_stay_pending_with_a_reason(srv: ServerProcess, tmp_path: Path) -> None:
    async with running(srv, *BINDER) as client:
        ns = await namespace(client, "pending")
        await client.create("v1", "persistentvolumes", local_pv(unique("rwo"), tmp_path))
        await client.create("v1", "persistentvolumeclaims", claim("rwx", modes=("ReadWriteMany",)), ns)
        event = await wait_event(client, ns, "rwx", "FailedBinding")
        assert (event["type"], event["message"]) == ("Normal", bp.MSG_NO_CLASS)
        await client.create("v1", "persistentvolumeclaims", claim("ghost", cls="no-such-class"), ns)
        event = await wait_event(client, ns, "ghost", "ProvisioningFailed")
        assert (event["type"], event["message"]) == (
            "Warning", 'storageclass.storage.k8s.io "no-such-class" not found')
        for name in ("rwx", "ghost"):
            assert await phase_of(client, "persistentvolumeclaims", name, ns) == "Pending"


async def test_wait_for_first_consumer_then_external_provisioner(srv: ServerProcess, tmp_path: Path) -> None:
    async with running(srv, *BINDER) as client:
        ns = await namespace(client, "wffc")
        cls, provisioner = unique("wffc"), "example.com/local"
        await client.create("storage.k8s.io/v1", "storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": cls},
            "provisioner": provisioner, "volumeBindingMode": "WaitForFirstConsumer"})
        made = await client.create("v1", "persistentvolumeclaims", claim("data", cls=cls), ns)
        event = await wait_event(client, ns, "data", "WaitForFirstConsumer")
        assert event["message"] == "waiting for first consumer to be created before binding"
        # the scheduler chose a node: the claim goes to the provisioner
        await patch(client, "v1", "persistentvolumeclaims", "data",
                    {"metadata": {"annotations": {bp.ANN_SELECTED_NODE: "node-1"}}}, ns)
        event = await wait_event(client, ns, "data", "ExternalProvisioning")
        assert event["message"] == bp.external_provisioning_message(provisioner)
        annotated = await client.get("v1", "persistentvolumeclaims", "data", ns)
        assert annotated["metadata"]["annotations"][bp.ANN_STORAGE_PROVISIONER] == provisioner
        assert annotated["metadata"]["annotations"][bp.ANN_BETA_STORAGE_PROVISIONER] == provisioner
        # the provisioner's volume, pre-bound to the claim, is bound by the controller
        name = f"pvc-{made['metadata']['uid']}"
        await client.create("v1", "persistentvolumes", local_pv(
            name, tmp_path, cls=cls, policy="Delete", annotations={bp.ANN_PROVISIONED_BY: provisioner},
            claim_ref={"namespace": ns, "name": "data", "uid": made["metadata"]["uid"]}))
        bound = await wait_phase(client, "persistentvolumeclaims", "data", "Bound", ns)
        assert bound["spec"]["volumeName"] == name
        await wait_phase(client, "persistentvolumes", name, "Bound")


async def test_ephemeral_volume_claims_are_created_for_their_pods(srv: ServerProcess) -> None:
    async with running(srv, EphemeralVolumeController) as client:
        ns = await namespace(client, "ephemeral")
        template = {"metadata": {"labels": {"app": "web"}}, "spec": {
            "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}, "storageClassName": "x"}}
        await client.create("v1", "persistentvolumeclaims", claim("squatter-scratch"), ns)
        for name in ("web", "squatter"):
            await client.create("v1", "pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox"}],
                         "volumes": [{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}]}}, ns)
        pod = await client.get("v1", "pods", "web", ns)
        made = await wait_for(lambda: get_or_none(client, "v1", "persistentvolumeclaims", "web-scratch", ns),
                              what="the ephemeral claim")
        assert made["metadata"]["labels"] == {"app": "web"}
        assert made["spec"]["storageClassName"] == "x"
        assert made["metadata"]["ownerReferences"] == [{
            "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": pod["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}]
        event = await wait_event(client, ns, "squatter", "FailedBinding")
        assert event["message"] == (f"ephemeral volume scratch: PVC {ns}/squatter-scratch was not created for pod "
                                    f"{ns}/squatter (pod is not owner)")
        squatted = await client.get("v1", "persistentvolumeclaims", "squatter-scratch", ns)
        assert not squatted["metadata"].get("ownerReferences")
