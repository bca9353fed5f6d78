"""ValidatingAdmissionPolicy and its bindings through kubectl against a real server: params from
a ConfigMap, Deny and Warn actions, matchConditions, variables, a missing param, a policy that
does not compile, the ``authorizer`` asking RBAC about the request's user, with kube-apiserver
1.32's wording."""

from __future__ import annotations

import subprocess
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kybernetes.testing import KUBECTL, ServerProcess

pytestmark = pytest.mark.integration


def _policy(name: str, *, reason: str = "", param: bool = True) -> str:
    return textwrap.dedent(f"""\
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {{name: {name}}}
        spec:
          failurePolicy: Fail
          {"paramKind: {apiVersion: v1, kind: ConfigMap}" if param else ""}
          matchConstraints:
            resourceRules:
            - {{apiGroups: [""], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [configmaps]}}
          matchConditions:
          - name: not-the-params
            expression: "!object.metadata.name.startsWith('limits')"
          variables:
          - name: keys
            expression: "has(object.data) ? size(object.data) : 0"
          validations:
          - expression: "variables.keys <= {"int(params.data.maxKeys)" if param else "2"}"
            messageExpression: "'too many keys: ' + string(variables.keys)"
            {f"reason: {reason}" if reason else ""}
          - expression: "!has(object.data) || !('forbidden' in object.data)"
          auditAnnotations:
          - key: keys
            valueExpression: "string(variables.keys)"
        """)


def _binding(name: str, policy: str, namespace: str, actions: str, *, param: str = "limits") -> str:
    ref = f"paramRef: {{name: {param}, namespace: {namespace}, parameterNotFoundAction: Deny}}" if param else ""
    return textwrap.dedent(f"""\
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicyBinding
        metadata: {{name: {name}}}
        spec:
          policyName: {policy}
          validationActions: [{actions}]
          {ref}
          matchResources:
            namespaceSelector:
              matchLabels: {{vap-test: {namespace}}}
        """)


def _cm(name: str, namespace: str, keys: int, extra: str = "") -> str:
    data = "".join(f"\n  k{i}: v" for i in range(keys)) + extra
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: {namespace}\ndata:{data or ' {}'}\n"


def _until_refused(server: ServerProcess, manifest: str) -> subprocess.CompletedProcess[str]:
    """Dry-run creates until the bindings reach the plugin's watch caches (milliseconds)."""
    deadline = time.time() + 10
    while True:
        res = server.kubectl("create", "--dry-run=server", "-f", "-", input=manifest, check=False)
        if res.returncode != 0 or "Warning:" in res.stderr:
            return res
        assert time.time() < deadline, "policy not in effect within 10 s"
        time.sleep(0.1)


@pytest.fixture
def labelled(server: ServerProcess, namespace: str) -> str:
    server.kubectl("label", "namespace", namespace, f"vap-test={namespace}")
    server.kubectl("-n", namespace, "create", "configmap", "limits", "--from-literal=maxKeys=2")
    return namespace


def test_deny_with_params(server: ServerProcess, labelled: str) -> None:
    k, ns = server.kubectl, labelled
    k("create", "-f", "-", input=_policy("cm-keys"))
    k("create", "-f", "-", input=_binding("cm-keys-binding", "cm-keys", ns, "Deny"))
    res = _until_refused(server, _cm("big", ns, 3))
    assert res.stderr.strip() == ('The configmaps "big" is invalid: : ValidatingAdmissionPolicy \'cm-keys\' with '
                                  "binding 'cm-keys-binding' denied request: too many keys: 3")
    k("create", "-f", "-", input=_cm("small", ns, 2))
    res = k("create", "-f", "-", input=_cm("bad", ns, 0, "\n  forbidden: x"), check=False)
    assert "denied request: failed expression: !has(object.data) || !('forbidden' in object.data)" in res.stderr
    # The params are read live: raising the limit lets the same object in.
    k("-n", ns, "patch", "configmap", "limits", "-p", '{"data":{"maxKeys":"5"}}')
    deadline = time.time() + 10
    while k("create", "-f", "-", input=_cm("big", ns, 3), check=False).returncode != 0:
        assert time.time() < deadline
        time.sleep(0.1)
    # Updates are matched too.
    res = k("-n", ns, "patch", "configmap", "big", "-p", '{"data":{"a":"1","b":"2","c":"3"}}', check=False)
    assert "denied request: too many keys: 6" in res.stderr
    # kubectl's tables, as kube-apiserver prints them
    rows = [line.split() for line in k("get", "validatingadmissionpolicy", "cm-keys").stdout.splitlines()]
    assert rows[0] == ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"] and rows[1][:3] == ["cm-keys", "2", "v1/ConfigMap"]
    rows = [line.split() for line in k("get", "validatingadmissionpolicybinding", "cm-keys-binding").stdout.splitlines()]
    assert rows[0] == ["NAME", "POLICYNAME", "PARAMREF", "AGE"]
    assert rows[1][:3] == ["cm-keys-binding", "cm-keys", f"{ns}/limits"]
    k("delete", "validatingadmissionpolicybinding", "cm-keys-binding")
    k("delete", "validatingadmissionpolicy", "cm-keys")


