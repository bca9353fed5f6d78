"""The kubelet's cgroup hierarchy and node allocatable, end to end (a real API server, `kyb kubelet`,
the tests' containerd with its cgroupfs driver).

The kubelet is started with a KubeletConfiguration file (kubeReserved, systemReserved, evictionHard)
and a flag that overrides one of its settings, so the same module shows the file, the flag's
precedence and the reservations in ``status.allocatable``. Pods of the three QoS classes land in
``kubepods``, ``kubepods/burstable`` and ``kubepods/besteffort``, each in a ``pod<uid>`` cgroup with
the pod-level limits, their containers below it; the pod cgroup goes with the pod.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from kybernetes.api.quantity import to_bytes
from kybernetes.client import Client
from kybernetes.kubelet import cgroups
from kybernetes.kubelet.machine import memory_bytes
from tests.kubelet.test_kubelet_e2e import (
    NODE,
    KubeletProcess,
    Obj,
    delete_pod,
    main_status,
    pod,
    running_kubelet,
    running_ready,
    unique,
    wait_node_ready,
    wait_pod,
)
from tests.node.conftest import NodeRuntime

pytestmark = pytest.mark.integration

CONFIG = """\
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
kubeReserved: {cpu: 100m, memory: 100Mi}
systemReserved: {memory: 200Mi}
evictionHard: {memory.available: 50Mi, nodefs.available: "1%"}
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, node_runtime: NodeRuntime) -> Iterator[KubeletProcess]:
    data = tmp_path_factory.mktemp("kubelet")
    (data / "kubelet-config.yaml").write_text(CONFIG)
    # The flag wins over the file's systemReserved (300Mi, not 200Mi).
    flags = ("--config", str(data / "kubelet-config.yaml"), "--system-reserved", "memory=300Mi")
    with running_kubelet(tmp_path_factory, node_runtime, flags, data) as kubelet:
        yield kubelet


@pytest.fixture
async def client(cluster: KubeletProcess) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(cluster.srv.kubeconfig) as c:
        await wait_node_ready(c, cluster)
        yield c


def controller_file(cgroup: str, controller: str, name: str) -> str:
    return (cgroups.controller_dir(cgroup, controller) / name).read_text().strip()


def resources(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> Obj:
    out: Obj = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return {"resources": out}


async def test_allocatable_from_config_file_and_flags(client: Client) -> None:
    node = await client.get("v1", "nodes", NODE)
    capacity, allocatable = node["status"]["capacity"], node["status"]["allocatable"]
    # memory: kubeReserved 100Mi + systemReserved 300Mi (the flag's) + evictionHard 50Mi.
    assert to_bytes(allocatable["memory"]) == to_bytes(capacity["memory"]) - 450 * 2**20
    assert allocatable["cpu"] == f"{int(capacity['cpu']) * 1000 - 100}m"
    storage = to_bytes(capacity["ephemeral-storage"])
    # 1% of capacity, as the kubelet computes it (a float32 fraction): within a few bytes of 1%.
    assert abs(to_bytes(allocatable["ephemeral-storage"]) - (storage - storage // 100)) <= storage // 10**6
    assert allocatable["pods"] == capacity["pods"]
    # kubepods is limited to capacity less the reservations (not the eviction threshold).
    assert int(controller_file("/kubepods", "memory", "memory.limit_in_bytes" if not cgroups.is_v2()
                               else "memory.max")) == memory_bytes() - 400 * 2**20


def pod_cgroup_dirs(uid: str) -> list[Path]:
    return [d for name in (f"/kubepods/pod{uid}", f"/kubepods/burstable/pod{uid}", f"/kubepods/besteffort/pod{uid}")
            for d in cgroups.cgroup_dirs(name)]


async def wait_gone(uid: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while pod_cgroup_dirs(uid):
        assert time.monotonic() < deadline, f"pod cgroup left: {pod_cgroup_dirs(uid)}"
        await asyncio.sleep(0.1)


async def test_pods_in_their_qos_cgroups_with_pod_limits(client: Client, cluster: KubeletProcess) -> None:
    burstable, besteffort, guaranteed = unique("burst"), unique("best"), unique("guar")
    sleep = ["sleep", "3600"]
    b = pod(burstable, sleep, container=resources({"cpu": "100m"}, {"cpu": "200m", "memory": "64Mi"}))
    b["spec"]["containers"].append({"name": "second", "image": b["spec"]["containers"][0]["image"], "command": sleep,
                                    **resources({"cpu": "50m"}, {"cpu": "100m", "memory": "32Mi"})})
    g = pod(guaranteed, sleep, container=resources({"cpu": "100m", "memory": "16Mi"}, {"cpu": "100m", "memory": "16Mi"}))
    for manifest in (b, pod(besteffort, sleep), g):
        await client.create("v1", "pods", manifest, "default")
    uids = []
    try:
        for name, parent in ((burstable, "/kubepods/burstable"), (besteffort, "/kubepods/besteffort"),
                             (guaranteed, "/kubepods")):
            p = await wait_pod(client, name, running_ready, cluster)
            uid = p["metadata"]["uid"]
            uids.append(uid)
            cgroup = f"{parent}/pod{uid}"
            container = main_status(p)["containerID"].split("://", 1)[1]
            procs = (cgroups.controller_dir(f"{cgroup}/{container}", "memory") / "cgroup.procs").read_text().split()
            assert procs, f"no process in {cgroup}/{container}"
        v2 = cgroups.is_v2()
        burst_cgroup = f"/kubepods/burstable/pod{uids[0]}"
        # Pod-level limits: the sums, since every container declares both limits.
        assert int(controller_file(burst_cgroup, "memory", "memory.max" if v2 else "memory.limit_in_bytes")) \
            == 96 * 2**20
        if v2:
            assert controller_file(burst_cgroup, "cpu", "cpu.max") == "30000 100000"
        else:
            assert controller_file(burst_cgroup, "cpu", "cpu.cfs_quota_us") == "30000"
            assert controller_file(burst_cgroup, "cpu", "cpu.shares") == str(150 * 1024 // 1000)
            assert controller_file(f"/kubepods/besteffort/pod{uids[1]}", "cpu", "cpu.shares") == "2"
            assert int(controller_file(f"/kubepods/pod{uids[2]}", "memory", "memory.limit_in_bytes")) == 16 * 2**20
    finally:
        for name in (burstable, besteffort, guaranteed):
            await delete_pod(client, name)
    for uid in uids:
        await wait_gone(uid)
