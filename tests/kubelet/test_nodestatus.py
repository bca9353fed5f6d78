"""Node registration, status and Lease against a real API server.

Intervals are shortened (a fraction of a second) so that renewals and status rounds happen within
the tests' deadlines; everything else is what the kubelet core runs.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.client.rest import Client
from kybernetes.kubelet import machine
from kybernetes.kubelet.nodestatus import KUBELET_VERSION, NodeStatusManager

pytestmark = pytest.mark.integration
Obj = dict[str, Any]
LEASES = "coordination.k8s.io/v1"


async def runtime_version() -> str:
    return "containerd://1.6.20"


def manager(client: Client, name: str, tmp_path: Path, **kw: Any) -> NodeStatusManager:
    kw.setdefault("lease_interval", 0.2)
    kw.setdefault("status_interval", 0.2)
    return NodeStatusManager(client, name, kubelet_port=10250, address="192.0.2.10", runtime_version=runtime_version,
                             data_dir=tmp_path, **kw)


async def eventually(fn: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await fn()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def conditions(node: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in node["status"]["conditions"]}


async def test_register_creates_ready_node_with_real_facts_and_lease(client: Client, tmp_path: Path) -> None:
    async def images() -> list[Obj]:
        return [{"names": ["docker.io/library/busybox:1.36"], "sizeBytes": 100},
                {"names": ["registry.k8s.io/pause:3.9"], "sizeBytes": 700}]

    nsm = manager(client, "node-one", tmp_path, images=images, max_pods=42,
                  labels={"node-role.kubernetes.io/control-plane": ""},
                  taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}])
    nsm.set_ready(True)
    node = await nsm.register()
    assert nsm.node == node
    node = await client.get("v1", "nodes", "node-one")
    info = machine.machine_info(tmp_path)
    labels = node["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "node-one"
    assert labels["kubernetes.io/os"] == "linux" and labels["kubernetes.io/arch"] == info.architecture
    assert labels["node-role.kubernetes.io/control-plane"] == ""
    assert node["spec"]["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    status = node["status"]
    assert status["capacity"]["cpu"] == str(info.cpu)
    assert status["capacity"]["pods"] == "42"
    assert status["capacity"]["memory"].endswith("Ki") and int(status["capacity"]["memory"][:-2]) * 1024 == info.memory
    assert status["allocatable"] == status["capacity"]
    assert status["addresses"] == [{"type": "InternalIP", "address": "192.0.2.10"},
                                   {"type": "Hostname", "address": "node-one"}]
    assert status["daemonEndpoints"] == {"kubeletEndpoint": {"Port": 10250}}
    ni = status["nodeInfo"]
    assert ni["bootID"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    assert ni["kernelVersion"] == info.kernel_version and ni["osImage"] == info.os_image
    assert ni["containerRuntimeVersion"] == "containerd://1.6.20" and ni["kubeletVersion"] == KUBELET_VERSION
    assert ni["operatingSystem"] == "linux" and ni["machineID"] == info.machine_id
    assert [i["sizeBytes"] for i in status["images"]] == [700, 100]
    conds = conditions(node)
    assert [c["type"] for c in status["conditions"]] == ["MemoryPressure", "DiskPressure", "PIDPressure", "Ready"]
    assert conds["Ready"]["status"] == "True" and conds["Ready"]["reason"] == "KubeletReady"
    assert conds["Ready"]["message"] == "kubelet is posting ready status"
    assert conds["MemoryPressure"]["status"] == "False"

    lease = await client.get(LEASES, "leases", "node-one", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "node-one" and lease["spec"]["leaseDurationSeconds"] == 40
    assert lease["metadata"]["ownerReferences"] == [
        {"apiVersion": "v1", "kind": "Node", "name": "node-one", "uid": node["metadata"]["uid"]}]


async def test_lease_renewed_and_status_written_only_on_change(client: Client, tmp_path: Path) -> None:
    ticks = itertools.count()

    def wall() -> float:
        # Every reading a second later: each round's heartbeats differ, so only the kubelet's own
        # change detection (not the timestamps' one-second resolution) keeps a round from writing.
        return time.time() + next(ticks)

    nsm = manager(client, "node-two", tmp_path, wall_clock=wall)
    nsm.set_ready(True)
    await nsm.register()
    task = asyncio.create_task(nsm.run())
    try:
        first = (await client.get(LEASES, "leases", "node-two", "kube-node-lease"))["spec"]["renewTime"]

        async def renewed() -> bool:
            lease = await client.get(LEASES, "leases", "node-two", "kube-node-lease")
            return bool(lease["spec"]["renewTime"] > first)

        await eventually(renewed, what="lease renewal")
        # Nothing changed: several status rounds go by without a write.
        rv = (await client.get("v1", "nodes", "node-two"))["metadata"]["resourceVersion"]
        rounds = nsm.status_rounds

        async def three_rounds() -> bool:
            return nsm.status_rounds >= rounds + 3

        await eventually(three_rounds, what="three status rounds")
        assert (await client.get("v1", "nodes", "node-two"))["metadata"]["resourceVersion"] == rv

        before = conditions(await client.get("v1", "nodes", "node-two"))["Ready"]
        nsm.set_ready(False, "container runtime network not ready: NetworkReady=false")

        async def not_ready() -> Obj | None:
            cond = conditions(await client.get("v1", "nodes", "node-two"))["Ready"]
            return cond if cond["status"] == "False" else None

        cond = await eventually(not_ready, timeout=3, what="Ready=False")
        assert cond["reason"] == "KubeletNotReady"
        assert cond["message"] == "container runtime network not ready: NetworkReady=false"
        assert cond["lastTransitionTime"] >= before["lastTransitionTime"]

        # Someone else (the node lifecycle controller) marks the node Unknown: the kubelet corrects it.
        nsm.set_ready(True)
        await eventually(lambda: _ready_is(client, "node-two", "True"), what="Ready=True")
        node = await client.get("v1", "nodes", "node-two")
        for c in node["status"]["conditions"]:
            if c["type"] == "Ready":
                c.update(status="Unknown", reason="NodeStatusUnknown", message="Kubelet stopped posting node status.")
        await client.update("v1", "nodes", node, subresource="status")
        await eventually(lambda: _ready_is(client, "node-two", "True"), what="Ready=True written back")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def _ready_is(client: Client, name: str, status: str) -> bool:
    return bool(conditions(await client.get("v1", "nodes", name))["Ready"]["status"] == status)


async def test_adopts_existing_node_and_reports_pod_cidr(client: Client, tmp_path: Path) -> None:
    existing = await client.create("v1", "nodes", {"metadata": {"name": "node-three", "labels": {"team": "a"}},
                                                   "spec": {"podCIDR": "10.42.7.0/24", "podCIDRs": ["10.42.7.0/24"]}})
    cidrs: list[str] = []

    async def on_cidr(cidr: str) -> None:
        cidrs.append(cidr)

    nsm = manager(client, "node-three", tmp_path, pod_cidr_callback=on_cidr)
    node = await nsm.register()
    assert node["metadata"]["uid"] == existing["metadata"]["uid"]
    assert node["metadata"]["labels"]["team"] == "a"
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-three"
    assert conditions(node)["Ready"]["status"] == "False"  # the core has not said it is ready yet
    assert cidrs == ["10.42.7.0/24"]
    # Re-registering (a kubelet restart) adopts again and does not report the same CIDR twice.
    await nsm.register()
    assert cidrs == ["10.42.7.0/24"]

    # A node deleted under a running kubelet is registered again (a new uid, and a new Lease owner).
    task = asyncio.create_task(nsm.run())
    try:
        await client.delete("v1", "nodes", "node-three")

        async def recreated() -> Obj | None:
            try:
                n = await client.get("v1", "nodes", "node-three")
            except errors.NotFound:
                return None
            return n if n["metadata"]["uid"] != existing["metadata"]["uid"] else None

        node = await eventually(recreated, what="re-registration")
        assert "status" in node and conditions(node)["Ready"]["status"] == "False"

        async def lease_owned() -> bool:
            lease = await client.get(LEASES, "leases", "node-three", "kube-node-lease")
            return bool(lease["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"])

        await eventually(lease_owned, what="the Lease owned by the new Node")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_registers_and_adopts_with_its_annotations(client: Client, tmp_path: Path) -> None:
    """The kubelet's annotations (the local-path root, say) are on the Node it creates, and put back
    on one it adopts; annotations others set are kept."""
    root = {"kybernetes.io/local-path-root": str(tmp_path / "storage")}
    node = await manager(client, "node-four", tmp_path, annotations=root).register()
    assert node["metadata"]["annotations"] == {
        "volumes.kubernetes.io/controller-managed-attach-detach": "true", **root}
    await client.patch("v1", "nodes", "node-four", {"metadata": {"annotations": {
        "kybernetes.io/local-path-root": "/elsewhere", "team": "a"}}})
    node = await manager(client, "node-four", tmp_path, annotations=root).register()
    assert node["metadata"]["annotations"] == {
        "volumes.kubernetes.io/controller-managed-attach-detach": "true", "team": "a", **root}


async def test_status_rounds_keep_conditions_other_writers_own(client: Client, tmp_path: Path) -> None:
    """The route controller's NetworkUnavailable survives the kubelet's status writes (Kubernetes'
    strategic merge keeps conditions by type; our merge patch replaces the list, so the kubelet
    carries them over)."""
    nsm = manager(client, "node-cond", tmp_path)
    nsm.set_ready(True)
    await nsm.register()
    node = await client.get("v1", "nodes", "node-cond")
    node["status"]["conditions"].append({"type": "NetworkUnavailable", "status": "False", "reason": "RouteCreated",
                                         "message": "RouteController created a route"})
    await client.update("v1", "nodes", node, subresource="status")
    nsm.set_ready(False, "runtime down")  # a change: the next round writes
    assert await nsm.update_status(force=True)
    got = conditions(await client.get("v1", "nodes", "node-cond"))
    assert got["Ready"]["status"] == "False"
    assert (got["NetworkUnavailable"]["status"], got["NetworkUnavailable"]["reason"]) == ("False", "RouteCreated")
