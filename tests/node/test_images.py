"""Images without the internet: deterministic archives, `ctr` imports, `kyb image`, registry pulls."""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from click.testing import CliRunner

from kybernetes.images.importer import import_images, push_to_registry
from kybernetes.images.oci import (
    BUSYBOX_IMAGE,
    BUSYBOX_LATEST,
    PAUSE_IMAGE,
    build_busybox_image,
    build_pause_image,
    build_test_image,
)
from kybernetes.kubelet.containerd import Containerd, write_registry_host
from kybernetes.kubelet.cri import CRIClient
from kybernetes.kubelet.imagecmd import image_group, import_into_node
from kybernetes.kubelet.images import import_builtin_images
from kybernetes.testing import stop_process
from tests.node.conftest import (
    NodeRuntime,
    container_config,
    remove_sandbox,
    require_runtime,
    sandbox_config,
    wait_exited,
)

REGISTRY_BINARY = "/usr/bin/docker-registry"


def _members(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: (tar.extractfile(m) or io.BytesIO()).read() for m in tar.getmembers() if m.isfile()}


def test_build_is_deterministic_and_well_formed() -> None:
    if not Path("/bin/busybox").exists():
        pytest.skip("needs busybox-static (/bin/busybox)")
    first, second = build_test_image(), build_test_image()
    assert first == second
    members = _members(first)
    index = json.loads(members["index.json"])
    descriptor = index["manifests"][0]
    assert descriptor["annotations"]["io.containerd.image.name"] == BUSYBOX_IMAGE
    manifest = json.loads(members["blobs/" + descriptor["digest"].replace(":", "/")])
    config = json.loads(members["blobs/" + manifest["config"]["digest"].replace(":", "/")])
    assert config["config"]["Cmd"] == ["sh"] and "Entrypoint" not in config["config"]
    layer = members["blobs/" + manifest["layers"][0]["digest"].replace(":", "/")]
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        names = {m.name: m for m in tar.getmembers()}
    assert names["bin/busybox"].isfile() and names["bin/ls"].issym() and names["tmp"].mode == 0o1777
    assert names["bin/wget"].isfile() and names["bin/wget"].mode == 0o755  # the -T wrapper (applets.py)
    assert all(m.mtime == names["bin/busybox"].mtime for m in names.values())

    pause = json.loads(_members(build_pause_image())["index.json"])
    assert pause["manifests"][0]["annotations"]["io.containerd.image.name"] == PAUSE_IMAGE
    gz = _members(build_busybox_image("x/y:1", compress=True, extra_files={"/www/index.html": b"hi"}))
    assert len(gz) == 5
    docker = _members(build_busybox_image("docker.io/kybtest/saved:1", format="docker"))
    assert json.loads(docker["manifest.json"])[0]["RepoTags"] == ["docker.io/kybtest/saved:1"]


async def test_builtin_images_imported(node_runtime: NodeRuntime, cri: CRIClient) -> None:
    assert sorted(node_runtime.images) == sorted([PAUSE_IMAGE, BUSYBOX_IMAGE, BUSYBOX_LATEST])
    for name in (PAUSE_IMAGE, BUSYBOX_IMAGE, BUSYBOX_LATEST):
        image = await cri.image_status(name)
        assert image is not None and name in image.repo_tags and image.size > 0
    fs = await cri.image_fs_info()
    # Usage is sampled in the background (every 10 s), so only the filesystem is certain at once.
    assert fs.image_filesystems[0].fs_id.mountpoint.startswith(str(node_runtime.data_dir))
    # Importing again is a no-op for the same bytes.
    again = await import_images(node_runtime.socket, [node_runtime.data_dir / "images" / "busybox.tar"],
                                snapshotter=node_runtime.containerd.snapshotter)
    assert again == [BUSYBOX_IMAGE]


async def _run_once(cri: CRIClient, node: NodeRuntime, image: str, name: str) -> bytes:
    """Runs `cat /hello` from `image` in a fresh pod; returns the log file's content."""
    config = sandbox_config(node, name)
    sandbox_id = await cri.run_pod_sandbox(config)
    try:
        cid = await cri.create_container(sandbox_id, container_config("c", ["cat", "/hello"], image=image), config)
        await cri.start_container(cid)
        status = await wait_exited(cri, cid)
        assert status.exit_code == 0, status
        return Path(status.log_path).read_bytes()
    finally:
        await remove_sandbox(cri, sandbox_id)


