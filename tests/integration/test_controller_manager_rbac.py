"""``kyb controller-manager --use-service-account-credentials`` while the API server refuses it its
controllers' ServiceAccounts (its ClusterRoleBinding ``system:kube-controller-manager`` deleted, as
a fuzzing run did; the API server restores bootstrap RBAC only at its start): it logs, retries and
starts the controllers once the binding is back, instead of exiting (which its supervisor turned
into a restart every 30 s)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

BINDING = "system:kube-controller-manager"
REFUSED = 'cannot get resource "serviceaccounts"'


def _wait(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return got


def _exists(srv: ServerProcess, *args: str) -> bool:
    return srv.kubectl("get", *args, check=False).returncode == 0


def test_refused_service_accounts_are_waited_for_not_exited_on(fresh_server: ServerProcess, tmp_path: Path) -> None:
    srv = fresh_server
    kubeconfig = srv.data_dir / "controller-manager.kubeconfig"  # system:kube-controller-manager's certificate
    assert kubeconfig.exists()
    binding = json.loads(srv.kubectl("get", "clusterrolebinding", BINDING, "-o", "json").stdout)
    srv.kubectl("delete", "clusterrolebinding", BINDING)
    log_path = tmp_path / "controller-manager.log"
    with open(log_path, "wb") as log:
        # No leader election: the server's own controller manager holds the lease.
        proc = subprocess.Popen([sys.executable, "-m", "kybernetes.cli", "controller-manager", "--kubeconfig",
                                 str(kubeconfig), "--use-service-account-credentials", "--controllers",
                                 "deployment-controller", "--no-leader-elect", "--secure-port", "0", "-v"],
                                stdout=log, stderr=subprocess.STDOUT)
    try:
        def refusals() -> int:
            assert proc.poll() is None, f"exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
            return log_path.read_text(errors="replace").count(REFUSED)

        def running_and(check: Callable[[], Any]) -> Callable[[], Any]:
            return lambda: refusals() >= 0 and check()

        _wait("the refusal retried", lambda: refusals() >= 2)
        assert not _exists(srv, "serviceaccount", "deployment-controller", "-n", "kube-system")

        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            binding["metadata"].pop(key, None)
        srv.kubectl("create", "-f", "-", input=json.dumps(binding))
        _wait("the controller's ServiceAccount",
              running_and(lambda: _exists(srv, "serviceaccount", "deployment-controller", "-n", "kube-system")))
        srv.kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=1")
        _wait("the deployment's ReplicaSet",
              running_and(lambda: srv.kubectl("get", "replicasets", "-l", "app=web", "-o", "name").stdout.strip()))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