def test_warn_and_reason(server: ServerProcess, labelled: str) -> None:
    k, ns = server.kubectl, labelled
    k("create", "-f", "-", input=_policy("cm-warn", param=False))
    k("create", "-f", "-", input=_binding("cm-warn-binding", "cm-warn", ns, "Warn, Audit", param=""))
    res = _until_refused(server, _cm("warned", ns, 3))
    assert res.returncode == 0
    assert ("Warning: Validation failed for ValidatingAdmissionPolicy 'cm-warn' with binding 'cm-warn-binding': "
            "too many keys: 3") in res.stderr
    k("delete", "validatingadmissionpolicybinding", "cm-warn-binding")
    k("create", "-f", "-", input=_policy("cm-forbid", reason="Forbidden", param=False))
    k("create", "-f", "-", input=_binding("cm-forbid-binding", "cm-forbid", ns, "Deny", param=""))
    res = _until_refused(server, _cm("forbidden", ns, 3))
    assert res.stderr.strip() == (
        'Error from server (Forbidden): error when creating "STDIN": configmaps "forbidden" is forbidden: '
        "ValidatingAdmissionPolicy 'cm-forbid' with binding 'cm-forbid-binding' denied request: too many keys: 3")
    k("delete", "validatingadmissionpolicybinding", "cm-forbid-binding")
    k("delete", "validatingadmissionpolicy", "cm-warn", "cm-forbid")


def test_missing_params_deny(server: ServerProcess, labelled: str) -> None:
    k, ns = server.kubectl, labelled
    k("create", "-f", "-", input=_policy("cm-noparam"))
    k("create", "-f", "-", input=_binding("cm-noparam-binding", "cm-noparam", ns, "Deny", param="absent"))
    res = _until_refused(server, _cm("any", ns, 0))
    assert res.stderr.strip() == (
        "The configmaps \"any\" is invalid: : ValidatingAdmissionPolicy 'cm-noparam' with binding "
        "'cm-noparam-binding' denied request: failed to configure binding: no params found for policy binding "
        "with `Deny` parameterNotFoundAction")
    k("delete", "validatingadmissionpolicybinding", "cm-noparam-binding")
    k("delete", "validatingadmissionpolicy", "cm-noparam")


def test_invalid_policy_and_binding_refused(server: ServerProcess) -> None:
    k = server.kubectl
    bad = _policy("cm-bad").replace("variables.keys <= int(params.data.maxKeys)", "object.data >")
    res = k("create", "-f", "-", input=bad, check=False)
    assert res.returncode != 0
    assert res.stderr.startswith(
        'The ValidatingAdmissionPolicy "cm-bad" is invalid: spec.validations[0].expression: Invalid value: '
        '"object.data >": compilation failed: ERROR: <input>:1:14: Syntax error:')
    res = k("create", "-f", "-", input=_binding("b", "p", "ns", "Deny, Warn", param=""), check=False)
    assert res.stderr.strip() == (
        'The ValidatingAdmissionPolicyBinding "b" is invalid: spec.validationActions: Invalid value: '
        '[]string{"Deny", "Warn"}: must not contain both Deny and Warn (repeating the same validation failure '
        "information in the API response and headers serves no purpose)")


