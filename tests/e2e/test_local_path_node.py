"""The local-storage add-on on a real node: `kyb local-path-provisioner` runs from the system image
and gives claims a directory on their node, grows them, and removes them on reclaim (Delete only).
Then StatefulSets on the default `local-path` class, with nothing but the real parts (scheduler's
VolumeBinding, PV controller, provisioner, kubelet): each pod writes into its own volume, the set is
deleted (its claims stay) and recreated, and every pod reads its own data back; a scale-down keeps
the claim, unless `persistentVolumeClaimRetentionPolicy.whenScaled` is Delete, which removes the
claim and (reclaim policy Delete) its directory.

In the first tests no pod asks for the claims, so the test plays the scheduler's part through its
protocol (STORAGE.md): it annotates a claim with `volume.kubernetes.io/selected-node`. The PV
controller (binder) is the real one: it hands the claim to the provisioner
(`volume.kubernetes.io/storage-provisioner`), binds it to the PV the provisioner made, and marks the
PV Released once the claim is gone.

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
    """A claim as the scheduler leaves it once it has chosen a node (the binder does the rest)."""
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": name, "annotations": {"volume.kubernetes.io/selected-node": selected}},
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


def bound(node: Node, ns: str, claim: Obj, pv: Obj) -> None:
    """Until the PV controller has bound the claim to its provisioned volume (both Bound)."""
    name, pv_name = claim["metadata"]["name"], pv["metadata"]["name"]

    def both_bound() -> bool:
        got = node.get("pvc", name, "-n", ns)
        return (got["spec"].get("volumeName") == pv_name and got["status"].get("phase") == "Bound"
                and node.get("pv", pv_name)["status"].get("phase") == "Bound")

    wait_until(both_bound, 60, f"claim {ns}/{name} bound to {pv_name}")


def release(node: Node, ns: str, claim_name: str) -> None:
    """The claim is deleted (and gone once unused); the PV controller then releases its volume."""
    node.kubectl("delete", "pvc", claim_name, "-n", ns, "--timeout=60s", timeout=90)


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

    bound(node, ns, claim, pv)
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
    release(node, ns, "data")
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
    bound(node, ns, kept, kept_pv)
    release(node, ns, "kept")
    # A Delete volume released after it is removed: the provisioner has seen both by then.
    gone = create_claim(node, ns, "gone", selected=node.node_name)
    gone_pv = wait_volume(node, gone)
    bound(node, ns, gone, gone_pv)
    release(node, ns, "gone")
    wait_until(lambda: node.kubectl("get", "pv", gone_pv["metadata"]["name"], check=False).returncode != 0, 120,
               "the Delete volume deleted")
    assert (kept_dir / "precious").read_text() == "keep me"
    wait_until(lambda: node.get("pv", kept_pv["metadata"]["name"])["status"]["phase"] == "Released", 30,
               "the Retain volume Released")
    assert (kept_dir / "precious").read_text() == "keep me"
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
    release(node, ns, "lost")
    wait_until(lambda: node.kubectl("get", "pv", pv["metadata"]["name"], check=False).returncode != 0, 120,
               "the released volume deleted")


# ---- StatefulSets on the default class: the scheduler, the binder and the provisioner together ----

# Each pod records who it is the first time it runs on its volume, and every start (so a volume
# mounted again is told from one made afresh).
STATEFUL_SCRIPT = '[ -f /data/id ] || echo "$HOSTNAME" > /data/id; echo start >> /data/starts; exec sleep 3600'


def stateful_set(name: str, replicas: int, **spec: object) -> Obj:
    """A busybox StatefulSet with claim template ``data`` (no class: the default, local-path)."""
    labels = {"app": name}
    template = pod(name, STATEFUL_SCRIPT, container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]})
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels}, "spec": template["spec"]},
                     "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                         "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "64Mi"}}}}],
                     **spec}}


def wait_set_ready(node: Node, ns: str, name: str, replicas: int) -> None:
    def ready() -> bool:
        status = node.get("statefulset", name, "-n", ns).get("status") or {}
        pods = node.get("pods", "-n", ns, "-l", f"app={name}")["items"]
        return status.get("readyReplicas", 0) == replicas and len(pods) == replicas

    try:
        wait_until(ready, 180, f"statefulset {ns}/{name} with {replicas} ready pods", interval=0.5)
    except AssertionError as err:
        pods = node.kubectl("get", "pods,pvc", "-n", ns, "-o", "wide", check=False).stdout
        events = node.kubectl("get", "events", "-n", ns, check=False).stdout
        raise AssertionError(f"{err}\n{pods}\n{events}") from None


def claim_volume(node: Node, ns: str, claim: str) -> tuple[str, Path]:
    """The bound claim's volume: its name and its directory on this node."""
    pvc = node.get("pvc", claim, "-n", ns)
    assert pvc["status"]["phase"] == "Bound", pvc
    pv = node.get("pv", pvc["spec"]["volumeName"])
    assert pv["spec"]["storageClassName"] == "local-path"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    return pv["metadata"]["name"], Path(pv["spec"]["local"]["path"])


