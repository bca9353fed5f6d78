"""NamespaceLifecycle as kube-apiserver 1.32 enforces it, through kubectl and the official client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("name", ["default", "kube-system", "kube-public"])
def test_immortal_namespace_cannot_be_deleted(server: ServerProcess, api: Any, name: str) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    res = server.kubectl("delete", "namespace", name, "--wait=false", check=False)
    assert res.returncode != 0
    assert (f'Error from server (Forbidden): namespaces "{name}" is forbidden: this namespace may not be deleted'
            in res.stderr)
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).delete_namespace(name)
    status = json.loads(caught.value.body)
    assert caught.value.status == 403
    assert status["reason"] == "Forbidden"
    assert status["message"] == f'namespaces "{name}" is forbidden: this namespace may not be deleted'
    assert status["details"] == {"name": name, "kind": "namespaces"}
    phase = server.kubectl("get", "ns", name, "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Active" and "deletionTimestamp" not in server.kubectl("get", "ns", name, "-o", "json").stdout


def test_update_in_terminating_namespace_is_allowed(server: ServerProcess) -> None:
    k = server.kubectl
    k("apply", "-f", "-", input="apiVersion: v1\nkind: Namespace\nmetadata: {name: ending}\n")
    k("-n", "ending", "create", "-f", "-",
      input="apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, finalizers: [example.com/hold]}\n")
    k("delete", "ns", "ending", "--wait=false")
    assert k("get", "ns", "ending", "-o", "jsonpath={.status.phase}").stdout == "Terminating"
    # Updating what is left (here: releasing the finalizer) still works, as in Kubernetes.
    k("-n", "ending", "label", "configmap", "held", "a=b")
    k("-n", "ending", "patch", "configmap", "held", "--type=merge", "-p", '{"metadata":{"finalizers":null}}')

