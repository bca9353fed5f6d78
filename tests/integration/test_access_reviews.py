"""Access reviews, impersonation and anonymous requests on a real server, driven by kubectl
(``auth can-i``, ``--list``, ``--as``, ``--as-group``), the official Python client and plain HTTPS."""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration

TOKENS = 'jane-token,jane,1001,"devs"\nroot-token,root,1002,"system:masters"\n'
DENIED = "Everything is forbidden."


def _start(tmp_path: Path, *flags: str) -> ServerProcess:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / "tokens.csv").write_text(TOKENS)
    # Under AlwaysDeny the controller manager may do nothing, so no default ServiceAccount to wait for.
    return ServerProcess.start(data, *flags, service_accounts="AlwaysDeny" not in flags)


@pytest.fixture
def deny_server(tmp_path: Path) -> Iterator[ServerProcess]:
    with _start(tmp_path, "--authorization-mode", "AlwaysDeny") as srv:
        yield srv


def _kubectl_token(srv: ServerProcess, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    """kubectl with a bearer token only (the admin kubeconfig's certificate would win over it)."""
    return subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", srv.url,
                           "--certificate-authority", str(srv.data_dir / "tls" / "ca.crt"), "--token", token, *args],
                          capture_output=True, text=True, timeout=60)


def _http(srv: ServerProcess, path: str, headers: dict[str, str] | None = None,
          method: str = "GET", body: Any = None) -> tuple[int, Any]:
    """A plain HTTPS request without a client certificate."""
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "tls" / "ca.crt"))
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(srv.url + path, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=20) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def _message(resp: tuple[int, Any], code: int) -> str:
    status, body = resp
    assert status == code, body
    assert body["kind"] == "Status" and body["code"] == code, body
    return str(body["message"])


@pytest.fixture
def authz_api(deny_server: ServerProcess) -> Iterator[Any]:
    """The official client's AuthorizationV1Api, as the admin, on the AlwaysDeny server."""
    config = pytest.importorskip("kubernetes.config")
    client = pytest.importorskip("kubernetes.client")
    api = config.new_client_from_config(config_file=str(deny_server.kubeconfig))
    try:
        yield client.AuthorizationV1Api(api)
    finally:
        api.close()


def _sar(user: str, groups: list[str] | None = None, **resource: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"user": user, "resourceAttributes": resource}
    if groups:
        spec["groups"] = groups
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "spec": spec}


# --- AlwaysAllow ------------------------------------------------------------------------------

