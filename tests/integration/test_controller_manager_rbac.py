"""``kyb controller-manager --use-service-account-credentials`` after faults in its controllers'
credentials: while the API server refuses it their ServiceAccounts (its ClusterRoleBinding
``system:kube-controller-manager`` deleted, as a fuzzing run did; the API server restores bootstrap
RBAC only at its start) it logs, retries and starts the controllers once the binding is back,
instead of exiting (which its supervisor turned into a restart every 30 s); when a controller's
ServiceAccount is deleted (its token then refused at once), the controller's next request gets a
new account and token instead of staying locked out until the next scheduled renewal."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import ServerProcess, stop_process

pytestmark = pytest.mark.integration

BINDING = "system:kube-controller-manager"
REFUSED = 'cannot get resource "serviceaccounts"'
ACCOUNT = "deployment-controller"


def _wait(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return got


def _exists(srv: ServerProcess, *args: str) -> bool:
    return srv.kubectl("get", *args, check=False).returncode == 0


@contextlib.contextmanager
def _controller_manager(srv: ServerProcess, log_path: Path) -> Iterator[Callable[[], str]]:
    """A ``kyb controller-manager --use-service-account-credentials`` running only the deployment
    controller, as ``system:kube-controller-manager``; yields a reader of its log that first checks
    it is still running. Stopped on the way out."""
    kubeconfig = srv.data_dir / "controller-manager.kubeconfig"  # system:kube-controller-manager's certificate
    assert kubeconfig.exists()
    with open(log_path, "wb") as log:
        # No leader election: the server's own controller manager holds the lease.
        proc = subprocess.Popen([sys.executable, "-m", "kybernetes.cli", "controller-manager", "--kubeconfig",
                                 str(kubeconfig), "--use-service-account-credentials", "--controllers",
                                 "deployment-controller", "--no-leader-elect", "--secure-port", "0", "-v"],
                                stdout=log, stderr=subprocess.STDOUT)

    def running_log() -> str:
        assert proc.poll() is None, f"exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}"
        return log_path.read_text(errors="replace")

    try:
        yield running_log
    finally:
        stop_process(proc, 30)


def _replica_set_of(srv: ServerProcess, app: str) -> str:
    return srv.kubectl("get", "replicasets", "-l", f"app={app}", "-o", "name").stdout.strip()


def test_refused_service_accounts_are_waited_for_not_exited_on(fresh_server: ServerProcess, tmp_path: Path) -> None:
    srv = fresh_server
    binding = json.loads(srv.kubectl("get", "clusterrolebinding", BINDING, "-o", "json").stdout)
    srv.kubectl("delete", "clusterrolebinding", BINDING)
    with _controller_manager(srv, tmp_path / "controller-manager.log") as running_log:
        def running_and(check: Callable[[], Any]) -> Callable[[], Any]:
            return lambda: running_log() is not None and check()

        _wait("the refusal retried", lambda: running_log().count(REFUSED) >= 2)
        assert not _exists(srv, "serviceaccount", ACCOUNT, "-n", "kube-system")

        for key in ("resourceVersion", "uid", "creationTimestamp", "managedFields"):
            binding["metadata"].pop(key, None)
        srv.kubectl("create", "-f", "-", input=json.dumps(binding))
        _wait("the controller's ServiceAccount",
              running_and(lambda: _exists(srv, "serviceaccount", ACCOUNT, "-n", "kube-system")))
        srv.kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=1")
        _wait("the deployment's ReplicaSet", running_and(lambda: _replica_set_of(srv, "web")))


def test_a_deleted_service_account_is_recreated_and_its_controller_recovers(fresh_server: ServerProcess,
                                                                            tmp_path: Path) -> None:
    srv = fresh_server
    with _controller_manager(srv, tmp_path / "controller-manager.log") as running_log:
        def running_and(check: Callable[[], Any]) -> Callable[[], Any]:
            return lambda: running_log() is not None and check()

        srv.kubectl("create", "deployment", "before", "--image=nginx:1", "--replicas=1")
        _wait("the controller at work", running_and(lambda: _replica_set_of(srv, "before")))
        account = ("serviceaccount", ACCOUNT, "-n", "kube-system")
        uid = srv.kubectl("get", *account, "-o", "jsonpath={.metadata.uid}").stdout
        srv.kubectl("delete", *account)  # its token is refused from now on

        srv.kubectl("create", "deployment", "web", "--image=nginx:1", "--replicas=1")
        _wait("the deployment's ReplicaSet after the account's deletion",
              running_and(lambda: _replica_set_of(srv, "web")), timeout=30.0)
        assert srv.kubectl("get", *account, "-o", "jsonpath={.metadata.uid}").stdout not in ("", uid)
        assert "401 Unauthorized" in running_log()
