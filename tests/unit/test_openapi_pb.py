"""``/openapi/v2`` as gnostic protobuf: what kubectl's client-side validation reads survives.

The bytes are read back by a small wire decoder written here with gnostic's field numbers
spelled out independently of the encoder's table, then turned back into the JSON subset that
kube-openapi's ``proto.NewOpenAPIData`` and kubectl's query-param verifier read. The end-to-end
test runs kubectl 1.32 against a real server: a ``kind: List`` file is validated on the client
side against exactly these bytes.
"""

from __future__ import annotations

import json
import ssl
import struct
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.transport import openapi, openapi_pb
from kybernetes.testing import ServerProcess

CRONTAB = Resource("stable.example.com", "v1", "CronTab", "crontabs", short_names=("ct",), builtin=False)
CRONTAB_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "spec": {
            "type": "object",
            "properties": {
                "cronSpec": {"type": "string", "default": "* * * * *"},
                "replicas": {"type": "integer", "minimum": 1, "maximum": 10.5, "enum": [1, 2]},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "closed": {"type": "object", "additionalProperties": False, "properties": {}},
                "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            },
            "required": ["cronSpec"],
        }
    },
}

# ---------------------------------------------------------------------------------------------
# A minimal protobuf reader: message -> {field number: [values]} (LEN values as bytes).


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def scan(data: bytes) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value = struct.unpack("<d", data[pos:pos + 8])[0]
            pos += 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value = data[pos:pos + length]
            pos += length
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.setdefault(number, []).append(value)
    return out


def one(msg: dict[int, list[Any]], number: int) -> Any:
    values = msg.get(number, [])
    assert len(values) <= 1, f"field {number} repeated"
    return values[0] if values else None


def text(msg: dict[int, list[Any]], number: int) -> str | None:
    value = one(msg, number)
    return None if value is None else value.decode()


def named(data: bytes, number: int = 1) -> list[tuple[str, bytes]]:
    """A gnostic map wrapper / repeated Named* field: [(name 1, raw value 2)]."""
    return [(text(scan(e), 1) or "", one(scan(e), 2) or b"") for e in scan(data).get(number, [])]


def any_value(data: bytes) -> Any:
    """gnostic Any: the YAML (here JSON, which is YAML) in field 2."""
    return json.loads(text(scan(data), 2) or "null")


def extensions(raw: list[bytes]) -> dict[str, Any]:
    out = {}
    for entry in raw:
        m = scan(entry)
        out[text(m, 1) or ""] = any_value(one(m, 2))
    return out


def schema(data: bytes) -> dict[str, Any]:
    """The part of a gnostic Schema kube-openapi reads, back as JSON."""
    m = scan(data)
    out: dict[str, Any] = {}
    for number, key in ((1, "$ref"), (2, "format"), (4, "description")):
        if number in m:
            out[key] = text(m, number)
    if 5 in m:
        out["default"] = any_value(one(m, 5))
    for number, key in ((7, "maximum"), (9, "minimum")):
        if number in m:
            out[key] = one(m, number)
    if 19 in m:
        out["required"] = [x.decode() for x in m[19]]
    if 20 in m:
        out["enum"] = [any_value(x) for x in m[20]]
    if 21 in m:
        ap = scan(one(m, 21))
        out["additionalProperties"] = schema(one(ap, 1)) if 1 in ap else bool(one(ap, 2))
    if 22 in m:
        types = [x.decode() for x in scan(one(m, 22)).get(1, [])]
        assert len(types) == 1
        out["type"] = types[0]
    if 23 in m:
        items = scan(one(m, 23)).get(1, [])
        assert len(items) == 1, "kube-openapi wants exactly one items schema"
        out["items"] = schema(items[0])
    if 25 in m:
        out["properties"] = {name: schema(value) for name, value in named(one(m, 25))}
    out.update(extensions(m.get(31, [])))
    return out


def definitions(doc: bytes) -> dict[str, dict[str, Any]]:
    return {name: schema(value) for name, value in named(one(scan(doc), 9))}


def crd_schemas(group: str, version: str, kind: str) -> dict[str, Any] | None:
    return CRONTAB_SCHEMA if kind == "CronTab" else None


@pytest.fixture(scope="module")
def v2_json() -> dict[str, Any]:
    catalogue = Catalogue.builtin()
    catalogue.add(CRONTAB)
    return openapi.v2_document(catalogue, crd_schemas)


@pytest.fixture(scope="module")
def v2_pb(v2_json: dict[str, Any]) -> bytes:
    return openapi_pb.encode_document(v2_json)


# ---------------------------------------------------------------------------------------------


