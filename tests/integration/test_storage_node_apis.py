"""storage.k8s.io (CSIDriver, CSINode, VolumeAttachment, CSIStorageCapacity), node.k8s.io RuntimeClass and
v1 ComponentStatus against a real ``kyb server``, through kubectl and the official Python client."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from kybernetes.api.quantity import parse_quantity
from kybernetes.testing import ServerProcess
from tests.integration.test_kinds import _lifecycle

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.client.rest import ApiException  # noqa: E402

pytestmark = pytest.mark.integration

# Manifests as in the Kubernetes documentation.
CSI_DRIVER = """
    apiVersion: storage.k8s.io/v1
    kind: CSIDriver
    metadata: {name: mycsidriver.example.com}
    spec:
      attachRequired: true
      podInfoOnMount: true
      fsGroupPolicy: File
      volumeLifecycleModes: [Persistent, Ephemeral]
      tokenRequests:
      - audience: gcp
      - audience: ""
        expirationSeconds: 3600
      requiresRepublish: true
      seLinuxMount: true
    """
CSI_NODE = """
    apiVersion: storage.k8s.io/v1
    kind: CSINode
    metadata: {name: node-1}
    spec:
      drivers:
      - name: hostpath.csi.k8s.io
        nodeID: node-1
        topologyKeys: [topology.hostpath.csi/node]
    """
VOLUME_ATTACHMENT = """
    apiVersion: storage.k8s.io/v1
    kind: VolumeAttachment
    metadata: {name: csi-0123abcd}
    spec:
      attacher: hostpath.csi.k8s.io
      nodeName: node-1
      source: {persistentVolumeName: pv-1}
    """
CSI_STORAGE_CAPACITY = """
    apiVersion: storage.k8s.io/v1
    kind: CSIStorageCapacity
    metadata: {name: capacity-1}
    storageClassName: standard
    capacity: 10Gi
    nodeTopology:
      matchLabels: {topology.hostpath.csi/node: node-1}
    """
RUNTIME_CLASS = """
    apiVersion: node.k8s.io/v1
    kind: RuntimeClass
    metadata: {name: myclass}
    handler: myconfiguration
    """


@pytest.mark.parametrize(("resource", "name", "manifest", "header"), [
    ("csidrivers", "mycsidriver.example.com", CSI_DRIVER,
     ["NAME", "ATTACHREQUIRED", "PODINFOONMOUNT", "STORAGECAPACITY", "TOKENREQUESTS", "REQUIRESREPUBLISH", "MODES",
      "AGE"]),
    ("csinodes", "node-1", CSI_NODE, ["NAME", "DRIVERS", "AGE"]),
    ("volumeattachments", "csi-0123abcd", VOLUME_ATTACHMENT, ["NAME", "ATTACHER", "PV", "NODE", "ATTACHED", "AGE"]),
    ("runtimeclasses", "myclass", RUNTIME_CLASS, ["NAME", "HANDLER", "AGE"]),
], ids=["csidrivers", "csinodes", "volumeattachments", "runtimeclasses"])
def test_cluster_kinds_with_kubectl(server: ServerProcess, resource: str, name: str, manifest: str,
                                    header: list[str]) -> None:
    _lifecycle(server, [], resource, name, manifest, header)


def test_csi_storage_capacity_with_kubectl(server: ServerProcess, namespace: str) -> None:
    _lifecycle(server, ["-n", namespace], "csistoragecapacities", "capacity-1", CSI_STORAGE_CAPACITY,
               ["NAME", "STORAGECLASSNAME", "CAPACITY"])


def test_api_resources_lists_them(server: ServerProcess) -> None:
    rows = {line.split()[0]: line.split() for line in server.kubectl("api-resources", "--no-headers").stdout.splitlines()}
    for name, group_version, namespaced, kind in [
        ("csidrivers", "storage.k8s.io/v1", "false", "CSIDriver"),
        ("csinodes", "storage.k8s.io/v1", "false", "CSINode"),
        ("csistoragecapacities", "storage.k8s.io/v1", "true", "CSIStorageCapacity"),
        ("volumeattachments", "storage.k8s.io/v1", "false", "VolumeAttachment"),
        ("runtimeclasses", "node.k8s.io/v1", "false", "RuntimeClass"),
    ]:
        assert rows[name] == [name, group_version, namespaced, kind], rows.get(name)
    assert rows["componentstatuses"] == ["componentstatuses", "cs", "v1", "false", "ComponentStatus"]
    wide = server.kubectl("api-resources", "-o", "wide", "--api-group", "").stdout
    assert [line.split()[-1] for line in wide.splitlines() if line.startswith("componentstatuses ")] == ["get,list"]


def test_table_cells_of_a_table_row(server: ServerProcess) -> None:
    k = server.kubectl
    k("apply", "-f", "-", input=_doc(CSI_DRIVER))
    try:
        row = k("get", "csidriver", "mycsidriver.example.com", "--no-headers").stdout.split()
        assert row[:7] == ["mycsidriver.example.com", "true", "true", "false", "gcp,", "true", "Persistent,Ephemeral"]
    finally:
        k("delete", "csidriver", "mycsidriver.example.com")


def test_volume_attachment_status_subresource(server: ServerProcess) -> None:
    k = server.kubectl
    k("apply", "-f", "-", input=_doc(VOLUME_ATTACHMENT).replace("csi-0123abcd", "va-status"))
    try:
        assert _get(k, "volumeattachment", "va-status")["status"] == {"attached": False}
        k("patch", "volumeattachment", "va-status", "--subresource=status", "--type=merge",
          "-p", '{"status": {"attached": true, "attachmentMetadata": {"devicePath": "/dev/sdb"}}}')
        va = _get(k, "volumeattachment", "va-status")
        assert va["status"] == {"attached": True, "attachmentMetadata": {"devicePath": "/dev/sdb"}}
        assert k("get", "volumeattachment", "va-status", "--no-headers").stdout.split()[4] == "true"
        # The main resource keeps the status, and the spec is immutable.
        out = k("patch", "volumeattachment", "va-status", "--type=merge", "-p", '{"spec": {"nodeName": "node-2"}}',
                check=False)
        assert out.returncode != 0
        assert out.stderr.startswith('The VolumeAttachment "va-status" is invalid: spec: Invalid value: ')
        assert out.stderr.endswith(": field is immutable\n")
    finally:
        k("delete", "volumeattachment", "va-status")


def test_component_statuses_with_kubectl(server: ServerProcess) -> None:
    """The shared server runs no scheduler and no controller manager: kubectl says so."""
    out = server.kubectl("get", "componentstatuses")
    assert "Warning: v1 ComponentStatus is deprecated in v1.19+" in out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "MESSAGE", "ERROR"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert sorted(rows) == ["controller-manager", "etcd-0", "scheduler"]
    assert rows["etcd-0"] == ["etcd-0", "Healthy", "ok"]
    assert rows["scheduler"][:2] == ["scheduler", "Unhealthy"]
    assert "no leader election lease" in lines[1 + list(rows).index("scheduler")]
    assert server.kubectl("get", "cs", "etcd-0", "--no-headers").stdout.split() == ["etcd-0", "Healthy", "ok"]
    refused = server.kubectl("delete", "cs", "etcd-0", check=False)
    assert refused.returncode != 0
    assert "(MethodNotAllowed): the server does not allow this method on the requested resource" in refused.stderr
    missing = server.kubectl("get", "cs", "kube-proxy", check=False)
    assert 'componentstatuses "kube-proxy" not found' in missing.stderr


def test_component_statuses_of_a_running_control_plane(tmp_path: Path) -> None:
    with ServerProcess.start(tmp_path / "data", control_plane=True) as srv:
        api = config.new_client_from_config(config_file=str(srv.kubeconfig))
        try:
            core = client.CoreV1Api(api)
            deadline_rows = _wait_healthy(core)
            assert deadline_rows == {"controller-manager": ("True", "ok"), "etcd-0": ("True", "ok"),
                                     "scheduler": ("True", "ok")}
            one = core.read_component_status("scheduler")
            assert one.conditions[0].type == "Healthy" and one.conditions[0].status == "True"
        finally:
            api.close()


# --- the official client ---------------------------------------------------------------------


def test_storage_v1_api(api: client.ApiClient, namespace: str) -> None:
    storage = client.StorageV1Api(api)
    driver = storage.create_csi_driver({"metadata": {"name": "py.csi.example.com"}, "spec": {}})
    assert driver.spec.attach_required is True and driver.spec.volume_lifecycle_modes == ["Persistent"]
    assert driver.spec.fs_group_policy == "ReadWriteOnceWithFSType" and driver.metadata.generation == 1
    patched = storage.patch_csi_driver("py.csi.example.com", {"spec": {"podInfoOnMount": True}})
    assert patched.metadata.generation == 2
    with pytest.raises(ApiException) as e:
        storage.patch_csi_driver("py.csi.example.com", {"spec": {"attachRequired": False}})
    assert e.value.status == 422
    assert json.loads(e.value.body)["details"]["causes"] == [
        {"reason": "FieldValueInvalid", "message": "Invalid value: false: field is immutable",
         "field": "spec.attachedRequired"}]
    storage.delete_csi_driver("py.csi.example.com")

    node = storage.create_csi_node({"metadata": {"name": "py-node"},
                                    "spec": {"drivers": [{"name": "a.csi.io", "nodeID": "n1"}]}})
    assert [d.name for d in node.spec.drivers] == ["a.csi.io"]
    assert "py-node" in [n.metadata.name for n in storage.list_csi_node().items]
    storage.delete_csi_node("py-node")

    va = storage.create_volume_attachment({"metadata": {"name": "py-va"}, "spec": {
        "attacher": "a.csi.io", "nodeName": "n1", "source": {"persistentVolumeName": "pv-1"}}})
    assert va.status.attached is False
    va = storage.patch_volume_attachment_status("py-va", {"status": {"attached": True}})
    assert va.status.attached is True
    assert storage.read_volume_attachment_status("py-va").status.attached is True
    storage.delete_volume_attachment("py-va")

    cap = storage.create_namespaced_csi_storage_capacity(namespace, {
        "metadata": {"name": "py-cap"}, "storageClassName": "standard", "capacity": "1024Mi",
        "maximumVolumeSize": "512Mi"})
    # (Kubernetes serves quantities canonically, 1Gi; kybernetes does not canonicalize any kind's yet.)
    assert (parse_quantity(cap.capacity), cap.maximum_volume_size) == (parse_quantity("1Gi"), "512Mi")
    with pytest.raises(ApiException) as e:
        storage.patch_namespaced_csi_storage_capacity("py-cap", namespace, {"storageClassName": "other"})
    assert e.value.status == 422
    assert [c.metadata.name for c in storage.list_csi_storage_capacity_for_all_namespaces().items] == ["py-cap"]


def test_node_v1_api_and_runtime_class_admission(api: client.ApiClient, namespace: str) -> None:
    node_api, core = client.NodeV1Api(api), client.CoreV1Api(api)
    node_api.create_runtime_class({
        "metadata": {"name": "sandboxed"}, "handler": "runsc",
        "overhead": {"podFixed": {"cpu": "250m", "memory": "120Mi"}},
        "scheduling": {"nodeSelector": {"runtime": "gvisor"},
                       "tolerations": [{"key": "runtime", "operator": "Equal", "value": "gvisor",
                                        "effect": "NoSchedule"}]}})
    try:
        assert node_api.read_runtime_class("sandboxed").handler == "runsc"
        assert "sandboxed" in [rc.metadata.name for rc in node_api.list_runtime_class().items]
        with pytest.raises(ApiException) as e:
            node_api.patch_runtime_class("sandboxed", {"handler": "kata"})
        assert e.value.status == 422

        pod = core.create_namespaced_pod(namespace, _pod("p1", runtimeClassName="sandboxed",
                                                         nodeSelector={"disk": "ssd"}))
        assert pod.spec.overhead == {"cpu": "250m", "memory": "120Mi"}
        assert pod.spec.node_selector == {"disk": "ssd", "runtime": "gvisor"}
        assert [(t.key, t.value, t.effect) for t in pod.spec.tolerations if t.key == "runtime"] == [
            ("runtime", "gvisor", "NoSchedule")]

        for body, message in [
            (_pod("p2", runtimeClassName="missing"), 'pods "p2" is forbidden: pod rejected: RuntimeClass "missing" '
                                                     "not found"),
            (_pod("p3", overhead={"cpu": "1"}), 'pods "p3" is forbidden: pod rejected: Pod Overhead set without '
                                                "corresponding RuntimeClass defined Overhead"),
            (_pod("p4", runtimeClassName="sandboxed", overhead={"cpu": "1"}),
             "pods \"p4\" is forbidden: pod rejected: Pod's Overhead doesn't match RuntimeClass's defined Overhead"),
            (_pod("p5", runtimeClassName="sandboxed", nodeSelector={"runtime": "runc"}),
             'pods "p5" is forbidden: conflict: runtimeClass.scheduling.nodeSelector[runtime] = gvisor; '
             "pod.spec.nodeSelector[runtime] = runc"),
        ]:
            with pytest.raises(ApiException) as e:
                core.create_namespaced_pod(namespace, body)
            assert e.value.status == 403
            assert json.loads(e.value.body)["message"] == message
    finally:
        node_api.delete_runtime_class("sandboxed")


def test_core_v1_component_status(api: client.ApiClient) -> None:
    core = client.CoreV1Api(api)
    statuses = {cs.metadata.name: cs for cs in core.list_component_status().items}
    assert sorted(statuses) == ["controller-manager", "etcd-0", "scheduler"]
    assert (statuses["etcd-0"].conditions[0].status, statuses["etcd-0"].conditions[0].message) == ("True", "ok")
    assert statuses["scheduler"].conditions[0].status == "Unknown"
    with pytest.raises(ApiException) as e:
        core.read_component_status("nothing")
    assert e.value.status == 404


# --- helpers ---------------------------------------------------------------------------------


def _doc(manifest: str) -> str:
    import textwrap

    return textwrap.dedent(manifest).strip() + "\n"


def _get(kubectl, resource: str, name: str) -> dict:  # type: ignore[no-untyped-def]
    return dict(json.loads(kubectl("get", resource, name, "-o", "json").stdout))


def _pod(name: str, **spec: object) -> dict[str, object]:
    return {"metadata": {"name": name}, "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}], **spec}}


def _wait_healthy(core: client.CoreV1Api, timeout: float = 60.0) -> dict[str, tuple[str, str]]:
    """Component statuses once every one is healthy (the leaders need a moment to take their leases)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        rows = {cs.metadata.name: (cs.conditions[0].status, cs.conditions[0].message or "")
                for cs in core.list_component_status().items}
        if all(status == "True" for status, _ in rows.values()) or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)
