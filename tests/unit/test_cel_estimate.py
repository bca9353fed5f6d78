"""Static cost estimates of CRD validation rules (kybernetes.apiserver.cel.estimate) and the AST
they are computed on (kybernetes.cel.ast), as apiextensions refuses a CRD whose rules cost too much."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.validation import Path
from kybernetes.apiserver.cel import compile_expression, crdrules
from kybernetes.apiserver.cel.estimate import (
    MAX_REQUEST_SIZE_BYTES,
    cost_error_message,
    expression_cost,
    max_size,
    min_json_size,
)
from kybernetes.cel.ast import parse
from kybernetes.cel.environment import check, checking_environment

ROOT = Path("spec", "versions").index(0).child("schema", "openAPIV3Schema")
HINT = ("(try simplifying the rule, or adding maxItems, maxProperties, and maxLength where arrays, maps, and "
        "strings are declared)")


def cost_of(source: str, schema: dict[str, Any]) -> int:
    return expression_cost(compile_expression(source, ("oldSelf", "self")), schema)


def test_ast_of_a_macro_is_a_comprehension() -> None:
    node = parse(check(checking_environment(("self",)), "self.l.all(x, x.startsWith('a'))").serialize())
    assert node.kind == "comprehension" and node.name == "x"
    assert node.loop["range"].kind == "select" and node.loop["range"].name == "l"
    step = node.loop["step"]
    assert step.name == "_&&_" and step.args[1].name == "startsWith" and step.args[1].args[0].value == "a"


def test_sizes_from_the_schema() -> None:
    assert max_size({"type": "string", "maxLength": 5}) == 5
    assert max_size({"type": "string"}) == MAX_REQUEST_SIZE_BYTES - 2
    assert max_size({"type": "string", "format": "date"}) == 12
    assert max_size({"type": "string", "enum": ["a", "abc"]}) == 3
    assert max_size({"type": "array", "maxItems": 7, "items": {"type": "string"}}) == 7
    # Unbounded: as many of the smallest items ("" and a comma) as fit in the largest request.
    assert max_size({"type": "array", "items": {"type": "string"}}) == (MAX_REQUEST_SIZE_BYTES - 2) // 3
    assert min_json_size({"type": "object", "required": ["ab", "c"], "properties": {
        "ab": {"type": "integer"}, "c": {"type": "string", "default": "x"}}}) == 2 + 2 + 4 + 1


@pytest.mark.parametrize(("source", "want"), [
    ("self.n > 1", 3),  # self, .n, >
    ("self.names.all(x, x.startsWith('a'))", 73),
    ("self.names.exists(x, x == 'abc')", 73),
    ("size(self.names) < 3", 4),
    ("'a' in self.names", 13),
])
def test_costs_of_common_shapes(source: str, want: int) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "names": {
        "type": "array", "maxItems": 10, "items": {"type": "string", "maxLength": 20}}}}
    assert cost_of(source, schema) == want


def test_cost_grows_with_the_bounds() -> None:
    def schema(items: int, length: int) -> dict[str, Any]:
        return {"type": "object", "properties": {"l": {"type": "array", "maxItems": items, "items": {
            "type": "string", "maxLength": length}}}}
    nested = "self.l.all(x, self.l.exists(y, x == y))"
    assert cost_of(nested, schema(20, 10)) < cost_of(nested, schema(40, 10)) < cost_of(nested, schema(40, 100))
    assert cost_of("self.l.all(x, x.matches('^[a-z]+$'))", schema(10, 100)) > \
        cost_of("self.l.all(x, x.startsWith('^[a-z]+$'))", schema(10, 100))


def test_cost_error_message_formats_the_factor_as_go_does() -> None:
    assert cost_error_message("estimated rule cost", 12_000_000, 10_000_000) == \
        f"estimated rule cost exceeds budget by factor of 1.200000x {HINT}"
    assert cost_error_message("estimated rule cost", 25_000_000, 10_000_000) == \
        f"estimated rule cost exceeds budget by factor of 2.5x {HINT}"
    assert cost_error_message("estimated rule cost", 10**10, 10_000_000) == \
        f"estimated rule cost exceeds budget by factor of more than 100x {HINT}"


def _crd_schema(rule: dict[str, Any], items: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [rule],
                                                      "properties": {"l": {"type": "array", "items": items}}}}}


def test_a_quadratic_rule_over_an_unbounded_list_is_refused() -> None:
    schema = _crd_schema({"rule": "self.l.all(x, self.l.exists(y, x == y))"}, {"type": "string"})
    rule = f"{ROOT}.properties[spec].x-kubernetes-validations[0].rule"
    assert [str(e) for e in crdrules.rule_errors(schema, ROOT)] == [
        f"{rule}: Forbidden: estimated rule cost exceeds budget by factor of more than 100x {HINT}",
        f"{rule}: Forbidden: contributed to estimated rule cost total exceeding cost limit for entire OpenAPIv3 "
        "schema",
        f"{ROOT}: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 schema exceeds "
        f"budget by factor of more than 100x {HINT}",
    ]
    bounded = _crd_schema({"rule": "self.l.all(x, self.l.exists(y, x == y))"},
                          {"type": "string", "maxLength": 64})
    bounded["properties"]["spec"]["properties"]["l"]["maxItems"] = 100
    assert crdrules.rule_errors(bounded, ROOT) == []


def test_a_rule_on_list_items_costs_once_per_item() -> None:
    """A cheap rule at the items of an unbounded list runs up to a million times per object."""
    per_item = {"type": "string", "x-kubernetes-validations": [{"rule": "self.startsWith('a')"}]}
    schema = {"type": "object", "properties": {"l": {"type": "array", "items": per_item}}}
    [err, *_] = crdrules.rule_errors(schema, ROOT)
    assert str(err).startswith(f"{ROOT}.properties[l].items.x-kubernetes-validations[0].rule: Forbidden: "
                               "estimated rule cost exceeds budget by factor of more than 100x")
    schema["properties"]["l"]["maxItems"] = 1000
    per_item["maxLength"] = 253
    assert crdrules.rule_errors(schema, ROOT) == []


def test_message_expression_cost_is_checked_too() -> None:
    schema = _crd_schema({"rule": "true", "messageExpression": "self.l.map(x, self.l.join(x)).join(',')"},
                         {"type": "string"})
    errs = [str(e) for e in crdrules.rule_errors(schema, ROOT)]
    assert errs[0] == (f"{ROOT}.properties[spec].x-kubernetes-validations[0].messageExpression: Forbidden: "
                       f"estimated messageExpression cost exceeds budget by factor of more than 100x {HINT}")


def test_the_schema_total_counts_every_rule() -> None:
    """Rules each under the per-rule limit but together over the schema's: the four most expensive
    are named, then the total."""
    rule = {"rule": "self.l.all(x, x.contains('abc'))"}
    per = {"type": "object", "x-kubernetes-validations": [rule] * 3, "properties": {"l": {
        "type": "array", "maxItems": 1000, "items": {"type": "string", "maxLength": 50_000}}}}
    one = cost_of(rule["rule"], per)
    assert 4_000_000 < one < 10_000_000
    schema = {"type": "object", "properties": {f"p{i}": per for i in range(7)}}
    errs = [str(e) for e in crdrules.rule_errors(schema, ROOT)]
    assert len(errs) == 5
    assert all(e.endswith("Forbidden: contributed to estimated rule cost total exceeding cost limit for entire "
                          "OpenAPIv3 schema") for e in errs[:4])
    assert errs[4] == (f"{ROOT}: Forbidden: x-kubernetes-validations estimated rule cost total for entire OpenAPIv3 "
                       f"schema exceeds budget by factor of {cost_error_message('', 21 * one, 100_000_000).split()[5]}"
                       f" {HINT}")


def test_an_unchanged_schema_is_not_refused_for_one_rule_on_update() -> None:
    """apiextensions suppresses the per-rule cost check for a version whose schema an update does
    not change (a CRD stored before could otherwise never be updated); the total still counts."""
    from kybernetes.apiserver.registry.crds import crd_strategy
    item = {"type": "string", "x-kubernetes-validations": [{"rule": "self.size() < 10 && self.startsWith('a')"}]}
    schema = {"type": "object", "properties": {"l": {"type": "array", "maxItems": 100, "items": item}}}
    one_rule = cost_of(item["x-kubernetes-validations"][0]["rule"], item) * 100
    assert 10_000_000 < one_rule < 100_000_000
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "things.example.com"},
           "spec": {"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "things", "singular": "thing", "kind": "Thing", "listKind": "ThingList"},
                    "versions": [{"name": "v1", "served": True, "storage": True,
                                  "schema": {"openAPIV3Schema": schema}}]}}
    refused = [str(e) for e in crd_strategy.validate(crd)]
    assert [e.split(": Forbidden: ")[1][:40] for e in refused] == ["estimated rule cost exceeds budget by fa"]
    relabelled = {**crd, "metadata": {**crd["metadata"], "labels": {"a": "b"}}}
    assert not any("cost" in str(e) for e in crd_strategy.validate_update(relabelled, crd))
