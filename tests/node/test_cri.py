"""The CRI client against a real containerd: sandboxes, containers, logs, exec, OOM, networking.

Each test removes the sandboxes it creates; the session fixture removes anything left over.
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.kubelet.containerd import mounts_under
from kybernetes.kubelet.cri import CRIClient, NotFoundError, api
from tests.node.conftest import (
    NodeRuntime,
    container_config,
    remove_sandbox,
    sandbox_config,
    wait_exited,
)

pytestmark = pytest.mark.integration

LOG_LINE = re.compile(r"^(\S+) (stdout|stderr) ([FP]) (.*)$")


async def test_version_and_status(cri: CRIClient) -> None:
    version = await cri.version()
    assert version.runtime_name == "containerd"
    assert version.runtime_api_version == "v1"
    conditions = {c.type: c.status for c in (await cri.status()).status.conditions}
    assert conditions == {"RuntimeReady": True, "NetworkReady": True}


async def test_not_found_is_translated(cri: CRIClient) -> None:
    with pytest.raises(NotFoundError):
        await cri.container_status("0" * 64)
    with pytest.raises(NotFoundError):
        await cri.pod_sandbox_status("0" * 64)
    assert await cri.image_status("docker.io/library/nonexistent:0") is None


async def test_sandbox_container_logs_exec_and_exit(cri: CRIClient, node_runtime: NodeRuntime) -> None:
    config = sandbox_config(node_runtime, "logs")
    sandbox_id = await cri.run_pod_sandbox(config)
    try:
        status = (await cri.pod_sandbox_status(sandbox_id)).status
        assert status.state == api.SANDBOX_READY
        assert ipaddress.ip_address(status.network.ip) in ipaddress.ip_network(node_runtime.pod_cidr)
        assert status.metadata.name == "logs"

        # A long-running container to exec into.
        sleeper = await cri.create_container(
            sandbox_id, container_config("sleeper", ["sleep", "3600"], env={"GREETING": "hi"}), config)
        await cri.start_container(sleeper)
        code, out, err = await cri.exec_sync(sleeper, ["sh", "-c", "echo $GREETING; echo oops >&2; exit 7"], 10)
        assert (code, out, err) == (7, b"hi\n", b"oops\n")
        code, out, _ = await cri.exec_sync(sleeper, ["hostname"], 10)
        assert (code, out) == (0, b"logs\n")
        url = await cri.exec(api.ExecRequest(container_id=sleeper, cmd=["sh"], stdout=True))
        assert url.startswith("http://127.0.0.1:")

        # A container that writes to stdout and stderr, then fails.
        writer = await cri.create_container(
            sandbox_id, container_config("writer", ["sh", "-c", "echo line1; echo line2 >&2; exit 3"]), config)
        await cri.start_container(writer)
        status_w = await wait_exited(cri, writer)
        assert status_w.exit_code == 3
        assert status_w.reason == "Error"
        # containerd stamps started_at after runc start returns, so a process that exits at once
        # can carry a finished_at a little before it: only order against created_at holds.
        assert status_w.finished_at > status_w.created_at > 0 and status_w.started_at > 0
        assert status_w.image.image == BUSYBOX_IMAGE
        assert status_w.image_ref.startswith("sha256:")
        log_path = Path(status_w.log_path)
        assert log_path == Path(config.log_directory) / "writer" / "0.log"
        lines = [LOG_LINE.match(line) for line in log_path.read_text().splitlines()]
        assert all(lines)
        assert sorted((m.group(2), m.group(3), m.group(4)) for m in lines if m) == [
            ("stderr", "F", "line2"), ("stdout", "F", "line1")]

        # A container that succeeds.
        done = await cri.create_container(sandbox_id, container_config("done", ["true"]), config)
        await cri.start_container(done)
        status_d = await wait_exited(cri, done)
        assert (status_d.exit_code, status_d.reason) == (0, "Completed")

        listed = {c.id: c for c in await cri.list_containers(api.ContainerFilter(pod_sandbox_id=sandbox_id))}
        assert set(listed) == {sleeper, writer, done}
        assert listed[sleeper].state == api.CONTAINER_RUNNING

        await cri.stop_container(sleeper, timeout=1)
        status_s = await wait_exited(cri, sleeper)
        assert status_s.exit_code == 137  # sleep ignores SIGTERM as PID 1: killed after the timeout
        await cri.remove_container(writer)
        with pytest.raises(NotFoundError):
            await cri.container_status(writer)
    finally:
        await remove_sandbox(cri, sandbox_id)
    with pytest.raises(NotFoundError):
        await cri.pod_sandbox_status(sandbox_id)


async def test_oom_killed(cri: CRIClient, node_runtime: NodeRuntime) -> None:
    config = sandbox_config(node_runtime, "oom")
    sandbox_id = await cri.run_pod_sandbox(config)
    try:
        # dd allocates its whole block (64 MiB) and fills it from /dev/zero: over a 32 MiB limit.
        hog = await cri.create_container(
            sandbox_id,
            container_config("hog", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=4"],
                             memory_limit=32 * 1024 * 1024),
            config)
        await cri.start_container(hog)
        status = await wait_exited(cri, hog)
        assert status.reason == "OOMKilled", (status.reason, status.exit_code, status.message)
        assert status.exit_code == 137
        assert status.resources.linux.memory_limit_in_bytes == 32 * 1024 * 1024
    finally:
        await remove_sandbox(cri, sandbox_id)


async def _wait_http(cri: CRIClient, container_id: str, url: str, timeout: float = 15.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        # `timeout` bounds the try (the image's wget takes -T too: see kybernetes.images.applets).
        code, out, err = await cri.exec_sync(container_id, ["timeout", "3", "wget", "-q", "-O", "-", url], 10)
        if code == 0:
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"wget {url}: {code} {err!r}")
        await asyncio.sleep(0.2)


def _veths_on(bridge: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True)
    return [line.split(":")[1].strip().split("@")[0] for line in out.stdout.splitlines()]


def _netns_path(info: str) -> str:
    import json

    spec = json.loads(info).get("runtimeSpec", {})
    return next(ns["path"] for ns in spec["linux"]["namespaces"] if ns["type"] == "network")


async def test_pod_network_and_cleanup(cri: CRIClient, node_runtime: NodeRuntime) -> None:
    config_a = sandbox_config(node_runtime, "net-a")
    config_b = sandbox_config(node_runtime, "net-b")
    sandbox_a = await cri.run_pod_sandbox(config_a)
    sandbox_b = await cri.run_pod_sandbox(config_b)
    removed = False
    try:
        status_a = await cri.pod_sandbox_status(sandbox_a, verbose=True)
        status_b = await cri.pod_sandbox_status(sandbox_b, verbose=True)
        ip_a, ip_b = status_a.status.network.ip, status_b.status.network.ip
        assert ip_a != ip_b
        netns = [_netns_path(status_a.info["info"]), _netns_path(status_b.info["info"])]
        assert all(os.path.exists(p) for p in netns)
        assert len(_veths_on(node_runtime.bridge)) >= 2

        server = await cri.create_container(sandbox_a, container_config("web", [
            "sh", "-c",
            "mkdir -p /tmp/www && echo hello-from-a > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"]),
            config_a)
        await cri.start_container(server)
        client = await cri.create_container(sandbox_b, container_config("client", ["sleep", "3600"]), config_b)
        await cri.start_container(client)

        # pod -> pod, across the bridge
        assert await _wait_http(cri, client, f"http://{ip_a}:8080/") == b"hello-from-a\n"
        # pod -> host: the gateway address is the bridge's
        code, out, _ = await cri.exec_sync(client, ["ping", "-c", "1", "-W", "2", node_runtime.gateway], 10)
        assert code == 0, out
        # host -> pod
        async with aiohttp.ClientSession() as http, http.get(
                f"http://{ip_a}:8080/", timeout=aiohttp.ClientTimeout(total=5)) as response:
            assert await response.text() == "hello-from-a\n"

        data_mounts = mounts_under(node_runtime.data_dir)
        assert any(sandbox_a in m for m in data_mounts)

        for sandbox in (sandbox_a, sandbox_b):
            await remove_sandbox(cri, sandbox)
        removed = True
        # Nothing of either pod remains: mounts, network namespaces, veths, IP leases.
        assert not [m for m in mounts_under(node_runtime.data_dir) if sandbox_a in m or sandbox_b in m]
        assert not any(os.path.exists(p) for p in netns)
        assert _veths_on(node_runtime.bridge) == []
        leases = node_runtime.data_dir / "cni" / "ipam" / "kyb-test"
        assert not (leases / ip_a).exists() and not (leases / ip_b).exists()
        assert await cri.list_pod_sandbox(api.PodSandboxFilter(id=sandbox_a)) == []
    finally:
        if not removed:
            for sandbox in (sandbox_a, sandbox_b):
                await remove_sandbox(cri, sandbox)


async def test_start_latency_vs_ctr_run(cri: CRIClient, node_runtime: NodeRuntime) -> None:
    """Sandbox + container start through CRI, and the same image through `ctr run` (printed)."""
    config = sandbox_config(node_runtime, "timing")
    t0 = time.perf_counter()
    sandbox_id = await cri.run_pod_sandbox(config)
    t1 = time.perf_counter()
    try:
        cid = await cri.create_container(sandbox_id, container_config("c", ["sleep", "3600"]), config)
        await cri.start_container(cid)
        t2 = time.perf_counter()
    finally:
        await remove_sandbox(cri, sandbox_id)
    ctr = shutil.which("ctr") or "ctr"
    t3 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        ctr, "--address", node_runtime.socket, "--namespace", "k8s.io", "run", "--rm",
        BUSYBOX_IMAGE, f"kyb-timing-{os.getpid()}", "true")
    assert await proc.wait() == 0
    t4 = time.perf_counter()
    print(f"\nCRI sandbox {t1 - t0:.3f}s, sandbox+container {t2 - t0:.3f}s; ctr run --rm true {t4 - t3:.3f}s")
    assert t2 - t0 < 10


async def test_containers_survive_containerd_restart(tmp_path: Path) -> None:
    """Stopping containerd (without remove_pods) leaves pods running; a new start re-attaches, a
    second `Containerd` on the same data directory adopts the running one, and a real shutdown
    removes everything."""
    from kybernetes.images.importer import import_images
    from kybernetes.images.oci import ensure_builtin_images
    from kybernetes.kubelet.containerd import Containerd, kill_pids, process_alive
    from tests.node.conftest import require_runtime

    require_runtime()
    first = Containerd(tmp_path)
    await first.start()
    second: Containerd | None = None
    try:
        await import_images(first.socket, ensure_builtin_images(tmp_path), snapshotter=first.snapshotter)
        async with CRIClient(first.endpoint) as client:
            # Host network: this runtime has no CNI config, and needs none for that.
            config = api.PodSandboxConfig(
                metadata=api.PodSandboxMetadata(name="survivor", uid="u-survivor", namespace="test"),
                log_directory=str(tmp_path / "pods" / "survivor"),
                linux=api.LinuxPodSandboxConfig(security_context=api.LinuxSandboxSecurityContext(
                    namespace_options=api.NamespaceOption(network=api.NODE, pid=api.CONTAINER))))
            sandbox_id = await client.run_pod_sandbox(config)
            cid = await client.create_container(sandbox_id, container_config("c", ["sleep", "3600"]), config)
            await client.start_container(cid)
        shims = first.shim_pids()
        assert shims
        await first.stop()
        assert not first.running()
        assert all(os.path.exists(f"/proc/{pid}") for pid in shims)

        restarted = Containerd(tmp_path)
        await restarted.start()
        second = Containerd(tmp_path)
        await second.start()  # adopts: no second process on the same root
        assert second.pid == restarted.pid
        async with CRIClient(second.endpoint) as client:
            assert (await client.container_status(cid)).status.state == api.CONTAINER_RUNNING
            assert (await client.exec_sync(cid, ["echo", "still here"], 10))[1] == b"still here\n"
        await second.stop(remove_pods=True)
        assert not restarted.running()
        deadline = time.monotonic() + 10
        while [pid for pid in shims if process_alive(pid)] and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # shims shut down just after their last task is deleted
        assert not [pid for pid in shims if process_alive(pid)]
    finally:
        for runtime in (first, second):
            if runtime is not None and runtime.running():
                await runtime.stop(remove_pods=True)
        kill_pids(first.shim_pids())
        leftovers = first.cleanup_mounts()
    assert leftovers == []