_MAY_DELETE = """\
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: may-delete}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [configmaps]}
  validations:
  - expression: "authorizer.group('').resource('configmaps').namespace(request.namespace).check('delete').allowed()"
    message: only who may delete configmaps may create them
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: may-delete-b}
spec: {policyName: may-delete, validationActions: [Deny]}
"""


@pytest.fixture
def rbac_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own with a token user (the default authorization, Node,RBAC)."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "tokens.csv").write_text('jane-token,jane,1001,"devs"\n')
    with ServerProcess.start(data) as srv:
        yield srv


def test_authorizer_checks_the_requests_user(rbac_server: ServerProcess) -> None:
    """``authorizer...check('delete').allowed()`` asks RBAC about the request's user: the admin
    passes, a user granted only create is refused until granted delete too."""
    srv, k = rbac_server, rbac_server.kubectl
    k("create", "namespace", "authz")
    k("-n", "authz", "create", "role", "cm-create", "--verb=create", "--resource=configmaps")
    k("-n", "authz", "create", "rolebinding", "jane-create", "--role=cm-create", "--user=jane")
    srv.wait_allowed("create", "configmaps", "jane", namespace="authz")
    k("create", "-f", "-", input=_MAY_DELETE)

    def as_jane(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([KUBECTL, "--kubeconfig", "/dev/null", "--server", srv.url, "--certificate-authority",
                               str(srv.data_dir / "tls" / "ca.crt"), "--token", "jane-token", "-n", "authz",
                               "create", "configmap", name], capture_output=True, text=True, timeout=60)

    deadline = time.time() + 10
    while (res := as_jane("by-jane")).returncode == 0:  # until the policy reaches the plugin's caches
        assert time.time() < deadline, "policy not in effect within 10 s"
        k("-n", "authz", "delete", "configmap", "by-jane")
        time.sleep(0.1)
    assert res.stderr.strip() == (
        'error: failed to create configmap: configmaps "by-jane" is forbidden: ValidatingAdmissionPolicy '
        "'may-delete' with binding 'may-delete-b' denied request: only who may delete configmaps may create them")
    k("-n", "authz", "create", "configmap", "by-admin")  # system:masters
    k("-n", "authz", "create", "role", "cm-delete", "--verb=delete", "--resource=configmaps")
    k("-n", "authz", "create", "rolebinding", "jane-delete", "--role=cm-delete", "--user=jane")
    srv.wait_allowed("delete", "configmaps", "jane", namespace="authz")
    res = as_jane("by-jane")
    assert res.returncode == 0, res.stderr


def test_status_type_checking_by_the_controller_manager(tmp_path: Path) -> None:
    """``kyb server``'s own controller manager (the status controller as its ServiceAccount, with
    Kubernetes' role for it) type-checks a policy against the Deployment schema it resolves from
    the server's discovery and OpenAPI, and reports a field Deployments do not have, as
    kube-controller-manager does."""
    policy = textwrap.dedent("""\
        apiVersion: admissionregistration.k8s.io/v1
        kind: ValidatingAdmissionPolicy
        metadata: {name: replicas-typo}
        spec:
          matchConstraints:
            resourceRules:
            - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
          validations:
          - expression: "object.spec.replicas <= 5"
          - expression: "object.spec.replicsa <= 5"
        """)
    with ServerProcess.start(tmp_path / "data", control_plane=True, timeout=60) as srv:
        srv.kubectl("apply", "-f", "-", input=policy)
        deadline = time.time() + 30
        status = ""
        while time.time() < deadline:
            status = srv.kubectl("get", "validatingadmissionpolicy", "replicas-typo", "-o",
                                 "jsonpath={.status}").stdout
            if "typeChecking" in status:
                break
            time.sleep(0.2)
        warnings = srv.kubectl("get", "validatingadmissionpolicy", "replicas-typo", "-o",
                               "jsonpath={.status.typeChecking.expressionWarnings[*].fieldRef}|"
                               "{.status.typeChecking.expressionWarnings[*].warning}").stdout
        assert warnings == (
            "spec.validations[1].expression|apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field "
            "'replicsa'\n | object.spec.replicsa <= 5\n | ...........^\n"), status
