"""The PV controller's decisions (``binder_plan``), by table: matching, claim and volume syncs,
reclaim policies, and the edits of a binding."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.storageutil import bind_volume_to_claim
from kybernetes.controllers.volume import binder_plan as bp

Obj = dict[str, Any]
RWO, ROX, RWX = "ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany"
WFFC: Obj = {"metadata": {"name": "local-path"}, "provisioner": "kybernetes.io/local-path",
             "volumeBindingMode": "WaitForFirstConsumer"}
IMMEDIATE: Obj = {"metadata": {"name": "fast"}, "provisioner": "example.com/fast"}
DEFAULT: Obj = {"metadata": {"name": "std", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                "provisioner": "example.com/std"}


def pv(name: str, size: str = "1Gi", modes: tuple[str, ...] = (RWO,), phase: str = "Available",
       cls: str = "", claim: Obj | None = None, annotations: dict[str, str] | None = None,
       labels: dict[str, str] | None = None, **spec: Any) -> Obj:
    s: Obj = {"capacity": {"storage": size}, "accessModes": list(modes), "hostPath": {"path": f"/data/{name}"}, **spec}
    if cls:
        s["storageClassName"] = cls
    if claim is not None:
        s["claimRef"] = claim
    return {"metadata": {"name": name, "annotations": annotations or {}, "labels": labels or {}}, "spec": s,
            "status": {"phase": phase}}


def pvc(name: str = "data", size: str = "1Gi", modes: tuple[str, ...] = (RWO,), cls: str | None = "",
        volume: str = "", annotations: dict[str, str] | None = None, phase: str = "Pending", **spec: Any) -> Obj:
    s: Obj = {"resources": {"requests": {"storage": size}}, "accessModes": list(modes), **spec}
    if cls is not None:
        s["storageClassName"] = cls
    if volume:
        s["volumeName"] = volume
    return {"metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "7",
                         "annotations": annotations or {}}, "spec": s, "status": {"phase": phase}}


def ref(name: str = "data", uid: str | None = None) -> Obj:
    return {"kind": "PersistentVolumeClaim", "namespace": "ns", "name": name,
            "uid": f"uid-{name}" if uid is None else uid}


def by_name(*objs: Obj) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objs}


BOUND = {bp.ANN_BIND_COMPLETED: "yes", bp.ANN_BOUND_BY_CONTROLLER: "yes"}


# --- matching ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("claim", "volumes", "delay", "want"), [
    (pvc(size="1Gi"), [pv("big", "10Gi"), pv("small", "2Gi"), pv("tiny", "500Mi")], False, "small"),
    (pvc(size="1Gi"), [pv("tiny", "500Mi")], False, None),
    (pvc(modes=(RWO,)), [pv("rwx", modes=(RWO, RWX)), pv("rwo", "5Gi")], False, "rwo"),
    (pvc(modes=(RWX,)), [pv("rwo")], False, None),
    (pvc(cls="gold"), [pv("plain"), pv("gold", cls="gold")], False, "gold"),
    (pvc(cls=""), [pv("gold", cls="gold")], False, None),
    (pvc(selector={"matchLabels": {"disk": "ssd"}}), [pv("hdd", labels={"disk": "hdd"}),
                                                      pv("ssd", "5Gi", labels={"disk": "ssd"})], False, "ssd"),
    (pvc(volumeMode="Block"), [pv("fs")], False, None),
    (pvc(volumeMode="Block"), [pv("blk", volumeMode="Block")], False, "blk"),
    (pvc(), [pv("taken", claim=ref("other"), phase="Bound"), pv("free", "3Gi")], False, "free"),
    (pvc(), [pv("released", phase="Released")], False, None),
    (pvc(), [pv("small"), pv("prebound", "5Gi", claim=ref(uid=""))], False, "prebound"),
    (pvc(), [pv("free")], True, None),
    (pvc(), [pv("prebound", claim=ref(uid=""))], True, "prebound"),
    (pvc(), [{**pv("gone"), "metadata": {"name": "gone", "deletionTimestamp": "2026-01-01T00:00:00Z"}}], False, None),
], ids=["smallest-that-fits", "too-small", "fewest-access-modes-first", "access-mode-missing", "class",
        "empty-class-only-classless", "selector", "volume-mode-mismatch", "block", "another-claims-volume",
        "released-not-reused", "pre-bound-wins", "delay-binding-waits", "delay-binding-pre-bound",
        "being-deleted"])
def test_find_best_match(claim: Obj, volumes: list[Obj], delay: bool, want: str | None) -> None:
    got = bp.find_best_match(claim, volumes, delay)
    assert (got["metadata"]["name"] if got else None) == want


# --- claims --------------------------------------------------------------------------------------


def _events(plan: bp.ClaimPlan | bp.VolumePlan) -> list[tuple[str, str, str]]:
    return [(e.type, e.reason, e.message) for e in plan.events]


@pytest.mark.parametrize(("claim", "volumes", "classes", "action", "events"), [
    (pvc(), [pv("v1")], [], "bind", []),
    (pvc(cls=""), [], [], "pending",
     [("Normal", "FailedBinding", "no persistent volumes available for this claim and no storage class is set")]),
    (pvc(cls=None), [], [DEFAULT], "assign_class", []),
    (pvc(cls=""), [], [DEFAULT], "pending", [("Normal", "FailedBinding", bp.MSG_NO_CLASS)]),
    (pvc(cls="local-path"), [], [WFFC], "pending",
     [("Normal", "WaitForFirstConsumer", "waiting for first consumer to be created before binding")]),
    (pvc(cls="local-path", annotations={bp.ANN_SELECTED_NODE: "n1"}), [], [WFFC], "provision",
     [("Normal", "ExternalProvisioning", bp.external_provisioning_message("kybernetes.io/local-path"))]),
    (pvc(cls="fast"), [], [IMMEDIATE], "provision",
     [("Normal", "ExternalProvisioning", bp.external_provisioning_message("example.com/fast"))]),
    (pvc(cls="nope"), [], [], "none",
     [("Warning", "ProvisioningFailed", 'storageclass.storage.k8s.io "nope" not found')]),
    (pvc(cls="static"), [], [{"metadata": {"name": "static"}, "provisioner": "kubernetes.io/no-provisioner"}], "none",
     [("Warning", "ProvisioningFailed", "no volume plugin matched name: kubernetes.io/no-provisioner")]),
    (pvc(modes=(RWX,), cls=""), [pv("rwo")], [], "pending", [("Normal", "FailedBinding", bp.MSG_NO_CLASS)]),
    (pvc(volume="v1"), [], [], "pending", []),
    (pvc(volume="v1"), [pv("v1")], [], "bind", []),
    (pvc(volume="v1", size="5Gi"), [pv("v1")], [], "pending",
     [("Warning", "VolumeMismatch", 'Cannot bind to requested volume "v1": requested PV is too small')]),
    (pvc(volume="v1", modes=(RWX,)), [pv("v1")], [], "pending",
     [("Warning", "VolumeMismatch", 'Cannot bind to requested volume "v1": incompatible accessMode')]),
    (pvc(volume="v1", cls="gold"), [pv("v1")], [], "pending",
     [("Warning", "VolumeMismatch", 'Cannot bind to requested volume "v1": storageClassName does not match')]),
    (pvc(volume="v1"), [pv("v1", claim=ref("other"), phase="Bound")], [], "pending",
     [("Warning", "FailedBinding", 'volume "v1" already bound to a different claim.')]),
    (pvc(volume="v1"), [pv("v1", claim=ref(uid=""))], [], "bind", []),
    (pvc(volume="v1", annotations=BOUND, phase="Bound"), [pv("v1", claim=ref(), phase="Bound")], [], "bind", []),
    (pvc(annotations=BOUND, phase="Bound"), [], [], "lost",
     [("Warning", "ClaimLost", "Bound claim has lost reference to PersistentVolume. Data on the volume is lost!")]),
    (pvc(volume="v1", annotations=BOUND, phase="Bound"), [], [], "lost",
     [("Warning", "ClaimLost", "Bound claim has lost its PersistentVolume. Data on the volume is lost!")]),
    (pvc(volume="v1", annotations=BOUND, phase="Bound"), [pv("v1", claim=ref("other"))], [], "lost",
     [("Warning", "ClaimMisbound", "Two claims are bound to the same volume, this one is bound incorrectly")]),
    (pvc(volume="v1", annotations=BOUND, phase="Bound"), [pv("v1")], [], "bind", []),
], ids=["static-bind", "no-class-no-volume", "default-class-assigned", "explicit-empty-class-stays",
        "wffc-waits", "wffc-selected-node-provisions", "immediate-provisions", "class-not-found",
        "in-tree-no-provisioner", "access-mode-nobody-has", "named-volume-missing", "named-volume-binds",
        "named-too-small", "named-access-mode", "named-class", "named-taken", "named-pre-bound",
        "bound-in-sync", "bound-lost-reference", "bound-volume-gone", "bound-misbound", "bound-volume-unbound"])
def test_plan_claim(claim: Obj, volumes: list[Obj], classes: list[Obj], action: str,
                    events: list[tuple[str, str, str]]) -> None:
    plan = bp.plan_claim(claim, by_name(*volumes), by_name(*classes), [])
    assert (plan.action, _events(plan)) == (action, events)
    if action == "assign_class":
        assert plan.class_name == "std"
    if action == "provision":
        assert plan.provisioner == by_name(*classes)[claim["spec"]["storageClassName"]]["provisioner"]


def test_wait_event_names_unscheduled_pods() -> None:
    claim = pvc(cls="local-path")
    one = bp.plan_claim(claim, {}, by_name(WFFC), ["web-0"])
    two = bp.plan_claim(claim, {}, by_name(WFFC), ["a", "b"])
    assert _events(one) == [("Normal", "WaitForPodScheduled", "waiting for pod web-0 to be scheduled")]
    assert _events(two) == [("Normal", "WaitForPodScheduled", "waiting for pods a,b to be scheduled")]


def test_named_volume_taken_by_controller_is_an_error() -> None:
    claim = pvc(volume="v1", annotations={bp.ANN_BOUND_BY_CONTROLLER: "yes"})
    plan = bp.plan_claim(claim, by_name(pv("v1", claim=ref("other"))), {}, [])
    assert plan.action == "error" and 'volume already claimed by "ns/other"' in plan.error


# --- volumes -------------------------------------------------------------------------------------

PROVISIONED = {bp.ANN_PROVISIONED_BY: "kybernetes.io/local-path"}


@pytest.mark.parametrize(("volume", "claim", "action", "phase"), [
    (pv("v", phase="Pending"), None, "phase", "Available"),
    (pv("v", claim=ref(uid="")), None, "phase", "Available"),
    (pv("v", claim=ref(), phase="Bound"), pvc(volume="v"), "phase", "Bound"),
    (pv("v", claim=ref(), phase="Bound"), pvc(), "enqueue_claim", ""),
    (pv("v", claim=ref(), phase="Bound"), None, "release", ""),
    (pv("v", claim=ref(), phase="Bound", annotations={bp.ANN_BOUND_BY_CONTROLLER: "yes"}), pvc(volume="other"),
     "unbind", ""),
    (pv("v", claim=ref(), phase="Bound", persistentVolumeReclaimPolicy="Delete", annotations=PROVISIONED),
     pvc(volume="other"), "release", ""),
], ids=["unused-available", "pre-bound-available", "bound", "claim-not-bound-yet", "claim-deleted",
        "claim-bound-elsewhere", "provisioned-for-claim-bound-elsewhere"])
def test_plan_volume(volume: Obj, claim: Obj | None, action: str, phase: str) -> None:
    plan = bp.plan_volume(volume, claim)
    assert (plan.action, plan.phase) == (action, phase)


def test_volume_mode_mismatch_events_on_both() -> None:
    plan = bp.plan_volume(pv("v", claim=ref(), volumeMode="Block"), pvc())
    assert plan.action == "none"
    assert [(e.on, e.reason, e.message) for e in plan.events] == [
        ("volume", "VolumeMismatch",
         'Cannot bind PersistentVolume to requested PersistentVolumeClaim "data" due to incompatible volumeMode.'),
        ("claim", "VolumeMismatch",
         'Cannot bind PersistentVolume "v" to requested PersistentVolumeClaim due to incompatible volumeMode.')]


@pytest.mark.parametrize(("volume", "failed", "reason", "message"), [
    (pv("v", persistentVolumeReclaimPolicy="Retain"), False, "", ""),
    (pv("v"), False, "", ""),
    (pv("v", persistentVolumeReclaimPolicy="Delete", annotations=PROVISIONED), False, "", ""),
    ({**pv("v", persistentVolumeReclaimPolicy="Delete"), "spec": {"local": {"path": "/mnt/x"},
                                                                  "persistentVolumeReclaimPolicy": "Delete"}},
     True, "VolumeFailedDelete",
     'error getting deleter volume plugin for volume "v": no deletable volume plugin matched'),
    (pv("v", persistentVolumeReclaimPolicy="Delete"), True, "VolumeFailedDelete",
     "host_path deleter only supports /tmp/.+ but received provided /data/v"),
    (pv("v", persistentVolumeReclaimPolicy="Recycle"), True, "VolumeFailedRecycle",
     "No recycler plugin found for the volume!"),
], ids=["retain", "default-retain", "external-provisioner-deletes", "local-no-deleter", "hostpath-outside-tmp",
        "recycle"])
def test_reclaim(volume: Obj, failed: bool, reason: str, message: str) -> None:
    assert bp.reclaim(volume) == bp.Reclaim(failed, reason, message)


# --- edits ---------------------------------------------------------------------------------------


def test_bind_edits_set_references_and_annotations() -> None:
    claim = pvc()
    volume = bind_volume_to_claim(pv("v"), claim)
    assert volume is not None
    assert volume["spec"]["claimRef"] == {**ref(), "apiVersion": "v1", "resourceVersion": "7"}
    assert volume["metadata"]["annotations"] == {bp.ANN_BOUND_BY_CONTROLLER: "yes"}
    assert bind_volume_to_claim(volume, claim) is None
    # a user's pre-binding gets the uid, not the bound-by-controller annotation
    prebound = bind_volume_to_claim(pv("v", claim=ref(uid="")), claim)
    assert prebound is not None and prebound["metadata"]["annotations"] == {}
    edited = bp.bind_claim(claim, "v")
    assert edited is not None and edited["spec"]["volumeName"] == "v"
    assert edited["metadata"]["annotations"] == BOUND
    assert bp.bind_claim(edited, "v") is None
    named = bp.bind_claim(pvc(volume="v"), "v")
    assert named is not None and named["metadata"]["annotations"] == {bp.ANN_BIND_COMPLETED: "yes"}


def test_claim_status_takes_the_volumes_modes_and_capacity() -> None:
    volume = pv("v", "5Gi", modes=(RWO, ROX))
    status = bp.claim_status(pvc(), "Bound", volume)
    assert status is not None
    assert status["status"] == {"phase": "Bound", "accessModes": [RWO, ROX], "capacity": {"storage": "5Gi"}}
    assert bp.claim_status(status, "Bound", volume) is None
    assert bp.claim_status(pvc(), "Pending", None) is None


def test_unbind_undoes_only_the_controllers_binding() -> None:
    by_controller = bp.unbind_volume(pv("v", claim=ref(), annotations={bp.ANN_BOUND_BY_CONTROLLER: "yes"}))
    assert "claimRef" not in by_controller["spec"] and "annotations" not in by_controller["metadata"]
    by_user = bp.unbind_volume(pv("v", claim=ref()))
    assert by_user["spec"]["claimRef"]["uid"] == "" and by_user["spec"]["claimRef"]["name"] == "data"


def test_provisioner_annotations() -> None:
    edited = bp.with_provisioner(pvc(), "kybernetes.io/local-path")
    assert edited is not None
    assert edited["metadata"]["annotations"] == {bp.ANN_STORAGE_PROVISIONER: "kybernetes.io/local-path",
                                                 bp.ANN_BETA_STORAGE_PROVISIONER: "kybernetes.io/local-path"}
    assert bp.with_provisioner(edited, "kybernetes.io/local-path") is None
