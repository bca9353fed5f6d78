"""StorageObjectInUseProtection with the controller manager: a claim in use by a scheduled pod is
kept after delete; an unused one, and one whose pod went, is deleted; a namespace with claims still
finishes terminating."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from kybernetes.testing import ServerProcess
from tests.integration.conftest import _require_kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _require_kubectl()
    with ServerProcess.start(tmp_path_factory.mktemp("kyb-protect") / "data", control_plane=True) as server:
        yield server


def claim(name: str, namespace: str = "default") -> str:
    return (f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\n  namespace: {namespace}\n"
            "spec:\n  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n")


def test_claims_and_volumes_get_protection_finalizers(srv: ServerProcess) -> None:
    made = json.loads(srv.kubectl("create", "-f", "-", "-o", "json", input=claim("fin")).stdout)
    assert made["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    pv = json.loads(srv.kubectl("create", "-f", "-", "-o", "json", input=(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: vol\nspec:\n  capacity:\n    storage: 1Gi\n"
        "  accessModes: [ReadWriteOnce]\n  hostPath:\n    path: /tmp/kyb-vol\n")).stdout)
    assert pv["metadata"]["finalizers"] == ["kubernetes.io/pv-protection"]
    # Neither is in use, so the controllers let both go.
    srv.kubectl("delete", "pvc", "fin", "--timeout=30s")
    srv.kubectl("delete", "pv", "vol", "--timeout=30s")
    assert srv.kubectl("get", "pvc", "fin", check=False).returncode != 0


def test_claim_in_use_is_kept_until_its_pod_goes(srv: ServerProcess) -> None:
    srv.kubectl("create", "-f", "-", input=claim("used"))
    srv.kubectl("create", "-f", "-", input=claim("spare"))
    srv.kubectl("create", "-f", "-", input=(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: user\nspec:\n  nodeName: nowhere\n  containers:\n"
        "  - name: c\n    image: busybox\n  volumes:\n  - name: v\n    persistentVolumeClaim:\n"
        "      claimName: used\n"))
    srv.kubectl("delete", "pvc", "used", "--wait=false")
    # The controller works its queue in order: once "spare" (deleted after "used") is gone,
    # "used" has been considered and kept.
    srv.kubectl("delete", "pvc", "spare", "--timeout=30s")
    kept = json.loads(srv.kubectl("get", "pvc", "used", "-o", "json").stdout)["metadata"]
    assert kept.get("deletionTimestamp") and kept["finalizers"] == ["kubernetes.io/pvc-protection"]
    srv.kubectl("delete", "pod", "user", "--force", "--grace-period=0")
    srv.kubectl("wait", "--for=delete", "pvc/used", "--timeout=30s")


def test_namespace_with_claims_finishes_terminating(srv: ServerProcess) -> None:
    srv.kubectl("create", "namespace", "with-claims")
    srv.kubectl("create", "-f", "-", input=claim("a", "with-claims"))
    srv.kubectl("delete", "namespace", "with-claims", "--timeout=60s")
    assert srv.kubectl("get", "namespace", "with-claims", check=False).returncode != 0
