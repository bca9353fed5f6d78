"""``kyb snapshot save | ls | restore`` and ``kyb server``'s scheduled snapshots, on real servers.

A snapshot taken while the official client keeps writing is restored into a fresh data dir: every
key, value and mod_revision there equals the original store's at the snapshot's revision, and a
server started on it serves those objects with the same resourceVersions to kubectl. A damaged
snapshot, and a restore onto a running server, are refused without touching the target.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from kybernetes.storage.snapshot import list_snapshots
from kybernetes.testing import ServerProcess

from ..storage.test_snapshot import live_at
from .conftest import _require_kubectl


def kyb(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kybernetes.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


class Writer(threading.Thread):
    """Creates ConfigMaps and updates earlier ones through the official client until stopped,
    recording the resourceVersion of every acknowledged write."""

    def __init__(self, kubeconfig: Path, namespace: str) -> None:
        super().__init__(daemon=True)
        from kubernetes import client, config

        self.api = config.new_client_from_config(config_file=str(kubeconfig))
        self.core = client.CoreV1Api(self.api)
        self.namespace = namespace
        self.revisions: list[int] = []
        self.stop_event = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            i = 0
            while not self.stop_event.is_set():
                cm = self.core.create_namespaced_config_map(
                    self.namespace, {"metadata": {"name": f"cm-{i}"}, "data": {"i": str(i)}})
                self.revisions.append(int(cm.metadata.resource_version))
                if i % 3 == 2:
                    cm = self.core.patch_namespaced_config_map(f"cm-{i // 2}", self.namespace,
                                                               {"data": {"patched": str(i)}})
                    self.revisions.append(int(cm.metadata.resource_version))
                i += 1
        except BaseException as e:  # reported by wait_for
            self.error = e

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.revisions) < count:
            assert self.error is None, self.error
            assert time.monotonic() < deadline, f"only {len(self.revisions)} writes after {timeout}s"
            time.sleep(0.02)

    def finish(self) -> None:
        self.stop_event.set()
        self.join(30)
        self.api.close()
        assert self.error is None, self.error


def test_snapshot_under_writes_restores_every_object_and_resource_version(tmp_path: Path) -> None:
    _require_kubectl()
    pytest.importorskip("kubernetes")
    original, fresh = tmp_path / "original", tmp_path / "fresh"
    snaps = tmp_path / "snaps"
    with ServerProcess.start(original, "--compact-interval", "0", "--disable-snapshots") as src:
        src.kubectl("create", "namespace", "snap")
        writer = Writer(src.kubeconfig, "snap")
        writer.start()
        try:
            writer.wait_for(30)
            saved = kyb("snapshot", "save", "--data-dir", str(original), "--dir", str(snaps), "--name", "test",
                        "--node-name", "n1")
            assert saved.returncode == 0, saved.stderr
            writer.wait_for(len(writer.revisions) + 30)
        finally:
            writer.finish()
        [info] = list_snapshots(snaps)
        assert info.header is not None and info.path.name.startswith("test-n1-")
        rev = info.header.revision
        assert f"saved at revision {rev}" in saved.stdout
        assert min(writer.revisions) < rev < max(writer.revisions)  # writes on both sides of the snapshot

        listed = kyb("snapshot", "ls", "--dir", str(snaps))
        assert listed.returncode == 0 and info.path.name in listed.stdout and str(rev) in listed.stdout

        refused = kyb("snapshot", "restore", str(info.path), "--data-dir", str(original))
        assert refused.returncode != 0 and "is running on" in refused.stderr, refused.stderr

    restored = kyb("snapshot", "restore", str(info.path), "--data-dir", str(fresh))
    assert restored.returncode == 0, restored.stderr
    expected = live_at(original / "db" / "state.db", rev)
    assert live_at(fresh / "db" / "state.db", rev) == expected
    configmaps = {k.rsplit("/", 1)[1]: v[2] for k, v in expected.items() if k.startswith("/registry/configmaps/snap/")}
    assert len(configmaps) > 10

    with ServerProcess.start(fresh, "--disable-snapshots") as srv:
        served = json.loads(srv.kubectl("get", "configmaps", "-n", "snap", "-o", "json").stdout)["items"]
        got = {cm["metadata"]["name"]: int(cm["metadata"]["resourceVersion"]) for cm in served
               if cm["metadata"]["name"].startswith("cm-")}
        assert got == configmaps
        created = json.loads(srv.kubectl("create", "configmap", "after", "-n", "snap", "-o", "json").stdout)
        assert int(created["metadata"]["resourceVersion"]) > rev


def test_damaged_snapshot_is_refused_and_the_target_left_alone(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess.start(data, "--disable-snapshots") as srv:
        srv.kubectl("create", "namespace", "keep")
        saved = kyb("snapshot", "save", "--data-dir", str(data))
        assert saved.returncode == 0, saved.stderr
    [info] = list_snapshots(data / "db" / "snapshots")
    assert info.path.name.startswith("on-demand-")
    db_files = {p.name: p.read_bytes() for p in (data / "db").iterdir() if p.is_file()}
    raw = info.path.read_bytes()
    damaged = tmp_path / "damaged"
    for content, message in ((raw[:-1000], "truncated snapshot"),
                             (raw[:-5000] + bytes([raw[-5000] ^ 0xFF]) + raw[-4999:], "checksum mismatch")):
        damaged.write_bytes(content)
        refused = kyb("snapshot", "restore", str(damaged), "--data-dir", str(data))
        assert refused.returncode == 1, refused.stdout
        assert "snapshot not restored" in refused.stderr and message in refused.stderr, refused.stderr
        assert {p.name: p.read_bytes() for p in (data / "db").iterdir() if p.is_file()} == db_files


def test_server_takes_scheduled_snapshots_and_keeps_the_newest(tmp_path: Path) -> None:
    data, snaps = tmp_path / "data", tmp_path / "snaps"
    with ServerProcess.start(data, "--snapshot-schedule-cron", "@every 1s", "--snapshot-retention", "2",
                             "--snapshot-dir", str(snaps), "--node-name", "n1"):
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while len(seen) < 4:
            assert time.monotonic() < deadline, f"scheduled snapshots seen: {sorted(seen)}"
            names = {p.name for p in snaps.glob("scheduled-n1-*")} if snaps.is_dir() else set()
            assert len(names) <= 2 + 1  # retention (one more may exist between a save and its pruning)
            seen |= names
            time.sleep(0.2)
    left = list_snapshots(snaps)
    assert len(left) == 2 and all(i.header is not None and i.header.revision > 0 for i in left)
    def when(name: str) -> int:
        return int(name.rsplit("-", 1)[1])

    assert min(when(i.path.name) for i in left) >= sorted(when(n) for n in seen)[-2]  # the newest were kept


def test_server_refuses_a_bad_snapshot_schedule(tmp_path: Path) -> None:
    res = kyb("server", "--data-dir", str(tmp_path / "data"), "--snapshot-schedule-cron", "0 */12 * *",
              "--disable-agent")
    assert res.returncode == 2
    assert "expected exactly 5 fields, found 4: [0 */12 * *]" in res.stderr
