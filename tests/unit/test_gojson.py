"""Go's JSON output (kybernetes.api.gojson) and Status objects in Go's field order (kybernetes.errors)."""

from __future__ import annotations

from kybernetes import errors
from kybernetes.api import gojson


def test_compact_ends_with_a_newline_pretty_does_not() -> None:
    assert gojson.dumps({"a": [1, {}], "b": {}}) == b'{"a":[1,{}],"b":{}}\n'
    assert gojson.dumps({"a": [1], "b": {}}, pretty=True) == b'{\n  "a": [\n    1\n  ],\n  "b": {}\n}'


def test_html_and_line_separators_are_escaped_as_go_does() -> None:
    assert gojson.dumps({"m": "<a> & \u2028\u2029 \u00e9"}) == b'{"m":"\\u003ca\\u003e \\u0026 \\u2028\\u2029 \xc3\xa9"}\n'
    assert gojson.dumps(["plain"]) == b'["plain"]\n'


def test_status_fields_in_go_struct_order_and_omitempty() -> None:
    causes = [{"field": "spec.x", "message": "m", "reason": "FieldValueInvalid"}, {"message": "only"}]
    err = errors.StatusError("boom", reason="Invalid", code=422,
                             details={"retryAfterSeconds": 3, "causes": causes, "kind": "K", "group": "", "name": "n",
                                      "uid": "u"})
    body = gojson.dumps(err.status())
    assert body == (b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"boom",'
                    b'"reason":"Invalid","details":{"name":"n","kind":"K","uid":"u","causes":[{"reason":'
                    b'"FieldValueInvalid","message":"m","field":"spec.x"},{"message":"only"}],"retryAfterSeconds":3},'
                    b'"code":422}\n')


def test_details_nil_and_empty_are_told_apart() -> None:
    assert "details" not in errors.BadRequest("x").status()
    assert errors.NotFound.no_resource().status()["details"] == {}
    assert errors.TooManyRequests("slow down").status()["details"] == {}
    assert errors.TooManyRequests("slow down", retry_after=5).status()["details"] == {"retryAfterSeconds": 5}


def test_invalid_message_is_new_invalids() -> None:
    cause = {"reason": "FieldValueRequired", "message": "Required value", "field": "spec.a"}
    one = errors.Invalid("Deployment", "web", [cause, dict(cause)], group="apps")
    assert one.message == 'Deployment.apps "web" is invalid: spec.a: Required value'  # duplicates once
    two = errors.Invalid("ConfigMap", "c", [cause, {**cause, "field": "spec.b"}])
    assert two.message == 'ConfigMap "c" is invalid: [spec.a: Required value, spec.b: Required value]'
    assert errors.Invalid("ConfigMap", "c", []).message == 'ConfigMap "c" is invalid'


def test_success_status() -> None:
    assert gojson.dumps(errors.status_object("Success", details={"kind": "pods", "name": "p", "uid": "1"})) == (
        b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success",'
        b'"details":{"name":"p","kind":"pods","uid":"1"}}\n')


def test_order_fields_puts_envelope_and_metadata_in_go_order_in_place() -> None:
    meta = {"managedFields": [], "labels": {"a": "b"}, "uid": "u", "name": "n", "creationTimestamp": "t",
            "namespace": "ns", "finalizers": ["f"], "generation": 1}
    obj = {"status": {}, "spec": {"x": 1}, "metadata": meta, "apiVersion": "apps/v1", "kind": "Deployment"}
    gojson.order_fields(obj)
    assert list(obj) == ["kind", "apiVersion", "metadata", "spec", "status"]
    assert obj["metadata"] is meta
    assert list(meta) == ["name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "labels",
                          "finalizers", "managedFields"]
    assert meta["resourceVersion"] == ""
    secret = {"type": "Opaque", "data": {}, "apiVersion": "v1", "metadata": {"name": "s"}, "kind": "Secret"}
    gojson.order_fields(secret)
    assert list(secret) == ["kind", "apiVersion", "metadata", "data", "type"]  # the Secret struct's order
    custom = {"status": {}, "extra": 1, "spec": {}, "kind": "Widget", "apiVersion": "example.com/v1", "metadata": {}}
    gojson.order_fields(custom)
    assert list(custom) == ["kind", "apiVersion", "metadata", "extra", "spec", "status"]
