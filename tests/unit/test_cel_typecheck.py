"""Type checking of ValidatingAdmissionPolicies against the kinds they match
(kybernetes.cel.typecheck), as kube-controller-manager fills status.typeChecking."""

from __future__ import annotations

from kybernetes.api import schema
from kybernetes.cel.typecheck import (
    MAX_TYPES_TO_CHECK,
    expression_warnings,
    gvk_string,
    kinds_to_check,
    schema_from_openapi_v3,
    structural,
)

KINDS = {("apps", "v1", "deployments"): "Deployment", ("apps", "v1", "statefulsets"): "StatefulSet",
         ("", "v1", "configmaps"): "ConfigMap"}


def kinds_for(group: str, version: str, resource: str) -> list[tuple[str, str, str]]:
    kind = KINDS.get((group, version, resource))
    return [(group, version, kind)] if kind else []


def policy(*expressions: str, rules: list[dict[str, list[str]]] | None = None) -> dict:
    return {"spec": {"matchConstraints": {"resourceRules": rules or []},
                     "validations": [{"expression": e} for e in expressions]}}


def test_kinds_named_exactly_are_checked_sorted() -> None:
    p = policy(rules=[
        {"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": ["statefulsets", "deployments/scale", "*",
                                                                     "deployments"]},
        {"apiGroups": ["*"], "apiVersions": ["v1"], "resources": ["configmaps"]},
        {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps", "nosuchresources"]}])
    assert kinds_to_check(p, kinds_for) == [("", "v1", "ConfigMap"), ("apps", "v1", "Deployment"),
                                            ("apps", "v1", "StatefulSet")]
    many = policy(rules=[{"apiGroups": ["apps"], "apiVersions": ["v1"], "resources": [f"r{i}" for i in range(20)]}])
    assert len(kinds_to_check(many, lambda g, v, r: [(g, v, r.upper())])) == MAX_TYPES_TO_CHECK


def test_gvk_as_go_prints_it() -> None:
    assert gvk_string(("apps", "v1", "Deployment")) == "apps/v1, Kind=Deployment"
    assert gvk_string(("", "v1", "Pod")) == "/v1, Kind=Pod"


def test_structural_schema_of_a_built_in_kind() -> None:
    s = structural(schema.for_kind("apps", "v1", "Deployment"))
    spec = s["properties"]["spec"]
    assert spec["properties"]["replicas"] == {"type": "integer"}
    assert s["properties"]["metadata"]["properties"]["creationTimestamp"] == {"type": "string", "format": "date-time"}
    assert s["properties"]["metadata"]["properties"]["labels"] == {"type": "object",
                                                                    "additionalProperties": {"type": "string"}}
    container = spec["properties"]["template"]["properties"]["spec"]["properties"]["containers"]["items"]
    assert container["properties"]["resources"]["properties"]["limits"]["additionalProperties"] == {
        "x-kubernetes-int-or-string": True}
    # A type that contains itself (JSONSchemaProps) is left open where it recurs.
    crd = structural(schema.for_kind("apiextensions.k8s.io", "v1", "CustomResourceDefinition"))
    props = crd["properties"]["spec"]["properties"]["versions"]["items"]["properties"]["schema"]["properties"][
        "openAPIV3Schema"]["properties"]
    assert props["not"]["x-kubernetes-preserve-unknown-fields"] is True


def test_warnings_per_expression_and_kind() -> None:
    p = policy("object.spec.replicas > 0 && object.metadata.labels['a'] == 'b'", "object.spec.replicsa > 0",
               "object.spec.replicas > 0.5")
    p["spec"]["validations"][0]["messageExpression"] = "params.dataa"
    kinds = [(g, schema.for_kind(*g)) for g in (("apps", "v1", "Deployment"), ("apps", "v1", "NoSuchKind"))]
    warnings = expression_warnings(p, kinds, schema.for_kind("", "v1", "ConfigMap"))
    assert warnings == [
        {"fieldRef": "spec.validations[0].messageExpression", "warning": (
            "apps/v1, Kind=Deployment: ERROR: <input>:1:7: undefined field 'dataa'\n | params.dataa\n"
            " | ......^\n")},
        {"fieldRef": "spec.validations[1].expression", "warning": (
            "apps/v1, Kind=Deployment: ERROR: <input>:1:12: undefined field 'replicsa'\n"
            " | object.spec.replicsa > 0\n | ...........^\n")}]
    # Without a paramKind, params is dyn: anything goes.
    assert expression_warnings(policy("params.anything.at.all"), kinds, None) == []


def test_schema_from_the_published_openapi_v3() -> None:
    document = {"components": {"schemas": {
        "com.example.v1.Widget": {"type": "object", "x-kubernetes-group-version-kind": [
            {"group": "example.com", "version": "v1", "kind": "Widget"}], "properties": {
            "metadata": {"allOf": [{"$ref": "#/components/schemas/meta.ObjectMeta"}], "default": {}},
            "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}},
        "meta.ObjectMeta": {"type": "object", "properties": {"name": {"type": "string"}}}}}}
    widget = schema_from_openapi_v3(document, ("example.com", "v1", "Widget"))
    assert widget is not None
    assert structural(widget)["properties"]["metadata"] == {"type": "object", "properties": {
        "name": {"type": "string"}}}
    assert schema_from_openapi_v3(document, ("example.com", "v1", "Gadget")) is None
