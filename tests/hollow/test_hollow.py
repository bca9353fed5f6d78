"""Hollow nodes against a real API server: registration, leases, the pod lifecycle, pause, SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.client.rest import Client
from kybernetes.hollow import HollowConfig, HollowNodes
from kybernetes.hollow import objects as o
from kybernetes.hollow.cmd import run
from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

LEASES = ("coordination.k8s.io/v1", "leases")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess.start(tmp_path_factory.mktemp("kyb-hollow"))
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def client(server: ServerProcess) -> AsyncIterator[Client]:
    c = Client.from_kubeconfig(server.kubeconfig)
    try:
        yield c
    finally:
        await c.close()


@contextlib.asynccontextmanager
async def hollow(server: ServerProcess, prefix: str, count: int = 3, **kw: Any) -> AsyncIterator[HollowNodes]:
    """``run(config)`` as a task, as the command runs it; yields the fleet once registered."""
    config = HollowConfig(kubeconfig=str(server.kubeconfig), count=count, name_prefix=prefix, **kw)
    started: asyncio.Future[HollowNodes] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run(config, started=started))
    try:
        fleet = await asyncio.wait_for(started, 20)
        await fleet.wait_registered(20)
        yield fleet
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(check: Callable[[], Awaitable[Any]], timeout: float = 10.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")


def cond(obj: dict[str, Any], ctype: str) -> str | None:
    for c in obj.get("status", {}).get("conditions") or []:
        if c["type"] == ctype:
            return str(c["status"])
    return None


def pod(name: str, node: str, *, restart: str = "Always", annotations: dict[str, str] | None = None,
        init: bool = False) -> dict[str, Any]:
    spec: dict[str, Any] = {"nodeName": node, "restartPolicy": restart,
                            "containers": [{"name": "main", "image": "busybox:1.36"},
                                           {"name": "side", "image": "nginx:1.27"}]}
    if init:
        spec["initContainers"] = [{"name": "setup", "image": "busybox:1.36"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}


# --- pure pieces ----------------------------------------------------------------------------------


def test_durations_addresses_and_exit_plans() -> None:
    assert o.parse_duration("2s") == 2.0
    assert o.parse_duration("1m30s") == 90.0
    assert o.parse_duration("250ms") == 0.25
    assert o.parse_duration("1.5") == 1.5
    with pytest.raises(ValueError):
        o.parse_duration("2 seconds")
    addrs = o.PodAddresses(o.default_pod_cidr(3))
    assert str(addrs.network) == "10.128.3.0/24"
    first, second = addrs.allocate(), addrs.allocate()
    assert (first, second) == ("10.128.3.2", "10.128.3.3")
    addrs.release("10.128.3.2")
    assert addrs.allocate() == "10.128.3.2"
    assert not addrs.reserve("10.0.0.1")
    assert o.node_ip(0) == "10.64.0.1"
    exit_after = {o.EXIT_AFTER_ANNOTATION: "2s"}
    assert o.exit_plan(pod("p", "n", restart="Never", annotations=exit_after)) == (2.0, 0)
    assert o.exit_plan(pod("p", "n", restart="Always", annotations=exit_after)) is None
    failing = {**exit_after, o.EXIT_CODE_ANNOTATION: "3"}
    assert o.exit_plan(pod("p", "n", restart="Never", annotations=failing)) == (2.0, 3)
    assert o.exit_plan(pod("p", "n", restart="OnFailure", annotations=failing)) is None


# --- against the server ---------------------------------------------------------------------------


async def test_nodes_register_ready_with_leases(server: ServerProcess, client: Client) -> None:
    async with hollow(server, "reg-", lease_interval=0.5) as fleet:
        assert sorted(fleet.nodes) == ["reg-0", "reg-1", "reg-2"]
        nodes = {n["metadata"]["name"]: n for n in (await client.list_all(
            "v1", "nodes", label_selector="node.kubernetes.io/instance-type=hollow"))[0]
            if n["metadata"]["name"].startswith("reg-")}
        assert sorted(nodes) == ["reg-0", "reg-1", "reg-2"]
        n0 = nodes["reg-0"]
        assert n0["metadata"]["labels"]["kubernetes.io/hostname"] == "reg-0"
        assert n0["metadata"]["annotations"]["kybernetes.io/hollow"] == "true"
        assert {n["metadata"]["labels"]["topology.kubernetes.io/zone"] for n in nodes.values()} == {
            "zone-a", "zone-b", "zone-c"}
        assert n0["status"]["capacity"] == {"cpu": "32", "memory": "256Gi", "pods": "110",
                                            "ephemeral-storage": "100Gi"}
        assert n0["status"]["allocatable"]["pods"] == "110"
        assert cond(n0, "Ready") == "True" and cond(n0, "MemoryPressure") == "False"
        assert n0["status"]["nodeInfo"]["kubeletVersion"] == "v1.32.0-kyb-hollow"
        assert n0["status"]["nodeInfo"]["containerRuntimeVersion"] == "hollow://1.0"
        assert {a["type"]: a["address"] for a in n0["status"]["addresses"]} == {
            "InternalIP": "10.64.0.1", "Hostname": "reg-0"}
        lease = await client.get(*LEASES, "reg-1", "kube-node-lease")
        assert lease["spec"]["holderIdentity"] == "reg-1"
        assert lease["spec"]["leaseDurationSeconds"] == 40
        assert lease["metadata"]["ownerReferences"][0]["uid"] == nodes["reg-1"]["metadata"]["uid"]
        first = lease["spec"]["renewTime"]

        async def renewed() -> bool:
            return bool((await client.get(*LEASES, "reg-1", "kube-node-lease"))["spec"]["renewTime"] != first)
        await until(renewed, 5, "a lease renewal")

        # The node lifecycle controller marks a silent node Unknown; a live hollow kubelet answers.
        n1 = await client.get("v1", "nodes", "reg-1")
        conds = [dict(c, status="Unknown", reason="NodeStatusUnknown") if c["type"] == "Ready" else c
                 for c in n1["status"]["conditions"]]
        await client.patch("v1", "nodes", "reg-1", {"status": {"conditions": conds}}, subresource="status")

        async def ready_again() -> bool:
            return cond(await client.get("v1", "nodes", "reg-1"), "Ready") == "True"
        await until(ready_again, 5, "Ready=True posted again")

        # A deleted Node is registered again (a new uid), and its Lease follows it.
        old_uid = nodes["reg-2"]["metadata"]["uid"]
        await client.delete("v1", "nodes", "reg-2")

        async def recreated() -> bool:
            with contextlib.suppress(errors.NotFound):
                return bool((await client.get("v1", "nodes", "reg-2"))["metadata"]["uid"] != old_uid)
            return False
        await until(recreated, 10, "re-registration")
    # Stopping leaves the nodes registered.
    assert (await client.get("v1", "nodes", "reg-0"))["metadata"]["name"] == "reg-0"


async def test_pod_runs_is_deleted_gracefully_and_jobs_finish(server: ServerProcess, client: Client) -> None:
    ns = "default"
    async with hollow(server, "run-", count=2) as fleet:
        await client.create("v1", "pods", pod("web", "run-1", init=True), ns)

        async def running() -> dict[str, Any] | None:
            p = await client.get("v1", "pods", "web", ns)
            return p if p["status"].get("phase") == "Running" and cond(p, "Ready") == "True" else None
        p = await until(running, 10, "pod Running")
        st = p["status"]
        assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(fleet.nodes["run-1"].cidr)
        assert st["hostIP"] == "10.64.0.2" and st["podIPs"] == [{"ip": st["podIP"]}]
        assert st["startTime"] and st["qosClass"] == "BestEffort"
        for ctype in ("PodScheduled", "Initialized", "ContainersReady", "Ready"):
            assert cond(p, ctype) == "True", ctype
        cs = {c["name"]: c for c in st["containerStatuses"]}
        assert set(cs) == {"main", "side"}
        assert cs["side"]["ready"] and cs["side"]["started"] and cs["side"]["restartCount"] == 0
        assert cs["side"]["image"] == "nginx:1.27" and cs["side"]["containerID"].startswith("hollow://")
        assert cs["main"]["state"]["running"]["startedAt"]
        assert st["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"

        # A second pod on the node gets another address.
        await client.create("v1", "pods", pod("web2", "run-1"), ns)

        async def running2() -> dict[str, Any] | None:
            p2 = await client.get("v1", "pods", "web2", ns)
            return p2 if p2["status"].get("phase") == "Running" else None
        assert (await until(running2, 10, "second pod Running"))["status"]["podIP"] != st["podIP"]

        # Graceful deletion: the API only marks the pod; the hollow kubelet finishes it.
        marked = await client.delete("v1", "pods", "web", ns)
        assert marked.get("metadata", {}).get("deletionTimestamp")

        async def gone() -> bool:
            try:
                await client.get("v1", "pods", "web", ns)
            except errors.NotFound:
                return True
            return False
        await until(gone, 10, "graceful deletion to finish")

        # Never pods with the exit annotation finish: exit 0 Succeeded, else Failed.
        await client.create("v1", "pods", pod("job-ok", "run-0", restart="Never",
                                              annotations={o.EXIT_AFTER_ANNOTATION: "300ms"}), ns)
        await client.create("v1", "pods", pod("job-bad", "run-0", restart="Never", annotations={
            o.EXIT_AFTER_ANNOTATION: "300ms", o.EXIT_CODE_ANNOTATION: "3"}), ns)

        async def finished(name: str) -> dict[str, Any] | None:
            p = await client.get("v1", "pods", name, ns)
            return p if p["status"].get("phase") in ("Succeeded", "Failed") else None
        ok = await until(lambda: finished("job-ok"), 10, "job-ok finished")
        bad = await until(lambda: finished("job-bad"), 10, "job-bad finished")
        assert ok["status"]["phase"] == "Succeeded" and bad["status"]["phase"] == "Failed"
        term = bad["status"]["containerStatuses"][0]["state"]["terminated"]
        assert term["exitCode"] == 3 and term["reason"] == "Error"
        assert cond(ok, "Ready") == "False"
        for name in ("web2", "job-ok", "job-bad"):
            await client.delete("v1", "pods", name, ns)
        for name in ("web2", "job-ok", "job-bad"):
            async def deleted(name: str = name) -> bool:
                try:
                    await client.get("v1", "pods", name, ns)
                except errors.NotFound:
                    return True
                return False
            await until(deleted, 10, f"{name} deleted")


async def test_pause_stops_lease_renewals(server: ServerProcess, client: Client) -> None:
    async with hollow(server, "pause-", count=2, lease_interval=0.3) as fleet:
        fleet.pause(["pause-0"])

        async def nothing_in_flight() -> bool:  # a renewal or status post already started lands
            return not any(fleet.timeline.running((kind, "pause-0")) for kind in ("lease", "status", "register"))

        await until(nothing_in_flight, what="pause-0's jobs in flight to finish")
        frozen = (await client.get(*LEASES, "pause-0", "kube-node-lease"))["spec"]["renewTime"]
        # The live node renews twice (so the paused one had every chance to), the paused one not once.
        seen = {(await client.get(*LEASES, "pause-1", "kube-node-lease"))["spec"]["renewTime"]}

        async def live_renewed_twice() -> bool:
            seen.add((await client.get(*LEASES, "pause-1", "kube-node-lease"))["spec"]["renewTime"])
            return len(seen) >= 3

        await until(live_renewed_twice, what="the live node renews its lease twice")
        assert (await client.get(*LEASES, "pause-0", "kube-node-lease"))["spec"]["renewTime"] == frozen
        # A pod bound to the paused node is left alone (a dead kubelet runs nothing).
        stuck = await client.create("v1", "pods", pod("stuck", "pause-0"), "default")
        rv = int(stuck["metadata"]["resourceVersion"])

        async def stuck_synced() -> bool:  # the hollow kubelet has seen the pod and has nothing to do
            seen = fleet.pod_informer.store.get("default/stuck")
            return (seen is not None and int(seen["metadata"]["resourceVersion"]) >= rv
                    and fleet.kubelet.queue.pending() == 0)

        await until(stuck_synced, what="the hollow kubelet to process the pod")
        assert (await client.get("v1", "pods", "stuck", "default"))["status"]["phase"] == "Pending"
        fleet.resume()

        async def renewed() -> bool:
            lease = await client.get(*LEASES, "pause-0", "kube-node-lease")
            return bool(lease["spec"]["renewTime"] != frozen)
        await until(renewed, 5, "renewals after resume")

        async def running() -> bool:
            return bool((await client.get("v1", "pods", "stuck", "default"))["status"]["phase"] == "Running")
        await until(running, 5, "the pod to run after resume")
        await client.delete("v1", "pods", "stuck", "default", grace_period_seconds=0)


def test_sigterm_stops_and_leaves_nodes(server: ServerProcess, tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "kybernetes.hollow.cmd", "--kubeconfig", str(server.kubeconfig), "--count", "2",
         "--name-prefix", "term-", "--lease-interval", "0.5", "--report-interval", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        seen = []
        for raw in proc.stdout:
            seen.append(raw.decode())
            if "2 hollow nodes registered" in seen[-1]:
                break
        assert seen and "2 hollow nodes registered" in seen[-1], "".join(seen)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    out = server.kubectl("get", "nodes", "term-0", "term-1", "-o", "name").stdout.split()
    assert out == ["node/term-0", "node/term-1"]
