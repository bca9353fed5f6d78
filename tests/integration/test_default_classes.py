"""DefaultStorageClass and DefaultIngressClass on a real API server, driven by kubectl."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from kybernetes.testing import ServerProcess
from tests.integration.conftest import _require_kubectl

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own: default classes are cluster-wide and would reach other tests."""
    _require_kubectl()
    with ServerProcess.start(tmp_path_factory.mktemp("kyb-classes") / "data", command="apiserver") as server:
        yield server


def claim(name: str, storage_class: str | None = None) -> str:
    cls = f"  storageClassName: {storage_class}\n" if storage_class is not None else ""
    return (f"apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: {name}\nspec:\n{cls}"
            "  accessModes: [ReadWriteOnce]\n  resources:\n    requests:\n      storage: 1Gi\n")


def storage_class(name: str, default: bool) -> str:
    note = '  annotations:\n    storageclass.kubernetes.io/is-default-class: "true"\n' if default else ""
    return (f"apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: {name}\n{note}"
            "provisioner: example.com/none\n")


def test_claim_without_class_gets_the_default_storage_class(srv: ServerProcess) -> None:
    spec = json.loads(srv.kubectl("create", "-f", "-", "-o", "json", input=claim("before")).stdout)["spec"]
    assert "storageClassName" not in spec  # no default class yet: left unset
    srv.kubectl("create", "-f", "-", input=storage_class("slow", default=False))
    srv.kubectl("create", "-f", "-", input=storage_class("fast", default=True))
    srv.kubectl("create", "-f", "-", input=claim("plain"))
    srv.kubectl("create", "-f", "-", input=claim("chosen", "slow"))
    srv.kubectl("create", "-f", "-", input=claim("static", '""'))
    got = {item["metadata"]["name"]: item["spec"].get("storageClassName")
           for item in json.loads(srv.kubectl("get", "pvc", "-o", "json").stdout)["items"]}
    assert got == {"before": None, "plain": "fast", "chosen": "slow", "static": ""}


def test_ingress_without_class_gets_the_default_ingress_class(srv: ServerProcess) -> None:
    srv.kubectl("create", "-f", "-", input=(
        "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\n  annotations:\n"
        '    ingressclass.kubernetes.io/is-default-class: "true"\nspec:\n  controller: example.com/ingress\n'))
    srv.kubectl("create", "ingress", "web", "--rule=example.com/=web:80")
    srv.kubectl("create", "-f", "-", input=(
        "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: legacy\n  annotations:\n"
        "    kubernetes.io/ingress.class: other\nspec:\n  defaultBackend:\n    service:\n      name: web\n"
        "      port:\n        number: 80\n"))
    got = {item["metadata"]["name"]: item["spec"].get("ingressClassName")
           for item in json.loads(srv.kubectl("get", "ingress", "-o", "json").stdout)["items"]}
    assert got == {"web": "nginx", "legacy": None}
