"""Table columns and cells of CSIDriver, CSINode, VolumeAttachment, CSIStorageCapacity, RuntimeClass and
ComponentStatus, as Kubernetes 1.32's printers produce them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from kybernetes.apiserver.printers import columns_for, row_cells

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
CREATED = (NOW - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")


def obj(name: str, **fields: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "creationTimestamp": CREATED}, **fields}


@pytest.mark.parametrize(("group", "kind", "columns"), [
    ("storage.k8s.io", "CSIDriver", ["Name", "AttachRequired", "PodInfoOnMount", "StorageCapacity", "TokenRequests",
                                     "RequiresRepublish", "Modes", "Age"]),
    ("storage.k8s.io", "CSINode", ["Name", "Drivers", "Age"]),
    ("storage.k8s.io", "VolumeAttachment", ["Name", "Attacher", "PV", "Node", "Attached", "Age"]),
    ("storage.k8s.io", "CSIStorageCapacity", ["Name", "StorageClassName", "Capacity"]),
    ("node.k8s.io", "RuntimeClass", ["Name", "Handler", "Age"]),
    ("", "ComponentStatus", ["Name", "Status", "Message", "Error"]),
])
def test_columns(group: str, kind: str, columns: list[str]) -> None:
    cols = columns_for(group, kind)
    assert [c.name for c in cols] == columns
    assert all(c.priority == 0 for c in cols)
    assert cols[0].format == "name"


def test_csi_driver_cells() -> None:
    d = obj("hostpath.csi.k8s.io", spec={"attachRequired": False, "podInfoOnMount": True, "storageCapacity": True,
                                         "tokenRequests": [{"audience": "a"}, {"audience": "b"}],
                                         "volumeLifecycleModes": ["Persistent", "Ephemeral"]})
    assert row_cells("storage.k8s.io", "CSIDriver", d, NOW) == [
        "hostpath.csi.k8s.io", False, True, True, "a,b", False, "Persistent,Ephemeral", "5m"]
    assert row_cells("storage.k8s.io", "CSIDriver", obj("d", spec={}), NOW) == [
        "d", True, False, False, "<unset>", False, "<none>", "5m"]


def test_csi_node_volume_attachment_capacity_runtime_class_cells() -> None:
    node = obj("node-1", spec={"drivers": [{"name": "a", "nodeID": "n"}, {"name": "b", "nodeID": "n"}]})
    assert row_cells("storage.k8s.io", "CSINode", node, NOW) == ["node-1", 2, "5m"]
    va = obj("va", spec={"attacher": "a.csi.io", "nodeName": "node-1", "source": {"persistentVolumeName": "pv-1"}},
             status={"attached": True})
    assert row_cells("storage.k8s.io", "VolumeAttachment", va, NOW) == ["va", "a.csi.io", "pv-1", "node-1", True, "5m"]
    inline = obj("va2", spec={"attacher": "a.csi.io", "nodeName": "n", "source": {"inlineVolumeSpec": {}}})
    assert row_cells("storage.k8s.io", "VolumeAttachment", inline, NOW) == ["va2", "a.csi.io", "", "n", False, "5m"]
    cap = obj("cap", storageClassName="standard", capacity="1024Mi")
    assert row_cells("storage.k8s.io", "CSIStorageCapacity", cap, NOW) == ["cap", "standard", "1Gi"]
    assert row_cells("storage.k8s.io", "CSIStorageCapacity", obj("c", storageClassName="s"), NOW) == [
        "c", "s", "<unset>"]
    assert row_cells("node.k8s.io", "RuntimeClass", obj("gvisor", handler="runsc"), NOW) == ["gvisor", "runsc", "5m"]


@pytest.mark.parametrize(("conditions", "cells"), [
    ([{"type": "Healthy", "status": "True", "message": "ok"}], ["Healthy", "ok", ""]),
    ([{"type": "Healthy", "status": "False", "error": "boom"}], ["Unhealthy", "", "boom"]),
    ([{"type": "Healthy", "status": "Unknown", "error": "no lease"}], ["Unhealthy", "", "no lease"]),
    ([], ["Unknown", "", ""]),
])
def test_component_status_cells(conditions: list[dict[str, Any]], cells: list[str]) -> None:
    cs = {"metadata": {"name": "scheduler"}, "conditions": conditions}
    assert row_cells("", "ComponentStatus", cs, NOW) == ["scheduler", *cells]
