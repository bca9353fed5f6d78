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


ROSTERS_CRD = textwrap.dedent("""\
    apiVersion: apiextensions.k8s.io/v1
    kind: CustomResourceDefinition
    metadata:
      name: rosters.cel.example.com
    spec:
      group: cel.example.com
      scope: Namespaced
      names: {plural: rosters, singular: roster, kind: Roster}
      versions:
      - name: v1
        served: true
        storage: true
        schema:
          openAPIV3Schema:
            type: object
            properties:
              spec:
                type: object
                x-kubernetes-validations:
                - rule: "self.items.all(x, self.items.exists_one(y, x.name == y.name))"
                  message: names must be unique
                - rule: "!format.dns1123Label().validate(self.host).hasValue()"
                  messageExpression: "'host: ' + format.dns1123Label().validate(self.host).value().join(', ')"
                properties:
                  host: {type: string, maxLength: 63}
                  items:
                    type: array
                    items:
                      type: object
                      properties:
                        name: {type: string}
    """)


def test_crd_rule_cost_is_estimated_when_written(server: ServerProcess, namespace: str) -> None:
    """An unbounded list of unbounded strings makes a quadratic rule cost more than 100x the
    budget: the CRD is refused in apiextensions' words; bounded, it is accepted and its rules run
    (the format library's optional result among them)."""
    res = server.kubectl("create", "-f", "-", input=ROSTERS_CRD, check=False)
    assert res.returncode != 0
    rule = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule"
    hint = ("(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and "
            "strings are declared)")
    assert res.stderr.strip() == (
        'The CustomResourceDefinition "rosters.cel.example.com" is invalid: \n'
        f"* {rule}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x {hint}\n"
        f"* {rule}: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 "
        "schema\n"
        "* spec.versions[0].schema.openAPIV3Schema: Forbidden: x-kubernetes-validations estimated rule cost total "
        f"for entire OpenAPIv3 schema exceeds budget by factor of more than 100x {hint}")
    bounded = ROSTERS_CRD.replace("type: array\n", "type: array\n                maxItems: 20\n").replace(
        "name: {type: string}", "name: {type: string, maxLength: 64}")
    server.kubectl("create", "-f", "-", input=bounded)
    server.kubectl("wait", "--for=condition=Established", "crd/rosters.cel.example.com", "--timeout=10s")
    deadline = time.time() + 10
    while "rosters" not in server.kubectl("api-resources", "--api-group=cel.example.com").stdout:
        assert time.time() < deadline, "rosters never served"
        time.sleep(0.1)
    obj = textwrap.dedent("""\
        apiVersion: cel.example.com/v1
        kind: Roster
        metadata: {name: l1}
        spec: {host: HOST, items: [{name: a}, {name: a}]}
        """)
    res = server.kubectl("create", "-n", namespace, "-f", "-", input=obj, check=False)
    assert res.returncode != 0
    assert res.stderr.strip() == (
        'The Roster "l1" is invalid: \n'
        '* spec: Invalid value: "object": names must be unique\n'
        "* spec: Invalid value: \"object\": host: a lowercase RFC 1123 label must consist of lower case alphanumeric "
        "characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
        "regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")
    server.kubectl("create", "-n", namespace, "-f", "-",
                   input=obj.replace("HOST", "web").replace("{name: a}]", "{name: b}]"))
