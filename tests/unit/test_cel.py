"""The CEL layer (kybernetes.apiserver.cel): compilation, Kubernetes' libraries, cost bounds, and
CRD validation rules (x-kubernetes-validations) as apiextensions-apiserver 1.32 reports them."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.validation import Path
from kybernetes.apiserver.cel import CompileError, EvalError, compile_expression, cost, crdrules

SELF = ("self",)


def test_compiled_once_per_expression() -> None:
    assert compile_expression("self.a > 1", SELF) is compile_expression("self.a > 1", SELF)


@pytest.mark.parametrize(("source", "data", "want"), [
    ("self.replicas <= self.maxReplicas", {"replicas": 2, "maxReplicas": 3}, True),
    ("has(self.x) ? self.x : 'none'", {}, "none"),
    ("self.?x.orValue(7)", {}, 7),
    ("self.name.lowerAscii().split('-')", {"name": "A-B"}, ["a", "b"]),
    ("self.name.matches('^[a-z]+$')", {"name": "abc"}, True),
    ("cel.bind(n, size(self.l), n * 2)", {"l": [1, 2]}, 4),
    ("self.l.filter(x, x > 1).map(x, x * 10)", {"l": [1, 2, 3]}, [20, 30]),
    ("quantity(self.mem).isLessThan(quantity('1Gi'))", {"mem": "512Mi"}, True),
    ("quantity('1500m').compareTo(quantity('1.5'))", {}, 0),
    ("quantity('1Gi').add(quantity('512Mi')).isGreaterThan(quantity('1.4Gi'))", {}, True),
    ("quantity('1k').sub(1).asInteger()", {}, 999),
    ("isQuantity('1Gi') && !isQuantity('one')", {}, True),
    ("self.l.isSorted() && self.l.sum() == 6 && self.l.max() == 3 && self.l.min() == 1", {"l": [1, 2, 3]}, True),
    ("'abc123def456'.find('[0-9]+')", {}, "123"),
    ("'abc123def456'.findAll('[0-9]+')", {}, ["123", "456"]),
    ("url('https://u@example.com:8443/a%20b?x=1&x=2').getHost()", {}, "example.com:8443"),
    ("url('https://example.com:8443/a').getHostname() + url('https://example.com:8443/a').getPort()", {},
     "example.com8443"),
    ("url('https://e.com/a%20b?x=1&x=2').getEscapedPath()", {}, "/a%20b"),
    ("url('https://e.com/?x=1&x=2').getQuery()", {}, {"x": ["1", "2"]}),
    ("isURL('/path') && !isURL('not a url')", {}, True),
    ("ip('10.0.0.1').family() == 4 && ip('::1').isLoopback() && ip('1.2.3.4').isGlobalUnicast()", {}, True),
    ("isIP('::ffff:1.2.3.4') || ip.isCanonical('2001:db8::0:1')", {}, False),
    ("cidr('10.0.0.0/8').containsIP('10.1.2.3') && !cidr('10.0.0.0/8').containsIP(ip('11.1.2.3'))", {}, True),
    ("cidr('10.0.0.0/8').containsCIDR('10.1.0.0/16') && cidr('10.1.2.3/8').masked().prefixLength() == 8", {}, True),
    ("isCIDR('10.0.0.1')", {}, False),
    ("sets.contains([1, 2, 3], [1, 2]) && sets.equivalent([1, 2], [2, 1]) && !sets.intersects([1], [2])", {}, True),
])
def test_evaluates(source: str, data: dict[str, Any], want: Any) -> None:
    assert compile_expression(source, SELF).evaluate({"self": data}) == want


@pytest.mark.parametrize(("source", "data", "message"), [
    ("self.missing", {}, "no such key: missing"),
    ("self.l[3]", {"l": [1]}, "index out of bounds: 3"),
    ("1 / self.zero", {"zero": 0}, "division by zero"),
    ("quantity(self.q)", {"q": "lots"}, "quantities must match the regular expression"),
    ("quantity('1').getHost()", {}, "no such overload"),
    ("'x'.find('(a)\\\\1')", {}, "given regex is invalid"),
    ("ip(self.ip)", {"ip": "x"}, 'IP Address "x" parse error during conversion from string'),
])
def test_evaluation_errors_in_cel_go_words(source: str, data: dict[str, Any], message: str) -> None:
    with pytest.raises(EvalError, match=message):
        compile_expression(source, SELF).evaluate({"self": data})


@pytest.mark.parametrize(("source", "issue"), [
    ("self.a >", "ERROR: <input>:1:9: Syntax error: mismatched input '<EOF>'"),
    ("nope == 1", "ERROR: <input>:1:1: undeclared reference to 'nope' (in container '')"),
    ("'a' + 1", "found no matching overload for '_+_' applied to '(string, int)'"),
    ("quantity('1').isLessThan(1)", "found no matching overload for 'isLessThan'"),
])
def test_compile_errors_in_cel_go_words(source: str, issue: str) -> None:
    with pytest.raises(CompileError) as e:
        compile_expression(source, SELF)
    assert str(e.value).startswith(issue) or issue in str(e.value)
    assert not str(e.value).startswith("INVALID_ARGUMENT")


def test_regexes_cannot_backtrack_forever() -> None:
    program = compile_expression("self.s.find('(a+)+$') == '' && !self.s.matches('(a+)+$')", SELF)
    assert program.evaluate({"self": {"s": "a" * 50_000 + "!"}}) is True  # instant with RE2


def test_cost_bound_grows_with_nesting_and_width() -> None:
    flat = compile_expression("self.l.all(x, x > 0)", SELF)
    nested = compile_expression("self.l.all(x, self.l.all(y, x != y || x == y))", SELF)
    assert (flat.macro_depth, nested.macro_depth) == (1, 2)
    assert cost.macro_depth("'.all(' == 'x'") == 0  # inside a string literal it is no macro
    assert nested.cost_bound(3000) > cost.PER_CALL_LIMIT >= flat.cost_bound(3000)
    with pytest.raises(EvalError, match="operation cancelled: actual cost limit exceeded"):
        nested.evaluate({"self": {"l": list(range(3000))}}, cost.width({"l": list(range(3000))}))
    assert cost.width({"a": [1, 2, 3], "b": "xxxxx"}) == 5
    # cel-cpp's own iteration limit is reported as the per-call cost limit too
    with pytest.raises(EvalError, match="operation cancelled: actual cost limit exceeded"):
        flat.evaluate({"self": {"l": [1] * 10000}})


SCHEMA: dict[str, Any] = {
    "type": "object",
    "x-kubernetes-validations": [{"rule": "self.metadata.name.startsWith('a')", "message": "name must start with a"}],
    "properties": {
        "spec": {
            "type": "object",
            "x-kubernetes-validations": [
                {"rule": "self.replicas <= self.maxReplicas", "message": "replicas must not exceed maxReplicas"},
                {"rule": "self.replicas >= oldSelf.replicas", "reason": "FieldValueForbidden", "fieldPath": ".replicas",
                 "messageExpression": "'replicas may not shrink below ' + string(oldSelf.replicas)"},
                {"rule": "self.mode == oldSelf.mode", "message": "mode is immutable"},
                {"rule": "!oldSelf.hasValue() || oldSelf.value().mode != 'locked'", "optionalOldSelf": True,
                 "message": "locked"},
            ],
            "properties": {
                "replicas": {"type": "integer"}, "maxReplicas": {"type": "integer"}, "mode": {"type": "string"},
                "ports": {
                    "type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"],
                    "items": {"type": "object", "x-kubernetes-validations": [{"rule": "self.port >= oldSelf.port"}],
                              "properties": {"name": {"type": "string"}, "port": {"type": "integer"}}},
                },
                "host": {"type": "string", "x-kubernetes-validations": [
                    {"rule": "self.endsWith('.example')", "reason": "FieldValueRequired", "message": "must be .example"}]},
            },
        },
    },
}


def _obj(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "x.io/v1", "kind": "K", "metadata": {"name": name}, "spec": spec}


def _errors(obj: Any, old: Any = None) -> list[str]:
    validator = crdrules.compile_schema(SCHEMA)
    assert validator is not None
    return [str(e) for e in validator.validate(obj, old, has_old=old is not None)]


def test_rules_on_create_skip_transition_rules() -> None:
    assert _errors(_obj("abc", replicas=1, maxReplicas=2, mode="x")) == []
    assert _errors(_obj("bob", replicas=3, maxReplicas=2, host="h.other")) == [
        '<nil>: Invalid value: "object": name must start with a',
        'spec: Invalid value: "object": replicas must not exceed maxReplicas',
        "spec.host: Required value: must be .example",
    ]


def test_transition_rules_on_update() -> None:
    old = _obj("abc", replicas=4, maxReplicas=9, mode="a", ports=[{"name": "p", "port": 80}, {"name": "q", "port": 9}])
    new = _obj("abc", replicas=2, maxReplicas=9, mode="b", ports=[{"name": "p", "port": 70}, {"name": "new", "port": 1}])
    assert _errors(new, old) == [
        "spec.replicas: Forbidden: replicas may not shrink below 4",
        'spec: Invalid value: "object": mode is immutable',
        # only the item whose key has an old value is compared
        'spec.ports[0]: Invalid value: "object": failed rule: self.port >= oldSelf.port',
    ]
    assert _errors(_obj("abc", replicas=1, maxReplicas=2, mode="locked"),
                   _obj("abc", replicas=1, maxReplicas=2, mode="locked")) == ['spec: Invalid value: "object": locked']


def test_number_fields_are_doubles_even_when_written_as_integers() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [
        {"rule": "self.ratio * 2.0 <= 3.0 && self.count + 1 > 1", "message": "bad ratio"}],
        "properties": {"ratio": {"type": "number"}, "count": {"type": "integer"}}}}}
    validator = crdrules.compile_schema(schema)
    assert validator is not None
    assert validator.validate({"spec": {"ratio": 1, "count": 1}}, None) == []
    assert [str(e) for e in validator.validate({"spec": {"ratio": 2, "count": 1}}, None)] == [
        'spec: Invalid value: "object": bad ratio']


def test_formats_typed_as_kubernetes_types_them() -> None:
    schema = {"type": "object", "x-kubernetes-validations": [
        {"rule": "self.start < self.end && self.end - self.start >= self.timeout && size(self.data) == 3"}],
        "properties": {"start": {"type": "string", "format": "date-time"}, "end": {"type": "string", "format": "date"},
                       "timeout": {"type": "string", "format": "duration"}, "data": {"type": "string", "format": "byte"}}}
    validator = crdrules.compile_schema(schema)
    assert validator is not None
    ok = {"start": "2026-01-01T10:00:00Z", "end": "2026-01-02", "timeout": "1h30m", "data": "YWJj"}
    assert validator.validate(ok, None) == []
    assert len(validator.validate({**ok, "timeout": "24h"}, None)) == 1


def test_self_has_the_type_of_a_scalar_node() -> None:
    def schema(node: dict[str, Any], rule: str) -> dict[str, Any]:
        return {"type": "object", "properties": {"f": {**node, "x-kubernetes-validations": [{"rule": rule}]}}}

    bad = [str(e) for e in crdrules.rule_errors(schema({"type": "integer"}, "self.startsWith('a')"), Path("s"))]
    assert len(bad) == 1 and "found no matching overload for 'startsWith' applied to '(int, string)'" in bad[0]
    bad = [str(e) for e in crdrules.rule_errors(schema({"type": "array", "items": {"type": "integer"}},
                                                        "self.all(x, x.startsWith('a'))"), Path("s"))]
    assert len(bad) == 1 and "found no matching overload for 'startsWith' applied to '(int, string)'" in bad[0]
    for node, rule, value in [({"type": "integer"}, "self > 0", 1), ({"type": "integer"}, "self < 1.5", 1), ({"type": "number"}, "self * 2.0 > 1.0", 1),
                              ({"type": "string"}, "self.startsWith('a')", "ab"), ({"type": "boolean"}, "self", True),
                              ({"type": "string", "format": "date-time"}, "self.getFullYear() == 2026",
                               "2026-03-01T00:00:00Z"),
                              ({"x-kubernetes-int-or-string": True}, "self == 'a' || self == 1", 1),
                              ({"type": "array", "items": {"type": "integer"}}, "self.all(x, x > 0)", [1, 2]),
                              ({"type": "object", "additionalProperties": {"type": "string"}},
                               "self.all(k, self[k].size() < 5)", {"a": "b"})]:
        s = schema(node, rule)
        assert crdrules.rule_errors(s, Path("s")) == [], rule
        validator = crdrules.compile_schema(s)
        assert validator is not None and validator.validate({"f": value}, None) == [], rule


@pytest.mark.parametrize(("where", "rule", "issue"), [
    ("spec", "self.replicsa > 1", "ERROR: <input>:1:5: undefined field 'replicsa'\n | self.replicsa > 1"),
    ("root", "self.metadata.labels.size() > 0", "undefined field 'labels'"),  # only name and generateName
    ("spec", "self.ports.all(p, p.nope > 0)", "undefined field 'nope'"),
    ("spec", "self.mode > 1", "found no matching overload for '_>_' applied to '(string, int)'"),
    ("spec", "self.ports.all(p, p.port > 0) && self.labels['a'] == 'b' && self.free.anything == 1 && "
             "self.ios == 'x' && self.metadata.name == ''", None),
    ("spec", "self.replicas > 1.5 || self.replicas == 2.0", None),  # cross-type numeric comparisons
    ("spec", "self.replicas + 1.5 > 0", "found no matching overload for '_+_' applied to '(int, double)'"),
])
def test_rules_checked_against_the_schema(where: str, rule: str, issue: str | None) -> None:
    spec = {"type": "object", "properties": {
        "replicas": {"type": "integer"}, "mode": {"type": "string"},
        "ports": {"type": "array", "items": {"type": "object", "properties": {"port": {"type": "integer"}}}},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
        "ios": {"x-kubernetes-int-or-string": True},
        "metadata": {"type": "object", "properties": {"name": {"type": "string"}}}}}
    schema = {"type": "object", "properties": {"spec": spec}}
    (schema if where == "root" else spec)["x-kubernetes-validations"] = [{"rule": rule}]
    errs = [str(e) for e in crdrules.rule_errors(schema, Path("s"))]
    if issue is None:
        assert errs == []
    else:
        assert len(errs) == 1 and issue in errs[0] and "not found in struct" not in errs[0]


def test_schemas_protobuf_cannot_express_are_not_checked() -> None:
    # fooBar and foo_bar have one JSON name in protobuf; a rule inside unknown fields; a nullable field
    spec = {"type": "object", "x-kubernetes-validations": [{"rule": "self.foo_bar == 1 && self.n == null"}],
            "properties": {"foo_bar": {"type": "integer"}, "fooBar": {"type": "integer"},
                           "n": {"type": "integer", "nullable": True},
                           "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {
                               "inner": {"type": "object", "x-kubernetes-validations": [{"rule": "self.any > 1"}]}}}}}
    assert crdrules.rule_errors({"type": "object", "properties": {"spec": spec}}, Path("s")) == []
    del spec["properties"]["fooBar"]
    assert crdrules.rule_errors({"type": "object", "properties": {"spec": spec}}, Path("s")) == []


def test_unchanged_values_are_ratcheted() -> None:
    # Written before the rule existed: an update that leaves spec alone passes, one that touches it fails.
    old = _obj("abc", replicas=5, maxReplicas=2, mode="a")
    assert _errors(_obj("abc", replicas=5, maxReplicas=2, mode="a"), old) == []
    assert _errors(_obj("abc", replicas=6, maxReplicas=2, mode="a"), old) == [
        'spec: Invalid value: "object": replicas must not exceed maxReplicas']
    # The root changed (its spec did), so the root rule is checked; an old name keeps failing there.
    assert _errors(_obj("bob", replicas=1, maxReplicas=2, mode="a"), _obj("bob", replicas=1, maxReplicas=3,
                                                                          mode="a")) == [
        '<nil>: Invalid value: "object": name must start with a']


def test_rule_errors_on_crd() -> None:
    schema = {"type": "object", "properties": {"spec": {"type": "object", "x-kubernetes-validations": [
        {"rule": "self.x >"}, {"rule": "1 == 1", "reason": "Nope", "fieldPath": ".nope"}, {"rule": ""},
        {"rule": "true", "messageExpression": "oops("}],
        "properties": {"l": {"type": "array", "items": {"type": "object", "x-kubernetes-validations": [
            {"rule": "self == oldSelf"}]}}}}}}
    p = Path("spec", "versions").index(0).child("schema", "openAPIV3Schema")
    errs = [str(e) for e in crdrules.rule_errors(schema, p)]
    base = "spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations"
    assert errs[0].startswith(
        f'{base}[0].rule: Invalid value: apiextensions.ValidationRule{{Rule:"self.x >", Message:"", '
        'MessageExpression:"", Reason:(*apiextensions.FieldValueErrorReason)(nil), FieldPath:"", '
        "OptionalOldSelf:(*bool)(nil)}: compilation failed: ERROR: <input>:1:9: Syntax error:")
    assert errs[1] == (f'{base}[1].reason: Unsupported value: "Nope": supported values: "FieldValueInvalid", '
                       '"FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"')
    assert errs[2].startswith(f'{base}[1].fieldPath: Invalid value: ".nope": fieldPath must be a valid path')
    assert errs[3] == f"{base}[2].rule: Required value: rule is not specified"
    assert "messageExpression compilation failed: ERROR: <input>:1:6:" in errs[4]
    assert errs[4].startswith(f"{base}[3].messageExpression: Invalid value: apiextensions.ValidationRule{{")
    assert errs[5].startswith("spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[l].items."
                              "x-kubernetes-validations[0].rule: Invalid value: \"self == oldSelf\": oldSelf cannot")
    assert len(errs) == 6


def test_rule_messages_on_crd() -> None:
    schema = {"type": "object", "x-kubernetes-validations": [
        {"rule": "true", "message": "two\nlines"}, {"rule": "true &&\n true"}, {"rule": "true", "message": " "},
        {"rule": "true", "messageExpression": "  "}]}
    errs = [str(e) for e in crdrules.rule_errors(schema, Path("s"))]
    assert errs == [
        's.x-kubernetes-validations[0].message: Invalid value: "two\nlines": message must not contain line breaks',
        "s.x-kubernetes-validations[1].message: Required value: message must be specified if rule contains line "
        "breaks",
        's.x-kubernetes-validations[2].message: Invalid value: " ": message must be non-empty if specified',
        "s.x-kubernetes-validations[3].messageExpression: Required value: messageExpression must be non-empty if "
        "specified",
    ]


def test_one_request_shares_the_cost_budget() -> None:
    rule = {"rule": "self.all(x, x.size() < 100 && x.startsWith('x') && x.endsWith('x'))"}
    schema = {"type": "object", "properties": {f"l{i}": {"type": "array", "items": {"type": "string"},
                                                          "x-kubernetes-validations": [rule]} for i in range(100)}}
    validator = crdrules.compile_schema(schema)
    assert validator is not None
    wide = ["x"] * 5000
    errs = [str(e) for e in validator.validate({f"l{i}": wide for i in range(100)}, None)]
    assert errs[-1].endswith(cost.BUDGET_EXCEEDED)
    assert len(errs) == 1


@pytest.mark.parametrize(("source", "want"), [
    ("[1, 2, 2, 3].indexOf(2)", 1),
    ("['a', 'b', 'b', 'c'].lastIndexOf('b')", 2),
    ("[1.0].indexOf(1.1)", -1),
    ("[].indexOf('string')", -1),
    ("[].lastIndexOf('string')", -1),
    ("[1, 2u, 3.0].indexOf(3)", 2),
    ("[true, 1].indexOf(1)", 1),
    ("[1, true].lastIndexOf(true)", 1),
    ("[[1], [2], [2]].lastIndexOf([2])", 2),
    ("[{'a': 1}, {'a': true}].indexOf({'a': true})", 1),
    ("self.l.indexOf(self.x)", 1),
    ("'abcb'.indexOf('b') + 'abcb'.lastIndexOf('b') + 'abcb'.indexOf('b', 2)", 1 + 3 + 3),
    ("self.s.indexOf('b') == 1 && self.s.lastIndexOf('c') == 2", True),
])
def test_lists_index_of_beside_the_strings_extension(source: str, want: Any) -> None:
    """Kubernetes' lists library (lists.go) ``indexOf``/``lastIndexOf``: -1 when absent, CEL
    equality (a bool is not a number); the strings extension's functions of those names still work."""
    data = {"l": ["x", {"k": [1]}, 3], "x": {"k": [1.0]}, "s": "abc"}
    assert compile_expression(source, SELF).evaluate({"self": data}) == want


@pytest.mark.parametrize(("source", "message"), [
    ("self.n.indexOf(1)", "no such overload"),
    ("self.s.lastIndexOf(1)", "no such overload"),
    ("'abc'.indexOf('b', 9)", "index out of range: 9"),
])
def test_lists_index_of_errors(source: str, message: str) -> None:
    with pytest.raises(EvalError, match=message):
        compile_expression(source, SELF).evaluate({"self": {"n": 5, "s": "abc"}})


@pytest.mark.parametrize("source", ["[1].indexOf()", "[1].lastIndexOf(1, 2)", "{'a': 1}.indexOf('a')"])
def test_lists_index_of_compile_errors(source: str) -> None:
    with pytest.raises(CompileError, match=r"(no matching overload for|undeclared reference to) '(last)?[iI]ndexOf'"):
        compile_expression(source, SELF)
