"""Fixtures for tests that need a real container runtime.

`node_runtime` (session) is a containerd of its own in a temporary data directory, with the
project's images (pause, busybox) imported and a CNI bridge network on a private pod CIDR. It is
started once per test session and torn down completely: every pod sandbox is stopped and removed
through CRI, containerd is stopped by PID, leftover shims (found by this containerd's socket) are
killed, mounts under the data directory are unmounted, the sandboxes' network namespaces and the
bridge are deleted. Tests get a fresh `cri` client per test (a gRPC channel belongs to one event
loop) and should remove what they create; anything left is removed at the end of the session.

These tests need root, containerd and runc. Elsewhere they are skipped with the reason, except in
CI (the CI environment variable set), where a missing prerequisite is a failure.

Network: the pod CIDR (10.88.N.0/24) and bridge (kytN) are derived from the PID so that concurrent
sessions on one machine do not collide; traffic goes only to that bridge and its pods.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kybernetes.images.importer import import_images
from kybernetes.images.oci import BUSYBOX_IMAGE, ensure_builtin_images
from kybernetes.kubelet.cni import gateway_ip, write_cni_config
from kybernetes.kubelet.containerd import Containerd, cleanup_mounts, kill_pids
from kybernetes.kubelet.cri import CRIClient, api

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def require_runtime() -> None:
    """Skips (or, in CI, fails) when this machine cannot run containers for the tests."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for binary in ("containerd", "ctr", "runc"):
        if shutil.which(binary) is None:
            missing.append(binary)
    if not Path("/usr/lib/cni/bridge").exists():
        missing.append("CNI plugins (/usr/lib/cni)")
    if missing:
        reason = "needs " + ", ".join(missing) + " (scripts/setup.sh installs the packages; run as root)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)


@dataclass
class NodeRuntime:
    """A running containerd for tests, and what it was configured with."""

    containerd: Containerd
    data_dir: Path
    pod_cidr: str
    bridge: str
    gateway: str
    registry_config_dir: Path
    images: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return self.containerd.endpoint

    @property
    def socket(self) -> str:
        return self.containerd.socket

    @property
    def log_root(self) -> Path:
        return self.data_dir / "pods"


def _sandbox_netns_paths(runtime: Containerd) -> list[str]:
    """Network namespace files of every sandbox containerd knows (from verbose status)."""

    async def collect() -> list[str]:
        paths = []
        async with CRIClient(runtime.endpoint, timeout=10) as client:
            for sandbox in await client.list_pod_sandbox():
                with contextlib.suppress(Exception):
                    info = (await client.pod_sandbox_status(sandbox.id, verbose=True)).info.get("info", "{}")
                    spec = json.loads(info).get("runtimeSpec", {})
                    for ns in spec.get("linux", {}).get("namespaces", []):
                        if ns.get("type") == "network" and ns.get("path"):
                            paths.append(ns["path"])
        return paths

    try:
        return asyncio.run(collect())
    except Exception:
        return []


def _remove_netns(path: str) -> None:
    # A CNI netns is a bind mount of an nsfs inode onto a file in /var/run/netns.
    cleanup_mounts(Path(path))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def teardown_runtime(node: NodeRuntime) -> None:
    """Removes everything `node_runtime` created; safe to call after partial failures."""
    runtime = node.containerd
    netns = _sandbox_netns_paths(runtime) if runtime.running() else []
    with contextlib.suppress(Exception):
        asyncio.run(runtime.stop(remove_pods=runtime.running()))
    kill_pids(runtime.shim_pids())
    cleanup_mounts(node.data_dir)
    for path in netns:
        if os.path.exists(path):
            _remove_netns(path)
    subprocess.run(["ip", "link", "delete", node.bridge], capture_output=True)


@pytest.fixture(scope="session")
def node_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeRuntime]:
    require_runtime()
    data_dir = tmp_path_factory.mktemp("node")
    # The CNI bridge plugin (isGateway) switches on IPv4 forwarding host-wide; put it back after.
    ip_forward = IP_FORWARD.read_text()
    n = 20 + os.getpid() % 200
    pod_cidr = f"10.88.{n}.0/24"
    bridge = f"kyt{n}"
    registry_dir = data_dir / "registry.d"
    runtime = Containerd(data_dir, registry_config_dir=registry_dir)
    write_cni_config(runtime.cni_conf_dir, pod_cidr, bridge=bridge, network_name="kyb-test")
    node = NodeRuntime(containerd=runtime, data_dir=data_dir, pod_cidr=pod_cidr, bridge=bridge,
                       gateway=gateway_ip(pod_cidr), registry_config_dir=registry_dir)
    try:
        asyncio.run(runtime.start())
        tars = ensure_builtin_images(data_dir)
        node.images = asyncio.run(import_images(runtime.socket, tars, snapshotter=runtime.snapshotter))
        yield node
    finally:
        teardown_runtime(node)
        IP_FORWARD.write_text(ip_forward)


@pytest.fixture
async def cri(node_runtime: NodeRuntime) -> AsyncIterator[CRIClient]:
    async with CRIClient(node_runtime.endpoint, timeout=30) as client:
        yield client


# ---- config builders the tests (and the kubelet's tests) share ----


def sandbox_config(node: NodeRuntime, name: str, *, namespace: str = "test", uid: str | None = None,
                   attempt: int = 0, host_network: bool = False) -> api.PodSandboxConfig:
    uid = uid or f"uid-{name}"
    log_dir = node.log_root / f"{namespace}_{name}_{uid}"
    log_dir.mkdir(parents=True, exist_ok=True)
    network = api.NODE if host_network else api.POD
    return api.PodSandboxConfig(
        metadata=api.PodSandboxMetadata(name=name, uid=uid, namespace=namespace, attempt=attempt),
        hostname=name,
        log_directory=str(log_dir),
        labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
                "io.kubernetes.pod.uid": uid},
        linux=api.LinuxPodSandboxConfig(
            security_context=api.LinuxSandboxSecurityContext(
                namespace_options=api.NamespaceOption(network=network, pid=api.CONTAINER, ipc=api.POD))),
    )


def container_config(name: str, command: list[str], *, image: str = BUSYBOX_IMAGE, attempt: int = 0,
                     memory_limit: int = 0, env: dict[str, str] | None = None) -> api.ContainerConfig:
    return api.ContainerConfig(
        metadata=api.ContainerMetadata(name=name, attempt=attempt),
        image=api.ImageSpec(image=image),
        command=command,
        envs=[api.KeyValue(key=k, value=v) for k, v in (env or {}).items()],
        log_path=f"{name}/{attempt}.log",
        labels={"io.kubernetes.container.name": name},
        linux=api.LinuxContainerConfig(
            resources=api.LinuxContainerResources(memory_limit_in_bytes=memory_limit),
            security_context=api.LinuxContainerSecurityContext(
                namespace_options=api.NamespaceOption(network=api.POD, pid=api.CONTAINER, ipc=api.POD))),
    )


async def wait_exited(client: CRIClient, container_id: str, timeout: float = 30.0) -> api.ContainerStatus:
    """Polls ContainerStatus until the container has exited."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = (await client.container_status(container_id)).status
        if status.state == api.CONTAINER_EXITED:
            return status
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"container {container_id} still {api.ContainerState.Name(status.state)}")
        await asyncio.sleep(0.1)


async def remove_sandbox(client: CRIClient, sandbox_id: str) -> None:
    await client.stop_pod_sandbox(sandbox_id)
    await client.remove_pod_sandbox(sandbox_id)
