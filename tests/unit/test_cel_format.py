"""Kubernetes' format and semver CEL libraries (kybernetes.cel.library_format), as
k8s.io/apiserver/pkg/cel/library/{format,semverlib}.go define them, in rules and policies."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.api.validation import Path
from kybernetes.apiserver.cel import CompileError, EvalError, compile_expression, crdrules
from kybernetes.cel.library_format import rewrite

SELF = ("self",)
LABEL_MESSAGE = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must "
                 "start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for "
                 "validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')")


def run(source: str, data: Any = None) -> Any:
    return compile_expression(source, SELF).evaluate({"self": data})


@pytest.mark.parametrize(("source", "want"), [
    ("format.dns1123Label().validate('my-name').hasValue()", False),
    ("format.dns1123Label().validate('My_Name').value()", [LABEL_MESSAGE]),
    ("format.dns1123Label().validate('a-').orValue([]).size()", 1),
    ("format.dns1123LabelPrefix().validate('my-prefix-').hasValue()", False),
    ("format.dns1123Subdomain().validate('apiextensions.k8s.io').hasValue()", False),
    ("format.dns1123SubdomainPrefix().validate('mysubdomain.prefix.-').hasValue()", False),
    ("format.dns1035Label().validate('1abc').hasValue()", True),
    ("format.dns1035LabelPrefix().validate('my-label-prefix-').hasValue()", False),
    ("format.qualifiedName().validate('apiextensions.k8s.io/v1beta1').hasValue()", False),
    ("format.labelValue().validate('-bad').hasValue()", True),
    ("format.uri().validate('http://example.com').hasValue()", False),
    ("format.uri().validate('example').value()", ['parse "example": invalid URI for request']),
    ("format.uuid().validate('123e4567-e89b-12d3-a456-426614174000').hasValue()", False),
    ("format.uuid().validate('123').value()", ["does not match the UUID format"]),
    ("format.byte().validate('aGVsbG8=').hasValue() || format.byte().validate('!').value() != ['invalid base64']",
     False),
    ("format.date().validate('2021-01-01').hasValue() || format.date().validate('2021-13-01').value() != "
     "['invalid date']", False),
    ("format.datetime().validate('2021-01-01T00:00:00Z').hasValue()", False),
    ("format.datetime().validate('yesterday').value()", ["invalid datetime"]),
    ("format.named('dns1123Label').hasValue() && !format.named('noSuchFormat').hasValue()", True),
    ("format.named('dns1035Label').value().validate('a-b').hasValue()", False),
    ("format.named('noSuchFormat').orValue(format.labelValue()).validate('x').hasValue()", False),
    # The rewrite leaves string literals alone, and nests.
    ("'.validate(x)' + format.dns1123Label().validate('ok').orValue(['none'])[0]", ".validate(x)none"),
    ("format.named(format.named('uuid').hasValue() ? 'uuid' : 'x').value().validate(\"ab\").value()",
     ["does not match the UUID format"]),
])
def test_format(source: str, want: Any) -> None:
    assert run(source) == want


@pytest.mark.parametrize(("source", "want"), [
    ("semver('1.2.3').major() == 1 && semver('1.2.3').minor() == 2 && semver('1.2.3').patch() == 3", True),
    ("isSemver('1.0.0') && !isSemver('hello') && !isSemver('v1.0')", True),
    ("isSemver('v1.0', true) && isSemver('01.01.01', true) && !isSemver('1.0-rc1', true)", True),
    ("semver('v1.0', true).compareTo(semver('1.0.0'))", 0),
    ("semver('01.01.01', true).minor()", 1),
    ("semver('1.2.3').compareTo(semver('2.0.0'))", -1),
    ("semver('1.2.3').compareTo(semver('0.1.2'))", 1),
    ("semver('1.0.0-alpha').isLessThan(semver('1.0.0'))", True),
    ("semver('1.0.0-alpha.1').isLessThan(semver('1.0.0-alpha.beta'))", True),
    ("semver('1.0.0-beta.11').isGreaterThan(semver('1.0.0-beta.2'))", True),
    ("semver('1.0.0-alpha').isLessThan(semver('1.0.0-alpha.1'))", True),
    ("semver('1.0.0+build.1').compareTo(semver('1.0.0+build.2'))", 0),
    ("semver('10.0.0').isGreaterThan(semver('9.99.99'))", True),
    # The quantity comparisons of the same names still work beside them.
    ("quantity('1Gi').isLessThan(quantity('2Gi')) && quantity('1').compareTo(quantity('1000m')) == 0", True),
])
def test_semver(source: str, want: Any) -> None:
    assert run(source) == want


@pytest.mark.parametrize(("source", "message"), [
    ("semver('200K')", "No Major.Minor.Patch elements found"),
    ("semver('01.0.0')", 'Major number must not contain leading zeroes "01"'),
    ("semver('1.0-rc1', true)", "short version cannot contain PreRelease/Build meta data"),
    ("format.labelValue().validate('x').value()", "optional.none() dereference"),
])
def test_errors(source: str, message: str) -> None:
    with pytest.raises(EvalError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        run(source)


@pytest.mark.parametrize("source", [
    "semver('1.0.0').isLessThan(quantity('1'))",
    "quantity('1').isLessThan(semver('1.0.0'))",
    "format.dns1123Label().validate(1)",
    "format.named(1)",
    "format.dns1123Label().validate('x').size()",
    "semver(1)",
])
def test_types_are_checked(source: str) -> None:
    with pytest.raises(CompileError, match="found no matching overload"):
        compile_expression(source, SELF)


def test_compile_errors_point_into_the_expression_as_written() -> None:
    """The rewrite inserts text; an error after it is reported at the column of the text as written."""
    source = "format.dns1123Label().validate(self).hasValue() ||\n  format.named('x').hasValue() && nope"
    with pytest.raises(CompileError) as e:
        compile_expression(source, SELF)
    assert str(e.value).splitlines() == [
        "ERROR: <input>:2:35: undeclared reference to 'nope' (in container '')",
        " |   format.named('x').hasValue() && nope",
        " | ..................................^",
    ]


def test_rewrite_leaves_other_expressions_unchanged() -> None:
    assert rewrite("self.validated && 'format.named(x)'.size() > 0") == (
        "self.validated && 'format.named(x)'.size() > 0", ())
    assert rewrite("format.named('a').value().validate(x)") == ("format.named('a')[?0].value().validate(x)[?0]",
                                                                 (17, 37))


def test_crd_rule_with_format_message_expression() -> None:
    """The use format.go documents: a rule on validate().hasValue(), its message the errors joined."""
    schema = {"type": "object", "properties": {"name": {"type": "string", "x-kubernetes-validations": [{
        "rule": "!format.dns1123Label().validate(self).hasValue()",
        "messageExpression": "format.dns1123Label().validate(self).value().join('; ')"}]}}}
    assert crdrules.rule_errors(schema, Path("schema")) == []
    validator = crdrules.compile_schema(schema)
    assert validator is not None
    assert validator.validate({"name": "ok-name"}, None) == []
    [err] = validator.validate({"name": "Not_OK"}, None)
    assert str(err) == f'name: Invalid value: "string": {LABEL_MESSAGE}'
