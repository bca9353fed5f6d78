"""The bootstrap RBAC policy on a real server: created at the first start, reconciled at every
start (a removed rule comes back, an ``autoupdate: "false"`` object stays as edited), and
``kubectl auth reconcile`` (client-side: get, create, update) works against the server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kybernetes.apiserver.authz.covers import covers
from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

NODES_READ = {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["nodes"]}


def _get(srv: ServerProcess, *what: str) -> dict[str, Any]:
    return json.loads(srv.kubectl("get", *what, "-o", "json").stdout)


def _replace(srv: ServerProcess, obj: dict[str, Any]) -> None:
    srv.kubectl("replace", "-f", "-", input=json.dumps(obj))


def _without_nodes_read(role: dict[str, Any]) -> dict[str, Any]:
    assert NODES_READ in role["rules"]
    role["rules"] = [r for r in role["rules"] if r != NODES_READ]
    return role


def test_policy_is_created_and_reconciled_on_every_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with ServerProcess.start(data) as srv:
        names = srv.kubectl("get", "clusterroles", "-o", "name").stdout.split()
        for name in ("cluster-admin", "admin", "edit", "view", "system:kube-scheduler",
                     "system:controller:deployment-controller", "system:node-proxier"):
            assert f"clusterrole.rbac.authorization.k8s.io/{name}" in names
        binding = _get(srv, "clusterrolebinding", "system:volume-scheduler")
        assert binding["subjects"] == [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                                        "name": "system:kube-scheduler"}]
        lock = _get(srv, "-n", "kube-system", "rolebinding", "system::leader-locking-kube-scheduler")
        assert lock["metadata"]["labels"] == {"kubernetes.io/bootstrapping": "rbac-defaults"}
        _replace(srv, _without_nodes_read(_get(srv, "clusterrole", "system:kube-scheduler")))
        protected = _without_nodes_read(_get(srv, "clusterrole", "system:node-proxier"))
        protected["metadata"]["annotations"]["rbac.authorization.kubernetes.io/autoupdate"] = "false"
        _replace(srv, protected)
        srv.kubectl("delete", "clusterrolebinding", "system:kube-dns")
    with ServerProcess.start(data) as srv:
        scheduler = _get(srv, "clusterrole", "system:kube-scheduler")
        assert NODES_READ not in scheduler["rules"]
        assert covers(scheduler["rules"], [NODES_READ])  # back, as Kubernetes adds it: broken down
        assert {"verbs": ["watch"], "apiGroups": [""], "resources": ["nodes"]} in scheduler["rules"]
        proxier = _get(srv, "clusterrole", "system:node-proxier")
        assert not covers(proxier["rules"], [NODES_READ])
        assert proxier["rules"] == protected["rules"]
        assert _get(srv, "clusterrolebinding", "system:kube-dns")["subjects"][0]["name"] == "kube-dns"


ROLE = """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reconciled, namespace: default}
rules:
- {apiGroups: [""], resources: [configmaps], verbs: [get]}
%s---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reconciled, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reconciled}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: %s}
"""


def test_kubectl_auth_reconcile(server: ServerProcess) -> None:
    out = server.kubectl("auth", "reconcile", "-f", "-", input=ROLE % ("", "jane")).stdout
    assert "role.rbac.authorization.k8s.io/reconciled reconciled" in out
    extra = '- {apiGroups: [""], resources: [secrets], verbs: [list]}\n'
    server.kubectl("auth", "reconcile", "-f", "-", input=ROLE % (extra, "joe"))
    role = _get(server, "-n", "default", "role", "reconciled")
    assert role["rules"] == [{"verbs": ["get"], "apiGroups": [""], "resources": ["configmaps"]},
                             {"verbs": ["list"], "apiGroups": [""], "resources": ["secrets"]}]
    binding = _get(server, "-n", "default", "rolebinding", "reconciled")
    assert [s["name"] for s in binding["subjects"]] == ["jane", "joe"]
    server.kubectl("auth", "reconcile", "--remove-extra-subjects", "--remove-extra-permissions", "-f", "-",
                   input=ROLE % ("", "joe"))
    assert len(_get(server, "-n", "default", "role", "reconciled")["rules"]) == 1
    assert [s["name"] for s in _get(server, "-n", "default", "rolebinding", "reconciled")["subjects"]] == ["joe"]
