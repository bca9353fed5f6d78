"""``kyb server --cluster-init``: the store in an etcd member the server runs as a supervised child.

Real processes throughout: the server, Debian's etcd (its child), kubectl and etcdctl with the
data dir's etcd certificates.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.etcdmember import etcd_processes
from kybernetes.testing import ServerProcess, free_port, stop_process

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


@pytest.fixture(autouse=True)
def _etcd_installed() -> None:
    if not (shutil.which("etcd") and os.path.exists(ETCDCTL)):
        if os.environ.get("CI"):
            pytest.fail("etcd and etcdctl (Debian's etcd-server, etcd-client) are required on CI")
        pytest.skip("etcd is not installed on this machine (it is on CI)")


def etcd_children(server_pid: int) -> list[int]:
    """The PIDs of the server's child processes that run etcd."""
    try:
        kids = Path(f"/proc/{server_pid}/task/{server_pid}/children").read_text().split()
    except OSError:
        return []
    out = []
    for pid in map(int, kids):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "etcd":
                out.append(pid)
        except OSError:
            pass
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def wait_until(cond, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.1)


class Cluster:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.client_port, self.peer_port = free_port(), free_port()
        self.started: list[int] = []

    def start(self) -> ServerProcess:
        # No controller manager: nothing here needs it.
        srv = ServerProcess.start(self.data_dir, "--cluster-init", "--etcd-client-port", str(self.client_port),
                                  "--etcd-peer-port", str(self.peer_port), "--node-name", "first",
                                  "--disable-controller-manager", timeout=90.0)
        self.started += etcd_children(srv.proc.pid)
        return srv

    def etcdctl(self, *args: str) -> str:
        tls = self.data_dir / "tls"
        res = subprocess.run(
            [ETCDCTL, f"--endpoints=https://127.0.0.1:{self.client_port}", f"--cacert={tls / 'etcd-ca.crt'}",
             f"--cert={tls / 'etcd-client.crt'}", f"--key={tls / 'etcd-client.key'}", *args],
            capture_output=True, text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
        assert res.returncode == 0, res.stderr
        return res.stdout


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "server")
    yield c
    for pid in c.started:  # a server that failed mid-test may have left its member behind
        if alive(pid):
            os.kill(pid, signal.SIGKILL)


def test_cluster_init_runs_a_supervised_etcd_member(cluster: Cluster) -> None:
    srv = cluster.start()
    try:
        [etcd_pid] = etcd_children(srv.proc.pid)
        srv.kubectl("create", "configmap", "kept", "--from-literal=a=1")
        assert srv.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.a}").stdout == "1"
        keys = cluster.etcdctl("get", "/registry/", "--prefix", "--keys-only").split()
        assert "/registry/configmaps/default/kept" in keys
        assert "/registry/namespaces/kube-system" in keys
        [member] = cluster.etcdctl("member", "list").strip().splitlines()
        assert ", first, https://127.0.0.1:" in member
        assert (cluster.data_dir / "db" / "etcd" / "member").is_dir()

        os.kill(etcd_pid, signal.SIGKILL)
        wait_until(lambda: srv.kubectl("get", "--raw", "/readyz", check=False).returncode != 0, 30,
                   "readyz fails while etcd is down")
        wait_until(lambda: srv.kubectl("get", "--raw", "/readyz", check=False).returncode == 0, 60,
                   "readyz recovers once the supervisor restarted etcd")
        [restarted] = etcd_children(srv.proc.pid)
        assert restarted != etcd_pid
        cluster.started.append(restarted)
        assert srv.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.a}").stdout == "1"
    finally:
        assert srv.stop() == 0
    wait_until(lambda: not any(alive(p) for p in cluster.started), 10, "etcd ends with the server")

    srv = cluster.start()  # the same data dir: the same member, not a new cluster
    try:
        assert cluster.etcdctl("member", "list").strip() == member
        assert srv.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.a}").stdout == "1"
        [member_pid] = etcd_children(srv.proc.pid)
        argv = Path(f"/proc/{member_pid}/cmdline").read_bytes().rstrip(b"\0").split(b"\0")
    finally:
        srv.kill()  # SIGKILL: the server cannot stop its member, which dies with it (procctl)
    wait_until(lambda: not alive(member_pid), 10, "etcd ends with the server killed by SIGKILL")

    # A member nothing ends with its server (one left by a kybernetes from before procctl): the
    # next server ends it (by PID) and runs its own on the same data.
    with open(os.devnull, "wb") as devnull:
        orphan = subprocess.Popen(argv, stdout=devnull, stderr=devnull, start_new_session=True)
    cluster.started.append(orphan.pid)
    srv = cluster.start()
    try:
        assert orphan.wait(5) is not None
        assert etcd_children(srv.proc.pid) not in ([], [member_pid])
        assert cluster.etcdctl("member", "list").strip() == member
        assert srv.kubectl("get", "configmap", "kept", "-o", "jsonpath={.data.a}").stdout == "1"
    finally:
        assert srv.stop() == 0


@pytest.mark.parametrize("flag", ["--datastore-endpoint=https://127.0.0.1:2379", "--datastore-cafile=/ca.crt"])
def test_cluster_init_refuses_an_external_datastore(tmp_path: Path, flag: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "kybernetes.cli", "server", "--data-dir", str(tmp_path), "--cluster-init", flag],
        capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert f"--cluster-init and {flag.partition('=')[0]} are mutually exclusive" in res.stderr


def test_a_server_whose_etcd_cannot_start_still_stops_at_once(cluster: Cluster) -> None:
    """SIGTERM while the server waits for its member (here: the peer port is taken, so etcd exits
    and the supervisor keeps restarting it) ends the server and the member now, not after the wait."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", cluster.peer_port))
        taken.listen()
        cluster.data_dir.mkdir(parents=True)
        out = open(cluster.data_dir / "server.log", "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "kybernetes.cli", "server", "--data-dir", str(cluster.data_dir), "--cluster-init",
             "--etcd-client-port", str(cluster.client_port), "--etcd-peer-port", str(cluster.peer_port),
             "--https-port", str(free_port()), "--bind-address", "127.0.0.1", "--disable-agent"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        try:
            etcd_log = cluster.data_dir / "logs" / "etcd.log"
            wait_until(lambda: b"address already in use" in etcd_log.read_bytes() if etcd_log.exists() else False,
                       60, "etcd tried the taken peer port")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
            assert time.monotonic() - started < 15
            assert etcd_processes(cluster.data_dir / "db" / "etcd") == []
        finally:
            stop_process(proc, 15)
