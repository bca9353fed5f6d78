"""PodSecurity admission on a real API server, driven by kubectl as the Kubernetes docs' Pod Security
Standards tasks do (``kubectl label --overwrite ns ... pod-security.kubernetes.io/enforce=...``)."""

from __future__ import annotations

import json

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

PLAIN_POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: c
    image: nginx
"""

PRIVILEGED_POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  containers:
  - name: c
    image: nginx
    securityContext:
      privileged: true
"""

RESTRICTED_POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
spec:
  securityContext:
    runAsNonRoot: true
    seccompProfile:
      type: RuntimeDefault
  containers:
  - name: c
    image: nginx
    securityContext:
      allowPrivilegeEscalation: false
      capabilities:
        drop: ["ALL"]
"""

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 0
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx
"""

RESTRICTED_VIOLATIONS = (
    'allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")')


def _label(server: ServerProcess, namespace: str, *labels: str) -> str:
    """Label the namespace; kubectl's stderr (its ``Warning:`` lines)."""
    return server.kubectl("label", "--overwrite", "ns", namespace, *labels).stderr


def test_unlabeled_namespace_admits_a_privileged_pod(server: ServerProcess, namespace: str) -> None:
    res = server.kubectl("-n", namespace, "create", "-f", "-", input=PRIVILEGED_POD.format(name="p"))
    assert "Warning" not in res.stderr


def test_enforce_restricted_refuses_with_kubernetes_message(server: ServerProcess, namespace: str) -> None:
    _label(server, namespace, "pod-security.kubernetes.io/enforce=restricted")
    res = server.kubectl("-n", namespace, "create", "-f", "-", input=PLAIN_POD.format(name="plain"), check=False)
    assert res.returncode == 1
    assert res.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": pods "plain" is forbidden: '
        f'violates PodSecurity "restricted:latest": {RESTRICTED_VIOLATIONS}')
    res = server.kubectl("-n", namespace, "create", "-f", "-", input=PRIVILEGED_POD.format(name="priv"), check=False)
    assert 'pods "priv" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must ' \
           'not set securityContext.privileged=true), allowPrivilegeEscalation != false' in res.stderr
    server.kubectl("-n", namespace, "create", "-f", "-", input=RESTRICTED_POD.format(name="ok"))


def test_enforce_baseline_pinned_version(server: ServerProcess, namespace: str) -> None:
    _label(server, namespace, "pod-security.kubernetes.io/enforce=baseline",
           "pod-security.kubernetes.io/enforce-version=v1.30")
    res = server.kubectl("-n", namespace, "create", "-f", "-", input=PRIVILEGED_POD.format(name="priv"), check=False)
    assert ('pods "priv" is forbidden: violates PodSecurity "baseline:v1.30": privileged (container "c" must not '
            'set securityContext.privileged=true)') in res.stderr
    # Baseline lets a plain pod through, and warns at the enforce level only: no warning here.
    res = server.kubectl("-n", namespace, "create", "-f", "-", input=PLAIN_POD.format(name="plain"))
    assert "Warning" not in res.stderr


def test_warn_level_prints_kubectl_warning(server: ServerProcess, namespace: str) -> None:
    _label(server, namespace, "pod-security.kubernetes.io/warn=restricted")
    res = server.kubectl("-n", namespace, "create", "-f", "-", input=PLAIN_POD.format(name="plain"))
    assert f'Warning: would violate PodSecurity "restricted:latest": {RESTRICTED_VIOLATIONS}' in res.stderr
    assert "pod/plain created" in res.stdout


def test_deployment_in_enforced_namespace_is_created_with_a_warning(server: ServerProcess, namespace: str) -> None:
    _label(server, namespace, "pod-security.kubernetes.io/enforce=restricted")
    res = server.kubectl("-n", namespace, "create", "-f", "-", input=DEPLOYMENT)
    assert f'Warning: would violate PodSecurity "restricted:latest": {RESTRICTED_VIOLATIONS}' in res.stderr
    assert "deployment.apps/web created" in res.stdout
    # Its scale subresource is not checked.
    res = server.kubectl("-n", namespace, "scale", "deployment/web", "--replicas=0")
    assert "Warning" not in res.stderr


def test_bad_label_value_is_rejected(server: ServerProcess, namespace: str) -> None:
    res = server.kubectl("label", "--overwrite", "ns", namespace, "pod-security.kubernetes.io/enforce=strict",
                         check=False)
    assert res.returncode == 1
    assert (f'The Namespace "{namespace}" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: '
            'Invalid value: "strict": must be one of privileged, baseline, restricted') in res.stderr
    res = server.kubectl("create", "-f", "-", check=False, input=(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: psa-bad-version\n  labels:\n"
        "    pod-security.kubernetes.io/warn-version: v2.0\n"))
    assert ('metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "v2.0": must be "latest" '
            'or "v1.x"') in res.stderr
    labels = json.loads(server.kubectl("get", "ns", namespace, "-o", "json").stdout)["metadata"].get("labels", {})
    assert "pod-security.kubernetes.io/enforce" not in labels


def test_stricter_enforce_label_warns_about_existing_pods(server: ServerProcess, namespace: str) -> None:
    for name in ("b-pod", "a-pod"):
        server.kubectl("-n", namespace, "create", "-f", "-", input=PLAIN_POD.format(name=name))
    server.kubectl("-n", namespace, "create", "-f", "-", input=PRIVILEGED_POD.format(name="priv"))
    server.kubectl("-n", namespace, "create", "-f", "-", input=RESTRICTED_POD.format(name="good"))
    stderr = _label(server, namespace, "pod-security.kubernetes.io/enforce=restricted")
    reasons = "allowPrivilegeEscalation != false, unrestricted capabilities, runAsNonRoot != true, seccompProfile"
    assert stderr.splitlines() == [
        f'Warning: existing pods in namespace "{namespace}" violate the new PodSecurity enforce level '
        '"restricted:latest"',
        f"Warning: a-pod (and 1 other pod): {reasons}",
        f"Warning: priv: privileged, {reasons}",
    ]
    # Going back to a less strict level checks nothing.
    assert "Warning" not in _label(server, namespace, "pod-security.kubernetes.io/enforce=baseline")


def test_significant_pod_updates_only(server: ServerProcess, namespace: str) -> None:
    server.kubectl("-n", namespace, "create", "-f", "-", input=PLAIN_POD.format(name="plain"))
    _label(server, namespace, "pod-security.kubernetes.io/enforce=restricted")
    # A label change is not checked; a new image is.
    server.kubectl("-n", namespace, "label", "pod", "plain", "tier=web")
    res = server.kubectl("-n", namespace, "set", "image", "pod/plain", "c=nginx:1.27", check=False)
    assert res.returncode == 1
    assert 'pods "plain" is forbidden: violates PodSecurity "restricted:latest"' in res.stderr

