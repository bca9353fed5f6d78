"""``kyb server`` on etcd: kubectl works end to end, and etcdctl shows the objects under /registry/."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.storage.snapshot import list_snapshots
from kybernetes.testing import KUBECTL, EtcdCluster, ServerProcess

from .test_etcd import etcd  # noqa: F401 (the session's etcd)

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"


def _require_tools() -> None:
    for tool in (KUBECTL, ETCDCTL):
        if shutil.which(tool) is None and not os.path.exists(tool):
            if os.environ.get("CI"):
                pytest.fail(f"{tool} is required on CI")
            pytest.skip(f"{tool} is not installed on this machine (scripts/setup.sh installs it on CI)")


def etcdctl(cluster: EtcdCluster, *args: str) -> str:
    env = dict(os.environ, ETCDCTL_API="3")
    res = subprocess.run(
        [ETCDCTL, "--endpoints", cluster.endpoints, "--cacert", cluster.tls.cafile, "--cert", cluster.tls.certfile,
         "--key", cluster.tls.keyfile, "--command-timeout", "10s", *args],
        capture_output=True, text=True, timeout=30, env=env, check=True,
    )
    return res.stdout


@pytest.fixture
def etcd_server(etcd: EtcdCluster, tmp_path: Path) -> Iterator[ServerProcess]:  # noqa: F811
    _require_tools()
    srv = ServerProcess.start(
        tmp_path / "data", "--datastore-endpoint", etcd.endpoints, "--datastore-cafile", etcd.tls.cafile,
        "--datastore-certfile", etcd.tls.certfile, "--datastore-keyfile", etcd.tls.keyfile, timeout=60.0,
    )
    try:
        yield srv
    finally:
        srv.stop()


def test_kubectl_on_etcd(etcd_server: ServerProcess, etcd: EtcdCluster) -> None:  # noqa: F811
    k = etcd_server.kubectl
    k("create", "configmap", "on-etcd", "--from-literal=a=b")
    watch = subprocess.Popen(
        [KUBECTL, "get", "configmaps", "--watch", "--output-watch-events", "-o", "name", "--request-timeout", "20s"],
        env=dict(os.environ, KUBECONFIG=str(etcd_server.kubeconfig)), stdout=subprocess.PIPE, text=True,
    )
    try:
        assert watch.stdout is not None
        first = watch.stdout.readline()  # the initial list: kube-root-ca.crt and on-etcd, by name
        assert first.strip().startswith("configmap/"), first
        k("create", "configmap", "second", "--from-literal=c=d")
        lines = [first]
        while not any("configmap/second" in ln for ln in lines):
            line = watch.stdout.readline()
            assert line, f"the watch ended without the new configmap: {lines}"
            lines.append(line)
        assert lines[-1].split()[-1] == "configmap/second"
    finally:
        watch.kill()
        watch.wait(10)
    assert k("get", "configmap", "on-etcd", "-o", "jsonpath={.data.a}").stdout == "b"
    rv = k("get", "configmap", "on-etcd", "-o", "jsonpath={.metadata.resourceVersion}").stdout
    stored = etcdctl(etcd, "get", "--write-out", "fields", "/registry/configmaps/default/on-etcd")
    assert f'"ModRevision" : {rv}\n' in stored  # resourceVersion is etcd's mod_revision

    keys = etcdctl(etcd, "get", "--prefix", "/registry/", "--keys-only").split()
    assert "/registry/configmaps/default/on-etcd" in keys
    # kube-apiserver's layout: the resource's name, a few special prefixes, <group>/<resource> for
    # apiextensions, apiregistration and custom resources.
    assert "/registry/namespaces/default" in keys
    assert "/registry/clusterroles/cluster-admin" in keys
    assert "/registry/services/specs/default/kubernetes" in keys
    assert "/registry/apiregistration.k8s.io/apiservices/v1." in keys
    assert not [k for k in keys if k.startswith(("/registry/core/", "/registry/rbac.authorization.k8s.io/"))]


def test_server_waits_for_an_unreachable_etcd(tmp_path: Path) -> None:
    """No etcd yet at start: the server says so (no traceback), retries, and starts once etcd is up."""
    _require_tools()
    cluster = EtcdCluster(tmp_path / "etcd")
    log = tmp_path / "data" / "server.log"

    def start_etcd_once_refused() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log.exists() and "is not reachable" in log.read_text(errors="replace"):
                cluster.start()
                return
            time.sleep(0.1)

    starter = threading.Thread(target=start_etcd_once_refused, daemon=True)
    starter.start()
    try:
        srv = ServerProcess.start(
            tmp_path / "data", "--datastore-endpoint", cluster.endpoints, "--datastore-cafile", cluster.tls.cafile,
            "--datastore-certfile", cluster.tls.certfile, "--datastore-keyfile", cluster.tls.keyfile, timeout=90.0,
        )
        try:
            text = log.read_text(errors="replace")
            assert f"datastore {cluster.endpoints} is not reachable" in text
            assert "Traceback" not in text
            srv.kubectl("create", "namespace", "after-wait")
        finally:
            srv.stop()
    finally:
        starter.join(60)
        cluster.stop()


def test_server_on_etcd_takes_scheduled_etcd_snapshots(etcd: EtcdCluster, tmp_path: Path) -> None:  # noqa: F811
    """``kyb server`` on etcd runs its snapshot schedule (it logged "not supported" before): each
    file is an etcd snapshot at a real revision, and retention keeps the newest."""
    _require_tools()
    snaps = tmp_path / "snaps"
    with ServerProcess.start(
        tmp_path / "data", "--datastore-endpoint", etcd.endpoints, "--datastore-cafile", etcd.tls.cafile,
        "--datastore-certfile", etcd.tls.certfile, "--datastore-keyfile", etcd.tls.keyfile,
        "--snapshot-schedule-cron", "@every 1s", "--snapshot-retention", "2", "--snapshot-dir", str(snaps),
        "--node-name", "n1", timeout=60.0,
    ):
        seen: set[str] = set()
        deadline = time.monotonic() + 60
        while len(seen) < 3:
            assert time.monotonic() < deadline, f"scheduled snapshots seen: {sorted(seen)}"
            seen |= {p.name for p in snaps.glob("scheduled-n1-*")} if snaps.is_dir() else set()
            time.sleep(0.2)
    left = list_snapshots(snaps)
    assert len(left) == 2
    assert all(i.header is not None and i.header.backend == "etcd" and i.header.revision > 1 for i in left)
