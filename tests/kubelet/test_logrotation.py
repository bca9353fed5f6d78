"""Container log rotation against the real containerd: rename, ReopenContainerLog, gzip, at most
containerLogMaxFiles files, no line lost between the rotated and the reopened file."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kybernetes.kubelet.cri import CRIClient
from kybernetes.kubelet.logrotation import (
    ContainerLogManager,
    LogRotationPolicy,
    remove_container_logs,
    remove_orphaned_pod_log_dirs,
)
from kybernetes.testing import KUBECTL, ServerProcess
from tests.e2e.conftest import require_kubectl
from tests.kubelet.test_kubelet_e2e import KubeletProcess, _remove_kubelet_pods, pod, unique
from tests.node.conftest import NodeRuntime, container_config, remove_sandbox, sandbox_config

pytestmark = pytest.mark.integration


def _numbers(text: str) -> list[int]:
    """The counter values of CRI log lines ``TIME stdout F line-N``."""
    return [int(line.rsplit("line-", 1)[1]) for line in text.splitlines() if "line-" in line]


async def _grown(path: Path, size: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.stat().st_size >= size):
        assert time.monotonic() < deadline, f"{path} never reached {size} bytes"
        await asyncio.sleep(0.05)


def test_policy_is_validated_as_the_kubelet_does() -> None:
    assert LogRotationPolicy("10Mi", 5).max_size == 10 * 1024 * 1024
    with pytest.raises(ValueError, match="invalid MaxFiles 1, must be > 1"):
        LogRotationPolicy("10Mi", 1)


def test_log_directories_of_pods_gone_are_removed(tmp_path: Path) -> None:
    for name in ("default_web_uid-1", "default_web_uid-2", "kube-system_dns_uid-3"):
        (tmp_path / name / "main").mkdir(parents=True)
        (tmp_path / name / "main" / "0.log").write_text("x\n")
    removed = remove_orphaned_pod_log_dirs(tmp_path, {"uid-2", "uid-3"})
    assert [p.name for p in removed] == ["default_web_uid-1"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["default_web_uid-2", "kube-system_dns_uid-3"]
    assert remove_orphaned_pod_log_dirs(tmp_path / "missing", set()) == []


async def test_rotation_keeps_max_files_and_loses_no_line(cri: CRIClient, node_runtime: NodeRuntime) -> None:
    config = sandbox_config(node_runtime, "logrot")
    sandbox_id = await cri.run_pod_sandbox(config)
    try:
        cid = await cri.create_container(sandbox_id, container_config(
            "writer", ["sh", "-c", "i=0; while true; do echo line-$i; i=$((i+1)); sleep 0.002; done"]), config)
        await cri.start_container(cid)
        current = Path((await cri.container_status(cid)).status.log_path)
        ticks = itertools.count(1_700_000_000)  # one second apart: each rotation gets its own name
        manager = ContainerLogManager(cri, LogRotationPolicy("2Ki", 3), clock=lambda: float(next(ticks)))

        leftover = current.parent / "0.log.20000101-000000.tmp"  # a compression cut short earlier
        leftover.write_text("x")
        for _ in range(4):
            await _grown(current, 2048)
            await manager.rotate_if_needed(cid)
        await _grown(current, 1)  # the runtime writes to the reopened file
        await cri.stop_container(cid, 0)

        rotated = sorted(p.name for p in current.parent.glob("0.log.*"))
        # containerLogMaxFiles 3: the current file, the newest rotation (plain) and one compressed.
        assert len(rotated) == 2, rotated
        assert rotated[0].endswith(".gz") and not rotated[1].endswith(".gz"), rotated
        older = _numbers(gzip.decompress((current.parent / rotated[0]).read_bytes()).decode())
        newest = _numbers((current.parent / rotated[1]).read_text())
        now = _numbers(current.read_text())
        joined = older + newest + now
        assert joined == list(range(joined[0], joined[0] + len(joined))), "lines lost or reordered across rotation"
        assert older[0] > 0, "the oldest rotations were not removed"
        assert not leftover.exists()
        await remove_container_logs(cri, cid)  # what the kubelet does before pruning a dead container
        assert not list(current.parent.glob("0.log*"))
    finally:
        await remove_sandbox(cri, sandbox_id)


async def test_missing_log_is_reopened(cri: CRIClient, node_runtime: NodeRuntime) -> None:
    config = sandbox_config(node_runtime, "logreopen")
    sandbox_id = await cri.run_pod_sandbox(config)
    try:
        cid = await cri.create_container(sandbox_id, container_config(
            "writer", ["sh", "-c", "while true; do echo line-1; sleep 0.05; done"]), config)
        await cri.start_container(cid)
        current = Path((await cri.container_status(cid)).status.log_path)
        await _grown(current, 1)
        current.unlink()
        await ContainerLogManager(cri, LogRotationPolicy("10Mi", 5)).rotate_if_needed(cid)
        await _grown(current, 1)
    finally:
        await remove_sandbox(cri, sandbox_id)


# ---- `kubectl logs` through a kubelet that rotates every 3 s ----


@pytest.fixture(scope="module")
def rotating_kubelet(tmp_path_factory: pytest.TempPathFactory, node_runtime: NodeRuntime) -> Iterator[KubeletProcess]:
    require_kubectl()
    srv = ServerProcess.start(tmp_path_factory.mktemp("apiserver"))
    kubelet = KubeletProcess(srv, node_runtime, tmp_path_factory.mktemp("kubelet"), (
        "--container-log-max-size", "1Ki", "--container-log-max-files", "3",
        "--container-log-monitor-interval", "3s"))  # the least the kubelet accepts
    try:
        kubelet.start()
        yield kubelet
    finally:
        kubelet.stop()
        srv.stop()
        asyncio.run(_remove_kubelet_pods(node_runtime))


def _wait(fn: Callable[[], object], timeout: float, what: str, kubelet: KubeletProcess) -> object:
    deadline = time.monotonic() + timeout
    while not (value := fn()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n--- kubelet log ---\n{kubelet.log()}"
        time.sleep(0.1)
    return value


def test_kubectl_logs_follows_across_rotation_and_previous_reads_the_last_instance(
        rotating_kubelet: KubeletProcess) -> None:
    kubelet, srv = rotating_kubelet, rotating_kubelet.srv
    name = unique("rot")
    spec = pod(name, ["sh", "-c", "i=0; while [ $i -lt 700 ]; do echo line-$i; i=$((i+1)); sleep 0.01; done; exit 1"])
    srv.kubectl("create", "-f", "-", input=json.dumps(spec))
    srv.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=60s", timeout=70)
    env = {**os.environ, "KUBECONFIG": str(srv.kubeconfig)}
    follow = subprocess.run([KUBECTL, "logs", "-f", name], capture_output=True, text=True, timeout=60, env=env)
    assert follow.returncode == 0, follow.stderr
    followed = _numbers(follow.stdout)
    assert followed == list(range(followed[0], 700)), "kubectl logs -f lost lines at a rotation"

    def restarted() -> bool:
        p = json.loads(srv.kubectl("get", "pod", name, "-o", "json").stdout)
        return any(s.get("restartCount", 0) >= 1 for s in p["status"].get("containerStatuses") or [])
    _wait(restarted, 30, "the container's restart", kubelet)
    log_dir = next(kubelet.data_dir.glob(f"pods-logs/default_{name}_*/main"))
    first_file = _numbers((log_dir / "0.log").read_text())
    assert followed[0] < first_file[0], "no rotation happened while kubectl logs -f read"
    assert len(list(log_dir.glob("0.log.*"))) <= 2  # containerLogMaxFiles 3, the current file included
    previous = _numbers(srv.kubectl("logs", "--previous", name).stdout)
    assert previous == first_file and previous[-1] == 699 and previous[0] > 0
    current = _numbers(srv.kubectl("logs", name).stdout)
    assert current and current == list(range(current[0], current[0] + len(current)))
    srv.kubectl("delete", "pod", name, "--grace-period=0", "--force", check=False)
