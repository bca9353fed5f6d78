"""A node's certificate on a real server with ``--authorization-mode Node,RBAC`` (RBAC for the controller manager; nodes get nothing from it): it reads the secrets
and configmaps of its own pods only, and writes only its own Node, Lease and mirror pods (the Node
authorizer and NodeRestriction, with Kubernetes' 403 wording), driven by kubectl."""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kybernetes.pki import PKI, kubeconfig, write_kubeconfig
from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration

OBJECTS = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: default}
---
apiVersion: v1
kind: Node
metadata: {name: a}
---
apiVersion: v1
kind: Node
metadata: {name: b}
---
apiVersion: v1
kind: Secret
metadata: {name: sa-secret}
stringData: {k: v}
---
apiVersion: v1
kind: Secret
metadata: {name: sb-secret}
stringData: {k: v}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: cm-a}
data: {k: v}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-a}
spec:
  nodeName: a
  automountServiceAccountToken: false
  containers:
  - {name: c, image: busybox, envFrom: [{configMapRef: {name: cm-a}}]}
  volumes:
  - {name: s, secret: {secretName: sa-secret}}
---
apiVersion: v1
kind: Pod
metadata: {name: pod-b}
spec:
  nodeName: b
  automountServiceAccountToken: false
  containers: [{name: c, image: busybox}]
  volumes:
  - {name: s, secret: {secretName: sb-secret}}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: b, namespace: kube-node-lease}
spec: {holderIdentity: b}
"""

NOT_MIRROR = """
apiVersion: v1
kind: Pod
metadata: {name: sneaky}
spec:
  nodeName: a
  containers: [{name: c, image: busybox}]
"""


def node_kubeconfig(srv: ServerProcess, data: Path, node: str) -> Path:
    pki = PKI.load_or_create(data)
    cert, key = pki.issue(f"system:node:{node}", organizations=("system:nodes",), client=True)
    (data / f"node-{node}.crt").write_bytes(cert)
    (data / f"node-{node}.key").write_bytes(key)
    path = data / f"node-{node}.kubeconfig"
    write_kubeconfig(path, kubeconfig(srv.url, pki.ca_pem, cert, key, user=f"node-{node}"))
    return path


def raw_patch(srv: ServerProcess, data: Path, node: str, path: str, patch: dict[str, Any]) -> int:
    """PATCH (merge) as the node, straight to the server; the HTTP status."""
    ctx = ssl.create_default_context(cafile=str(data / "tls" / "ca.crt"))
    ctx.load_cert_chain(data / f"node-{node}.crt", data / f"node-{node}.key")
    req = urllib.request.Request(srv.url + path, data=json.dumps(patch).encode(), method="PATCH",
                                 headers={"Content-Type": "application/merge-patch+json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as res:
            return int(res.status)
    except urllib.error.HTTPError as e:
        return e.code


def run(config: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", str(config), *args], input=stdin,
                          capture_output=True, text=True, timeout=60)


def refused(res: subprocess.CompletedProcess[str], message: str) -> bool:
    """kubectl failed with the server's 403 ``message`` (kubectl get prints "Error from server
    (Forbidden): ...", create -f "... error when creating ...", create token "failed to create token: ...")."""
    return res.returncode != 0 and message in res.stderr


