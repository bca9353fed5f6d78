"""Persistent volumes end to end on a real node: a `kyb server` with its agent, kubectl 1.32.

A static ``local`` PersistentVolume in a temp dir is bound to a claim by the PV controller; a pod
writes through a ``subPath`` mount and cannot write through a ``readOnly`` one; after the pod and
the claim are deleted the Retain volume is Released and its bytes are still on the host, while a
Delete volume with no deleter is Failed (and its data kept too). A generic ephemeral volume gets its
claim from the ephemeral volume controller, bound to a static volume, and the pod runs on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import Obj, wait_until
from .test_node import Node, _pick_network, pod, require_node, running_node

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_node()
    with running_node(tmp_path_factory.mktemp("kyb-vol-node").resolve(), "e2e-vol", _pick_network()) as n:
        yield n


def local_pv(name: str, path: Path, node_name: str, policy: str = "Retain") -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "persistentVolumeReclaimPolicy": policy, "local": {"path": str(path)},
                     "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                         {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}]}]}}}}


def claim(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                     "resources": {"requests": {"storage": "1Gi"}}}}


def phase(n: Node, kind: str, name: str, ns: str = "") -> str:
    args = ["-n", ns] if ns else []
    got = n.kubectl("get", kind, name, *args, "-o", "jsonpath={.status.phase}", check=False)
    return got.stdout if got.returncode == 0 else ""


def test_static_local_volume_is_bound_written_and_retained(node: Node, tmp_path: Path) -> None:
    ns = "pv-retain"
    node.kubectl("create", "namespace", ns)
    kept, doomed = tmp_path / "kept", tmp_path / "doomed"
    kept.mkdir()
    doomed.mkdir()
    node.apply("", local_pv("e2e-kept", kept, node.node_name))
    wait_until(lambda: phase(node, "pv", "e2e-kept") == "Available", 30, "the volume Available")
    writer = pod("writer", "echo precious > /data/file && sleep 3600", container={"volumeMounts": [
        {"name": "d", "mountPath": "/data", "subPath": "app"}, {"name": "d", "mountPath": "/all", "readOnly": True}]},
                 volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}])
    node.apply(ns, claim("data"), writer)
    wait_until(lambda: phase(node, "pvc", "data", ns) == "Bound", 30, "the claim Bound")
    assert node.get("pvc", "data", "-n", ns)["spec"]["volumeName"] == "e2e-kept"
    node.wait_ready(ns, "writer")
    wait_until(lambda: (kept / "app" / "file").exists(), 30, "the pod's write on the host")
    assert node.kubectl("exec", "writer", "-n", ns, "--", "cat", "/all/app/file").stdout == "precious\n"
    refused = node.kubectl("exec", "writer", "-n", ns, "--", "touch", "/all/x", check=False)
    assert refused.returncode != 0 and "Read-only file system" in refused.stderr
    node.kubectl("delete", "pod", "writer", "-n", ns, "--grace-period=1", "--timeout=60s")
    node.kubectl("delete", "pvc", "data", "-n", ns, "--timeout=60s")
    wait_until(lambda: phase(node, "pv", "e2e-kept") == "Released", 30, "the volume Released")
    assert (kept / "app" / "file").read_text() == "precious\n"
    # Delete with no deleter for a local volume: Failed, and the data stays as well.
    (doomed / "file").write_text("still here\n")
    node.apply("", local_pv("e2e-doomed", doomed, node.node_name, policy="Delete"))
    wait_until(lambda: phase(node, "pv", "e2e-doomed") == "Available", 30, "the second volume Available")
    node.apply(ns, claim("gone"))
    wait_until(lambda: phase(node, "pvc", "gone", ns) == "Bound", 30, "the second claim Bound")
    node.kubectl("delete", "pvc", "gone", "-n", ns, "--timeout=60s")
    wait_until(lambda: phase(node, "pv", "e2e-doomed") == "Failed", 30, "the Delete volume Failed")
    message = node.get("pv", "e2e-doomed")["status"]["message"]
    assert message == 'error getting deleter volume plugin for volume "e2e-doomed": no deletable volume plugin matched'
    assert (doomed / "file").read_text() == "still here\n"
    node.kubectl("delete", "pv", "e2e-kept", "e2e-doomed", "--timeout=60s")
    node.kubectl("delete", "namespace", ns, "--wait=false")


def test_generic_ephemeral_volume(node: Node, tmp_path: Path) -> None:
    ns = "pv-ephemeral"
    node.kubectl("create", "namespace", ns)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    node.apply("", local_pv("e2e-scratch", scratch, node.node_name))
    template = {"spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
                         "resources": {"requests": {"storage": "1Gi"}}}}
    user = pod("eph", "echo hi > /scratch/out && sleep 3600",
               container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]},
               volumes=[{"name": "scratch", "ephemeral": {"volumeClaimTemplate": template}}])
    node.apply(ns, user)
    wait_until(lambda: phase(node, "pvc", "eph-scratch", ns) == "Bound", 60, "the ephemeral claim Bound")
    made = node.get("pvc", "eph-scratch", "-n", ns)
    owner = made["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["controller"]) == ("Pod", "eph", True)
    node.wait_ready(ns, "eph", timeout=90)
    wait_until(lambda: (scratch / "out").exists(), 30, "the pod's write")
    node.kubectl("delete", "pod", "eph", "-n", ns, "--grace-period=1", "--timeout=60s")
    # the garbage collector deletes the pod's claim; the Retain volume is Released with the data
    wait_until(lambda: phase(node, "pv", "e2e-scratch") == "Released", 60, "the volume Released")
    assert (scratch / "out").read_text() == "hi\n"
    node.kubectl("delete", "pv", "e2e-scratch", "--timeout=60s")
    node.kubectl("delete", "namespace", ns, "--wait=false")
