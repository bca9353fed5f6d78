"""The kubelet's eviction manager end to end: a real API server, `kyb kubelet`, the tests' containerd.

Pressure is made by shrinking thresholds, never by filling the machine: the memory test restarts the
kubelet with ``--eviction-hard memory.available<X`` where X is above what the node has available
right now, so the signal trips at once. The emptyDir test writes a few MiB past a 1Mi
``sizeLimit``. The kubelet runs its eviction round every second here (``--eviction-monitoring-period``,
a kybernetes flag; the kubelet's period is a fixed 10 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from kybernetes import errors
from kybernetes.api.quantity import BINARY_SI, format_quantity
from kybernetes.client import Client
from kybernetes.kubelet.eviction import observe
from kybernetes.kubelet.machine import memory_bytes
from tests.kubelet.test_cgroups_e2e import wait_gone
from tests.kubelet.test_kubelet_e2e import (
    NODE,
    KubeletProcess,
    Obj,
    condition,
    delete_pod,
    events_until,
    pod,
    running_kubelet,
    running_ready,
    unique,
    wait_node_ready,
    wait_pod,
)
from tests.node.conftest import NodeRuntime

pytestmark = pytest.mark.integration

FAST = ("--eviction-monitoring-period", "1s", "--eviction-pressure-transition-period", "1s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, node_runtime: NodeRuntime) -> Iterator[KubeletProcess]:
    with running_kubelet(tmp_path_factory, node_runtime, FAST) as kubelet:
        yield kubelet


@pytest.fixture
async def client(cluster: KubeletProcess) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(cluster.srv.kubeconfig) as c:
        await wait_node_ready(c, cluster)
        yield c


def evicted(p: Obj) -> bool:
    return p.get("status", {}).get("phase") == "Failed" and p.get("status", {}).get("reason") == "Evicted"


async def test_empty_dir_over_size_limit_is_evicted(client: Client, cluster: KubeletProcess) -> None:
    name = unique("scratch")
    manifest = pod(name, ["sh", "-c", "dd if=/dev/zero of=/scratch/fill bs=1M count=4; sleep 3600"],
                   volumes=[{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}],
                   container={"volumeMounts": [{"name": "scratch", "mountPath": "/scratch"}]})
    await client.create("v1", "pods", manifest, "default")
    uid = (await client.get("v1", "pods", name, "default"))["metadata"]["uid"]
    try:
        p = await wait_pod(client, name, evicted, cluster, timeout=30)
        message = 'Usage of EmptyDir volume "scratch" exceeds the limit "1Mi". '
        assert p["status"]["message"] == message
        assert all("terminated" in cs["state"] for cs in p["status"]["containerStatuses"])
        assert ("Evicted", message) in await events_until(client, name, "Evicted")
    finally:
        await delete_pod(client, name)
    await wait_gone(uid)


async def wait_node(c: Client, check: str, status: str, timeout: float = 20) -> Obj:
    deadline = time.monotonic() + timeout
    while True:
        node = await c.get("v1", "nodes", NODE)
        if condition(node, check) == status:
            return node
        assert time.monotonic() < deadline, f"{check} never {status}: {node['status']['conditions']}"
        await asyncio.sleep(0.1)


async def test_memory_pressure_evicts_and_refuses_best_effort(client: Client, cluster: KubeletProcess) -> None:
    hungry, modest, late = unique("besteffort"), unique("burstable"), unique("late")
    sleep = ["sleep", "3600"]
    await client.create("v1", "pods", pod(hungry, sleep), "default")
    await client.create("v1", "pods", pod(modest, sleep, container={
        "resources": {"requests": {"memory": "64Mi"}}}), "default")
    uids = [(await client.get("v1", "pods", n, "default"))["metadata"]["uid"] for n in (hungry, modest)]
    try:
        for name in (hungry, modest):
            await wait_pod(client, name, running_ready, cluster)
        node = await wait_node(client, "MemoryPressure", "False")
        # A threshold 2 GiB above what is available now: memory.available is below it at once.
        available = observe(memory_bytes(), cluster.data_dir, cluster.data_dir)["memory.available"].available
        threshold = min(memory_bytes() - 2**20, available + 2 * 2**30) // 2**20
        cluster.stop()
        cluster.extra_args = (*FAST, "--eviction-hard", f"memory.available<{threshold}Mi")
        cluster.start()
        node = await wait_node(client, "MemoryPressure", "True")
        pressure = next(x for x in node["status"]["conditions"] if x["type"] == "MemoryPressure")
        assert (pressure["reason"], pressure["message"]) == (
            "KubeletHasInsufficientMemory", "kubelet has insufficient memory available")
        first = None
        deadline = time.monotonic() + 20
        while first is None:
            pods = {n: await client.get("v1", "pods", n, "default") for n in (hungry, modest)}
            first = next((p for p in pods.values() if evicted(p)), None)
            assert time.monotonic() < deadline, f"nothing evicted\n{cluster.log()}"
            await asyncio.sleep(0.05)
        # BestEffort uses more than its (zero) request: it goes first.
        assert first["metadata"]["name"] == hungry, first["status"]
        message = first["status"]["message"]
        quantity = format_quantity(threshold * 2**20, BINARY_SI)
        assert message.startswith(f"The node was low on resource: memory. Threshold quantity: {quantity}, "
                                  "available: "), message
        assert "Container main was using " in message and ", request is 0, has larger consumption of memory. " \
            in message
        target = next(x for x in first["status"]["conditions"] if x["type"] == "DisruptionTarget")
        assert (target["status"], target["reason"], target["message"]) == ("True", "TerminationByKubelet", message)
        node_events = await client.list("v1", "events", "default", field_selector=f"involvedObject.name={NODE}")
        said = {(e["reason"], e["message"]) for e in node_events["items"]}
        assert ("EvictionThresholdMet", "Attempting to reclaim memory") in said
        assert ("NodeHasInsufficientMemory", f"Node {NODE} status is now: NodeHasInsufficientMemory") in said
        # A new BestEffort pod is not admitted under MemoryPressure.
        await client.create("v1", "pods", pod(late, sleep), "default")
        uids.append((await client.get("v1", "pods", late, "default"))["metadata"]["uid"])
        refused = await wait_pod(client, late, evicted, cluster, timeout=15)
        assert refused["status"]["message"] == "The node had condition: [MemoryPressure]. "
        assert "containerStatuses" not in refused["status"] or all(
            "running" not in cs["state"] for cs in refused["status"]["containerStatuses"])
    finally:
        cluster.stop()
        cluster.extra_args = FAST
        cluster.start()
        for name in (hungry, modest, late):
            with contextlib.suppress(errors.NotFound):
                await delete_pod(client, name)
    await wait_node(client, "MemoryPressure", "False")
    for uid in uids:
        await wait_gone(uid)
