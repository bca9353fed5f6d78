"""Label and field selectors: Kubernetes' grammar, error texts, matching and the object form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kybernetes import errors
from kybernetes.api import field_selectors
from kybernetes.api import label_selectors as s
from kybernetes.api.field_selectors import FieldSelector, field_getter, object_fields, parse_field_selector
from kybernetes.api.label_selectors import (
    LabelSelector,
    from_label_selector_object,
    parse_label_selector,
    validate_label_selector_object,
)

# --- label selector grammar ------------------------------------------------------------------

PARSES = [
    # (input, canonical string)
    ("", ""),
    ("   ", ""),
    ("a=b", "a=b"),
    ("a==b", "a==b"),
    ("a!=b", "a!=b"),
    ("a", "a"),
    ("!a", "!a"),
    (" ! a ", "!a"),
    ("a in (x,y)", "a in (x,y)"),
    ("a in (y, x , x)", "a in (x,y)"),
    ("a notin (x)", "a notin (x)"),
    ("a>1,b<3", "a>1,b<3"),
    ("z=1,a=2", "a=2,z=1"),  # requirements print sorted by key
    ("  x in (foo,,baz), y ,z notin ()", "x in (,baz,foo),y,z notin ()"),
    ("a=", "a="),
    ("a=,b", "a=,b"),
    ("a in ()", "a in ()"),  # Kubernetes reads () as the set holding ""
    ("a in (b,)", "a in (,b)"),
    ("in=notin", "in=notin"),  # keywords are plain words where keys and values go
    ("a in (in,notin)", "a in (in,notin)"),
    ("example.com/app=web-1", "example.com/app=web-1"),
    ("a\t=\tb", "a=b"),
    ("a=b\x00,c", "a=b"),  # the lexer stops at NUL, like Go's
]


@pytest.mark.parametrize(("text", "canonical"), PARSES)
def test_label_selector_parses(text: str, canonical: str) -> None:
    sel = parse_label_selector(text)
    assert str(sel) == canonical
    # The canonical form parses to the same selector.
    assert parse_label_selector(str(sel)) == sel


ERRORS = [
    ("a in (", "unable to parse requirement: found '', expected: ',', ')' or identifier"),
    ("a in", "unable to parse requirement: found '' expected: '('"),
    ("a in b", "unable to parse requirement: found 'b' expected: '('"),
    ("a in (b c)", "unable to parse requirement: found 'c', expected: ',' or ')'"),
    ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
    ("a!b", "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"),
    (",a", "found ',', expected: !, identifier, or 'end of string'"),
    ("a,", "found '', expected: identifier after ','"),
    ("a=b c", "found 'c', expected: ',' or 'end of string'"),
    ("x==a==b", "found '==', expected: ',' or 'end of string'"),
    ("!a=b", "found '=', expected: ',' or 'end of string'"),
    ("!!a", "unable to parse requirement: found '!', expected: identifier"),
    ("!", "unable to parse requirement: found '', expected: identifier"),
    ("a=(", "unable to parse requirement: found '(', expected: identifier"),
    ("a>x", "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_label_selector_syntax_errors(text: str, message: str) -> None:
    with pytest.raises(errors.BadRequest) as info:
        parse_label_selector(text)
    assert info.value.message == message
    assert info.value.code == 400


@pytest.mark.parametrize("text", ["-a=b", "A/b=c", "a/b/c", "a" * 64, "x=a||y=b", "a=b/c", "a=-b", "a in (x,-y)"])
def test_label_selector_invalid_keys_and_values(text: str) -> None:
    with pytest.raises(errors.BadRequest) as info:
        parse_label_selector(text)
    assert info.value.message.startswith("unable to parse requirement: ")
    assert "Invalid value" in info.value.message


def test_bad_key_message_has_kubernetes_nil_path() -> None:
    with pytest.raises(errors.BadRequest) as info:
        parse_label_selector("-a=b")
    assert info.value.message.startswith('unable to parse requirement: <nil>: Invalid value: "-a": name part must')


def test_bad_value_message_names_the_value_path() -> None:
    with pytest.raises(errors.BadRequest) as info:
        parse_label_selector("app=b/c")
    assert info.value.message.startswith('unable to parse requirement: values[0][app]: Invalid value: "b/c": ')


# --- label selector matching -----------------------------------------------------------------

MATCHES = [
    ("", {}, True),
    ("", None, True),
    ("a=b", {"a": "b"}, True),
    ("a=b", {"a": "c"}, False),
    ("a=b", {}, False),
    ("a==b", {"a": "b", "x": "y"}, True),
    ("a!=b", {}, True),
    ("a!=b", {"a": "c"}, True),
    ("a!=b", {"a": "b"}, False),
    ("a in (x,y)", {"a": "y"}, True),
    ("a in (x,y)", {"a": "z"}, False),
    ("a in (x,y)", {}, False),
    ("a notin (x,y)", {}, True),
    ("a notin (x,y)", {"a": "x"}, False),
    ("a notin (x,y)", {"a": "z"}, True),
    ("a", {"a": ""}, True),
    ("a", {"b": "1"}, False),
    ("!a", {"b": "1"}, True),
    ("!a", {"a": ""}, False),
    ("a=", {"a": ""}, True),
    ("a=", {}, False),
    ("a in ()", {"a": ""}, True),
    ("a>5", {"a": "6"}, True),
    ("a>5", {"a": "5"}, False),
    ("a>5", {"a": "x"}, False),
    ("a>5", {"a": " 6"}, False),
    ("a>5", {}, False),
    ("a<5", {"a": "-10"}, True),
    ("a<5", {"a": "+4"}, True),
    ("a=b,c in (d),!e,f", {"a": "b", "c": "d", "f": ""}, True),
    ("a=b,c in (d),!e,f", {"a": "b", "c": "d", "f": "", "e": "x"}, False),
]


@pytest.mark.parametrize(("text", "labels", "expected"), MATCHES)
def test_label_selector_matches(text: str, labels: dict[str, str] | None, expected: bool) -> None:
    assert parse_label_selector(text).matches(labels) is expected


def test_empty_and_nothing() -> None:
    assert parse_label_selector("").empty
    assert not parse_label_selector("a").empty
    assert LabelSelector.everything().matches({"x": "y"})
    nothing = LabelSelector.nothing()
    assert not nothing.empty and nothing.matches_nothing
    assert not nothing.matches({}) and not nothing.matches({"a": "b"})


def test_requires_exact_match() -> None:
    sel = parse_label_selector("a=b,c in (d),e in (f,g),h!=i")
    assert sel.requires_exact_match("a") == "b"
    assert sel.requires_exact_match("c") == "d"
    assert sel.requires_exact_match("e") is None
    assert sel.requires_exact_match("h") is None
    assert sel.requires_exact_match("zz") is None


def test_new_requirement_validates() -> None:
    assert str(s.new_requirement("a", s.IN, ["y", "x"])) == "a in (x,y)"
    with pytest.raises(errors.BadRequest) as info:
        s.new_requirement("a", s.IN, [])
    assert info.value.message == "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    with pytest.raises(errors.BadRequest, match="exact-match compatibility"):
        s.new_requirement("a", s.EQUALS, ["x", "y"])
    with pytest.raises(errors.BadRequest, match="values set must be empty"):
        s.new_requirement("a", s.EXISTS, ["x"])
    with pytest.raises(errors.BadRequest, match="Unsupported value"):
        s.new_requirement("a", "like", ["x"])


# --- the object form -------------------------------------------------------------------------


def test_object_form_conversion() -> None:
    sel = from_label_selector_object({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "env", "operator": "NotIn", "values": ["dev"]},
            {"key": "canary", "operator": "DoesNotExist"},
            {"key": "release", "operator": "Exists", "values": []},
        ],
    })
    assert str(sel) == "app=web,!canary,env notin (dev),release,tier in (be,fe)"
    assert sel.matches({"app": "web", "tier": "fe", "release": "1"})
    assert not sel.matches({"app": "web", "tier": "fe", "release": "1", "canary": "y"})
    assert not sel.matches({"app": "web", "tier": "fe", "release": "1", "env": "dev"})
    assert not sel.matches({"app": "web", "tier": "mid", "release": "1"})


def test_object_form_empty_and_none() -> None:
    assert from_label_selector_object({}).empty
    assert from_label_selector_object({"matchLabels": {}, "matchExpressions": []}).empty
    assert from_label_selector_object(None).empty
    assert from_label_selector_object(None, none_matches=False).matches_nothing


def test_object_form_errors() -> None:
    with pytest.raises(errors.BadRequest, match='"Like" is not a valid label selector operator'):
        from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "Like"}]})
    with pytest.raises(errors.BadRequest, match="values set can't be empty"):
        from_label_selector_object({"matchExpressions": [{"key": "a", "operator": "In"}]})
    with pytest.raises(errors.BadRequest, match="Invalid value"):
        from_label_selector_object({"matchLabels": {"a": "-bad"}})


def test_validate_object_form() -> None:
    assert validate_label_selector_object(None, "spec.selector") == []
    assert validate_label_selector_object({"matchLabels": {"a": "b"}}, "spec.selector") == []
    errs = validate_label_selector_object(
        {
            "matchLabels": {"a": "-x"},
            "matchExpressions": [
                {"key": "k", "operator": "In"},
                {"key": "k", "operator": "Exists", "values": ["v"]},
                {"key": "k", "operator": "Like"},
                {"key": "-k", "operator": "NotIn", "values": ["ok", "no/t"]},
            ],
        },
        "spec.selector",
    )
    got = [(e.type, e.field) for e in errs]
    assert got == [
        ("FieldValueInvalid", "spec.selector.matchLabels"),
        ("FieldValueRequired", "spec.selector.matchExpressions[0].values"),
        ("FieldValueForbidden", "spec.selector.matchExpressions[1].values"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[2].operator"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[3].key"),
        ("FieldValueInvalid", "spec.selector.matchExpressions[3].values[1]"),
    ]
    assert errs[1].message() == "Required value: must be specified when `operator` is 'In' or 'NotIn'"
    assert errs[3].message() == 'Invalid value: "Like": not a valid selector operator'


# --- field selectors -------------------------------------------------------------------------


def test_field_selector_parse() -> None:
    fs = parse_field_selector("metadata.name=web,spec.nodeName!=n1")
    assert fs.requirements == (("metadata.name", "=", "web"), ("spec.nodeName", "!=", "n1"))
    assert fs.fields == ["metadata.name", "spec.nodeName"]
    assert parse_field_selector("a==b").requirements == (("a", "=", "b"),)
    assert str(parse_field_selector("b=1,a=2")) == "a=2,b=1"  # terms are sorted
    assert parse_field_selector("").empty
    assert parse_field_selector(",,").empty
    assert parse_field_selector(",a=b,,").requirements == (("a", "=", "b"),)
    assert parse_field_selector("a=").requirements == (("a", "=", ""),)
    # Whitespace is data, not syntax.
    assert parse_field_selector("a = b").requirements == (("a ", "=", " b"),)
    # The first operator wins: the field is "a" and the value "=b" is an error.
    with pytest.raises(errors.BadRequest):
        parse_field_selector("a!==b")


def test_field_selector_escapes() -> None:
    fs = parse_field_selector(r"a=x\,y,b=p\=q\\r")
    assert fs.requirements == (("a", "=", "x,y"), ("b", "=", "p=q\\r"))
    assert str(fs) == r"a=x\,y,b=p\=q\\r"
    assert parse_field_selector(str(fs)) == fs
    assert field_selectors.escape_field_value("a,b=c\\") == "a\\,b\\=c\\\\"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a", "invalid selector: 'a'; can't understand 'a'"),
        ("a=b,c", "invalid selector: 'a=b,c'; can't understand 'c'"),
        ("a=b=c", "invalid field selector: unescaped character in value: 61"),
        (r"a=b\x", "invalid field selector: invalid escape sequence: \\x"),
        ("a=b\\", "invalid field selector: invalid escape sequence: \\"),
    ],
)
def test_field_selector_errors(text: str, message: str) -> None:
    with pytest.raises(errors.BadRequest) as info:
        parse_field_selector(text)
    assert info.value.message == message


def test_field_selector_matching() -> None:
    fields = {"metadata.name": "web", "metadata.namespace": "default", "spec.nodeName": ""}
    assert parse_field_selector("").matches(fields)
    assert parse_field_selector("metadata.name=web").matches(fields)
    assert not parse_field_selector("metadata.name=db").matches(fields)
    assert parse_field_selector("metadata.name!=db,metadata.namespace=default").matches(fields)
    assert not parse_field_selector("metadata.name!=web").matches(fields)
    # Empty and missing fields both read as "": the classic "unscheduled pods" query.
    assert parse_field_selector("spec.nodeName=").matches(fields)
    assert parse_field_selector("status.phase=").matches(fields)
    assert not parse_field_selector("status.phase!=").matches(fields)


def test_field_selector_exact_match_and_transform() -> None:
    fs = parse_field_selector("metadata.name=web,spec.nodeName!=n1")
    assert fs.requires_exact_match("metadata.name") == "web"
    assert fs.requires_exact_match("spec.nodeName") is None
    renamed = fs.transform(lambda f, v: ("name" if f == "metadata.name" else f, v))
    assert renamed.requirements[0] == ("name", "=", "web")
    assert FieldSelector().empty
    assert str(field_selectors.field_label_not_supported("spec.foo").message) == "field label not supported: spec.foo"


def test_object_fields() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": "n1", "hostNetwork": True},
        "status": {},
    }
    extra = {
        "spec.nodeName": field_getter("spec.nodeName"),
        "spec.hostNetwork": field_getter("spec.hostNetwork", "false"),
        "status.phase": field_getter("status.phase"),
    }
    assert object_fields(pod, extra) == {
        "metadata.name": "p",
        "metadata.namespace": "ns",
        "spec.nodeName": "n1",
        "spec.hostNetwork": "true",
        "status.phase": "",
    }
    assert object_fields({"metadata": {"name": "n"}}, namespaced=False) == {"metadata.name": "n"}
    assert object_fields({}) == {"metadata.name": "", "metadata.namespace": ""}


# --- properties ------------------------------------------------------------------------------

_names = st.from_regex(r"[a-z]([a-z0-9.-]{0,6}[a-z0-9])?", fullmatch=True)
_values = st.one_of(st.just(""), _names)


@st.composite
def requirements(draw: st.DrawFn) -> s.Requirement:
    key = draw(_names)
    op = draw(st.sampled_from([s.EQUALS, s.DOUBLE_EQUALS, s.NOT_EQUALS, s.IN, s.NOT_IN, s.EXISTS, s.DOES_NOT_EXIST, s.GREATER_THAN]))
    if op in (s.EXISTS, s.DOES_NOT_EXIST):
        vals: tuple[str, ...] = ()
    elif op == s.GREATER_THAN:
        vals = (str(draw(st.integers(0, 100))),)
    elif op in (s.IN, s.NOT_IN):
        vals = tuple(sorted(set(draw(st.lists(_values, min_size=1, max_size=3)))))
    else:
        vals = (draw(_values),)
    return s.Requirement(key, op, vals)


def _reference_match(req: s.Requirement, labels: dict[str, str]) -> bool:
    """Kubernetes' Requirement.Matches, written as plainly as possible."""
    has, val = req.key in labels, labels.get(req.key)
    if req.operator in (s.IN, s.EQUALS, s.DOUBLE_EQUALS):
        return has and val in req.values
    if req.operator in (s.NOT_IN, s.NOT_EQUALS):
        return not has or val not in req.values
    if req.operator == s.EXISTS:
        return has
    if req.operator == s.DOES_NOT_EXIST:
        return not has
    try:
        return has and int(val or "x") > int(req.values[0])
    except ValueError:
        return False


@given(st.lists(requirements(), max_size=5), st.dictionaries(_names, st.one_of(_values, st.integers(-200, 200).map(str)), max_size=6))
def test_selector_string_round_trip_and_matching(reqs: list[s.Requirement], labels: dict[str, str]) -> None:
    sel = LabelSelector(reqs)
    reparsed = parse_label_selector(str(sel))
    assert str(reparsed) == str(sel)
    expected = all(_reference_match(r, labels) for r in reqs)
    assert sel.matches(labels) is expected
    assert reparsed.matches(labels) is expected


@given(st.dictionaries(st.sampled_from(["a", "b.c", "d"]), st.text(alphabet="ab,=\\ x", max_size=6), min_size=1))
def test_field_selector_escape_round_trip(terms: dict[str, str]) -> None:
    text = ",".join(f"{k}={field_selectors.escape_field_value(v)}" for k, v in terms.items())
    fs = parse_field_selector(text)
    assert dict((f, v) for f, _, v in fs.requirements) == terms
    assert fs.matches(terms)