def test_document_header(v2_pb: bytes) -> None:
    doc = scan(v2_pb)
    assert text(doc, 1) == "2.0"
    info = scan(one(doc, 2))
    assert text(info, 1) == "Kubernetes"
    assert text(info, 2) == openapi.K8S_VERSION
    security = named(one(doc, 13))
    assert [name for name, _ in security] == ["BearerToken"]
    api_key = scan(one(scan(security[0][1]), 2))  # SecurityDefinitionsItem.api_key_security
    assert (text(api_key, 1), text(api_key, 2), text(api_key, 3)) == ("apiKey", "authorization", "header")
    requirement = named(one(doc, 12))
    assert requirement == [("BearerToken", b"")]


def test_every_definition_survives(v2_json: dict[str, Any], v2_pb: bytes) -> None:
    decoded = definitions(v2_pb)
    assert list(decoded) == list(v2_json["definitions"])  # the document's order
    for name, expected in v2_json["definitions"].items():
        assert decoded[name] == expected, name


def test_refs_resolve_and_gvk_extensions(v2_pb: bytes) -> None:
    defs = definitions(v2_pb)
    cm = defs["io.k8s.api.core.v1.ConfigMap"]
    assert cm["x-kubernetes-group-version-kind"] == [{"group": "", "kind": "ConfigMap", "version": "v1"}]
    assert cm["properties"]["metadata"]["$ref"] == "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    assert cm["properties"]["data"]["additionalProperties"] == {"type": "string"}
    containers = defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"]
    assert containers["x-kubernetes-patch-merge-key"] == "name"
    assert containers["x-kubernetes-patch-strategy"] == "merge"
    assert containers["items"] == {"$ref": "#/definitions/io.k8s.api.core.v1.Container"}

    def refs(node: Any) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
            return found.union(*(refs(v) for v in node.values()))
        return set().union(*(refs(v) for v in node)) if isinstance(node, list) else set()

    targets = refs(defs)
    assert targets and all(t.startswith("#/definitions/") and t[len("#/definitions/"):] in defs for t in targets)
    gvks = {(g["group"], g["version"], g["kind"]) for d in defs.values()
            for g in d.get("x-kubernetes-group-version-kind", [])}
    assert {("", "v1", "Service"), ("apps", "v1", "Deployment"), ("", "v1", "ConfigMapList")} <= gvks


def test_crd_schema_details(v2_pb: bytes) -> None:
    defs = definitions(v2_pb)
    crontab = defs[openapi.crd_definition_name("stable.example.com", "v1", "CronTab")]
    assert crontab["x-kubernetes-group-version-kind"] == [
        {"group": "stable.example.com", "kind": "CronTab", "version": "v1"}]
    spec = crontab["properties"]["spec"]
    assert spec["required"] == ["cronSpec"]
    assert spec["properties"]["cronSpec"]["default"] == "* * * * *"
    assert spec["properties"]["replicas"] == {"type": "integer", "minimum": 1.0, "maximum": 10.5, "enum": [1, 2]}
    assert spec["properties"]["labels"]["additionalProperties"] == {"type": "string"}
    # boolean false is a oneof member: present although zero; empty properties stay present.
    assert spec["properties"]["closed"] == {"type": "object", "additionalProperties": False, "properties": {}}
    assert spec["properties"]["tags"]["x-kubernetes-list-type"] == "set"


def test_paths_carry_what_the_query_param_verifier_reads(v2_pb: bytes) -> None:
    paths = dict(named(one(scan(v2_pb), 8), 2))
    item = scan(paths["/api/v1/namespaces/{namespace}/configmaps/{name}"])
    patch = scan(one(item, 8))
    assert text(patch, 5) == "patchCoreV1NamespacedConfigMap"
    ext = extensions(patch.get(13, []))
    assert ext["x-kubernetes-group-version-kind"] == {"group": "", "kind": "ConfigMap", "version": "v1"}
    assert ext["x-kubernetes-action"] == "patch"
    query, body = [], []
    for raw in patch.get(8, []):  # ParametersItem -> 1 Parameter -> 1 body | 2 non-body -> 3 query
        parameter = scan(one(scan(raw), 1))
        if 1 in parameter:
            body.append(scan(one(parameter, 1)))
        else:
            non_body = scan(one(parameter, 2))
            if 3 in non_body:
                query.append(scan(one(non_body, 3)))
    assert "fieldValidation" in {text(q, 4) for q in query}
    assert all(text(q, 2) == "query" for q in query)
    assert len(body) == 1 and one(body[0], 4) == 1
    assert schema(one(body[0], 5)) == {"$ref": "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.Patch"}
    responses = dict(named(one(patch, 9), 1))
    ok = scan(one(scan(responses["200"]), 1))
    assert text(ok, 1) == "OK"
    assert schema(one(scan(one(ok, 2)), 1)) == {"$ref": "#/definitions/io.k8s.api.core.v1.ConfigMap"}
    # path-level parameters: path parameters (NonBodyParameter 4)
    path_params = [scan(one(scan(one(scan(raw), 1)), 2)) for raw in item.get(9, [])]
    assert any(4 in p and text(scan(one(p, 4)), 4) == "name" for p in path_params)


