"""RBAC on a real server (``--authorization-mode RBAC``), driven by kubectl as token users and a
service account: a table of who may do what where with Kubernetes' answers and 403 words,
revocation without a restart, escalation prevention (escalate, bind), the roleRef that cannot
change, RBAC's 422 causes, and ClusterRole aggregation by the controller manager.

The bootstrap policy is not assumed: the module creates the roles it needs (discovery, and
everything for the controller manager's identity, whose least-privilege roles are the policy's)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration
G = "rbac.authorization.k8s.io"

POLICY = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: dev}}
---
apiVersion: v1
kind: Namespace
metadata: {{name: prod}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: builder, namespace: dev}}
---
apiVersion: v1
kind: Secret
metadata: {{name: s1, namespace: dev}}
---
apiVersion: v1
kind: Secret
metadata: {{name: s2, namespace: dev}}
---
apiVersion: {G}/v1
kind: ClusterRole
metadata: {{name: test-discovery}}
rules:
- nonResourceURLs: ["/api", "/api/*", "/apis", "/apis/*", "/version", "/openapi", "/openapi/*"]
  verbs: ["get"]
---
apiVersion: {G}/v1
kind: ClusterRoleBinding
metadata: {{name: test-discovery}}
roleRef: {{apiGroup: {G}, kind: ClusterRole, name: test-discovery}}
subjects: [{{apiGroup: {G}, kind: Group, name: "system:authenticated"}}]
---
apiVersion: {G}/v1
kind: ClusterRole
metadata: {{name: test-everything}}
rules:
- {{apiGroups: ["*"], resources: ["*"], verbs: ["*"]}}
---
apiVersion: {G}/v1
kind: ClusterRoleBinding
metadata: {{name: test-controller-manager}}
roleRef: {{apiGroup: {G}, kind: ClusterRole, name: test-everything}}
subjects: [{{apiGroup: {G}, kind: User, name: "system:kube-controller-manager"}}]
---
apiVersion: {G}/v1
kind: Role
metadata: {{name: pod-reader, namespace: dev}}
rules:
- {{apiGroups: [""], resources: ["pods"], verbs: ["get", "list", "watch"]}}
---
apiVersion: {G}/v1
kind: Role
metadata: {{name: one-secret, namespace: dev}}
rules:
- {{apiGroups: [""], resources: ["secrets"], verbs: ["get"], resourceNames: ["s1"]}}
---
apiVersion: {G}/v1
kind: RoleBinding
metadata: {{name: jane-pods, namespace: dev}}
roleRef: {{apiGroup: {G}, kind: Role, name: pod-reader}}
subjects: [{{apiGroup: {G}, kind: User, name: jane}}]
---
apiVersion: {G}/v1
kind: RoleBinding
metadata: {{name: jane-secret, namespace: dev}}
roleRef: {{apiGroup: {G}, kind: Role, name: one-secret}}
subjects: [{{apiGroup: {G}, kind: User, name: jane}}]
---
apiVersion: {G}/v1
kind: ClusterRole
metadata: {{name: ns-viewer}}
rules:
- {{apiGroups: [""], resources: ["namespaces"], verbs: ["get", "list"]}}
---
apiVersion: {G}/v1
kind: ClusterRoleBinding
metadata: {{name: devs-ns}}
roleRef: {{apiGroup: {G}, kind: ClusterRole, name: ns-viewer}}
subjects: [{{apiGroup: {G}, kind: Group, name: devs}}]
---
apiVersion: {G}/v1
kind: ClusterRole
metadata: {{name: cm-editor}}
rules:
- {{apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "create", "delete"]}}
---
apiVersion: {G}/v1
kind: RoleBinding
metadata: {{name: ops-cm, namespace: prod}}
roleRef: {{apiGroup: {G}, kind: ClusterRole, name: cm-editor}}
subjects: [{{apiGroup: {G}, kind: Group, name: ops}}]
---
apiVersion: {G}/v1
kind: RoleBinding
metadata: {{name: sa-pods, namespace: dev}}
roleRef: {{apiGroup: {G}, kind: Role, name: pod-reader}}
subjects: [{{kind: ServiceAccount, name: builder}}]
---
apiVersion: {G}/v1
kind: RoleBinding
metadata: {{name: dangling, namespace: dev}}
roleRef: {{apiGroup: {G}, kind: ClusterRole, name: missing}}
subjects: [{{apiGroup: {G}, kind: User, name: bob}}]
"""


