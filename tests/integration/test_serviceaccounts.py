"""Service accounts: the admission that mounts tokens, TokenRequest, and authenticating with a token."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration


def _as_token(server: ServerProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", server.url,
                           "--certificate-authority", str(server.data_dir / "tls" / "ca.crt"),
                           "--token", token, *args], capture_output=True, text=True, timeout=30)


def test_pod_gets_service_account_and_token_volume(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "run", "p", "--image=busybox")
    spec = json.loads(k("-n", namespace, "get", "pod", "p", "-o", "json").stdout)["spec"]
    assert spec["serviceAccountName"] == "default"
    vol = next(v for v in spec["volumes"] if v["name"].startswith("kube-api-access-"))
    sources = vol["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["expirationSeconds"] == 3607
    assert sources[1]["configMap"]["name"] == "kube-root-ca.crt"
    mount = spec["containers"][0]["volumeMounts"][0]
    assert mount == {"name": vol["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}
    k("-n", namespace, "apply", "-f", "-", input="apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: quiet}\n"
                                                  "automountServiceAccountToken: false\n")
    k("-n", namespace, "run", "q", "--image=busybox", "--overrides", '{"spec":{"serviceAccountName":"quiet"}}')
    spec = json.loads(k("-n", namespace, "get", "pod", "q", "-o", "json").stdout)["spec"]
    assert not spec.get("volumes")


def test_pod_gets_service_account_image_pull_secrets(server: ServerProcess, namespace: str) -> None:
    """ServiceAccount admission copies the account's imagePullSecrets into a pod that names none,
    whether or not the token is mounted; a pod's own list is kept as it is."""
    k = server.kubectl
    k("-n", namespace, "apply", "-f", "-", input="apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: puller}\n"
                                                  "automountServiceAccountToken: false\n"
                                                  "imagePullSecrets: [{name: regcred}]\n")
    k("-n", namespace, "run", "a", "--image=busybox", "--overrides", '{"spec":{"serviceAccountName":"puller"}}')
    spec = json.loads(k("-n", namespace, "get", "pod", "a", "-o", "json").stdout)["spec"]
    assert spec["imagePullSecrets"] == [{"name": "regcred"}]
    k("-n", namespace, "run", "b", "--image=busybox", "--overrides",
      '{"spec":{"serviceAccountName":"puller","imagePullSecrets":[{"name":"own"}]}}')
    spec = json.loads(k("-n", namespace, "get", "pod", "b", "-o", "json").stdout)["spec"]
    assert spec["imagePullSecrets"] == [{"name": "own"}]


