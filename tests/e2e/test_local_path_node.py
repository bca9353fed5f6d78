"""The local-storage add-on on a real node: `kyb local-path-provisioner` runs from the system image
and gives claims a directory on their node, grows them, and removes them on reclaim (Delete only).

The PV controller (binder) and the scheduler's VolumeBinding are not part of this test: it plays
their part through their protocol (STORAGE.md), as they would. It annotates a claim with
`volume.kubernetes.io/selected-node` (the scheduler) and `volume.kubernetes.io/storage-provisioner`
(the binder), binds the claim to the PV the provisioner made (spec.volumeName, phases Bound) and
marks the PV Released once the claim is gone.

The provisioner reaches the API server through the kubernetes Service, hence the server runs as a
user starts it (serving on this machine's primary address, like test_addons_node).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Obj, wait_until
from .test_node import Node, _pick_network, pod, require_node, running_node

PROVISIONER = "kybernetes.io/local-path"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_node(pods_reach_primary_address=True)
    octet = _pick_network()
    with running_node(tmp_path_factory.mktemp("kyb-localpath").resolve(), "e2e-lp", octet,
                      "--bind-address", "", "--disable", "coredns", addons=True) as n:
        # The provisioner's pod runs once the kubelet has imported the system image.
        def provisioner_running() -> bool:
            pods = n.get("pods", "-n", "kube-system", "-l", "app=local-path-provisioner")["items"]
            return any((p.get("status") or {}).get("phase") == "Running" for p in pods)

        wait_until(provisioner_running, 240, "the local-path-provisioner pod running")
        yield n


@pytest.fixture
def ns(node: Node, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"lp-{request.node.name.removeprefix('test_').replace('_', '-')[:40].strip('-')}"
    node.kubectl("create", "namespace", name)
    wait_until(lambda: node.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0, 30,
               f"the default ServiceAccount in {name}")
    yield name
    node.kubectl("delete", "namespace", name, "--wait=false", check=False)
    # No helper pod is left running when the test ends (nor when the node stops).
    wait_until(lambda: not node.get("pods", "-n", "kube-system", "-l", "kybernetes.io/local-path-helper")["items"],
               60, "no helper pods")


def storage_root(node: Node) -> Path:
    """Where the kubelet said this node's volumes go (its Node annotation)."""
    got = node.get("node", node.node_name)["metadata"]["annotations"]["kybernetes.io/local-path-root"]
    assert got == str(node.agent_dir / "storage")
    return Path(got)


def create_claim(node: Node, ns: str, name: str, *, selected: str, storage_class: str = "local-path",
                 size: str = "1Gi") -> Obj:
    """A claim as the scheduler and the binder leave it for the provisioner."""
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": name, "annotations": {
                 "volume.kubernetes.io/selected-node": selected,
                 "volume.kubernetes.io/storage-provisioner": PROVISIONER}},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                      "resources": {"requests": {"storage": size}}}}
    node.apply(ns, claim)
    return node.get("pvc", name, "-n", ns)


def wait_volume(node: Node, claim: Obj) -> Obj:
    name = f"pvc-{claim['metadata']['uid']}"

    def made() -> Obj | None:
        res = node.kubectl("get", "pv", name, "-o", "json", check=False)
        return json.loads(res.stdout) if res.returncode == 0 else None

    try:
        return dict(wait_until(made, 120, f"persistentvolume {name}"))
    except AssertionError as err:
        events = node.kubectl("get", "events", "-A", check=False).stdout
        logs = node.kubectl("logs", "-n", "kube-system", "deploy/local-path-provisioner", check=False).stdout
        raise AssertionError(f"{err}\n{events}\n{logs[-3000:]}") from None


def bind(node: Node, ns: str, claim: Obj, pv: Obj) -> None:
    """What the PV controller does when it binds a claim to a provisioned volume."""
    pv_name, size = pv["metadata"]["name"], pv["spec"]["capacity"]["storage"]
    node.kubectl("patch", "pv", pv_name, "--subresource=status", "--type=merge", "-p",
                 json.dumps({"status": {"phase": "Bound"}}))
    node.kubectl("patch", "pvc", claim["metadata"]["name"], "-n", ns, "--type=merge", "-p",
                 json.dumps({"spec": {"volumeName": pv_name}}))
    node.kubectl("patch", "pvc", claim["metadata"]["name"], "-n", ns, "--subresource=status", "--type=merge",
                 "-p", json.dumps({"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"],
                                              "capacity": {"storage": size}}}))


def release(node: Node, ns: str, claim_name: str, pv_name: str) -> None:
    """The claim is deleted (and gone once unused); the PV controller marks its volume Released."""
    node.kubectl("delete", "pvc", claim_name, "-n", ns, "--timeout=60s", timeout=90)
    node.kubectl("patch", "pv", pv_name, "--subresource=status", "--type=merge", "-p",
                 json.dumps({"status": {"phase": "Released"}}))


def reasons(node: Node, ns: str, name: str) -> dict[str, Obj]:
    return {e["reason"]: e for e in node.events(ns, name)}