async def test_import_docker_save_archive_and_run(node_runtime: NodeRuntime, cri: CRIClient,
                                                  tmp_path: Path) -> None:
    name = "docker.io/kybtest/saved:1"
    tar = tmp_path / "saved.tar"
    tar.write_bytes(build_busybox_image(name, format="docker", extra_files={"/hello": b"from-docker-save\n"}))
    assert await import_images(node_runtime.socket, [tar], snapshotter=node_runtime.containerd.snapshotter) == [name]
    try:
        assert b"stdout F from-docker-save" in await _run_once(cri, node_runtime, name, "saved")
    finally:
        await cri.remove_image(name)
    assert await cri.image_status(name) is None


async def test_kyb_image_import_uses_running_containerd(node_runtime: NodeRuntime, cri: CRIClient,
                                                        tmp_path: Path) -> None:
    name = "docker.io/kybtest/cli:1"
    tar = tmp_path / "cli.tar"
    tar.write_bytes(build_busybox_image(name, applets=("sh", "cat")))
    # The click command runs its own event loop: call it from a worker thread.
    result = await asyncio.to_thread(
        CliRunner().invoke, image_group, ["import", "--data-dir", str(node_runtime.data_dir), str(tar)])
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [name]
    assert f"imported into the running containerd of the node in {node_runtime.data_dir}" in result.stderr
    assert await cri.image_status(name) is not None
    await cri.remove_image(name)


async def test_kyb_image_import_starts_temporary_containerd(tmp_path: Path) -> None:
    require_runtime()
    name = "docker.io/kybtest/offline:1"
    tar = tmp_path / "offline.tar"
    tar.write_bytes(build_busybox_image(name, applets=("sh",)))
    data_dir = tmp_path / "data"
    imported = await import_into_node(data_dir, [tar])
    assert (imported.names, imported.node_dir, imported.running) == ([name], data_dir, False)
    # The temporary containerd is gone; the image stays in the node's store for its next start.
    runtime = Containerd(data_dir)
    assert not os.path.exists(runtime.socket) or not runtime.running()
    await runtime.start()
    try:
        async with CRIClient(runtime.endpoint) as client:
            assert await client.image_status(name) is not None
    finally:
        await runtime.stop()
        runtime.cleanup_mounts()


async def test_kubelet_imports_only_missing_builtins_and_keeps_the_users(tmp_path: Path) -> None:
    """A user's busybox:1.36 survives the kubelet's start; a missing built-in is imported alone."""
    require_runtime()
    data_dir = tmp_path / "data"
    runtime = Containerd(data_dir)
    await runtime.start()
    try:
        async with CRIClient(runtime.endpoint) as client:
            async def import_builtins() -> list[str]:
                return await import_builtin_images(client, runtime.socket, runtime.snapshotter, data_dir)

            assert sorted(await import_builtins()) == sorted([PAUSE_IMAGE, BUSYBOX_IMAGE, BUSYBOX_LATEST])
            assert await import_builtins() == []
            builtin = await client.image_status(BUSYBOX_IMAGE)
            assert builtin is not None
            # The user's own busybox:1.36 (kyb image import) ...
            users = tmp_path / "users-busybox.tar"
            users.write_bytes(build_busybox_image(BUSYBOX_IMAGE, cmd=["sh"], extra_files={"/mine": b"yes\n"}))
            await import_images(runtime.socket, [users], snapshotter=runtime.snapshotter)
            mine = await client.image_status(BUSYBOX_IMAGE)
            assert mine is not None and mine.id != builtin.id
            # ... stays when the pause image is missing and imported again, and on every later start.
            await client.remove_image(PAUSE_IMAGE)
            assert await import_builtins() == [PAUSE_IMAGE]
            assert await import_builtins() == []
            kept = await client.image_status(BUSYBOX_IMAGE)
            assert kept is not None and kept.id == mine.id
            # An older build of the kubelet's own (recorded when it imported it) is upgraded.
            older = tmp_path / "older-busybox.tar"
            older.write_bytes(build_busybox_image(BUSYBOX_IMAGE, cmd=["sh"], applets=("sh", "cat")))
            await client.remove_image(BUSYBOX_IMAGE)
            await import_images(runtime.socket, [older], snapshotter=runtime.snapshotter)
            old = await client.image_status(BUSYBOX_IMAGE)
            assert old is not None
            with open(data_dir / "images" / "imported-builtins", "a") as record:
                record.write(f"{BUSYBOX_IMAGE} {old.id}\n")
            assert await import_builtins() == [BUSYBOX_IMAGE]
            current = await client.image_status(BUSYBOX_IMAGE)
            assert current is not None and current.id == builtin.id
    finally:
        await runtime.stop()
        runtime.cleanup_mounts()


