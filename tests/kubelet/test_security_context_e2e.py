"""Security, RuntimeClass and registry credentials through the kubelet: a real API server, `kyb
kubelet` as a process, the tests' containerd (as test_kubelet_e2e.py, whose helpers this uses).

- runAsNonRoot against a root image: CreateContainerConfigError with the kubelet's message;
- fsGroup: the container's groups, and an emptyDir it can write with files inheriting the group;
- a RuntimeClass that does not exist (a static pod: the API's admission would refuse a pod naming
  one) and the `crun` handler, resolved by the kubelet and handed to containerd;
- a private image on a loopback docker-registry with htpasswd auth: ErrImagePull (401) without an
  imagePullSecret, pulled and run with one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest

from kybernetes import errors
from kybernetes.client import Client
from kybernetes.images.importer import push_to_registry
from kybernetes.images.oci import build_busybox_image
from kybernetes.kubelet.containerd import write_registry_host
from kybernetes.testing import free_port, stop_process
from tests.kubelet.test_kubelet_e2e import (
    NODE,
    KubeletProcess,
    Obj,
    delete_pod,
    events_for,
    events_until,
    main_status,
    pod,
    running_kubelet,
    unique,
    wait_node_ready,
    wait_pod,
)
from tests.kubelet.test_runtimeclass import crun_can_create_cgroups, require_crun
from tests.node.conftest import NodeRuntime

pytestmark = pytest.mark.integration

REGISTRY_BINARY = "/usr/bin/docker-registry"
USER, PASSWORD = "kyb-puller", "not-a-real-secret"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, node_runtime: NodeRuntime) -> Iterator[KubeletProcess]:
    with running_kubelet(tmp_path_factory, node_runtime) as kubelet:
        yield kubelet


@pytest.fixture
async def client(cluster: KubeletProcess) -> AsyncIterator[Client]:
    async with Client.from_kubeconfig(cluster.srv.kubeconfig) as c:
        await wait_node_ready(c, cluster)
        yield c


def waiting(p: Obj) -> Obj:
    return dict(main_status(p).get("state", {}).get("waiting") or {})


async def test_run_as_non_root_refuses_a_root_image(client: Client, cluster: KubeletProcess) -> None:
    name = unique("nonroot")
    created = await client.create("v1", "pods", pod(name, ["true"], securityContext={"runAsNonRoot": True}),
                                  "default")
    try:
        p = await wait_pod(client, name, lambda p: waiting(p).get("reason") == "CreateContainerConfigError", cluster)
        message = ('container has runAsNonRoot and image will run as root '
                   f'(pod: "{name}_default({created["metadata"]["uid"]})", container: main)')
        assert waiting(p)["message"] == message
        assert ("Failed", f"Error: {message}") in await events_until(client, name, "Failed")
    finally:
        await delete_pod(client, name)


async def test_fs_group_user_and_group_reach_the_container(client: Client, cluster: KubeletProcess) -> None:
    name = unique("fsgroup")
    script = "id; stat -c 'dir %g %a' /data; touch /data/new && stat -c 'file %g' /data/new"
    spec = pod(name, ["sh", "-c", script], restartPolicy="Never",
               securityContext={"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]},
               volumes=[{"name": "data", "emptyDir": {}}],
               container={"volumeMounts": [{"name": "data", "mountPath": "/data"}],
                          "securityContext": {"allowPrivilegeEscalation": False}})
    await client.create("v1", "pods", spec, "default")
    try:
        await wait_pod(client, name, lambda p: p.get("status", {}).get("phase") == "Succeeded", cluster)
        text = (await asyncio.to_thread(cluster.srv.kubectl, "logs", name)).stdout
        assert text.splitlines() == ["uid=1000 gid=3000 groups=2000,3000,4000", "dir 2000 2777", "file 2000"], text
    finally:
        await delete_pod(client, name)


async def test_runtime_class_resolved_by_the_kubelet(client: Client, cluster: KubeletProcess) -> None:
    # A static pod naming a RuntimeClass that does not exist (no mirror pod: admission refuses it).
    manifest = cluster.manifests / "absent-class.json"
    manifest.write_text(json.dumps({**pod("absent-class", ["sleep", "3600"], runtimeClassName="absent"),
                                    "metadata": {"name": "absent-class"}}))
    try:
        evs = await events_until(client, f"absent-class-{NODE}", "FailedCreatePodSandBox")
        assert ("FailedCreatePodSandBox",
                'Failed to create pod sandbox: runtimeclass.node.k8s.io "absent" not found') in evs, evs
    finally:
        manifest.unlink()
    require_crun()
    await client.create("node.k8s.io/v1", "runtimeclasses",
                        {"metadata": {"name": "crun-class"}, "handler": "crun"}, "")
    name = unique("on-crun")
    await client.create("v1", "pods", pod(name, ["sh", "-c", "echo ran; sleep 3600"], runtimeClassName="crun-class"),
                        "default")
    try:
        if crun_can_create_cgroups():
            await wait_pod(client, name, lambda p: p.get("status", {}).get("phase") == "Running", cluster)
        else:  # this machine's hybrid cgroups: crun itself refuses, which proves it was asked
            evs = await events_until(client, name, "FailedCreatePodSandBox")
            failed = [m for r, m in evs if r == "FailedCreatePodSandBox"]
            assert failed[0].startswith("Failed to create pod sandbox: rpc error: code = Unknown desc = "), failed
            assert "cgroups in hybrid mode not supported" in failed[0], failed
    finally:
        await delete_pod(client, name)
        await client.delete("node.k8s.io/v1", "runtimeclasses", "crun-class", "")


# ---- a private registry ----


@pytest.fixture
def private_registry(tmp_path: Path, node_runtime: NodeRuntime) -> Iterator[str]:
    """Debian's docker-registry on a free loopback port with htpasswd (bcrypt) auth for USER;
    containerd reaches it over plain HTTP (hosts.toml). Yields host:port."""
    for binary in (REGISTRY_BINARY, "/usr/bin/htpasswd"):
        if not os.access(binary, os.X_OK):
            reason = f"needs {binary} (scripts/setup.sh installs docker-registry and apache2-utils)"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
    users = subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], capture_output=True, text=True, check=True,
                           timeout=30).stdout
    (tmp_path / "htpasswd").write_text(users)
    port = free_port()
    (tmp_path / "registry.yml").write_text(
        f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {tmp_path / 'data'}\n"
        f"auth:\n  htpasswd:\n    realm: kyb-test\n    path: {tmp_path / 'htpasswd'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(tmp_path / "registry.yml")], stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    host = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "registry.log").read_text()
                time.sleep(0.05)
        write_registry_host(node_runtime.registry_config_dir, host, f"http://{host}")
        yield host
    finally:
        stop_process(proc, 10)
        with contextlib.suppress(FileNotFoundError):
            (node_runtime.registry_config_dir / host / "hosts.toml").unlink()


async def test_private_image_pulls_only_with_the_secret(client: Client, cluster: KubeletProcess,
                                                        private_registry: str, tmp_path: Path) -> None:
    marker = uuid.uuid4().hex
    repo = f"private/hello-{marker[:8]}:1"
    image = f"{private_registry}/{repo}"
    tar = tmp_path / "private.tar"
    tar.write_bytes(build_busybox_image(image, cmd=["cat", "/hello"], extra_files={"/hello": f"{marker}\n".encode()}))
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    async with aiohttp.ClientSession(headers={"Authorization": f"Basic {auth}"}) as http:
        await push_to_registry(tar, f"http://{private_registry}", repo, session=http)

    anonymous, with_secret = unique("anonymous"), unique("with-secret")
    await client.create("v1", "pods", pod(anonymous, ["cat", "/hello"], restartPolicy="Never",
                                          container={"image": image}), "default")
    try:
        evs = await events_until(client, anonymous, "BackOff")
        failed = [m for r, m in evs if r == "Failed" and m.startswith("Failed to pull image")]
        assert failed and failed[0].startswith(
            f'Failed to pull image "{image}": rpc error: code = Unknown desc = failed to pull and unpack image'), evs
        assert "401 Unauthorized" in failed[0], failed
        assert ("Failed", "Error: ErrImagePull") in evs
        p = await wait_pod(client, anonymous, lambda p: waiting(p).get("reason") == "ImagePullBackOff", cluster)
        assert waiting(p)["message"] == f'Back-off pulling image "{image}"'
    finally:
        await delete_pod(client, anonymous)

    config = {"auths": {f"http://{private_registry}": {"auth": auth}}}
    await client.create("v1", "secrets", {
        "metadata": {"name": "regcred"}, "type": "kubernetes.io/dockerconfigjson",
        "data": {".dockerconfigjson": base64.b64encode(json.dumps(config).encode()).decode()}}, "default")
    spec = pod(with_secret, ["cat", "/hello"], restartPolicy="Never", imagePullSecrets=[{"name": "regcred"}],
               container={"image": image})
    await client.create("v1", "pods", spec, "default")
    try:
        await wait_pod(client, with_secret, lambda p: p.get("status", {}).get("phase") == "Succeeded", cluster)
        assert (await asyncio.to_thread(cluster.srv.kubectl, "logs", with_secret)).stdout == f"{marker}\n"
        assert any(r == "Pulled" and image in m for r, m in await events_for(client, with_secret))
    finally:
        await delete_pod(client, with_secret)
        with contextlib.suppress(errors.NotFound):
            await client.delete("v1", "secrets", "regcred", "default")

    # The node's own credentials (config.json in the kubelet's root dir) serve a pod without secrets.
    node_config = cluster.data_dir / "config.json"
    node_config.write_text(json.dumps({"auths": {private_registry: {"username": USER, "password": PASSWORD}}}))
    by_node = unique("by-node")
    await client.create("v1", "pods", pod(by_node, ["cat", "/hello"], restartPolicy="Never",
                                          container={"image": image, "imagePullPolicy": "Always"}), "default")
    try:
        await wait_pod(client, by_node, lambda p: p.get("status", {}).get("phase") == "Succeeded", cluster)
        assert any(r == "Pulled" and m.startswith(f'Successfully pulled image "{image}"')
                   for r, m in await events_for(client, by_node))
    finally:
        node_config.unlink()
        await delete_pod(client, by_node)


async def test_seccomp_profiles_from_the_kubelets_seccomp_root(client: Client, cluster: KubeletProcess) -> None:
    profiles = cluster.data_dir / "seccomp" / "profiles"
    profiles.mkdir(parents=True, exist_ok=True)
    (profiles / "no-mkdir.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    script = "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status; mkdir /tmp/probe 2>/dev/null && echo mkdir=ok || echo mkdir=denied"
    names = {unique("localhost"): {"type": "Localhost", "localhostProfile": "profiles/no-mkdir.json"},
             unique("runtime-default"): {"type": "RuntimeDefault"}}
    for name, profile in names.items():
        await client.create("v1", "pods", pod(name, ["sh", "-c", script], restartPolicy="Never",
                                              securityContext={"seccompProfile": profile}), "default")
    try:
        for name, profile in names.items():
            await wait_pod(client, name, lambda p: p.get("status", {}).get("phase") == "Succeeded", cluster)
            lines = (await asyncio.to_thread(cluster.srv.kubectl, "logs", name)).stdout.split("\n")
            mkdir = "mkdir=denied" if profile["type"] == "Localhost" else "mkdir=ok"
            assert [x.replace("\t", " ") for x in lines if x] == ["NoNewPrivs: 0", "Seccomp: 2", mkdir], lines
    finally:
        for name in names:
            await delete_pod(client, name)