def test_token_request_authenticates_until_revoked(server: ServerProcess, namespace: str) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "serviceaccount", "bot")
    token = k("-n", namespace, "create", "token", "bot", "--duration=1h").stdout.strip()
    assert token.count(".") == 2
    # A service account may do nothing until bound (Node,RBAC), only ask who it is.
    refused = _as_token(server, token, "-n", namespace, "get", "pods")
    assert refused.returncode != 0
    assert (f'pods is forbidden: User "system:serviceaccount:{namespace}:bot" cannot list resource "pods" in API '
            f'group "" in the namespace "{namespace}"') in refused.stderr
    k("-n", namespace, "create", "rolebinding", "bot-view", "--clusterrole=view", f"--serviceaccount={namespace}:bot")
    server.wait_allowed("list", "pods", f"system:serviceaccount:{namespace}:bot", namespace=namespace)
    ok = _as_token(server, token, "-n", namespace, "get", "pods")
    assert ok.returncode == 0, ok.stderr
    who = _as_token(server, token, "auth", "whoami", "-o", "json")
    if who.returncode == 0:  # SelfSubjectReview is optional here; authentication itself is checked above
        assert json.loads(who.stdout)["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:bot"
    # A token bound to a pod dies with the pod.
    k("-n", namespace, "run", "holder", "--image=busybox", "--overrides",
      '{"spec":{"serviceAccountName":"bot"}}')
    bound = k("-n", namespace, "create", "token", "bot", "--bound-object-kind=Pod",
              "--bound-object-name=holder").stdout.strip()
    assert _as_token(server, bound, "-n", namespace, "get", "pods").returncode == 0
    k("-n", namespace, "delete", "pod", "holder", "--wait=false")
    deadline = time.time() + 10
    while _as_token(server, bound, "-n", namespace, "get", "pods").returncode == 0:
        assert time.time() < deadline, "a token bound to a deleted pod still works"
        time.sleep(0.2)
    # Deleting the ServiceAccount revokes its tokens.
    k("-n", namespace, "delete", "serviceaccount", "bot")
    deadline = time.time() + 10
    while _as_token(server, token, "-n", namespace, "get", "pods").returncode == 0:
        assert time.time() < deadline, "a token of a deleted ServiceAccount still works"
        time.sleep(0.2)
    bad = _as_token(server, token[:-4] + "AAAA", "get", "ns")
    assert bad.returncode != 0 and "Unauthorized" in bad.stderr


def test_pod_with_missing_service_account_is_refused(server: ServerProcess, namespace: str) -> None:
    """Kubernetes refuses a pod whose ServiceAccount does not exist (403, its wording), after a
    live lookup, so an account created just before the pod is found even if the cache lags."""
    k = server.kubectl
    out = k("-n", namespace, "run", "p", "--image=busybox", "--overrides",
            '{"spec":{"serviceAccountName":"ghost"}}', check=False)
    assert out.returncode != 0
    assert (f'Error from server (Forbidden): pods "p" is forbidden: error looking up service account '
            f'{namespace}/ghost: serviceaccount "ghost" not found') in out.stderr
    k("-n", namespace, "create", "serviceaccount", "ghost")
    k("-n", namespace, "run", "p", "--image=busybox", "--overrides", '{"spec":{"serviceAccountName":"ghost"}}')


def test_enforce_mountable_secrets(server: ServerProcess, namespace: str) -> None:
    """``kubernetes.io/enforce-mountable-secrets: "true"`` limits a pod to the account's secrets."""
    k = server.kubectl
    k("-n", namespace, "apply", "-f", "-", input=(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: strict\n"
        "  annotations: {kubernetes.io/enforce-mountable-secrets: 'true'}\n"
        "secrets: [{name: allowed}]\nimagePullSecrets: [{name: pull}]\n"))

    def pod(name: str, spec: str) -> str:
        return (f"apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  serviceAccountName: strict\n"
                f"  containers: [{{name: c, image: busybox{spec}}}]\n")

    cases = {
        "vol": (", volumeMounts: [{name: v, mountPath: /s}]}]\n  volumes: [{name: v, secret: {secretName: other}",
                'volume with secret.secretName="other" is not allowed because service account '
                          "strict does not reference that secret"),
        "env": (", env: [{name: E, valueFrom: {secretKeyRef: {name: other, key: k}}}]",
                'container c with envVar E referencing secret.secretName="other" is not allowed because '
                "service account strict does not reference that secret"),
        "envfrom": (", envFrom: [{secretRef: {name: other}}]",
                    'container c with envFrom referencing secret.secretName="other" is not allowed because '
                    "service account strict does not reference that secret"),
    }
    for name, (extra, message) in cases.items():
        out = k("-n", namespace, "create", "-f", "-", input=pod(name, extra), check=False)
        assert out.returncode != 0, name
        assert f'pods "{name}" is forbidden: {message}' in out.stderr, out.stderr
    out = k("-n", namespace, "create", "-f", "-", check=False, input=pod("pull", "").replace(
        "  containers:", "  imagePullSecrets: [{name: pull}, {name: nope}]\n  containers:"))
    assert ('pods "pull" is forbidden: imagePullSecrets[1].name="nope" is not allowed because service account '
            "strict does not reference that imagePullSecret") in out.stderr
    k("-n", namespace, "create", "-f", "-",
      input=pod("ok", ", env: [{name: E, valueFrom: {secretKeyRef: {name: allowed, key: k}}}]"))
