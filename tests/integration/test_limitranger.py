"""LimitRanger on a real API server: the Kubernetes docs' LimitRange tasks, through kubectl and
the official client."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

# "Configure Default Memory Requests and Limits for a Namespace".
MEM_DEFAULTS = """apiVersion: v1
kind: LimitRange
metadata:
  name: mem-limit-range
spec:
  limits:
  - default:
      memory: 512Mi
    defaultRequest:
      memory: 256Mi
    type: Container
"""

# "Configure Minimum and Maximum CPU Constraints for a Namespace".
CPU_MIN_MAX = """apiVersion: v1
kind: LimitRange
metadata:
  name: cpu-min-max-demo-lr
spec:
  limits:
  - max:
      cpu: "800m"
    min:
      cpu: "200m"
    type: Container
"""

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: c
    image: nginx
{resources}"""


def test_pod_without_resources_gets_the_defaults(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "apply", "-f", "-", input=MEM_DEFAULTS)
    k("-n", namespace, "apply", "-f", "-", input=POD.format(name="default-mem-demo", resources=""))
    got = json.loads(k("-n", namespace, "get", "pod", "default-mem-demo", "-o", "json").stdout)
    assert got["spec"]["containers"][0]["resources"] == {"limits": {"memory": "512Mi"},
                                                         "requests": {"memory": "256Mi"}}
    assert got["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: memory request for container c; memory limit for container c")
    # Only a limit given: the request is the pod's own default (its limit), nothing added for it.
    k("-n", namespace, "apply", "-f", "-", input=POD.format(
        name="default-mem-demo-2", resources="    resources:\n      limits:\n        memory: 1Gi\n"))
    got = json.loads(k("-n", namespace, "get", "pod", "default-mem-demo-2", "-o", "json").stdout)
    assert got["spec"]["containers"][0]["resources"] == {"limits": {"memory": "1Gi"}, "requests": {"memory": "1Gi"}}
    assert "kubernetes.io/limit-ranger" not in (got["metadata"].get("annotations") or {})


def test_pod_over_max_is_refused(server: ServerProcess, namespace: str, api: Any) -> None:
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    k = server.kubectl
    k("-n", namespace, "apply", "-f", "-", input=CPU_MIN_MAX)
    res = k("-n", namespace, "apply", "-f", "-", check=False, input=POD.format(
        name="constraints-cpu-demo-2",
        resources='    resources:\n      limits:\n        cpu: "1.5"\n      requests:\n        cpu: "500m"\n'))
    assert res.returncode != 0
    assert ('pods "constraints-cpu-demo-2" is forbidden: maximum cpu usage per Container is 800m, '
            "but limit is 1500m") in res.stderr
    body = {"metadata": {"name": "constraints-cpu-demo-4"},
            "spec": {"containers": [{"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "100m"},
                                                                                  "limits": {"cpu": "800m"}}}]}}
    with pytest.raises(ApiException) as caught:
        client.CoreV1Api(api).create_namespaced_pod(namespace, body)
    status = json.loads(caught.value.body)
    assert caught.value.status == 403 and status["reason"] == "Forbidden"
    assert status["message"] == ('pods "constraints-cpu-demo-4" is forbidden: minimum cpu usage per Container is '
                                 "200m, but request is 100m")
    assert status["details"] == {"name": "constraints-cpu-demo-4", "kind": "pods"}
    assert k("-n", namespace, "get", "pods", "-o", "name").stdout.strip() == ""
    # Within the range it is admitted.
    k("-n", namespace, "apply", "-f", "-", input=POD.format(
        name="constraints-cpu-demo", resources='    resources:\n      limits:\n        cpu: "800m"\n'))


def test_claim_over_max_storage_is_refused(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "apply", "-f", "-", input=(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: storagelimits}\nspec:\n  limits:\n"
        "  - type: PersistentVolumeClaim\n    max: {storage: 2Gi}\n    min: {storage: 1Gi}\n"))
    claim = ("apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: {name}}}\nspec:\n"
             "  accessModes: [ReadWriteOnce]\n  resources: {{requests: {{storage: {size}}}}}\n")
    res = k("-n", namespace, "apply", "-f", "-", check=False, input=claim.format(name="pvc-limit-greater", size="5Gi"))
    assert res.returncode != 0
    assert ('persistentvolumeclaims "pvc-limit-greater" is forbidden: maximum storage usage per '
            "PersistentVolumeClaim is 2Gi, but request is 5Gi") in res.stderr
    res = k("-n", namespace, "apply", "-f", "-", check=False, input=claim.format(name="pvc-limit-lower", size="500Mi"))
    assert res.returncode != 0
    assert ('persistentvolumeclaims "pvc-limit-lower" is forbidden: minimum storage usage per '
            "PersistentVolumeClaim is 1Gi, but request is 500Mi") in res.stderr
    k("-n", namespace, "apply", "-f", "-", input=claim.format(name="pvc-ok", size="1Gi"))


def test_bad_limit_range_is_invalid(server: ServerProcess, namespace: str) -> None:
    res = server.kubectl("-n", namespace, "apply", "-f", "-", check=False, input=(
        "apiVersion: v1\nkind: LimitRange\nmetadata: {name: bad}\nspec:\n  limits:\n"
        "  - type: Container\n    max: {memory: 1Gi}\n    default: {memory: 2Gi}\n    defaultRequest: {memory: 1Gi}\n"))
    assert res.returncode != 0
    assert ('The LimitRange "bad" is invalid: spec.limits[0].default[memory]: Invalid value: "1Gi": '
            "default value 2Gi is greater than max value 1Gi") in res.stderr
    assert server.kubectl("-n", namespace, "get", "limitranges", "-o", "name").stdout.strip() == ""


def test_pod_updates_are_not_checked(server: ServerProcess, namespace: str) -> None:
    """Containers cannot change after create, so Kubernetes checks pods on create only: a pod
    made before a LimitRange stays updatable."""
    k = server.kubectl
    k("-n", namespace, "apply", "-f", "-", input=POD.format(name="older", resources=""))
    k("-n", namespace, "apply", "-f", "-", input=CPU_MIN_MAX)
    k("-n", namespace, "label", "pod", "older", "a=b")
    got = json.loads(k("-n", namespace, "get", "pod", "older", "-o", "json").stdout)
    assert got["metadata"]["labels"] == {"a": "b"}
    assert "kubernetes.io/limit-ranger" not in (got["metadata"].get("annotations") or {})
