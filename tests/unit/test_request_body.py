"""Request bodies in YAML are refused where go-yaml refuses them (issue 20, "Hostile input"): an
alias bomb ("billion laughs", CVE-2019-11253) and an anchor that contains itself are a 400 with
Kubernetes' words, at once, instead of an object that expands in every later step."""

from __future__ import annotations

import time

import pytest

from kybernetes import errors
from kybernetes.apiserver.transport.requests import int_param, read_body


def laughs(levels: int, fanout: int) -> bytes:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fanout) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]" for i in range(1, levels + 1)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("ctype", ["application/yaml", "application/apply-patch+yaml"])
def test_a_billion_laughs_is_refused_at_once(ctype: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(errors.BadRequest) as e:
        read_body(laughs(9, 9), ctype)
    assert str(e.value.message) == "error converting YAML to JSON: yaml: document contains excessive aliasing"
    assert time.monotonic() - t0 < 2


def test_aliasing_is_allowed_as_far_as_go_yaml_allows_it() -> None:
    # go-yaml decodes a0..a2 (1,300 of 1,350 decodes from aliases: under 99%) and refuses a0..a3.
    assert read_body(laughs(2, 10), "application/yaml")["a2"][9][9][9] == "lol"
    with pytest.raises(errors.BadRequest, match="excessive aliasing"):
        read_body(laughs(3, 10), "application/yaml")


def test_ordinary_anchors_load() -> None:
    doc = b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, labels: &l {app: web}}\ndata: *l\n"
    assert read_body(doc, "application/yaml")["data"] == {"app": "web"}


def test_an_anchor_that_contains_itself_is_refused() -> None:
    with pytest.raises(errors.BadRequest, match="contains itself"):
        read_body(b"a: &x {b: *x}\n", "application/yaml")


@pytest.mark.parametrize(("value", "message"), [
    ("100000000000000000000000000000", 'strconv.ParseInt: parsing "100000000000000000000000000000": value out of range'),
    ("-9223372036854775809", 'strconv.ParseInt: parsing "-9223372036854775809": value out of range'),
    ("abc", 'strconv.ParseInt: parsing "abc": invalid syntax'),
    ("1.5", 'strconv.ParseInt: parsing "1.5": invalid syntax'),
])
def test_an_int64_query_parameter_out_of_range_or_not_a_number_is_a_400(value: str, message: str) -> None:
    """``?limit=1e29`` reached SQLite as a Python int and came back a 500 (OverflowError): Kubernetes'
    parameter codec refuses it with strconv.ParseInt's words."""
    with pytest.raises(errors.BadRequest) as e:
        int_param(value, "limit")
    assert e.value.message == message
    assert int_param("9223372036854775807", "limit") == (1 << 63) - 1
    assert int_param("-5", "limit") == -5
