"""``kyb server --cluster-reset [--cluster-reset-restore-path FILE]`` and ``kyb snapshot save`` on a
``--cluster-init`` data dir.

Real processes throughout: the server, Debian's etcd (its child, or run here on the server's data
dir with the server's own command line), etcdctl with the data dir's etcd certificates.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.etcdmember import EmbeddedEtcd, etcd_processes, wait_healthy
from kybernetes.storage.snapshot import list_snapshots, read_info
from kybernetes.testing import ServerProcess, free_port, stop_process

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
RESET_DONE = "Managed etcd cluster membership has been reset, restart without --cluster-reset flag now"


@pytest.fixture(autouse=True)
def _etcd_installed() -> None:
    if not (shutil.which("etcd") and os.path.exists(ETCDCTL)):
        if os.environ.get("CI"):
            pytest.fail("etcd and etcdctl (Debian's etcd-server, etcd-client) are required on CI")
        pytest.skip("etcd is not installed on this machine (it is on CI)")


def kyb(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kybernetes.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def wait_until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


class Node:
    """One server data dir with fixed etcd ports, so every start and reset uses the same member."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port, self.peer_port = free_port(), free_port()
        self.member = EmbeddedEtcd(data_dir, "first", self.client_port, self.peer_port)

    @property
    def member_flags(self) -> list[str]:
        return ["--data-dir", str(self.data_dir), "--node-name", "first",
                "--etcd-client-port", str(self.client_port), "--etcd-peer-port", str(self.peer_port)]

    def start(self, *extra: str) -> ServerProcess:
        return ServerProcess.start(self.data_dir, "--cluster-init", *self.member_flags[2:], *extra,
                                   "--disable-controller-manager", timeout=90.0)

    def reset(self, *extra: str) -> subprocess.CompletedProcess[str]:
        return kyb("server", "--cluster-reset", *self.member_flags, *extra)

    def etcdctl(self, *args: str) -> str:
        tls = self.member.client_tls()
        res = subprocess.run(
            [ETCDCTL, f"--endpoints={self.member.client_url}", f"--cacert={tls.cafile}", f"--cert={tls.certfile}",
             f"--key={tls.keyfile}", "--command-timeout=10s", *args],
            capture_output=True, text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
        assert res.returncode == 0, res.stderr
        return res.stdout

    def db_entries(self) -> list[str]:
        return sorted(p.name for p in (self.data_dir / "db").iterdir())


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    n = Node(tmp_path / "server")
    yield n
    for pid in etcd_processes(n.member.data_dir):  # a failed test may have left its member behind
        os.kill(pid, signal.SIGKILL)


def test_snapshots_of_an_embedded_etcd_restored_by_cluster_reset(node: Node, tmp_path: Path) -> None:
    srv = node.start("--snapshot-schedule-cron", "@every 1s", "--snapshot-retention", "2")
    try:
        srv.kubectl("create", "configmap", "before", "--from-literal=a=1")
        rv = srv.kubectl("get", "configmap", "before", "-o", "jsonpath={.metadata.resourceVersion}").stdout

        saved = kyb("snapshot", "save", "--data-dir", str(node.data_dir), "--node-name", "first")
        assert saved.returncode == 0, saved.stderr
        [snap] = (node.data_dir / "db" / "snapshots").glob("on-demand-first-*")
        header = read_info(snap).header
        assert header is not None and header.backend == "etcd" and header.revision >= int(rv)
        # The server's own schedule works on its embedded etcd too.
        wait_until(lambda: any(i.header and i.header.backend == "etcd" and i.path.name.startswith("scheduled-first-")
                               for i in list_snapshots(node.data_dir / "db" / "snapshots")),
                   60, "a scheduled etcd snapshot")
        srv.kubectl("create", "configmap", "after", "--from-literal=a=2")

        running = node.reset("--cluster-reset-restore-path", str(snap))
        assert running.returncode == 2, running.stderr
        assert f"pid {srv.proc.pid}) is running on" in running.stderr
        assert "Traceback" not in running.stderr
    finally:
        assert srv.stop() == 0

    stopped = kyb("snapshot", "save", "--data-dir", str(node.data_dir))
    assert stopped.returncode == 2, stopped.stderr
    assert "that is not running" in stopped.stderr
    wrong_way = kyb("snapshot", "restore", str(snap), "--data-dir", str(node.data_dir))
    assert wrong_way.returncode == 2, wrong_way.stderr
    assert "kyb server --cluster-reset --cluster-reset-restore-path" in wrong_way.stderr

    before = node.db_entries()
    data = snap.read_bytes()
    for name, damaged in (("truncated", data[:-100]), ("corrupt", data[:-10] + b"x" * 10)):
        bad = tmp_path / name
        bad.write_bytes(damaged)
        res = node.reset("--cluster-reset-restore-path", str(bad))
        assert res.returncode == 2, res.stderr
        assert f"snapshot not restored: {bad}: {name} snapshot" in res.stderr
        assert "Traceback" not in res.stderr
        assert node.db_entries() == before  # nothing moved, nothing left behind

    res = node.reset("--cluster-reset-restore-path", str(snap))
    assert res.returncode == 0, res.stderr
    assert RESET_DONE in res.stderr
    assert any(e.startswith("etcd.pre-restore-") for e in node.db_entries())
    assert (node.data_dir / "db" / "reset-flag").exists()
    assert etcd_processes(node.member.data_dir) == []  # the reset stopped the member it ran

    srv = node.start()
    try:
        assert not (node.data_dir / "db" / "reset-flag").exists()
        got = srv.kubectl("get", "configmap", "before", "-o", "jsonpath={.metadata.resourceVersion}").stdout
        assert got == rv
        assert srv.kubectl("get", "configmap", "after", check=False).returncode != 0
        [member] = node.etcdctl("member", "list").strip().splitlines()
        assert f", first, {node.member.peer_url}," in member
    finally:
        assert srv.stop() == 0

    # Another machine's fresh data dir (the first one lost): the same snapshot brings the objects back.
    fresh = Node(tmp_path / "fresh")
    res = fresh.reset("--cluster-reset-restore-path", str(snap))
    assert res.returncode == 0, res.stderr
    srv = fresh.start()
    try:
        got = srv.kubectl("get", "configmap", "before", "-o", "jsonpath={.metadata.resourceVersion}").stdout
        assert got == rv
    finally:
        assert srv.stop() == 0


def test_cluster_reset_brings_back_a_member_that_lost_its_quorum(node: Node) -> None:
    srv = node.start()
    try:
        srv.kubectl("create", "configmap", "kept", "--from-literal=a=1")
    finally:
        assert srv.stop() == 0

    # The member gains a peer that never comes: one of two members is no quorum.
    log = node.data_dir / "logs" / "etcd-test.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([*node.member.command()], stdout=out, stderr=out, start_new_session=True)
    try:
        asyncio.run(wait_healthy(node.member.client_url, node.member.client_tls(), lambda: proc.poll() is None, log))
        node.etcdctl("member", "add", "ghost", f"--peer-urls=https://127.0.0.1:{free_port()}")
        assert len(node.etcdctl("member", "list").strip().splitlines()) == 2
    finally:
        stop_process(proc, 15)

    res = node.reset()
    assert res.returncode == 0, res.stderr
    assert RESET_DONE in res.stderr
    again = node.reset()  # k3s's safety catch: not twice without an ordinary start between
    assert again.returncode == 2, again.stderr
    assert "Managed etcd cluster membership was previously reset" in again.stderr

    srv = node.start()
    try:
        assert srv.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.a}").stdout == "1"
        [member] = node.etcdctl("member", "list").strip().splitlines()
        assert ", first, " in member
    finally:
        assert srv.stop() == 0


