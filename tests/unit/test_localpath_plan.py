"""The local-path provisioner's decisions (kybernetes.localpath.plan), from the objects it reads."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from kybernetes.localpath import plan

Obj = dict[str, Any]

UID = "0f3c2a1e-1111-2222-3333-444455556666"


def claim(**ann: str) -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "data", "namespace": "apps", "uid": UID, "resourceVersion": "7",
                         "annotations": {plan.ANN_STORAGE_PROVISIONER: "kybernetes.io/local-path",
                                         plan.ANN_SELECTED_NODE: "node-a", **ann}},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "local-path",
                     "resources": {"requests": {"storage": "1Gi"}}, "volumeMode": "Filesystem"},
            "status": {"phase": "Pending"}}


def storage_class(**extra: Any) -> Obj:
    return {"metadata": {"name": "local-path"}, "provisioner": "kybernetes.io/local-path",
            "reclaimPolicy": "Delete", "volumeBindingMode": "WaitForFirstConsumer", **extra}


def node(root: str | None = "/var/lib/kybernetes/agent/storage") -> Obj:
    ann = {"kybernetes.io/local-path-root": root} if root else {}
    return {"metadata": {"name": "node-a", "labels": {"kubernetes.io/hostname": "node-a"}, "annotations": ann}}


def test_claim_to_provision_only_pending_claims_assigned_to_us() -> None:
    assert plan.claim_to_provision(claim())
    beta = claim()
    ann = beta["metadata"]["annotations"]
    ann["volume.beta.kubernetes.io/storage-provisioner"] = ann.pop(plan.ANN_STORAGE_PROVISIONER)
    assert plan.claim_to_provision(beta)
    assert not plan.claim_to_provision(claim(**{plan.ANN_STORAGE_PROVISIONER: "ebs.csi.aws.com"}))
    unassigned = claim()
    del unassigned["metadata"]["annotations"][plan.ANN_STORAGE_PROVISIONER]
    assert not plan.claim_to_provision(unassigned)
    bound = claim()
    bound["spec"]["volumeName"] = "pv-1"
    assert not plan.claim_to_provision(bound)
    deleting = claim()
    deleting["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    assert not plan.claim_to_provision(deleting)


def test_volume_path_from_the_node_root_or_the_class_parameter() -> None:
    want = f"/var/lib/kybernetes/agent/storage/pvc-{UID}_apps_data"
    assert plan.volume_path(claim(), storage_class(), node()) == want
    sc = storage_class(parameters={"nodePath": "/srv/volumes/"})
    assert plan.volume_path(claim(), sc, node()) == f"/srv/volumes/pvc-{UID}_apps_data"
    with pytest.raises(plan.PlanError, match=re.escape('no nodePath parameter in StorageClass "local-path" and no '
                                                      'kybernetes.io/local-path-root annotation on node "node-a"')):
        plan.volume_path(claim(), storage_class(), node(None))
    with pytest.raises(plan.PlanError, match="not an absolute path"):
        plan.volume_path(claim(), storage_class(parameters={"nodePath": "relative"}), node())


def test_check_class_and_selected_node() -> None:
    assert plan.check_class(claim(), storage_class()) == storage_class()
    with pytest.raises(plan.PlanError, match=re.escape('storageclass.storage.k8s.io "local-path" not found')):
        plan.check_class(claim(), None)
    with pytest.raises(plan.PlanError, match=re.escape('not "kybernetes.io/local-path"')):
        plan.check_class(claim(), storage_class(provisioner="other"))
    # The class is GetPersistentVolumeClaimClass's: the beta annotation wins over the field.
    beta = claim(**{"volume.beta.kubernetes.io/storage-class": "legacy"})
    with pytest.raises(plan.PlanError, match=re.escape('storageclass.storage.k8s.io "legacy" not found')):
        plan.check_class(beta, None)
    block = claim()
    block["spec"]["volumeMode"] = "Block"
    with pytest.raises(plan.PlanError, match="Block is not supported"):
        plan.check_class(block, storage_class())
    assert plan.selected_node(claim()) == "node-a"
    no_node = claim()
    del no_node["metadata"]["annotations"][plan.ANN_SELECTED_NODE]
    with pytest.raises(plan.PlanError, match="no node was specified"):
        plan.selected_node(no_node)


def test_persistent_volume_as_the_external_provisioner_writes_it() -> None:
    path = plan.volume_path(claim(), storage_class(), node())
    pv = plan.persistent_volume(claim(), storage_class(reclaimPolicy="Retain", mountOptions=["noatime"]), node(), path)
    assert pv["metadata"] == {"name": f"pvc-{UID}",
                              "annotations": {"pv.kubernetes.io/provisioned-by": "kybernetes.io/local-path"}}
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "1Gi"}
    assert spec["accessModes"] == ["ReadWriteOnce"]
    assert spec["persistentVolumeReclaimPolicy"] == "Retain"
    assert spec["storageClassName"] == "local-path" and spec["volumeMode"] == "Filesystem"
    assert spec["mountOptions"] == ["noatime"]
    assert spec["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "apps",
                                "name": "data", "uid": UID, "resourceVersion": "7"}
    assert spec["local"] == {"path": path}
    assert spec["nodeAffinity"]["required"]["nodeSelectorTerms"] == [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a"]}]}]
    # A class without a policy: Delete, Kubernetes' default.
    assert plan.persistent_volume(claim(), storage_class(reclaimPolicy=None), node(), path)["spec"][
        "persistentVolumeReclaimPolicy"] == "Delete"
    where = plan.placement(pv)
    assert (where.node, where.parent, where.dirname) == (
        "node-a", "/var/lib/kybernetes/agent/storage", f"pvc-{UID}_apps_data")


def test_placement_refuses_paths_it_did_not_make() -> None:
    pv = plan.persistent_volume(claim(), storage_class(), node(), "/")
    with pytest.raises(plan.PlanError, match="is not a directory this provisioner makes"):
        plan.placement(pv)
    for path in (f"/data/pvc-{UID}_apps_data/../../etc", "/etc", f"/data/pvc-{UID}-x_apps_data", "data/x"):
        pv["spec"]["local"]["path"] = path
        with pytest.raises(plan.PlanError, match="is not a directory this provisioner makes"):
            plan.placement(pv)
    del pv["spec"]["nodeAffinity"]
    with pytest.raises(plan.PlanError, match="has no local path with one node"):
        plan.placement(pv)


def test_volume_to_delete_only_released_delete_volumes_of_ours() -> None:
    pv = plan.persistent_volume(claim(), storage_class(), node(), f"/r/pvc-{UID}_apps_data")
    pv["status"] = {"phase": "Released"}
    assert plan.volume_to_delete(pv)
    for change in ({"status": {"phase": "Bound"}}, {"spec": {"persistentVolumeReclaimPolicy": "Retain"}},
                   {"metadata": {"annotations": {"pv.kubernetes.io/provisioned-by": "someone-else"}}}):
        other = copy.deepcopy(pv)
        for part, value in change.items():
            other[part].update(value)
        assert not plan.volume_to_delete(other), change


def test_helper_pods_create_and_remove_one_directory_on_the_node() -> None:
    where = plan.Placement("node-a", f"/r/pvc-{UID}_apps_data")
    pod = plan.helper_pod("create", f"pvc-{UID}", where, "kube-system")
    assert pod["metadata"]["name"] == f"helper-pod-create-pvc-{UID}"
    assert pod["metadata"]["namespace"] == "kube-system"
    spec = pod["spec"]
    assert spec["nodeName"] == "node-a" and spec["restartPolicy"] == "Never"
    assert spec["volumes"] == [{"name": "data", "hostPath": {"path": "/r", "type": "DirectoryOrCreate"}}]
    (c,) = spec["containers"]
    assert c["image"] == "docker.io/library/busybox:1.36"
    assert c["command"] == ["mkdir", "-m", "0777", "-p", f"/data/pvc-{UID}_apps_data"]
    assert c["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    rm = plan.helper_pod("delete", f"pvc-{UID}", where, "kube-system")
    assert rm["spec"]["containers"][0]["command"] == ["rm", "-rf", f"/data/pvc-{UID}_apps_data"]
    assert rm["metadata"]["name"] == f"helper-pod-delete-pvc-{UID}"


def bound(request: str, claim_capacity: str | None, pv_capacity: str) -> tuple[Obj, Obj]:
    pvc = claim()
    pvc["spec"]["resources"]["requests"]["storage"] = request
    pvc["spec"]["volumeName"] = f"pvc-{UID}"
    pvc["status"] = {"phase": "Bound", **({"capacity": {"storage": claim_capacity}} if claim_capacity else {})}
    pv = plan.persistent_volume(claim(), storage_class(), node(), "/r/x")
    pv["spec"]["capacity"]["storage"] = pv_capacity
    return pvc, pv


def test_expansion() -> None:
    expandable = storage_class(allowVolumeExpansion=True)
    assert plan.expansion(*bound("2Gi", "1Gi", "1Gi"), expandable) == "2Gi"
    # The PV grew but the claim's status was not written yet (a crash in between): finish it.
    assert plan.expansion(*bound("2Gi", "1Gi", "2Gi"), expandable) == "2Gi"
    assert plan.expansion(*bound("1Gi", "1Gi", "1Gi"), expandable) is None
    assert plan.expansion(*bound("1024Mi", "1Gi", "1Gi"), expandable) is None
    assert plan.expansion(*bound("2Gi", "1Gi", "1Gi"), storage_class()) is None  # not allowed
    assert plan.expansion(*bound("2Gi", None, "2Gi"), expandable) is None  # the binder has yet to finish
    pvc, pv = bound("2Gi", "1Gi", "1Gi")
    pvc["status"]["phase"] = "Pending"
    assert plan.expansion(pvc, pv, expandable) is None
    pvc, pv = bound("2Gi", "1Gi", "1Gi")
    pv["metadata"]["annotations"] = {}
    assert plan.expansion(pvc, pv, expandable) is None