def test_scalars_on_the_wire() -> None:
    data = openapi_pb.encode_message("Schema", {
        "type": "integer", "minimum": -3, "maxLength": -1, "uniqueItems": False, "readOnly": True,
        "items": [{"type": "string"}, {"type": "integer"}], "x-a": {"k": [1, "two"]},
    })
    m = scan(data)
    assert one(m, 9) == -3.0
    assert one(m, 11) == (1 << 64) - 1  # int64 -1, two's complement varint
    assert 16 not in m  # zero scalars are left out
    assert one(m, 27) == 1
    assert len(scan(one(m, 23))[1]) == 2
    assert extensions(m[31]) == {"x-a": {"k": [1, "two"]}}
    assert list(m) == sorted(m)  # field-number order


def test_accept_negotiation() -> None:
    assert openapi_pb.wants_protobuf("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert openapi_pb.wants_protobuf("application/com.github.proto-openapi.spec.v2.v1.0+protobuf")
    assert openapi_pb.wants_protobuf(
        "application/com.github.proto-openapi.spec.v2@v1.0+protobuf, application/json;q=0.5")
    assert not openapi_pb.wants_protobuf("application/json, application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
    assert not openapi_pb.wants_protobuf("application/json")
    assert not openapi_pb.wants_protobuf("")
    assert not openapi_pb.wants_protobuf("application/vnd.kubernetes.protobuf")


def test_protobuf_document_is_cached_by_hash() -> None:
    body = json.dumps({"swagger": "2.0", "definitions": {"a": {"type": "string"}}}).encode()
    doc = openapi.Document(body, openapi.content_hash(body))
    first = openapi_pb.protobuf_document(doc)
    assert openapi_pb.protobuf_document(doc) is first
    assert definitions(first.body) == {"a": {"type": "string"}}
    assert first.hash != doc.hash
    other = json.dumps({"swagger": "2.0", "definitions": {"b": {"type": "string"}}}).encode()
    assert definitions(openapi_pb.protobuf_document(openapi.Document(other, openapi.content_hash(other))).body) == {
        "b": {"type": "string"}}


# ---------------------------------------------------------------------------------------------
# End to end: kubectl's client-side validation of a List against a real server.

LIST_YAML = """\
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: pb-list-cm
    namespace: default
  data:
    key: value
- apiVersion: v1
  kind: Service
  metadata:
    name: pb-list-svc
    namespace: default
  spec:
    selector:
      app: pb-list
    ports:
    - port: 80
      targetPort: 8080
"""


@pytest.mark.integration
def test_kubectl_validates_a_list_on_the_client(tmp_path: Path) -> None:
    good = tmp_path / "list.yaml"
    good.write_text(LIST_YAML)
    bad = tmp_path / "bad.yaml"
    bad.write_text(LIST_YAML.replace("    key: value\n", "    key: value\n  bogusField: 1\n"))
    with ServerProcess.start(tmp_path / "srv") as srv:
        res = srv.kubectl("apply", "-f", str(good))
        assert "configmap/pb-list-cm created" in res.stdout
        assert "service/pb-list-svc created" in res.stdout
        res = srv.kubectl("apply", "-f", str(good))
        assert "configmap/pb-list-cm unchanged" in res.stdout

        res = srv.kubectl("apply", "--validate=strict", "-f", str(bad), check=False)
        assert res.returncode != 0
        assert 'unknown field "bogusField" in io.k8s.api.core.v1.ConfigMap' in res.stderr
        assert "error validating data: ValidationError(ConfigMap)" in res.stderr
        # --validate=false skips the client-side check entirely (and the item is then accepted
        # by the server: its Strict field validation only applies when asked for).
        res = srv.kubectl("apply", "--validate=false", "-f", str(good))
        assert res.returncode == 0

        tls = srv.data_dir / "tls"
        ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
        ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))

        def get(accept: str, etag: str | None = None) -> tuple[int, dict[str, str], bytes]:
            req = urllib.request.Request(f"{srv.url}/openapi/v2", headers={"Accept": accept})
            if etag:
                req.add_header("If-None-Match", etag)
            try:
                with urllib.request.urlopen(req, context=ctx, timeout=30) as r:
                    return r.status, dict(r.headers), r.read()
            except urllib.error.HTTPError as e:
                return e.code, dict(e.headers), e.read()

        status, headers, body = get("application/com.github.proto-openapi.spec.v2@v1.0+protobuf")
        assert status == 200
        assert headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
        assert "io.k8s.api.core.v1.ConfigMap" in definitions(body)
        assert get("application/com.github.proto-openapi.spec.v2@v1.0+protobuf", headers["ETag"])[0] == 304
        status, json_headers, json_body = get("application/json")
        assert status == 200 and json.loads(json_body)["swagger"] == "2.0"
        assert json_headers["ETag"] != headers["ETag"]
        assert get("application/vnd.kubernetes.protobuf")[0] == 406