def test_claim_gets_a_directory_that_a_pod_writes_and_delete_removes(node: Node, ns: str) -> None:
    root = storage_root(node)
    claim = create_claim(node, ns, "data", selected=node.node_name)
    pv = wait_volume(node, claim)
    uid = claim["metadata"]["uid"]
    directory = root / f"pvc-{uid}_{ns}_data"
    assert pv["spec"]["local"] == {"path": str(directory)}
    assert pv["spec"]["claimRef"]["uid"] == uid and pv["spec"]["capacity"] == {"storage": "1Gi"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"] == [
        {"key": "kubernetes.io/hostname", "operator": "In", "values": [node.node_name]}]
    assert directory.is_dir() and directory.stat().st_mode & 0o777 == 0o777
    events = reasons(node, ns, "data")
    assert events["Provisioning"]["message"] == f'External provisioner is provisioning volume for claim "{ns}/data"'
    assert events["ProvisioningSucceeded"]["message"] == f"Successfully provisioned volume pvc-{uid}"
    # The helper pod is gone.
    assert node.get("pods", "-n", "kube-system", "-l", "kybernetes.io/local-path-helper")["items"] == []

    bind(node, ns, claim, pv)
    writer = pod("writer", "echo written-by-a-pod > /data/file", restartPolicy="Never",
                 nodeName=node.node_name, container={"volumeMounts": [{"name": "v", "mountPath": "/data"}]},
                 volumes=[{"name": "v", "persistentVolumeClaim": {"claimName": "data"}}])
    node.apply(ns, writer)
    node.wait_pod(ns, "writer", "Succeeded", lambda p: p["status"].get("phase") == "Succeeded", timeout=90)
    assert (directory / "file").read_text() == "written-by-a-pod\n"

    # Expansion: the class allows it; the size is recorded on the PV and the claim.
    node.kubectl("patch", "pvc", "data", "-n", ns, "--type=merge", "-p",
                 '{"spec": {"resources": {"requests": {"storage": "2Gi"}}}}')
    wait_until(lambda: node.get("pvc", "data", "-n", ns)["status"].get("capacity") == {"storage": "2Gi"}, 60,
               "the claim's capacity grown to 2Gi")
    assert node.get("pv", pv["metadata"]["name"])["spec"]["capacity"] == {"storage": "2Gi"}
    status = node.get("pvc", "data", "-n", ns)["status"]
    assert not status.get("conditions") and status["allocatedResources"] == {"storage": "2Gi"}
    events = reasons(node, ns, "data")
    assert events["Resizing"]["message"] == f"External resizer is resizing volume pvc-{uid}"
    assert events["VolumeResizeSuccessful"]["message"] == "Resize volume succeeded"
    assert "2Gi" in node.kubectl("get", "pvc", "data", "-n", ns).stdout

    node.kubectl("delete", "pod", "writer", "-n", ns)
    release(node, ns, "data", pv["metadata"]["name"])
    wait_until(lambda: node.kubectl("get", "pv", pv["metadata"]["name"], check=False).returncode != 0, 120,
               "the released volume deleted")
    assert not directory.exists()


def test_retain_keeps_the_bytes(node: Node, ns: str) -> None:
    root = storage_root(node)
    node.apply("default", {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                           "metadata": {"name": f"retain-{ns}"}, "provisioner": PROVISIONER,
                           "reclaimPolicy": "Retain", "volumeBindingMode": "WaitForFirstConsumer"})
    kept = create_claim(node, ns, "kept", selected=node.node_name, storage_class=f"retain-{ns}")
    kept_pv = wait_volume(node, kept)
    assert kept_pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    kept_dir = root / f"pvc-{kept['metadata']['uid']}_{ns}_kept"
    (kept_dir / "precious").write_text("keep me")
    bind(node, ns, kept, kept_pv)
    release(node, ns, "kept", kept_pv["metadata"]["name"])
    # A Delete volume released after it is removed: the provisioner has seen both by then.
    gone = create_claim(node, ns, "gone", selected=node.node_name)
    gone_pv = wait_volume(node, gone)
    bind(node, ns, gone, gone_pv)
    release(node, ns, "gone", gone_pv["metadata"]["name"])
    wait_until(lambda: node.kubectl("get", "pv", gone_pv["metadata"]["name"], check=False).returncode != 0, 120,
               "the Delete volume deleted")
    assert (kept_dir / "precious").read_text() == "keep me"
    assert node.get("pv", kept_pv["metadata"]["name"])["status"]["phase"] == "Released"
    node.kubectl("delete", "pv", kept_pv["metadata"]["name"], "--wait=false")
    node.kubectl("delete", "storageclass", f"retain-{ns}")


def test_failure_retries_with_an_event_until_the_node_exists(node: Node, ns: str) -> None:
    claim = create_claim(node, ns, "lost", selected="no-such-node")

    def failed_twice() -> Obj | None:
        event = reasons(node, ns, "lost").get("ProvisioningFailed")
        return event if event and event.get("count", 1) >= 2 else None

    event = wait_until(failed_twice, 60, "ProvisioningFailed, retried")
    assert event["type"] == "Warning"
    assert event["message"] == ('failed to provision volume with StorageClass "local-path": '
                                'node "no-such-node" not found')
    # The scheduler chooses again (a node that exists): provisioned.
    node.kubectl("annotate", "pvc", "lost", "-n", ns, "--overwrite",
                 f"volume.kubernetes.io/selected-node={node.node_name}")
    pv = wait_volume(node, claim)
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"] == [
        node.node_name]
    node.kubectl("delete", "pvc", "lost", "-n", ns)
    node.kubectl("patch", "pv", pv["metadata"]["name"], "--subresource=status", "--type=merge", "-p",
                 '{"status": {"phase": "Released"}}')
    wait_until(lambda: node.kubectl("get", "pv", pv["metadata"]["name"], check=False).returncode != 0, 120,
               "the released volume deleted")