def test_always_allow_says_yes_lists_everything_and_has_no_anonymous(tmp_path: Path) -> None:
    with _start(tmp_path, "--authorization-mode", "AlwaysAllow") as srv:
        res = srv.kubectl("auth", "can-i", "delete", "nodes")
        assert (res.returncode, res.stdout) == (0, "yes\n")
        res = _kubectl_token(srv, "jane-token", "auth", "can-i", "create", "deployments.apps", "-n", "kube-system")
        assert (res.returncode, res.stdout) == (0, "yes\n"), res.stderr
        res = _kubectl_token(srv, "jane-token", "auth", "can-i", "--list")
        assert res.returncode == 0, res.stderr
        assert [line.split() for line in res.stdout.splitlines()] == [
            ["Resources", "Non-Resource", "URLs", "Resource", "Names", "Verbs"],
            ["*.*", "[]", "[]", "[*]"],
            ["[*]", "[]", "[*]"],
        ]
        # Every user may impersonate under AlwaysAllow; system:authenticated is added.
        res = _kubectl_token(srv, "jane-token", "auth", "whoami", "--as", "bob", "--as-group", "g1", "-o", "json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["status"]["userInfo"] == {"username": "bob", "groups": ["g1", "system:authenticated"]}
        res = _kubectl_token(srv, "jane-token", "auth", "whoami", "--as", "system:serviceaccount:default:builder",
                             "-o", "jsonpath={.status.userInfo}")
        assert json.loads(res.stdout) == {"username": "system:serviceaccount:default:builder", "groups": [
            "system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"]}, res.stderr
        # kube-apiserver turns anonymous requests off with AlwaysAllow: no credentials is 401 everywhere.
        for path in ("/readyz", "/healthz", "/livez", "/version", "/api"):
            assert _message(_http(srv, path), 401) == "Unauthorized"


# --- AlwaysDeny -------------------------------------------------------------------------------

def test_can_i_under_always_deny(deny_server: ServerProcess) -> None:
    srv = deny_server
    res = srv.kubectl("auth", "can-i", "list", "pods")  # the admin: system:masters
    assert (res.returncode, res.stdout) == (0, "yes\n")
    res = srv.kubectl("auth", "can-i", "get", "/metrics")
    assert (res.returncode, res.stdout) == (0, "yes\n")
    res = srv.kubectl("auth", "can-i", "list", "secrets", "--as", "jane", "--as-group", "system:masters")
    assert (res.returncode, res.stdout) == (0, "yes\n")
    # jane may not even ask: creating her own review is refused like any request.
    res = srv.kubectl("auth", "can-i", "list", "pods", "--as", "jane", check=False)
    assert res.returncode == 1
    assert ('Error from server (Forbidden): selfsubjectaccessreviews.authorization.k8s.io is forbidden: User "jane" '
            'cannot create resource "selfsubjectaccessreviews" in API group "authorization.k8s.io" at the cluster '
            f"scope: {DENIED}") in res.stderr


def test_subject_access_reviews_with_the_official_client(authz_api: Any) -> None:
    api = authz_api
    out = api.create_subject_access_review(_sar("jane", ["devs"], verb="list", resource="pods", namespace="default"))
    assert (out.status.allowed, out.status.denied, out.status.reason) == (False, None, DENIED)
    assert out.spec.resource_attributes.namespace == "default" and out.spec.user == "jane"
    out = api.create_subject_access_review(_sar("root", ["system:masters"], verb="delete", resource="nodes"))
    assert (out.status.allowed, out.status.reason) == (True, None)
    out = api.create_subject_access_review({
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"groups": ["system:masters"], "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}})
    assert out.status.allowed is True
    out = api.create_namespaced_local_subject_access_review("default", {
        "apiVersion": "authorization.k8s.io/v1", "kind": "LocalSubjectAccessReview",
        "spec": {"user": "jane", "resourceAttributes": {"verb": "get", "resource": "secrets", "namespace": "default"}}})
    assert (out.metadata.namespace, out.status.allowed) == ("default", False)
    rules = api.create_self_subject_rules_review({"apiVersion": "authorization.k8s.io/v1",
                                                   "kind": "SelfSubjectRulesReview", "spec": {"namespace": "default"}})
    # As kube-apiserver: system:masters is allowed by no rule, so AlwaysDeny lists none for the admin.
    assert (rules.status.resource_rules, rules.status.non_resource_rules, rules.status.incomplete) == ([], [], False)


def test_bad_reviews_are_kubernetes_errors(deny_server: ServerProcess) -> None:
    base = "/apis/authorization.k8s.io/v1"
    root = {"Authorization": "Bearer root-token"}
    both = _sar("jane", verb="get", resource="pods")
    both["spec"]["nonResourceAttributes"] = {"path": "/x", "verb": "get"}
    del both["spec"]["user"]
    assert _message(_http(deny_server, f"{base}/subjectaccessreviews", root, "POST", both), 422) == (
        'SubjectAccessReview.authorization.k8s.io "" is invalid: [spec.nonResourceAttributes: Invalid value: '
        'authorization.NonResourceAttributes{Path:"/x", Verb:"get"}: cannot be specified in combination with '
        'resourceAttributes, spec.user: Invalid value: "": at least one of user or group must be specified]')
    local = _sar("jane", verb="get", resource="pods", namespace="other")
    local["kind"] = "LocalSubjectAccessReview"
    assert _message(_http(deny_server, f"{base}/namespaces/default/localsubjectaccessreviews", root, "POST", local),
                    422) == ('LocalSubjectAccessReview.authorization.k8s.io "" is invalid: '
                             'spec.resourceAttributes.namespace: Invalid value: "other": must match metadata.namespace')
    rules = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": {}}
    assert _message(_http(deny_server, f"{base}/selfsubjectrulesreviews", root, "POST", rules), 400) == (
        "no namespace on request")


def test_impersonation_is_authorized(deny_server: ServerProcess) -> None:
    srv = deny_server
    # The admin (system:masters) may impersonate; jane is then refused as herself.
    res = srv.kubectl("get", "--raw", "/api/v1/namespaces/default/pods", "--as", "jane", check=False)
    assert res.returncode != 0
    assert ('pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default": '
            f"{DENIED}") in res.stderr
    # A plain user may not.
    res = _kubectl_token(srv, "jane-token", "get", "--raw", "/api/v1/namespaces", "--as", "bob")
    assert res.returncode != 0
    assert ('users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the '
            f"cluster scope: {DENIED}") in res.stderr
    resp = _http(srv, "/api/v1/namespaces", {"Authorization": "Bearer jane-token", "Impersonate-User": "bob"})
    assert _message(resp, 403) == ('users "bob" is forbidden: User "jane" cannot impersonate resource "users" in API '
                                   f'group "" at the cluster scope: {DENIED}')
    assert resp[1]["details"] == {"name": "bob", "kind": "users"}
    resp = _http(srv, "/api", {"Authorization": "Bearer root-token", "Impersonate-Group": "system:masters"})
    assert _message(resp, 400) == "requested [{Group  system:masters    }] without impersonating a user"


def test_anonymous_requests_under_always_deny(deny_server: ServerProcess) -> None:
    # Anonymous is on (the default, no AlwaysAllow): no credentials is system:anonymous, refused here.
    assert _message(_http(deny_server, "/readyz"), 403) == (
        f'forbidden: User "system:anonymous" cannot get path "/readyz": {DENIED}')
    assert _message(_http(deny_server, "/api/v1/namespaces"), 403) == (
        'namespaces is forbidden: User "system:anonymous" cannot list resource "namespaces" in API group "" at the '
        f"cluster scope: {DENIED}")
    # Bad credentials are never anonymous.
    assert _message(_http(deny_server, "/readyz", {"Authorization": "Bearer nope"}), 401) == "Unauthorized"


def test_anonymous_auth_false_is_401_everywhere(tmp_path: Path) -> None:
    with _start(tmp_path, "--authorization-mode", "AlwaysDeny", "--anonymous-auth=false") as srv:
        for path in ("/readyz", "/livez", "/healthz", "/version", "/api/v1/namespaces"):
            assert _message(_http(srv, path), 401) == "Unauthorized"
        assert srv.kubectl("get", "--raw", "/readyz").stdout == "ok"


# --- with RBAC (another part of issue 10) ------------------------------------------------------

def _require_rbac() -> None:
    try:
        import kybernetes.apiserver.authz.rbac  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the RBAC authorizer (kybernetes.apiserver.authz.rbac) is required on CI")
        pytest.skip("the RBAC authorizer (kybernetes.apiserver.authz.rbac) is not built yet")


RBAC_OBJECTS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: reviewer}
rules:
- {apiGroups: [authorization.k8s.io], resources: [selfsubjectaccessreviews, selfsubjectrulesreviews], verbs: [create]}
- {nonResourceURLs: ["*"], verbs: [get]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: reviewer-devs}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: reviewer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: devs}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules:
- {apiGroups: [""], resources: [pods], verbs: [get, list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: jane-reads-pods, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: jane}]
"""


def test_can_i_with_rbac_rules(tmp_path: Path) -> None:
    _require_rbac()
    with _start(tmp_path, "--authorization-mode", "RBAC") as srv:
        srv.kubectl("apply", "-f", "-", input=RBAC_OBJECTS)

        def can_i(*args: str) -> tuple[int, str]:
            res = _kubectl_token(srv, "jane-token", "auth", "can-i", *args)
            return res.returncode, res.stdout.strip()

        assert can_i("list", "pods", "-n", "default") == (0, "yes")
        assert can_i("get", "pods/web", "-n", "default") == (0, "yes")
        assert can_i("delete", "pods", "-n", "default")[0] == 1
        assert can_i("delete", "pods", "-n", "default")[1].startswith("no")
        assert can_i("list", "pods", "-n", "kube-system")[0] == 1
        res = _kubectl_token(srv, "jane-token", "auth", "can-i", "--list", "-n", "default")
        assert res.returncode == 0, res.stderr
        assert ["pods", "[]", "[]", "[get", "list]"] in [line.split() for line in res.stdout.splitlines()]
        # The admin asks as jane (in devs, which may ask at all) with --as: the same answers.
        as_jane = ("--as", "jane", "--as-group", "devs")
        assert srv.kubectl("auth", "can-i", "list", "pods", "-n", "default", *as_jane).stdout == "yes\n"
        res = srv.kubectl("auth", "can-i", "create", "pods", "-n", "default", *as_jane, check=False)
        assert res.returncode == 1 and res.stdout.startswith("no")
