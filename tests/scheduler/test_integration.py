"""The scheduler in-process against a real ``kyb server``: binding, failures, placement, preemption."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.scheduler.config import SchedulerConfig
from kybernetes.scheduler.scheduler import Scheduler
from kybernetes.testing import ServerProcess

from .util import node, pod

pytestmark = pytest.mark.integration
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess.start(tmp_path_factory.mktemp("kyb-sched"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def cluster(server: ServerProcess) -> AsyncIterator[tuple[Client, Scheduler]]:
    client = Client.from_kubeconfig(server.kubeconfig)
    sched = Scheduler(client, SchedulerConfig(pod_initial_backoff=0.2, pod_max_backoff=1.0))
    task = asyncio.create_task(sched.run(sync_timeout=20))
    try:
        yield client, sched
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.close()


async def eventually(fn: Callable[[], Awaitable[Any]], timeout: float = 15.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = await fn()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(0.1)


def api_pod(name: str, cpu: str, **kw: Any) -> Obj:
    p = pod(name, cpu, "64Mi", **kw)
    del p["metadata"]["uid"], p["metadata"]["creationTimestamp"], p["status"]
    p["spec"]["containers"][0]["image"] = "registry.k8s.io/pause:3.9"
    return p


async def node_of(client: Client, name: str) -> str:
    p = await client.get("v1", "pods", name, "default")
    return p["spec"].get("nodeName") or ""


async def test_scheduling_against_real_server(cluster: tuple[Client, Scheduler]) -> None:
    client, sched = cluster
    zones = {"n1": "a", "n2": "b", "n3": "c"}
    for name, zone in zones.items():
        labels = {"topology.kubernetes.io/zone": zone, **({"disk": "ssd"} if name == "n2" else {})}
        n = node(name, "2", "4Gi", labels=labels)
        await client.create("v1", "nodes", n)

    # Plain pods get bound.
    for i in range(3):
        await client.create("v1", "pods", api_pod(f"plain-{i}", "100m"), "default")
    for i in range(3):
        assert await eventually(lambda i=i: node_of(client, f"plain-{i}")) in zones
    bound = await client.get("v1", "pods", "plain-0", "default")
    cond = {c["type"]: c for c in bound["status"]["conditions"]}
    assert cond["PodScheduled"]["status"] == "True"

    # nodeSelector.
    await client.create("v1", "pods", api_pod("ssd", "100m", nodeSelector={"disk": "ssd"}), "default")
    assert await eventually(lambda: node_of(client, "ssd")) == "n2"

    # Required anti-affinity: three replicas on three different nodes.
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "spread"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    for i in range(3):
        await client.create("v1", "pods", api_pod(f"anti-{i}", "100m", labels={"app": "spread"}, affinity=anti),
                            "default")
    placed = [await eventually(lambda i=i: node_of(client, f"anti-{i}")) for i in range(3)]
    assert sorted(placed) == ["n1", "n2", "n3"]

    # A pod that fits nowhere: Pending, PodScheduled=False/Unschedulable, FailedScheduling event.
    await client.create("v1", "pods", api_pod("huge", "16"), "default")
    msg = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
           "3 No preemption victims found for incoming pod.")

    async def unschedulable() -> Obj | None:
        p = await client.get("v1", "pods", "huge", "default")
        for c in p["status"].get("conditions") or ():
            if c["type"] == "PodScheduled" and c["status"] == "False":
                return c
        return None
    c = await eventually(unschedulable)
    assert (c["reason"], c["message"]) == ("Unschedulable", msg)

    async def failed_event() -> Obj | None:
        evs = (await client.list("v1", "events", "default"))["items"]
        return next((e for e in evs if e["involvedObject"]["name"] == "huge" and e["reason"] == "FailedScheduling"),
                    None)
    ev = await eventually(failed_event)
    assert ev["type"] == "Warning" and ev["message"] == msg
    assert (await client.get("v1", "pods", "huge", "default"))["status"]["phase"] == "Pending"

    # Preemption: a high-priority pod evicts a low-priority one on the only node it may use.
    await client.create("scheduling.k8s.io/v1", "priorityclasses", {
        "apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": "high"}, "value": 1000})
    await client.create("v1", "pods", api_pod("low", "1500m", nodeSelector={"topology.kubernetes.io/zone": "a"}),
                        "default")
    assert await eventually(lambda: node_of(client, "low")) == "n1"
    await client.create("v1", "pods", api_pod("vip", "1500m", nodeSelector={"topology.kubernetes.io/zone": "a"},
                                              priorityClassName="high"), "default")

    async def low_terminating() -> bool:
        p = await client.get("v1", "pods", "low", "default")
        return p["metadata"].get("deletionTimestamp") is not None
    await eventually(low_terminating)
    vip = await client.get("v1", "pods", "vip", "default")
    assert vip["status"].get("nominatedNodeName") == "n1"
    # No kubelet here: finish the graceful deletion as a kubelet would.
    await client.delete("v1", "pods", "low", "default", grace_period_seconds=0)
    assert await eventually(lambda: node_of(client, "vip")) == "n1"
    evs = (await client.list("v1", "events", "default"))["items"]
    assert any(e["reason"] == "Preempted" and e["involvedObject"]["name"] == "low" for e in evs)
    assert sched.stats["scheduled"] >= 8


async def test_explain_cli(server: ServerProcess, cluster: tuple[Client, Scheduler], tmp_path: Path) -> None:
    client, _ = cluster
    import json

    from click.testing import CliRunner

    from kybernetes.scheduler.cmd import explain_command

    with contextlib.suppress(Exception):
        await client.create("v1", "nodes", node("x1", "1", "1Gi"))
    p = api_pod("too-big", "1500m", nodeSelector={"kubernetes.io/hostname": "x1"})
    p["spec"]["schedulerName"] = "nobody"  # keep the running scheduler away from it
    await client.create("v1", "pods", p, "default")
    runner = CliRunner()
    res = await asyncio.to_thread(runner.invoke, explain_command,
                                  ["too-big", "-n", "default", "--kubeconfig", str(server.kubeconfig), "-o", "json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["chosen"] is None
    assert "lower cpu request by 500m to fit x1" in out["suggestions"]

    # Volume reasons: a claim that does not exist, and what to create.
    p = _with_claim(api_pod("no-claim", "100m"), "missing")
    p["spec"]["schedulerName"] = "nobody"
    await client.create("v1", "pods", p, "default")
    res = await asyncio.to_thread(runner.invoke, explain_command,
                                  ["no-claim", "--kubeconfig", str(server.kubeconfig)])
    assert res.exit_code == 0, res.output
    assert 'persistentvolumeclaim "missing" not found' in res.output
    assert "create PersistentVolumeClaim 'missing' in namespace 'default'" in res.output


# --- volumes: the scheduler's part of the binder/provisioner protocol ------------------------------
# No PV controller or provisioner runs here: the tests do their part through the API, as they would.

def _claim(name: str, cls: str) -> Obj:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"storageClassName": cls, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "1Gi"}}}}


def _local_pv(name: str, cls: str, node_name: str, claim: Obj | None = None) -> Obj:
    spec: Obj = {"storageClassName": cls, "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"},
                 "persistentVolumeReclaimPolicy": "Delete", "local": {"path": f"/var/lib/kyb/storage/{name}"},
                 "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                     {"key": "kubernetes.io/hostname", "operator": "In", "values": [node_name]}]}]}}}
    if claim is not None:
        spec["claimRef"] = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "default",
                            "name": claim["metadata"]["name"], "uid": claim["metadata"]["uid"]}
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name}, "spec": spec}


async def _bind(client: Client, claim_name: str, pv: Obj) -> None:
    """Play the PV controller: the PV and the claim Bound to each other."""
    pv = await client.create("v1", "persistentvolumes", pv)
    pv["status"] = {"phase": "Bound"}
    await client.update("v1", "persistentvolumes", pv, subresource="status")
    claim = await client.get("v1", "persistentvolumeclaims", claim_name, "default")
    claim["spec"]["volumeName"] = pv["metadata"]["name"]
    claim["metadata"].setdefault("annotations", {})["pv.kubernetes.io/bind-completed"] = "yes"
    claim = await client.update("v1", "persistentvolumeclaims", claim, "default")
    claim["status"] = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    await client.update("v1", "persistentvolumeclaims", claim, "default", subresource="status")


def _with_claim(p: Obj, claim: str) -> Obj:
    p["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}]
    p["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return p


async def _volume_nodes(client: Client) -> None:
    # v1 scores lowest (an untolerated PreferNoSchedule taint): only a volume takes a pod there.
    for name in ("v1", "v2"):
        taints = [{"key": "example.com/avoid", "effect": "PreferNoSchedule"}] if name == "v1" else []
        with contextlib.suppress(Exception):
            await client.create("v1", "nodes", node(name, "2", "4Gi", taints=taints))


async def test_wait_for_first_consumer_claim_gets_selected_node(cluster: tuple[Client, Scheduler]) -> None:
    client, _ = cluster
    await _volume_nodes(client)
    await client.create("storage.k8s.io/v1", "storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "sched-wffc"},
        "provisioner": "kybernetes.io/local-path", "volumeBindingMode": "WaitForFirstConsumer",
        "allowedTopologies": [{"matchLabelExpressions": [{"key": "kubernetes.io/hostname", "values": ["v2"]}]}]})
    await client.create("v1", "persistentvolumeclaims", _claim("wffc", "sched-wffc"), "default")
    await client.create("v1", "pods", _with_claim(api_pod("wffc-pod", "100m"), "wffc"), "default")

    async def selected() -> str:
        c = await client.get("v1", "persistentvolumeclaims", "wffc", "default")
        return (c["metadata"].get("annotations") or {}).get("volume.kubernetes.io/selected-node", "")
    assert await eventually(selected) == "v2"
    assert await node_of(client, "wffc-pod") == ""  # PreBind waits for the claim to be bound
    # The provisioner's PV on the chosen node, bound by the PV controller.
    claim = await client.get("v1", "persistentvolumeclaims", "wffc", "default")
    await _bind(client, "wffc", _local_pv(f"pvc-{claim['metadata']['uid']}", "sched-wffc", "v2", claim))
    assert await eventually(lambda: node_of(client, "wffc-pod")) == "v2"


async def test_pod_goes_to_its_volumes_node(cluster: tuple[Client, Scheduler]) -> None:
    client, _ = cluster
    await _volume_nodes(client)
    await client.create("v1", "persistentvolumeclaims", _claim("pinned", ""), "default")
    claim = await client.get("v1", "persistentvolumeclaims", "pinned", "default")
    await _bind(client, "pinned", _local_pv("pinned-pv", "", "v1", claim))
    await client.create("v1", "pods", _with_claim(api_pod("pinned-pod", "100m"), "pinned"), "default")
    assert await eventually(lambda: node_of(client, "pinned-pod")) == "v1"


async def test_unbound_immediate_claim_keeps_pod_pending(cluster: tuple[Client, Scheduler]) -> None:
    client, _ = cluster
    await _volume_nodes(client)
    await client.create("storage.k8s.io/v1", "storageclasses", {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": "sched-immediate"},
        "provisioner": "example.com/nothing", "volumeBindingMode": "Immediate"})
    await client.create("v1", "persistentvolumeclaims", _claim("later", "sched-immediate"), "default")
    await client.create("v1", "pods", _with_claim(api_pod("waits", "100m"), "later"), "default")

    async def failed_event() -> Obj | None:
        evs = (await client.list("v1", "events", "default"))["items"]
        return next((e for e in evs if e["involvedObject"]["name"] == "waits" and e["reason"] == "FailedScheduling"),
                    None)
    ev = await eventually(failed_event)
    n = len((await client.list("v1", "nodes"))["items"])
    assert ev["message"] == (f"0/{n} nodes are available: pod has unbound immediate PersistentVolumeClaims. "
                             f"preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.")
    p = await client.get("v1", "pods", "waits", "default")
    assert p["status"]["phase"] == "Pending" and not p["spec"].get("nodeName")
    # Once the PV controller binds it, the claim's update sends the pod back to the active queue.
    claim = await client.get("v1", "persistentvolumeclaims", "later", "default")
    await _bind(client, "later", _local_pv("later-pv", "sched-immediate", "v2", claim))
    assert await eventually(lambda: node_of(client, "waits")) == "v2"