# ---- a registry on loopback ----


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1:PORT with storage in tmp_path; yields host:port."""
    if not os.access(REGISTRY_BINARY, os.X_OK):
        reason = "needs Debian's docker-registry package (apt-get install docker-registry)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    port = _free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry-data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n")
    with open(tmp_path / "registry.log", "wb") as log:
        proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("docker-registry did not start: "
                                       + (tmp_path / "registry.log").read_text()) from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc, 10)


async def test_push_and_cri_pull_from_loopback_registry(node_runtime: NodeRuntime, cri: CRIClient,
                                                        registry: str, tmp_path: Path) -> None:
    tar = tmp_path / "push.tar"
    tar.write_bytes(build_busybox_image("docker.io/kybtest/push:1", compress=True,
                                        extra_files={"/hello": b"from-registry\n"}))
    digest = await push_to_registry(tar, f"http://{registry}", "test/busybox:1")
    assert digest.startswith("sha256:")
    async with aiohttp.ClientSession() as http, http.get(f"http://{registry}/v2/test/busybox/tags/list") as r:
        assert (await r.json())["tags"] == ["1"]

    # containerd pulls over HTTPS unless hosts.toml says otherwise; it reads the file on each pull.
    write_registry_host(node_runtime.registry_config_dir, registry, f"http://{registry}")
    image = f"{registry}/test/busybox:1"
    ref = await cri.pull_image(image)
    try:
        assert ref.startswith("sha256:")
        status = await cri.image_status(image)
        assert status is not None and status.id == ref
        assert f"{registry}/test/busybox@{digest}" in status.repo_digests
        assert b"stdout F from-registry" in await _run_once(cri, node_runtime, image, "pulled")
    finally:
        await cri.remove_image(image)
        shutil.rmtree(node_runtime.registry_config_dir / registry, ignore_errors=True)


async def test_pause_exits_zero_on_sigterm(node_runtime: NodeRuntime) -> None:
    """The sandbox image's PID 1 must stop on SIGTERM (PID 1 ignores signals it does not handle)."""
    ctr = shutil.which("ctr") or "ctr"
    name = f"kyb-pause-{os.getpid()}"
    base = [ctr, "--address", node_runtime.socket, "--namespace", "k8s.io"]
    run = await asyncio.create_subprocess_exec(*base, "run", "--rm", PAUSE_IMAGE, name,
                                               stdin=asyncio.subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:  # until the task is running
            ps = await asyncio.create_subprocess_exec(*base, "task", "ls", stdout=asyncio.subprocess.PIPE)
            out, _ = await ps.communicate()
            if any(line.split()[:1] == [name] and "RUNNING" in line for line in out.decode().splitlines()):
                break
            assert time.monotonic() < deadline, out
            await asyncio.sleep(0.1)
        started = time.monotonic()
        kill = await asyncio.create_subprocess_exec(*base, "task", "kill", "--signal", "SIGTERM", name)
        assert await kill.wait() == 0
        assert await asyncio.wait_for(run.wait(), 10) == 0
        assert time.monotonic() - started < 5
    finally:
        if run.returncode is None:
            kill = await asyncio.create_subprocess_exec(*base, "task", "kill", "--signal", "SIGKILL", name)
            await kill.wait()
            await run.wait()
