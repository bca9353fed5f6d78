"""Request bodies in YAML are refused where go-yaml refuses them (issue 20, "Hostile input"): an
alias bomb ("billion laughs", CVE-2019-11253) and an anchor that contains itself are a 400 with
Kubernetes' words, at once, instead of an object that expands in every later step."""

from __future__ import annotations

import time

import pytest

from kybernetes import errors
from kybernetes.apiserver.transport.requests import int_param, patch_type, read_body


def laughs(levels: int, fanout: int) -> bytes:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * fanout) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * fanout) + "]" for i in range(1, levels + 1)]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize(("ctype", "prefix"), [("application/yaml", ""),
                                               ("application/apply-patch+yaml", "error decoding YAML: ")])
def test_a_billion_laughs_is_refused_at_once(ctype: str, prefix: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(errors.BadRequest) as e:
        read_body(laughs(9, 9), ctype)
    assert str(e.value.message) == prefix + "error converting YAML to JSON: yaml: document contains excessive aliasing"
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


META = 'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
UNRECOGNIZED = "the object provided is unrecognized (must be of type {}): couldn't get version/kind; json parse error: "


@pytest.mark.parametrize(("raw", "ctype", "into", "message"), [
    # create and update (handlers/create.go, update.go -> rest.go transformDecodeError)
    (b"{bad", "application/json", "Pod",
     UNRECOGNIZED.format("Pod") + "invalid character 'b' looking for beginning of object key string ({bad)"),
    (b'{"kind": "ConfigMap", "metadata": {"name": "x"},}', "application/json", "ConfigMap",
     UNRECOGNIZED.format("ConfigMap")
     + "invalid character '}' looking for beginning of object key string ({\"kind\": \"ConfigMap\", \"metadat ...)"),
    (b"not json", "application/json", "Binding",
     UNRECOGNIZED.format("Binding") + "invalid character 'o' in literal null (expecting 'u') (6e6f74206a736f6e)"),
    (b"", "application/json", "Scale", UNRECOGNIZED.format("Scale") + "unexpected end of JSON input (<empty>)"),
    (b"[]", "application/json", "ConfigMap", UNRECOGNIZED.format("ConfigMap") + f"json: cannot unmarshal array "
     f"into Go value of type {META} (5b5d)"),
    (b"- a\n", "application/yaml", "Pod", UNRECOGNIZED.format("Pod") + f"json: cannot unmarshal array "
     f"into Go value of type {META} (2d20610a)"),
    (b'{"metadata": {}, "apiVersion": 1, "kind": []}', "application/json", "ConfigMap",
     UNRECOGNIZED.format("ConfigMap") + "json: cannot unmarshal number into Go struct field .apiVersion of type "
     'string ({"metadata": {}, "apiVersion": ...)'),
    (b'{"KIND": true}', "application/json", "ConfigMap", UNRECOGNIZED.format("ConfigMap")
     + 'json: cannot unmarshal bool into Go struct field .kind of type string ({"KIND": true})'),
    (b'{"apiVersion": "a/b/c"}', "application/json", "Pod",
     'the object provided is unrecognized (must be of type Pod): unexpected GroupVersion string: a/b/c '
     '({"apiVersion": "a/b/c"})'),
    (b'{"apiVersion": "a/b/c"}', "application/json", None, "unexpected GroupVersion string: a/b/c"),
    # DELETE's DeleteOptions (handlers/delete.go: the meta factory's error as it is)
    (b"{,}", "application/json", None,
     "couldn't get version/kind; json parse error: invalid character ',' looking for beginning of object key string"),
    (b'"x"', "application/json", None,
     f"couldn't get version/kind; json parse error: json: cannot unmarshal string into Go value of type {META}"),
    # PATCH (handlers/patch.go, fieldValidation Strict or the default Warn)
    (b'[{"op": "add"', "application/json-patch+json", "Pod", "error decoding patch: unexpected end of JSON input"),
    (b"{}", "application/json-patch+json", "Pod",
     "error decoding patch: json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp"),
    (b'{"a": 1 "b": 2}', "application/merge-patch+json", "Pod",
     "error decoding patch: invalid character '\"' after object key:value pair"),
    (b"[1]", "application/merge-patch+json", "Pod",
     "error decoding patch: json: cannot unmarshal array into Go value of type map[string]interface {}"),
    (b'{"a": tru}', "application/strategic-merge-patch+json", "Pod",
     "invalid character '}' in literal true (expecting 'e')"),
    (b"1", "application/strategic-merge-patch+json", "Pod",
     "json: cannot unmarshal number into Go value of type map[string]interface {}"),
    (b"- a\n", "application/apply-patch+yaml", "Pod", "error decoding YAML: error unmarshaling JSON: while decoding "
     "JSON: json: cannot unmarshal array into Go value of type map[string]interface {}"),
])
def test_a_body_that_does_not_decode_is_worded_as_kube_apiserver_words_it(
        raw: bytes, ctype: str, into: str | None, message: str) -> None:
    with pytest.raises(errors.BadRequest) as e:
        read_body(raw, ctype, into=into)
    assert e.value.message == message


def test_a_summary_cut_inside_a_character_replaces_each_byte_as_go_does() -> None:
    raw = b'{"metadata": {"name": "\xc3\xa9\xc3\xa9xx' + b"\xc3\xa9" * 20  # byte 30 is half of an \u00e9
    with pytest.raises(errors.BadRequest) as e:
        read_body(raw + b"\x01", "application/json", into="ConfigMap")
    assert e.value.message.endswith('({"metadata": {"name": "\u00e9\u00e9xx\ufffd ...)')


def test_a_null_delete_options_body_is_no_options() -> None:
    assert read_body(b"null", "application/json", into=None) is None


def test_a_reader_that_wants_no_words_skips_the_rescan(monkeypatch: pytest.MonkeyPatch) -> None:
    from kybernetes.api import gojsonsyntax

    monkeypatch.setattr(gojsonsyntax, "syntax_error", lambda data: pytest.fail("rescanned"))
    with pytest.raises(errors.BadRequest, match="not JSON"):
        read_body(b"{bad", "application/json", words=False)


@pytest.mark.parametrize(("raw", "ctype", "message"), [
    (b"[{", "application/json-patch+json", "unexpected end of JSON input"),
    (b"{}", "application/json-patch+json", "json: cannot unmarshal object into Go value of type jsonpatch.Patch"),
    (b'{"a": }', "application/merge-patch+json", "Invalid JSON Patch"),
    (b'{"a": }', "application/strategic-merge-patch+json", "invalid character '}' looking for beginning of value"),
])
def test_a_patch_under_field_validation_ignore_is_worded_as_patch_go_words_it(raw: bytes, ctype: str,
                                                                             message: str) -> None:
    with pytest.raises(errors.BadRequest) as e:
        read_body(raw, ctype, into="Pod", field_validation="Ignore")
    assert e.value.message == message


def test_a_merge_patch_of_another_type_under_field_validation_ignore_is_the_patchs_to_apply() -> None:
    assert read_body(b"[1]", "application/merge-patch+json", field_validation="Ignore") == [1]


def test_a_body_the_rescan_would_take_too_long_over_keeps_kubes_words_around_orjsons(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from kybernetes.apiserver.transport import requests

    monkeypatch.setattr(requests, "RESCAN_STEPS", 50)
    with pytest.raises(errors.BadRequest) as e:
        read_body(b"[" + b"[1]," * 100 + b"x]", "application/json", into="ConfigMap")
    assert e.value.message.startswith(UNRECOGNIZED.format("ConfigMap") + "unexpected character")
    with pytest.raises(errors.BadRequest) as e:
        read_body(b"[" + b"[1]," * 10 + b"x]", "application/json", into="ConfigMap")
    assert e.value.message.startswith(UNRECOGNIZED.format("ConfigMap") + "invalid character 'x'")


BUILTIN_FORMATS = ("the body of the request was in an unknown format - accepted media types include: "
                   "application/json, application/yaml, application/vnd.kubernetes.protobuf")


@pytest.mark.parametrize("ctype", ["application/merge-patch+json", "application/json-patch+json",
                                   "application/strategic-merge-patch+json", "application/apply-patch+yaml",
                                   "text/plain", "*/*", "application/x-yaml", "application/cbor"])
def test_a_create_update_or_delete_body_of_a_media_type_no_serializer_has_is_415(ctype: str) -> None:
    """Issue 20: NegotiateInputSerializer knows JSON, YAML and protobuf only, patch types not."""
    with pytest.raises(errors.UnsupportedMediaType) as e:
        read_body(b'{"kind": "ConfigMap"}', ctype, into="ConfigMap", patch=False)
    assert e.value.message == BUILTIN_FORMATS and e.value.details is None


@pytest.mark.parametrize(("ctype", "raw"), [("", b"{}"), ("application/json; charset=utf-8", b"{}"),
                                            ("Application/JSON", b"{}"), ("application/yaml", b"a: 1\n")])
def test_a_create_body_is_json_without_a_content_type_and_its_type_is_read_as_mime_reads_it(
        ctype: str, raw: bytes) -> None:
    assert isinstance(read_body(raw, ctype, into="ConfigMap", patch=False), dict)


@pytest.mark.parametrize(("ctype", "builtin", "code", "message"), [
    ("application/json", True, 415, "415: Unsupported Media Type"),
    ("", True, 415, "415: Unsupported Media Type"),
    ("Application/merge-patch+json", True, 415, "415: Unsupported Media Type"),
    ("application/merge-patch+json ;charset=utf-8", True, 415, "the body of the request was in an unknown format - accepted media "
     "types include: application/json-patch+json, application/merge-patch+json, "
     "application/strategic-merge-patch+json, application/apply-patch+yaml"),
    ("application/strategic-merge-patch+json", False, 415, "the body of the request was in an unknown format - "
     "accepted media types include: application/json-patch+json, application/merge-patch+json, "
     "application/apply-patch+yaml"),
    ("application/json", False, 415, "the body of the request was in an unknown format - "
     "accepted media types include: application/json-patch+json, application/merge-patch+json, "
     "application/apply-patch+yaml"),
])
def test_a_patch_type_the_resource_does_not_take_is_415_in_the_words_of_whoever_refuses_it(
        ctype: str, builtin: bool, code: int, message: str) -> None:
    """Built-ins: go-restful's Consumes, then patch.go's list; custom resources: patch.go's list."""
    with pytest.raises(errors.UnsupportedMediaType) as e:
        patch_type(ctype, builtin=builtin)
    assert e.value.code == code and e.value.message == message
    assert e.value.details == ({} if message.startswith("415") else None)


@pytest.mark.parametrize(("ctype", "builtin", "kind"), [
    ("application/strategic-merge-patch+json", True, "strategic"),
    ("application/merge-patch+json; charset=utf-8", False, "merge"),
    ("application/json-patch+json", False, "json"),
    ("application/apply-patch+yaml", True, "apply"),
])
def test_a_patch_type_the_resource_takes_is_read(ctype: str, builtin: bool, kind: str) -> None:
    assert patch_type(ctype, builtin=builtin) == kind


def _envelope(api_version: str, kind: str, raw: bytes = b"{}") -> bytes:
    """A runtime.Unknown protobuf body naming ``api_version`` and ``kind`` (none when both are empty)."""
    def field(number: int, value: bytes) -> bytes:
        return bytes([number << 3 | 2, len(value)]) + value
    type_meta = (field(1, api_version.encode()) if api_version else b"") + (field(2, kind.encode()) if kind else b"")
    return b"k8s\x00" + (field(1, type_meta) if type_meta else b"") + field(2, raw)


NO_KIND = "Object 'Kind' is missing in 'object has no kind field '"


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "the object provided is unrecognized (must be of type Gadget): empty data (<empty>)"),
    (b'{"kind": "Gadget"}', "the object provided is unrecognized (must be of type Gadget): provided data does not "
     'appear to be a protobuf message, expected prefix [107 56 115 0] ({"kind": "Gadget"})'),
    (b"k8s\x00", "the object provided is unrecognized (must be of type Gadget): empty body (6b387300)"),
    (_envelope("example.com/v1", "Gadget"), f'Gadget in version "v1" cannot be handled as a Gadget: {NO_KIND}'),
    (_envelope("", ""), f'Gadget in version "v2" cannot be handled as a Gadget: {NO_KIND}'),
    (_envelope("v1", "ConfigMap"), f'ConfigMap in version "v1" cannot be handled as a Gadget: {NO_KIND}'),
    (_envelope("a/b/c", "Widget"), f'Widget in version "v2" cannot be handled as a Gadget: {NO_KIND}'),
])
def test_a_protobuf_body_for_a_custom_resource_is_a_400_as_its_unstructured_decode_words_it(
        raw: bytes, message: str) -> None:
    """Issue 20: a CRD's serializer takes the protobuf media type (no 415) but cannot decode
    into an Unstructured (kube-apiserver 1.32 under fieldValidation=Ignore; it panics otherwise)."""
    for validation in ("", "Ignore", "Strict"):
        with pytest.raises(errors.BadRequest) as e:
            read_body(raw, "application/vnd.kubernetes.protobuf", into="Gadget", patch=False,
                      custom_version="example.com/v2", field_validation=validation)
        assert e.value.message == message


@pytest.mark.parametrize(("content_length", "code", "message"), [
    ("12", 415, "415: Unsupported Media Type"),
    (None, 415, "415: Unsupported Media Type\n\nAvailable representations: "),
    ("0", 406, "406: Not Acceptable\n\nAvailable representations: "),
])
def test_a_built_in_patch_no_route_consumes_is_refused_by_go_restful_as_its_body_length_says(
        content_length: str | None, code: int, message: str) -> None:
    with pytest.raises(errors.StatusError) as e:
        patch_type("text/plain", builtin=True, content_length=content_length)
    assert (e.value.code, e.value.message, e.value.details) == (code, message, {})
