"""Persistent volumes through kubectl against `kyb server`'s control plane (its controller manager,
with every controller under its own identity): a static PV and a claim bind and `kubectl get`
shows them as Kubernetes does; the claim deleted, the Retain volume is Released and its bytes stay;
a Delete volume with no deleter is Failed; a claim nothing can satisfy stays Pending and `kubectl
describe` says why."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess
from tests.integration.conftest import _require_kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _require_kubectl()
    with ServerProcess.start(tmp_path_factory.mktemp("kyb-pv") / "data", control_plane=True) as server:
        yield server


def pv(name: str, path: Path, policy: str) -> str:
    return (f"apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: {name}\nspec:\n"
            f"  capacity:\n    storage: 2Gi\n  accessModes: [ReadWriteOnce]\n  storageClassName: manual\n"
            f"  persistentVolumeReclaimPolicy: {policy}\n  hostPath:\n    path: {path}\n")


def pvc(name: str, modes: str = "ReadWriteOnce", cls: str = "manual") -> str:
    return (f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n"
            f"  accessModes: [{modes}]\n  storageClassName: \"{cls}\"\n  resources:\n    requests:\n"
            "      storage: 1Gi\n")


def until(srv: ServerProcess, what: str, *args: str, want: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    got = ""
    while time.monotonic() < deadline:
        got = srv.kubectl(*args, check=False).stdout
        if got == want:
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: {got!r}")


def test_bind_release_and_retain(srv: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "data").write_text("keep me\n")
    srv.kubectl("create", "-f", "-", input=pv("retained", tmp_path, "Retain"))
    until(srv, "the volume Available", "get", "pv", "retained", "-o", "jsonpath={.status.phase}", want="Available")
    srv.kubectl("create", "-f", "-", input=pvc("claim"))
    srv.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/claim", "--timeout=30s")
    row = srv.kubectl("get", "pvc", "claim", "--no-headers").stdout.split()
    assert row[:6] == ["claim", "Bound", "retained", "2Gi", "RWO", "manual"]
    row = srv.kubectl("get", "pv", "retained", "--no-headers").stdout.split()
    assert row[:7] == ["retained", "2Gi", "RWO", "Retain", "Bound", "default/claim", "manual"]
    srv.kubectl("delete", "pvc", "claim", "--timeout=30s")
    srv.kubectl("wait", "--for=jsonpath={.status.phase}=Released", "pv/retained", "--timeout=30s")
    assert (tmp_path / "data").read_text() == "keep me\n"
    got = json.loads(srv.kubectl("get", "pv", "retained", "-o", "json").stdout)
    assert got["spec"]["claimRef"]["name"] == "claim" and got["status"]["lastPhaseTransitionTime"]


def test_delete_without_a_deleter_fails(srv: ServerProcess, tmp_path: Path) -> None:
    srv.kubectl("create", "-f", "-", input=pv("doomed", tmp_path, "Delete"))
    until(srv, "the volume Available", "get", "pv", "doomed", "-o", "jsonpath={.status.phase}", want="Available")
    srv.kubectl("create", "-f", "-", input=pvc("short-lived"))
    srv.kubectl("wait", "--for=jsonpath={.status.phase}=Bound", "pvc/short-lived", "--timeout=30s")
    srv.kubectl("delete", "pvc", "short-lived", "--timeout=30s")
    srv.kubectl("wait", "--for=jsonpath={.status.phase}=Failed", "pv/doomed", "--timeout=30s")
    # (Kubernetes' hostPath deleter would remove a /tmp/... directory on the controller manager's
    # machine; no deleter runs here, so the data is never removed by the controller.)
    message = 'error getting deleter volume plugin for volume "doomed": no deletable volume plugin matched'
    assert srv.kubectl("get", "pv", "doomed", "-o", "jsonpath={.status.message}").stdout == message
    described = srv.kubectl("describe", "pv", "doomed").stdout
    assert "VolumeFailedDelete" in described and message in described
    assert tmp_path.is_dir()


def test_claim_nothing_satisfies_stays_pending_with_a_reason(srv: ServerProcess) -> None:
    srv.kubectl("create", "-f", "-", input=pvc("wants-rwx", modes="ReadWriteMany", cls=""))
    until(srv, "the FailedBinding event", "get", "events", "--field-selector", "involvedObject.name=wants-rwx",
          "-o", "jsonpath={.items[*].reason}", want="FailedBinding")
    described = srv.kubectl("describe", "pvc", "wants-rwx").stdout
    assert "no persistent volumes available for this claim and no storage class is set" in described
    assert srv.kubectl("get", "pvc", "wants-rwx", "-o", "jsonpath={.status.phase}").stdout == "Pending"