def test_cluster_reset_refuses_what_it_must_not_touch(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    res = kyb("server", "--cluster-reset", "--data-dir", str(fresh))
    assert res.returncode == 2, res.stderr
    assert "has no embedded etcd member" in res.stderr
    assert not (fresh / "db").exists()

    res = kyb("server", "--cluster-reset-restore-path", str(tmp_path / "x"), "--data-dir", str(fresh))
    assert res.returncode == 2, res.stderr
    assert "--cluster-reset-restore-path needs --cluster-reset" in res.stderr

    res = kyb("server", "--cluster-reset", "--datastore-endpoint", "https://127.0.0.1:2379", "--data-dir", str(fresh))
    assert res.returncode == 2, res.stderr
    assert "--cluster-reset and --datastore-endpoint are mutually exclusive" in res.stderr

    (tmp_path / "snap").write_bytes(b"KYBSNAP\n")
    sqlite = tmp_path / "sqlite"
    (sqlite / "db").mkdir(parents=True)
    (sqlite / "db" / "state.db").write_bytes(b"")
    res = kyb("server", "--cluster-reset", "--cluster-reset-restore-path", str(tmp_path / "snap"),
              "--data-dir", str(sqlite))
    assert res.returncode == 2, res.stderr
    assert "keeps its store in SQLite" in res.stderr
    assert sorted(p.name for p in (sqlite / "db").iterdir()) == ["state.db"]
    assert "Traceback" not in res.stderr
