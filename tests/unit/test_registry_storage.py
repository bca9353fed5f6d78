"""Strategies of storage.k8s.io (StorageClass, CSIDriver, CSINode, VolumeAttachment, CSIStorageCapacity)
and node.k8s.io (RuntimeClass): Kubernetes 1.32's defaults, validation messages and immutability."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.strategy import Strategy

STRATEGIES = builtin_strategies()


def strat(kind: str) -> Strategy:
    group = "node.k8s.io" if kind == "RuntimeClass" else "storage.k8s.io"
    return STRATEGIES[(group, kind)]


def create(kind: str, obj: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    s, obj = strat(kind), copy.deepcopy(obj)
    obj.setdefault("metadata", {}).setdefault("name", "x")
    s.prepare_for_create(obj)
    s.default(obj)
    return obj, [str(e) for e in s.validate(obj)]


def update(kind: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    s, new = strat(kind), copy.deepcopy(new)
    s.prepare_for_update(new, old)
    s.default(new)
    return [str(e) for e in s.validate_update(new, old)]


def test_flags() -> None:
    assert strat("CSIDriver").tracks_generation
    for kind in ("StorageClass", "CSINode", "VolumeAttachment", "CSIStorageCapacity", "RuntimeClass"):
        assert not strat(kind).tracks_generation, kind
    assert strat("VolumeAttachment").has_status
    assert strat("RuntimeClass").allow_create_on_update
    assert not strat("CSIDriver").allow_create_on_update


# --- StorageClass ------------------------------------------------------------------------------


def test_storage_class() -> None:
    obj, errs = create("StorageClass", {"provisioner": "rancher.io/local-path", "parameters": {"a": "b"}})
    assert errs == []
    assert (obj["reclaimPolicy"], obj["volumeBindingMode"]) == ("Delete", "Immediate")
    assert create("StorageClass", {})[1] == ["provisioner: Required value"]
    new = copy.deepcopy(obj)
    new["provisioner"] = "other.io/x"
    new["parameters"] = {"a": "c"}
    new["allowVolumeExpansion"] = True  # allowed
    assert update("StorageClass", obj, new) == ["parameters: Forbidden: updates to parameters are forbidden.",
                                                "provisioner: Forbidden: updates to provisioner are forbidden."]


# --- CSIDriver ---------------------------------------------------------------------------------


def test_csi_driver_defaults() -> None:
    obj, errs = create("CSIDriver", {"spec": {}})
    assert errs == []
    assert obj["spec"] == {"attachRequired": True, "podInfoOnMount": False, "storageCapacity": False,
                           "requiresRepublish": False, "seLinuxMount": False,
                           "fsGroupPolicy": "ReadWriteOnceWithFSType", "volumeLifecycleModes": ["Persistent"]}


@pytest.mark.parametrize(("spec", "errors"), [
    ({"fsGroupPolicy": "Sometimes"},
     ['spec.fsGroupPolicy: Unsupported value: "Sometimes": supported values: "File", "None", '
      '"ReadWriteOnceWithFSType"']),
    ({"volumeLifecycleModes": ["Persistent", "Forever"]},
     ['spec.volumeLifecycleModes: Unsupported value: "Forever": supported values: "Persistent", "Ephemeral"']),
    ({"tokenRequests": [{"audience": "a"}, {"audience": "a"}]},
     ['spec.tokenRequests[1].audience: Duplicate value: "a"']),
    ({"tokenRequests": [{"audience": "a", "expirationSeconds": 60}]},
     ["spec.tokenRequests[0].expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"]),
    ({"tokenRequests": [{"audience": "", "expirationSeconds": 4294967297}]},
     ["spec.tokenRequests[0].expirationSeconds: Invalid value: 4294967297: may not specify a duration larger "
      "than 2^32 seconds"]),
])
def test_csi_driver_validation(spec: dict[str, Any], errors: list[str]) -> None:
    assert create("CSIDriver", {"spec": spec})[1] == errors


def test_csi_driver_required_fields_use_kubernetes_paths() -> None:
    s = strat("CSIDriver")
    errs = [str(e) for e in s.validate({"metadata": {"name": "x"}, "spec": {}})]
    assert errs == ["spec.attachedRequired: Required value", "spec.podInfoOnMount: Required value",
                    "spec.storageCapacity: Required value", "spec.seLinuxMount: Required value"]


def test_csi_driver_immutable_and_mutable_fields() -> None:
    old, _ = create("CSIDriver", {"spec": {"attachRequired": False}})
    new = copy.deepcopy(old)
    new["spec"].update(podInfoOnMount=True, fsGroupPolicy="File", storageCapacity=True, requiresRepublish=True,
                       tokenRequests=[{"audience": "vault"}])
    assert update("CSIDriver", old, new) == []
    new["spec"].update(attachRequired=True, volumeLifecycleModes=["Ephemeral"])
    assert update("CSIDriver", old, new) == [
        "spec.attachedRequired: Invalid value: true: field is immutable",
        "spec.volumeLifecycleModes: Invalid value: [...]: field is immutable",
    ]


# --- CSINode -----------------------------------------------------------------------------------


def driver(name: str = "hostpath.csi.k8s.io", node_id: str = "node-1", **kw: Any) -> dict[str, Any]:
    return {"name": name, "nodeID": node_id, **kw}


@pytest.mark.parametrize(("drivers", "errors"), [
    ([], []),
    ([driver(topologyKeys=["topology.hostpath.csi/node"], allocatable={"count": 3})], []),
    ([driver(), driver()], ['spec.drivers[1].name: Duplicate value: "hostpath.csi.k8s.io"']),
    ([driver(name="Bad_Name")],
     ['spec.drivers[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain must consist of lower case '
      "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
      "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
      "[a-z0-9])?)*')"]),
    ([driver(node_id="")], ["spec.drivers[0].nodeID: Required value"]),
    ([driver(node_id="n" * 193)], [f'spec.drivers[0].nodeID: Invalid value: "{"n" * 193}": must be 192 '
                                   "characters or less"]),
    ([driver(allocatable={"count": -1})],
     ["spec.drivers[0].allocatable.count: Invalid value: -1: must be greater than or equal to 0"]),
    ([driver(topologyKeys=["a", "a"])], ['spec.drivers[0]: Duplicate value: "a"']),
])
def test_csi_node_validation(drivers: list[dict[str, Any]], errors: list[str]) -> None:
    assert create("CSINode", {"spec": {"drivers": drivers}})[1] == errors


def test_csi_node_driver_entries_are_immutable_but_may_come_and_go() -> None:
    old, _ = create("CSINode", {"spec": {"drivers": [driver()]}})
    added = {"metadata": old["metadata"], "spec": {"drivers": [driver(), driver("other.csi.io")]}}
    assert update("CSINode", old, added) == []
    assert update("CSINode", old, {"metadata": old["metadata"], "spec": {"drivers": []}}) == []
    changed = {"metadata": old["metadata"], "spec": {"drivers": [driver(node_id="node-2")]}}
    assert update("CSINode", old, changed) == ["spec.drivers: Invalid value: {...}: field is immutable"]


# --- VolumeAttachment --------------------------------------------------------------------------


def attachment(**source: Any) -> dict[str, Any]:
    return {"spec": {"attacher": "hostpath.csi.k8s.io", "nodeName": "node-1",
                     "source": source or {"persistentVolumeName": "pv-1"}}}


def test_volume_attachment_status_is_reset_on_create() -> None:
    body = attachment()
    body["status"] = {"attached": True}
    obj, errs = create("VolumeAttachment", body)
    assert errs == []
    assert obj["status"] == {"attached": False}


@pytest.mark.parametrize(("source", "errors"), [
    ({"inlineVolumeSpec": {"csi": {"driver": "d.csi.io", "volumeHandle": "h"}}}, []),
    ({"persistentVolumeName": "pv-1", "inlineVolumeSpec": {}},
     ["spec.source: Forbidden: must specify exactly one of inlineVolumeSpec and persistentVolumeName"]),
    ({"persistentVolumeName": ""},
     ["spec.source.persistentVolumeName: Required value: must specify non empty persistentVolumeName",
      # ValidateVolumeAttachmentV1 checks the name as a DNS subdomain too, and "" is none.
      'spec.source.persistentVolumeName: Invalid value: "": a lowercase RFC 1123 subdomain must consist of lower '
      "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. "
      "'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*"
      "[a-z0-9])?)*')"]),
    ({"inlineVolumeSpec": {"capacity": {"storage": "1Gi"}}},
     ["spec.source.inlineVolumeSpec.capacity: Forbidden: may not be specified in the context of inline volumes",
      "spec.source.inlineVolumeSpec.csi: Required value: has to be specified in the context of inline volumes"]),
])
def test_volume_attachment_source(source: dict[str, Any], errors: list[str]) -> None:
    assert create("VolumeAttachment", attachment(**source))[1] == errors


def test_volume_attachment_requires_attacher_source_and_node() -> None:
    errs = create("VolumeAttachment", {"spec": {"source": {}}})[1]
    assert errs[:2] == [
        "spec.attacher: Required value",
        "spec.source: Required value: must specify exactly one of inlineVolumeSpec and persistentVolumeName",
    ]
    assert errs[2].startswith('spec.nodeName: Invalid value: "": a lowercase RFC 1123 subdomain')
    assert "spec.attacher: Required value" in errs[3:]


def test_volume_attachment_spec_is_immutable_status_is_not() -> None:
    old, _ = create("VolumeAttachment", attachment())
    new = copy.deepcopy(old)
    new["spec"]["nodeName"] = "node-2"
    assert update("VolumeAttachment", old, new) == ["spec: Invalid value: {...}: field is immutable"]
    s = strat("VolumeAttachment")
    status = copy.deepcopy(old)
    status["status"] = {"attached": True, "attachmentMetadata": {"devicePath": "/dev/sdb"}}
    status["spec"]["nodeName"] = "ignored"
    s.prepare_for_status_update(status, old)
    assert status["spec"] == old["spec"]
    assert status["status"]["attached"] is True
    assert s.validate_status_update(status, old) == []
    status["status"]["attachError"] = {"message": "x" * 1025}
    assert [str(e) for e in s.validate_status_update(status, old)] == [
        "status.attachError.message: Too long: must have at most 262144 bytes"]


# --- CSIStorageCapacity ------------------------------------------------------------------------


def test_csi_storage_capacity() -> None:
    body = {"storageClassName": "standard", "capacity": "10Gi",
            "nodeTopology": {"matchLabels": {"topology.hostpath.csi/node": "node-1"}}}
    obj, errs = create("CSIStorageCapacity", body)
    assert errs == []
    assert create("CSIStorageCapacity", {**body, "capacity": "-1"})[1] == [
        'capacity: Invalid value: "-1": must be greater than or equal to 0']
    assert create("CSIStorageCapacity", {**body, "storageClassName": "Bad"})[1][0].startswith(
        'storageClassName: Invalid value: "Bad": a lowercase RFC 1123 subdomain')
    new = {**copy.deepcopy(obj), "capacity": "5Gi"}
    assert update("CSIStorageCapacity", obj, new) == []
    new.update(storageClassName="other", nodeTopology={})
    assert update("CSIStorageCapacity", obj, new) == [
        "nodeTopology: Invalid value: {...}: field is immutable",
        'storageClassName: Invalid value: "other": field is immutable',
    ]


# --- RuntimeClass ------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "errors"), [
    ({"handler": "runc"}, []),
    ({"handler": "runc", "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
      "scheduling": {"nodeSelector": {"runtime": "gvisor"},
                     "tolerations": [{"key": "runtime", "operator": "Exists", "effect": "NoSchedule"}]}}, []),
    ({"handler": "Not_A_Label"},
     ['handler: Invalid value: "Not_A_Label": a lowercase RFC 1123 label must consist of lower case alphanumeric '
      "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
      "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"]),
    ({"handler": "runc", "overhead": {"podFixed": {"cpu": "-1"}}},
     ['overhead.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0']),
    ({"handler": "runc", "scheduling": {"tolerations": [{"operator": "Equal", "value": "x"}]}},
     ['scheduling.tolerations[0].operator: Invalid value: "Equal": operator must be Exists when `key` is empty, '
      'which means "match all values and all keys"']),
])
def test_runtime_class_validation(body: dict[str, Any], errors: list[str]) -> None:
    assert create("RuntimeClass", body)[1] == errors


def test_runtime_class_handler_is_immutable() -> None:
    old, _ = create("RuntimeClass", {"handler": "runc"})
    assert update("RuntimeClass", old, {**old, "handler": "kata"}) == [
        'handler: Invalid value: "kata": field is immutable']
    assert update("RuntimeClass", old, {**old, "overhead": {"podFixed": {"cpu": "1"}}}) == []