def test_a_node_reads_and_writes_only_what_is_its_own(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # No agent, scheduler or controller manager (ServerProcess' --disable-agent): the test makes the
    # service account, nodes, pods and lease itself.
    with ServerProcess.start(data, "--authorization-mode", "Node,RBAC", "--disable-agent") as srv:
        srv.kubectl("apply", "-f", "-", input=OBJECTS)
        a = node_kubeconfig(srv, data, "a")
        user = 'User "system:node:a"'

        # Reads: the secret and configmap of its pod, not those of a pod on b.
        assert run(a, "get", "secret", "sa-secret", "-o", "name").stdout.strip() == "secret/sa-secret"
        assert run(a, "get", "configmap", "cm-a", "-o", "name").stdout.strip() == "configmap/cm-a"
        assert refused(run(a, "get", "secret", "sb-secret"),
                       f'secrets "sb-secret" is forbidden: {user} cannot get resource "secrets" in API group "" '
                       "in the namespace \"default\": no relationship found between node 'a' and this object")
        assert refused(run(a, "get", "secrets"),
                       f'secrets is forbidden: {user} cannot list resource "secrets" in API group "" in the '
                       'namespace "default": No Object name found')
        assert run(a, "get", "pods", "-A", "--field-selector", "spec.nodeName=a", "-o", "name").stdout.split() == [
            "pod/pod-a"]
        assert refused(run(a, "get", "pods", "-A"),
                       f'pods is forbidden: {user} cannot list resource "pods" in API group "" at the cluster '
                       "scope: can only list/watch pods with spec.nodeName field selector")

        # Writes: not node b, not b's lease; its own status yes; no restricted label; no plain pod.
        assert refused(run(a, "patch", "node", "b", "--type", "merge", "-p", '{"metadata":{"labels":{"x":"y"}}}'),
                       f'nodes "b" is forbidden: {user} cannot get resource "nodes" in API group "" at the cluster '
                       "scope: node 'a' cannot read 'b', only its own Node object")  # kubectl patch reads first
        node_b = json.loads(srv.kubectl("get", "node", "b", "-o", "json").stdout)
        node_b["metadata"]["labels"] = {"x": "y"}
        assert refused(run(a, "replace", "--raw", "/api/v1/nodes/b", "-f", "-", stdin=json.dumps(node_b)),
                       'nodes "b" is forbidden: node "a" is not allowed to modify node "b"')
        lease_b = json.loads(srv.kubectl("-n", "kube-node-lease", "get", "lease", "b", "-o", "json").stdout)
        lease_b["spec"]["holderIdentity"] = "a"
        for verb, args in (("get", ("-n", "kube-node-lease", "patch", "lease", "b", "--type", "merge",
                                    "-p", '{"spec":{"holderIdentity":"a"}}')),
                           ("update", ("replace", "--raw", "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/"
                                       "leases/b", "-f", "-"))):
            assert refused(run(a, *args, stdin=json.dumps(lease_b)),
                           f'leases.coordination.k8s.io "b" is forbidden: {user} cannot {verb} resource "leases" in '
                           'API group "coordination.k8s.io" in the namespace "kube-node-lease": can only access node '
                           "lease with the same name as the requesting node")
        # (kubectl patch --subresource status reads nodes/status first, which a node may not; the
        # kubelet patches directly, as this does.)
        assert raw_patch(srv, data, "a", "/api/v1/nodes/a/status", {"status": {"capacity": {"pods": "7"}}}) == 200
        assert srv.kubectl("get", "node", "a", "-o", "jsonpath={.status.capacity.pods}").stdout == "7"
        assert refused(run(a, "label", "node", "a", "node-restriction.kubernetes.io/x=y"),
                       'nodes "a" is forbidden: is not allowed to modify labels: node-restriction.kubernetes.io/x')
        assert run(a, "label", "node", "a", "node.kubernetes.io/pool=blue").returncode == 0
        # (--validate=false: the OpenAPI documents are system:discovery's, RBAC's, not a node's.)
        assert refused(run(a, "create", "--validate=false", "-f", "-", stdin=NOT_MIRROR),
                       'pods "sneaky" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, '
                       'node "a" can only create mirror pods')
        uid_b = srv.kubectl("get", "pod", "pod-b", "-o", "jsonpath={.metadata.uid}").stdout
        assert refused(run(a, "create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name",
                           "pod-b", "--bound-object-uid", uid_b),
                       'serviceaccounts "default" is forbidden: node requested token bound to a pod scheduled on a '
                       "different node")
        uid_a = srv.kubectl("get", "pod", "pod-a", "-o", "jsonpath={.metadata.uid}").stdout
        assert run(a, "create", "token", "default", "--bound-object-kind", "Pod", "--bound-object-name", "pod-a",
                   "--bound-object-uid", uid_a).stdout.count(".") == 2  # a JWT
        eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "pod-b"}}
        assert refused(run(a, "create", "--raw", "/api/v1/namespaces/default/pods/pod-b/eviction", "-f", "-",
                           stdin=json.dumps(eviction)),
                       'pods "pod-b" is forbidden: node a can only evict pods with spec.nodeName set to itself')
        assert refused(run(a, "delete", "pod", "pod-b"),
                       'pods "pod-b" is forbidden: node "a" can only delete pods with spec.nodeName set to itself')
