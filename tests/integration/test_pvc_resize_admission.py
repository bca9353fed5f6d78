"""PersistentVolumeClaimResize: a claim grows only when Bound and its class allows expansion."""

from __future__ import annotations

import json

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration


def test_claims_grow_only_when_bound_and_their_class_allows_it(server: ServerProcess, namespace: str) -> None:
    for name, allow in (("grows", True), ("fixed", False)):
        server.kubectl("create", "-f", "-", input=json.dumps({
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "metadata": {"name": f"{namespace}-{name}"},
            "provisioner": "kybernetes.io/local-path", "allowVolumeExpansion": allow}))
        server.kubectl("create", "-n", namespace, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": f"{namespace}-{name}",
                     "resources": {"requests": {"storage": "1Gi"}}}}))

    def grow(name: str, size: str = "2Gi") -> str:
        res = server.kubectl("patch", "pvc", name, "-n", namespace, "--type=merge", "-p",
                             json.dumps({"spec": {"resources": {"requests": {"storage": size}}}}), check=False)
        return res.stderr.strip() if res.returncode else ""

    # An unbound claim's spec is immutable: validation, which runs before this plugin, says so first.
    assert grow("grows") == ('The PersistentVolumeClaim "grows" is invalid: spec: Forbidden: spec is immutable '
                             "after creation except resources.requests and volumeAttributesClassName for bound claims")
    for name in ("grows", "fixed"):
        server.kubectl("patch", "pvc", name, "-n", namespace, "--subresource=status", "--type=merge", "-p",
                       '{"status": {"phase": "Bound", "capacity": {"storage": "1Gi"}}}')
    assert grow("fixed") == ('Error from server (Forbidden): persistentvolumeclaims "fixed" is forbidden: '
                             "only dynamically provisioned pvc can be resized and the storageclass that "
                             "provisions the pvc must support resize")
    assert grow("grows") == ""
    assert json.loads(server.kubectl("get", "pvc", "grows", "-n", namespace, "-o", "json").stdout)[
        "spec"]["resources"]["requests"]["storage"] == "2Gi"
    # Not growing is not this plugin's business (the same size passes; shrinking is the registry's).
    assert grow("fixed", "1Gi") == ""
    assert "can not be less than previous value" in grow("grows", "1Gi")