class Cluster:
    def __init__(self, srv: ServerProcess, tokens: dict[str, str]) -> None:
        self.srv, self.tokens = srv, tokens

    def admin(self, *args: str, input: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.srv.kubectl(*args, input=input, check=check)

    def as_user(self, who: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """kubectl with only a token: no client certificate, so the token is who asks."""
        return subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", self.srv.url,
                               "--certificate-authority", str(self.srv.data_dir / "tls" / "ca.crt"),
                               "--token", self.tokens[who], *args],
                              input=input, capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    data: Path = tmp_path_factory.mktemp("rbac")
    (data / "tokens.csv").write_text('jane-token,jane,1001,"devs"\nbob-token,bob,1002,"ops"\n')
    with ServerProcess.start(data, "--authorization-mode", "RBAC", control_plane=True) as srv:
        c = Cluster(srv, {"jane": "jane-token", "bob": "bob-token"})
        c.admin("create", "-f", "-", input=POLICY)
        c.tokens["builder"] = c.admin("create", "token", "builder", "-n", "dev").stdout.strip()
        yield c


def forbidden(user: str, verb: str, resource: str, ns: str = "", name: str = "", reason: str = "",
              prefix: str = "Error from server (Forbidden):") -> str:
    where = f'in the namespace "{ns}"' if ns else "at the cluster scope"
    what = f'{resource} "{name}"' if name else resource
    msg = (f'{prefix} {what} is forbidden: User "{user}" cannot {verb} resource '
           f'"{resource}" in API group "" {where}')
    return msg + (f": {reason}" if reason else "")


SA = "system:serviceaccount:dev:builder"
MISSING = f'RBAC: clusterrole.{G} "missing" not found'
TABLE: list[tuple[str, tuple[str, ...], str | None]] = [
    # who, kubectl args, None when allowed, else kubectl's exact error (Kubernetes' 403 message)
    ("jane", ("get", "pods", "-n", "dev"), None),
    ("jane", ("get", "pods", "-n", "prod"), forbidden("jane", "list", "pods", "prod")),
    ("jane", ("delete", "pod", "web", "-n", "dev"), forbidden("jane", "delete", "pods", "dev", "web")),
    ("jane", ("get", "namespaces"), None),
    ("jane", ("get", "secret", "s1", "-n", "dev"), None),
    ("jane", ("get", "secret", "s2", "-n", "dev"), forbidden("jane", "get", "secrets", "dev", "s2")),
    ("jane", ("get", "secrets", "-n", "dev"), forbidden("jane", "list", "secrets", "dev")),
    ("jane", ("get", "configmaps", "-n", "prod"), forbidden("jane", "list", "configmaps", "prod")),
    ("bob", ("get", "pods", "-n", "dev"), forbidden("bob", "list", "pods", "dev", reason=MISSING)),
    ("bob", ("get", "namespaces"), forbidden("bob", "list", "namespaces")),
    ("bob", ("create", "configmap", "c1", "-n", "prod"), None),
    ("bob", ("get", "configmap", "c1", "-n", "prod"), None),
    ("bob", ("delete", "configmap", "c1", "-n", "prod"), None),
    ("bob", ("create", "configmap", "c1", "-n", "dev"),
     forbidden("bob", "create", "configmaps", "dev", reason=MISSING, prefix="error: failed to create configmap:")),
    ("builder", ("get", "pods", "-n", "dev"), None),
    ("builder", ("get", "pods", "-n", "prod"), forbidden(SA, "list", "pods", "prod")),
    ("builder", ("get", "secret", "s1", "-n", "dev"), forbidden(SA, "get", "secrets", "dev", "s1")),
]


@pytest.mark.parametrize(("who", "args", "refusal"), TABLE, ids=[f"{t[0]}-{'-'.join(t[1])}" for t in TABLE])
def test_who_may_do_what_where(cluster: Cluster, who: str, args: tuple[str, ...], refusal: str | None) -> None:
    res = cluster.as_user(who, *args)
    if refusal is None:
        assert res.returncode == 0, res.stderr
    else:
        assert res.returncode != 0
        assert res.stderr.strip() == refusal


# The same policy asked through ``kubectl auth can-i`` (a SelfSubjectAccessReview as the user, and
# the admin's SubjectAccessReview-backed ``--as``): who, verb, what, namespace, allowed.
CAN_I: list[tuple[str, str, str, str, bool]] = [
    ("jane", "list", "pods", "dev", True),
    ("jane", "watch", "pods", "dev", True),
    ("jane", "list", "pods", "prod", False),
    ("jane", "delete", "pod/web", "dev", False),
    ("jane", "list", "namespaces", "", True),
    ("jane", "get", "secret/s1", "dev", True),
    ("jane", "get", "secret/s2", "dev", False),
    ("jane", "list", "secrets", "dev", False),
    ("bob", "list", "pods", "dev", False),
    ("bob", "create", "configmaps", "prod", True),
    ("bob", "delete", "configmap/c9", "prod", True),
    ("bob", "create", "configmaps", "dev", False),
    ("builder", "list", "pods", "dev", True),
    ("builder", "get", "secret/s1", "dev", False),
]
IMPERSONATE = {"jane": ("--as", "jane", "--as-group", "devs"), "bob": ("--as", "bob", "--as-group", "ops"),
               "builder": ("--as", SA)}


@pytest.mark.parametrize(("who", "verb", "what", "ns", "allowed"), CAN_I,
                         ids=[f"{t[0]}-{t[1]}-{t[2]}-{t[3] or 'cluster'}" for t in CAN_I])
def test_can_i_answers_as_the_requests_do(cluster: Cluster, who: str, verb: str, what: str, ns: str,
                                          allowed: bool) -> None:
    args = ("auth", "can-i", verb, what, *(("-n", ns) if ns else ()))
    mine = cluster.as_user(who, *args)
    assert (mine.returncode, mine.stdout.split()[:1]) == ((0, ["yes"]) if allowed else (1, ["no"])), mine.stderr
    theirs = cluster.admin(*args, *IMPERSONATE[who], check=False)
    assert (theirs.returncode, theirs.stdout.split()[:1]) == ((0, ["yes"]) if allowed else (1, ["no"]))


def wait_until(cluster: Cluster, who: str, args: tuple[str, ...], refusal: str | None, timeout: float = 10.0,
               input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Repeat the request until it succeeds (``refusal`` None) or fails with exactly ``refusal``."""
    deadline = time.monotonic() + timeout
    while True:
        res = cluster.as_user(who, *args, input=input)
        if (res.returncode == 0) if refusal is None else (res.returncode != 0 and res.stderr.strip() == refusal):
            return res
        assert time.monotonic() < deadline, f"still {res.returncode}: {res.stdout}{res.stderr}"
        time.sleep(0.1)


def test_revoked_permission_takes_effect_without_restart(cluster: Cluster) -> None:
    cluster.admin("create", "rolebinding", "bob-pods", "-n", "dev", "--role", "pod-reader", "--user", "bob")
    wait_until(cluster, "bob", ("get", "pods", "-n", "dev"), None)
    cluster.admin("delete", "rolebinding", "bob-pods", "-n", "dev")
    wait_until(cluster, "bob", ("get", "pods", "-n", "dev"), forbidden("bob", "list", "pods", "dev", reason=MISSING))


ROLE_WRITER = f"""
apiVersion: {G}/v1
kind: Role
metadata: {{name: rbac-writer, namespace: dev}}
rules:
- {{apiGroups: ["{G}"], resources: ["roles", "rolebindings"], verbs: ["create", "update", "get"]}}
---
apiVersion: {G}/v1
kind: RoleBinding
metadata: {{name: jane-rbac-writer, namespace: dev}}
roleRef: {{apiGroup: {G}, kind: Role, name: rbac-writer}}
subjects: [{{apiGroup: {G}, kind: User, name: jane}}]
"""
SECRET_ROLE = f"""
apiVersion: {G}/v1
kind: Role
metadata: {{name: secret-lister, namespace: dev}}
rules:
- {{apiGroups: [""], resources: ["secrets"], verbs: ["list", "get"]}}
- {{apiGroups: [""], resources: ["pods"], verbs: ["get"]}}
"""
CM_BINDING = f"""
apiVersion: {G}/v1
kind: RoleBinding
metadata: {{name: jane-cm, namespace: dev}}
roleRef: {{apiGroup: {G}, kind: ClusterRole, name: cm-editor}}
subjects: [{{apiGroup: {G}, kind: User, name: bob}}]
"""
HELD_BY_JANE = 'user "jane" (groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not ' \
               'currently held:\n'


def grant_jane(cluster: Cluster, name: str, rule: str) -> None:
    cluster.admin("create", "-f", "-", input=f"""
apiVersion: {G}/v1
kind: Role
metadata: {{name: {name}, namespace: dev}}
rules: [{rule}]
---
apiVersion: {G}/v1
kind: RoleBinding
metadata: {{name: {name}, namespace: dev}}
roleRef: {{apiGroup: {G}, kind: Role, name: {name}}}
subjects: [{{apiGroup: {G}, kind: User, name: jane}}]
""")


def test_escalation_refused_then_allowed_with_escalate_and_bind(cluster: Cluster) -> None:
    cluster.admin("create", "-f", "-", input=ROLE_WRITER)
    create = ("create", "-f", "-")
    wait_until(cluster, "jane", create, input=SECRET_ROLE, refusal=(
        f'Error from server (Forbidden): error when creating "STDIN": roles.{G} "secret-lister" is forbidden: '
        + HELD_BY_JANE + '{APIGroups:[""], Resources:["secrets"], Verbs:["list" "get"]}'))
    grant_jane(cluster, "escalator", f'{{apiGroups: ["{G}"], resources: ["roles"], verbs: ["escalate"]}}')
    wait_until(cluster, "jane", create, None, input=SECRET_ROLE)

    res = cluster.as_user("jane", *create, input=CM_BINDING)
    assert res.returncode != 0
    assert res.stderr.strip() == (
        f'Error from server (Forbidden): error when creating "STDIN": rolebindings.{G} "jane-cm" is forbidden: '
        + HELD_BY_JANE + '{APIGroups:[""], Resources:["configmaps"], Verbs:["get" "list" "create" "delete"]}')
    grant_jane(cluster, "binder", f'{{apiGroups: ["{G}"], resources: ["clusterroles"], verbs: ["bind"], '
                                  'resourceNames: ["cm-editor"]}')
    wait_until(cluster, "jane", create, None, input=CM_BINDING)


def test_role_ref_cannot_change(cluster: Cluster) -> None:
    cluster.admin("create", "rolebinding", "fixed", "-n", "dev", "--role", "pod-reader", "--user", "x")
    res = cluster.admin("patch", "rolebinding", "fixed", "-n", "dev", "--type", "merge",
                        "-p", '{"roleRef": {"name": "one-secret"}}', check=False)
    assert res.returncode != 0
    assert 'The RoleBinding "fixed" is invalid: roleRef: Invalid value:' in res.stderr
    assert res.stderr.strip().endswith(": cannot change roleRef")


def test_bad_roles_get_every_cause(cluster: Cluster) -> None:
    res = cluster.admin("create", "-f", "-", check=False, input=f"""
apiVersion: {G}/v1
kind: Role
metadata: {{name: bad, namespace: dev}}
rules:
- {{apiGroups: [""], resources: ["pods"]}}
- {{resources: ["pods", "secrets"], resourceNames: ["a"], verbs: ["get"]}}
- {{apiGroups: [""], resources: ["pods"], verbs: ["fly"]}}
""")
    assert res.returncode != 0
    assert res.stderr.strip() == (
        'The Role "bad" is invalid: \n'
        '* rules[0].verbs: Required value: verbs must contain at least one value\n'
        '* rules[1].apiGroups: Required value: resource rules must supply at least one api group\n'
        '* rules[1].resourceNames: Required value: resource names cannot apply to multiple resources')


def test_aggregated_cluster_role_grants_what_its_sources_hold(cluster: Cluster) -> None:
    cluster.admin("create", "-f", "-", input=f"""
apiVersion: {G}/v1
kind: ClusterRole
metadata: {{name: agg-limits}}
aggregationRule:
  clusterRoleSelectors: [{{matchLabels: {{rbac-test/aggregate: "true"}}}}]
---
apiVersion: {G}/v1
kind: ClusterRoleBinding
metadata: {{name: bob-agg}}
roleRef: {{apiGroup: {G}, kind: ClusterRole, name: agg-limits}}
subjects: [{{apiGroup: {G}, kind: User, name: bob}}]
""")
    args = ("get", "limitranges", "-n", "prod")
    refusal = forbidden("bob", "list", "limitranges", "prod")
    wait_until(cluster, "bob", args, refusal)
    cluster.admin("create", "-f", "-", input=f"""
apiVersion: {G}/v1
kind: ClusterRole
metadata: {{name: limits-reader, labels: {{rbac-test/aggregate: "true"}}}}
rules:
- {{apiGroups: [""], resources: ["limitranges"], verbs: ["list"]}}
""")
    wait_until(cluster, "bob", args, None, timeout=30)
    cluster.admin("label", "clusterrole", "limits-reader", "rbac-test/aggregate-")
    wait_until(cluster, "bob", args, refusal, timeout=30)