def read_in_pod(node: Node, ns: str, pod_name: str, path: str) -> str:
    return node.kubectl("exec", pod_name, "-n", ns, "--", "cat", path).stdout


def test_stateful_set_is_deleted_and_recreated_and_reads_its_own_data_back(node: Node, ns: str) -> None:
    root = storage_root(node)
    names = ["web-0", "web-1", "web-2"]
    node.apply(ns, {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                    "spec": {"clusterIP": "None", "selector": {"app": "web"}, "ports": [{"port": 80}]}},
               stateful_set("web", 3))
    wait_set_ready(node, ns, "web", 3)
    volumes = {}
    for name in names:
        pod_obj = node.pod(ns, name)
        assert pod_obj["spec"]["nodeName"] == node.node_name
        # The scheduler chose the node for the claim (WaitForFirstConsumer), the provisioner made it there.
        pvc = node.get("pvc", f"data-{name}", "-n", ns)
        assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node.node_name
        volumes[name] = claim_volume(node, ns, f"data-{name}")
        assert volumes[name][1].parent == root
        assert read_in_pod(node, ns, name, "/data/id") == f"{name}\n"
        assert (volumes[name][1] / "id").read_text() == f"{name}\n"

    # The set deleted: its pods go, their claims (and volumes, and bytes) stay, as in Kubernetes.
    node.kubectl("delete", "statefulset", "web", "-n", ns, "--cascade=foreground", "--timeout=120s",
                 timeout=130)
    wait_until(lambda: not node.get("pods", "-n", ns, "-l", "app=web")["items"], 120, "the set's pods gone")
    for name in names:
        assert claim_volume(node, ns, f"data-{name}") == volumes[name]
        assert (volumes[name][1] / "id").read_text() == f"{name}\n"

    # Recreated: every pod gets its own claim back and reads what it wrote (started twice on it).
    node.apply(ns, stateful_set("web", 3))
    wait_set_ready(node, ns, "web", 3)
    for name in names:
        assert claim_volume(node, ns, f"data-{name}") == volumes[name]
        assert read_in_pod(node, ns, name, "/data/id") == f"{name}\n"
        assert read_in_pod(node, ns, name, "/data/starts") == "start\nstart\n"

    # Scaled down (whenScaled: Retain, the default): web-2 goes, its claim and bytes stay.
    node.kubectl("scale", "statefulset", "web", "-n", ns, "--replicas=2")
    wait_until(lambda: node.kubectl("get", "pod", "web-2", "-n", ns, check=False).returncode != 0, 60,
               "web-2 gone")
    wait_set_ready(node, ns, "web", 2)
    assert claim_volume(node, ns, "data-web-2") == volumes["web-2"]
    assert (volumes["web-2"][1] / "id").read_text() == "web-2\n"


def test_stateful_set_scaled_down_deletes_the_claim_when_scaled_delete(node: Node, ns: str) -> None:
    node.apply(ns, stateful_set("db", 2, persistentVolumeClaimRetentionPolicy={
        "whenScaled": "Delete", "whenDeleted": "Retain"}))
    wait_set_ready(node, ns, "db", 2)
    kept_pv, kept_dir = claim_volume(node, ns, "data-db-0")
    gone_pv, gone_dir = claim_volume(node, ns, "data-db-1")
    assert (gone_dir / "id").read_text() == "db-1\n"

    node.kubectl("scale", "statefulset", "db", "-n", ns, "--replicas=1")
    # The claim of the scaled-away ordinal goes with its pod; the volume (Delete) with its directory.
    wait_until(lambda: node.kubectl("get", "pvc", "data-db-1", "-n", ns, check=False).returncode != 0, 120,
               "claim data-db-1 deleted")
    wait_until(lambda: node.kubectl("get", "pv", gone_pv, check=False).returncode != 0, 120,
               f"volume {gone_pv} deleted")
    assert not gone_dir.exists()
    # Ordinal 0 keeps its claim, volume and bytes.
    assert claim_volume(node, ns, "data-db-0") == (kept_pv, kept_dir)
    assert read_in_pod(node, ns, "db-0", "/data/id") == "db-0\n"
