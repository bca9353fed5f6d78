"""CRD validation rules (x-kubernetes-validations) through kubectl against a real server: create,
update, transition rules, status updates, and a CRD whose rule does not compile, with
kube-apiserver 1.32's wording."""

from __future__ import annotations

import json
import textwrap
import time

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration

CRD = textwrap.dedent("""\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: scalers.cel.example.com
    spec:
      group: cel.example.com
      scope: Namespaced
      names: {plural: scalers, singular: scaler, kind: Scaler}
      versions:
      - name: v1
        served: true
        storage: true
        subresources: {status: {}}
        schema:
          openAPIV3Schema:
            type: object
            x-kubernetes-validations:
            - rule: "self.metadata.name.size() <= 20"
              message: name too long
            properties:
              spec:
                type: object
                x-kubernetes-validations:
                - rule: "self.replicas <= self.maxReplicas"
                  message: replicas must not exceed maxReplicas
                - rule: "self.mode == oldSelf.mode"
                  message: mode is immutable
                  reason: FieldValueForbidden
                  fieldPath: .mode
                - rule: "quantity(self.memory).isLessThan(quantity('4Gi'))"
                  messageExpression: "'memory ' + self.memory + ' is not below 4Gi'"
                properties:
                  replicas: {type: integer}
                  maxReplicas: {type: integer}
                  mode: {type: string}
                  memory: {type: string, default: 1Gi}
              status:
                type: object
                properties:
                  ready:
                    type: integer
                    x-kubernetes-validations:
                    - rule: "self >= 0"
                      message: ready cannot be negative
    """)


def _obj(name: str, replicas: int, mode: str = "fast", memory: str = "1Gi") -> str:
    return textwrap.dedent(f"""\
        apiVersion: cel.example.com/v1
        kind: Scaler
        metadata: {{name: {name}}}
        spec: {{replicas: {replicas}, maxReplicas: 5, mode: {mode}, memory: {memory}}}
        """)


@pytest.fixture(scope="module")
def scalers(server: ServerProcess) -> None:
    k = server.kubectl
    k("apply", "-f", "-", input=CRD)
    k("wait", "--for=condition=Established", "crd/scalers.cel.example.com", "--timeout=10s")
    deadline = time.time() + 10
    while "scalers" not in k("api-resources", "--api-group=cel.example.com").stdout:
        assert time.time() < deadline, "CRD not served within 10 s"
        time.sleep(0.2)


def test_rules_on_create(server: ServerProcess, namespace: str, scalers: None) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "-f", "-", input=_obj("ok", 2))
    bad = k("-n", namespace, "create", "-f", "-", input=_obj("too-many", 9, memory="8Gi"), check=False)
    assert bad.returncode != 0
    assert bad.stderr.strip() == (
        'The Scaler "too-many" is invalid: \n'
        '* spec: Invalid value: "object": replicas must not exceed maxReplicas\n'
        '* spec: Invalid value: "object": memory 8Gi is not below 4Gi')
    # A value of the wrong type stops the rules from running, with Kubernetes' note.
    typed = k("-n", namespace, "create", "-f", "-", input=_obj("typed", 9).replace("replicas: 9", "replicas: x"),
              check=False)
    assert typed.stderr.strip() == (
        'The Scaler "typed" is invalid: \n'
        '* spec.replicas: Invalid value: "string": spec.replicas in body must be of type integer: "string"\n'
        '* <nil>: Invalid value: "null": some validation rules were not checked because the object was invalid; '
        "correct the existing errors to complete validation")
    root = k("-n", namespace, "create", "-f", "-", input=_obj("a-name-longer-than-twenty", 1), check=False)
    assert root.stderr.strip() == ('The Scaler "a-name-longer-than-twenty" is invalid: '
                                   '<nil>: Invalid value: "object": name too long')


def test_transition_rule_on_update(server: ServerProcess, namespace: str, scalers: None) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "-f", "-", input=_obj("moded", 1))
    # Transition rules see oldSelf only on update: the create above passed without one.
    res = k("-n", namespace, "patch", "scaler", "moded", "--type=merge", "-p", '{"spec":{"mode":"slow"}}',
            check=False)
    assert res.returncode != 0
    assert res.stderr.strip() == 'The Scaler "moded" is invalid: spec.mode: Forbidden: mode is immutable'
    k("-n", namespace, "patch", "scaler", "moded", "--type=merge", "-p", '{"spec":{"replicas":3}}')
    res = k("-n", namespace, "patch", "scaler", "moded", "--type=merge", "-p", '{"spec":{"replicas":7}}',
            check=False)
    assert "spec: Invalid value: \"object\": replicas must not exceed maxReplicas" in res.stderr


def test_rules_on_status_update(server: ServerProcess, namespace: str, scalers: None) -> None:
    k = server.kubectl
    k("-n", namespace, "create", "-f", "-", input=_obj("stat", 1))
    k("-n", namespace, "patch", "scaler", "stat", "--subresource=status", "--type=merge",
      "-p", '{"status":{"ready":1}}')
    res = k("-n", namespace, "patch", "scaler", "stat", "--subresource=status", "--type=merge",
            "-p", '{"status":{"ready":-1}}', check=False)
    assert res.stderr.strip() == ('The Scaler "stat" is invalid: status.ready: Invalid value: "integer": '
                                  "ready cannot be negative")
    got = json.loads(k("-n", namespace, "get", "scaler", "stat", "-o", "json").stdout)
    assert got["status"] == {"ready": 1}


def test_crd_with_a_rule_that_does_not_compile(server: ServerProcess) -> None:
    bad = CRD.replace("scalers.cel.example.com", "brokens.cel.example.com").replace(
        "plural: scalers, singular: scaler, kind: Scaler", "plural: brokens, singular: broken, kind: Broken").replace(
        '"self.replicas <= self.maxReplicas"', '"self.replicas <= "')
    res = server.kubectl("create", "-f", "-", input=bad, check=False)
    assert res.returncode != 0
    assert res.stderr.startswith(
        'The CustomResourceDefinition "brokens.cel.example.com" is invalid: spec.versions[0].schema.openAPIV3Schema'
        '.properties[spec].x-kubernetes-validations[0].rule: Invalid value: apiextensions.ValidationRule{'
        'Rule:"self.replicas <= ", Message:"replicas must not exceed maxReplicas", MessageExpression:"", '
        'Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", OptionalOldSelf:(*bool)(nil)}: '
        "compilation failed: ERROR: <input>:1:18: Syntax error:")
    assert server.kubectl("get", "crd", "brokens.cel.example.com", check=False).returncode != 0
    # Rules are checked against the schema: a field it does not have is refused at once.
    typo = bad.replace('"self.replicas <= "', '"self.replicsa <= self.maxReplicas"')
    res = server.kubectl("create", "-f", "-", input=typo, check=False)
    assert res.stderr.strip().endswith(
        "compilation failed: ERROR: <input>:1:5: undefined field 'replicsa'\n"
        " | self.replicsa <= self.maxReplicas\n"
        " | ....^")
