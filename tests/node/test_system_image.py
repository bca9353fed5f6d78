"""The kybernetes system image: deterministic, cached, and a working `kyb` with every dependency.

The build reads ~200 MB (a few seconds), so the archive is built once per session in a
temporary cache (KYB_IMAGE_CACHE) and the tests share it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.images.oci import BuiltinArchive
from kybernetes.images.system import _prune, build_system_archive, system_archive, system_image_name
from kybernetes.kubelet.cri import CRIClient
from kybernetes.kubelet.images import import_builtin_images
from tests.node.conftest import (
    NodeRuntime,
    container_config,
    remove_sandbox,
    require_runtime,
    sandbox_config,
    wait_exited,
)

# Every runtime dependency's compiled part, and the standard library's: a missing shared library
# or a pruned module fails the import.
IMPORTS = ("kybernetes.cli, kybernetes.client, kybernetes.api.schema, aiohttp, orjson, yaml, cryptography.x509, "
           "jwt, click, uvloop, httptools, multidict, grpc, google.protobuf, cel_expr_python, re2, ssl, sqlite3, "
           "ctypes, hashlib, zlib, lzma, bz2, decimal")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch_module: pytest.MonkeyPatch) -> Path:
    path = tmp_path_factory.mktemp("image-cache")
    monkeypatch_module.setenv("KYB_IMAGE_CACHE", str(path))
    return path


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="module")
def archive(cache: Path) -> BuiltinArchive:
    if not Path("/bin/busybox").exists():
        pytest.skip("needs busybox-static (/bin/busybox)")
    return system_archive()


def test_cached_and_deterministic(archive: BuiltinArchive, cache: Path, tmp_path: Path) -> None:
    assert archive.name == system_image_name() and archive.path.parent == cache
    built = archive.path.stat().st_mtime_ns
    started = time.monotonic()
    again = system_archive()
    assert again == archive and archive.path.stat().st_mtime_ns == built  # not written again
    assert time.monotonic() - started < 5  # a fingerprint (stat calls), no build
    # A build from scratch elsewhere gives the very same bytes.
    image_id = build_system_archive(tmp_path / "again.tar")
    assert image_id == archive.image_id
    assert _digest(tmp_path / "again.tar") == _digest(archive.path)


def test_layout(archive: BuiltinArchive) -> None:
    with tarfile.open(archive.path) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile(  # type: ignore[union-attr]
            "blobs/" + index["manifests"][0]["digest"].replace(":", "/")).read())
        config = json.loads(tar.extractfile(  # type: ignore[union-attr]
            "blobs/" + manifest["config"]["digest"].replace(":", "/")).read())
        layer = tar.extractfile("blobs/" + manifest["layers"][0]["digest"].replace(":", "/"))
        assert layer is not None
        with tarfile.open(fileobj=layer, mode="r|") as files:
            names = [m.name for m in files]
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == archive.name
    assert config["config"]["Entrypoint"] == ["/usr/local/bin/kyb"]
    assert names == sorted(names)
    assert "usr/local/bin/kyb" in names and "bin/sh" in names and "lib/x86_64-linux-gnu/libc.so.6" in names
    assert not [n for n in names if "__pycache__" in n or "/test/" in n or "/tkinter/" in n
              or "site-packages/_pytest/" in n or "site-packages/mypy/" in n]
    schemas = {n.split("kubernetes-json-schema/")[1].split("/")[0] for n in names if "kubernetes-json-schema/v" in n}
    assert schemas == {"v1.32.0-local"}


async def test_runs_kyb_in_a_container(archive: BuiltinArchive, node_runtime: NodeRuntime) -> None:
    require_runtime()
    async with CRIClient(node_runtime.endpoint, timeout=60) as client:
        started = time.monotonic()
        imported = await import_builtin_images(client, node_runtime.socket, node_runtime.containerd.snapshotter,
                                               node_runtime.data_dir, system=True)
        print(f"system image import: {time.monotonic() - started:.1f}s, {archive.path.stat().st_size >> 20} MiB")
        assert imported == [archive.name]
        status = await client.image_status(archive.name)
        assert status is not None and status.id == archive.image_id
        config = sandbox_config(node_runtime, "system-image")
        sandbox = await client.run_pod_sandbox(config)
        try:
            script = f"import {IMPORTS}; print('imports ok')"
            outputs = []
            for i, command in enumerate((["/usr/local/bin/kyb", "--help"],
                                         ["/usr/local/bin/python3", "-c", script])):
                c = container_config(f"kyb{i}", command, image=archive.name)
                cid = await client.create_container(sandbox, c, config)
                await client.start_container(cid)
                exited = await wait_exited(client, cid, timeout=60)
                log = Path(config.log_directory) / c.log_path
                outputs.append(log.read_text())
                assert exited.exit_code == 0, outputs[-1]
            assert "kybernetes: Kubernetes, in Python." in outputs[0]
            assert "imports ok" in outputs[1]
        finally:
            await remove_sandbox(client, sandbox)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def test_old_builds_are_pruned_least_recently_used_first(tmp_path: Path) -> None:
    for age, key in enumerate("abcde"):
        for suffix in (".tar", ".id"):
            (tmp_path / f"system-{key}{suffix}").write_text("x")
        os.utime(tmp_path / f"system-{key}.id", (1e9 - age, 1e9 - age))
    _prune(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "system-a.id", "system-a.tar", "system-b.id", "system-b.tar", "system-c.id", "system-c.tar"]
