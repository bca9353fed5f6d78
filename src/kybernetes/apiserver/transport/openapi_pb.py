"""``/openapi/v2`` as protobuf: the Swagger 2.0 document encoded as gnostic's ``openapi.v2.Document``.

Why: kubectl validates some inputs on the client side. A ``kind: List`` file (``kubectl apply -f``
of ``kubectl get -o yaml`` output) is one: the field-validation verifier treats List as never
supported by the server, so kubectl validates it itself against the OpenAPI v2 models, which
client-go's discovery client fetches *only* as
``Accept: application/com.github.proto-openapi.spec.v2@v1.0+protobuf`` and unmarshals into
gnostic's generated ``openapi_v2.Document``. kube-openapi's ``proto.NewOpenAPIData`` then walks
``definitions`` (Schema ``_ref``, ``type``, ``format``, ``description``, ``properties``,
``additionalProperties``, ``items``, ``required``, ``default`` and the vendor extensions), and
kubectl finds a kind's model by the ``x-kubernetes-group-version-kind`` extension of each
definition; the v2 query-param verifier reads the ``paths``' PATCH operations, their GVK
extension and their query parameters. So the whole document is encoded, not just definitions.

Design. There is no generated code and no protobuf dependency, as in
:mod:`kybernetes.apiserver.transport.protobuf`: the input is the JSON document the server already builds
(:func:`kybernetes.apiserver.transport.openapi.v2_document`), and a table (:data:`_MESSAGES`) maps each
gnostic message's JSON keys to field numbers and kinds. Kinds are scalars (``s`` string, ``b``
bool, ``i`` int64, ``d`` double), ``S`` repeated string, ``a``/``A`` one/repeated ``Any``, a
message name, ``*Name`` a repeated message, ``{Name}`` one of gnostic's map wrappers (``Definitions``,
``Properties``, ...: field 1 repeated ``Named<Name>`` = name 1, value 2) and ``!name`` a oneof
or otherwise irregular message encoded by a function of :data:`_SPECIAL`. Keys starting with
``x-`` go to the message's ``vendor_extension`` field (repeated ``NamedAny``).

``Any`` carries its value as YAML text (field 2). kube-apiserver writes YAML block style; we write
the value as JSON, which is YAML too (flow style) and which every reader (kube-openapi's
``yaml.Unmarshal``) parses to the same value.

Proto3 semantics: zero scalars are left out as Go's encoder does, except in a oneof (``boolean:
false`` for ``additionalProperties: false`` must be present); messages present in the JSON are
always written even when empty, since presence matters to the readers (a Schema with empty
``properties`` is a kind, without them a map). Fields are written in field-number order, map
entries in the document's order. Unknown non-``x-`` keys are dropped, as is a value of the wrong
JSON type (gnostic would refuse the whole document instead).

Encoding the full document takes a fraction of a second, so :func:`protobuf_document` keeps the
result for the JSON document it was made from (keyed by that document's hash).
"""

from __future__ import annotations

import hashlib
import struct
import threading
from collections.abc import Callable
from typing import Any

import orjson

from kybernetes.api.obj import Obj
from kybernetes.apiserver.transport.openapi import Document

PROTOBUF_V2_MEDIA_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
"""The response Content-Type, as kube-apiserver sends it: clients ask for ``...spec.v2@v1.0+protobuf``,
but ``@`` is not a token character and Go's ``mime.ParseMediaType`` (which client-go runs on the
response) rejects it, so the answer names the dotted form."""
_MEDIA_TYPE_PREFIX = "application/com.github.proto-openapi.spec.v2"

_VARINT, _I64, _LEN = 0, 1, 2


# ---------------------------------------------------------------------------------------------
# The table: message -> ((field number, JSON key, kind), ...), and its vendor_extension field.

_PRIMITIVE_FIELDS = (  # PrimitivesItems and Header share numbers 1..17
    (1, "type", "s"), (2, "format", "s"), (3, "items", "PrimitivesItems"), (4, "collectionFormat", "s"),
    (5, "default", "a"), (6, "maximum", "d"), (7, "exclusiveMaximum", "b"), (8, "minimum", "d"),
    (9, "exclusiveMinimum", "b"), (10, "maxLength", "i"), (11, "minLength", "i"), (12, "pattern", "s"),
    (13, "maxItems", "i"), (14, "minItems", "i"), (15, "uniqueItems", "b"), (16, "enum", "A"),
    (17, "multipleOf", "d"),
)
_HEADER_PARAM_FIELDS = (  # HeaderParameterSubSchema and PathParameterSubSchema
    (1, "required", "b"), (2, "in", "s"), (3, "description", "s"), (4, "name", "s"), (5, "type", "s"),
    (6, "format", "s"), (7, "items", "PrimitivesItems"), (8, "collectionFormat", "s"), (9, "default", "a"),
    (10, "maximum", "d"), (11, "exclusiveMaximum", "b"), (12, "minimum", "d"), (13, "exclusiveMinimum", "b"),
    (14, "maxLength", "i"), (15, "minLength", "i"), (16, "pattern", "s"), (17, "maxItems", "i"),
    (18, "minItems", "i"), (19, "uniqueItems", "b"), (20, "enum", "A"), (21, "multipleOf", "d"),
)
_QUERY_PARAM_FIELDS = (  # QueryParameterSubSchema and FormDataParameterSubSchema
    (1, "required", "b"), (2, "in", "s"), (3, "description", "s"), (4, "name", "s"),
    (5, "allowEmptyValue", "b"), (6, "type", "s"), (7, "format", "s"), (8, "items", "PrimitivesItems"),
    (9, "collectionFormat", "s"), (10, "default", "a"), (11, "maximum", "d"), (12, "exclusiveMaximum", "b"),
    (13, "minimum", "d"), (14, "exclusiveMinimum", "b"), (15, "maxLength", "i"), (16, "minLength", "i"),
    (17, "pattern", "s"), (18, "maxItems", "i"), (19, "minItems", "i"), (20, "uniqueItems", "b"),
    (21, "enum", "A"), (22, "multipleOf", "d"),
)
_OPERATION = tuple((n, verb, "Operation") for n, verb in
                   enumerate(("get", "put", "post", "delete", "options", "head", "patch"), start=2))

_MESSAGES: dict[str, tuple[tuple[tuple[int, str, str], ...], int | None]] = {
    "Document": ((
        (1, "swagger", "s"), (2, "info", "Info"), (3, "host", "s"), (4, "basePath", "s"), (5, "schemes", "S"),
        (6, "consumes", "S"), (7, "produces", "S"), (8, "paths", "!Paths"), (9, "definitions", "{Schema}"),
        (10, "parameters", "{!Parameter}"), (11, "responses", "{Response}"),
        (12, "security", "*!SecurityRequirement"), (13, "securityDefinitions", "{!SecurityDefinitionsItem}"),
        (14, "tags", "*Tag"), (15, "externalDocs", "ExternalDocs"),
    ), 16),
    "Info": ((
        (1, "title", "s"), (2, "version", "s"), (3, "description", "s"), (4, "termsOfService", "s"),
        (5, "contact", "Contact"), (6, "license", "License"),
    ), 7),
    "Contact": (((1, "name", "s"), (2, "url", "s"), (3, "email", "s")), 4),
    "License": (((1, "name", "s"), (2, "url", "s")), 3),
    "ExternalDocs": (((1, "description", "s"), (2, "url", "s")), 3),
    "Tag": (((1, "name", "s"), (2, "description", "s"), (3, "externalDocs", "ExternalDocs")), 4),
    "PathItem": (((1, "$ref", "s"), *_OPERATION, (9, "parameters", "*!ParametersItem")), 10),
    "Operation": ((
        (1, "tags", "S"), (2, "summary", "s"), (3, "description", "s"), (4, "externalDocs", "ExternalDocs"),
        (5, "operationId", "s"), (6, "produces", "S"), (7, "consumes", "S"),
        (8, "parameters", "*!ParametersItem"), (9, "responses", "!Responses"), (10, "schemes", "S"),
        (11, "deprecated", "b"), (12, "security", "*!SecurityRequirement"),
    ), 13),
    "JsonReference": (((1, "$ref", "s"), (2, "description", "s")), None),
    "BodyParameter": ((
        (1, "description", "s"), (2, "name", "s"), (3, "in", "s"), (4, "required", "b"), (5, "schema", "Schema"),
    ), 6),
    "HeaderParameterSubSchema": (_HEADER_PARAM_FIELDS, 22),
    "PathParameterSubSchema": (_HEADER_PARAM_FIELDS, 22),
    "QueryParameterSubSchema": (_QUERY_PARAM_FIELDS, 23),
    "FormDataParameterSubSchema": (_QUERY_PARAM_FIELDS, 23),
    "PrimitivesItems": (_PRIMITIVE_FIELDS, 18),
    "Header": ((*_PRIMITIVE_FIELDS, (18, "description", "s")), 19),
    "Response": ((
        (1, "description", "s"), (2, "schema", "!SchemaItem"), (3, "headers", "{Header}"), (4, "examples", "{a}"),
    ), 5),
    "FileSchema": ((
        (1, "format", "s"), (2, "title", "s"), (3, "description", "s"), (4, "default", "a"), (5, "required", "S"),
        (6, "type", "s"), (7, "readOnly", "b"), (8, "externalDocs", "ExternalDocs"), (9, "example", "a"),
    ), 10),
    "Schema": ((
        (1, "$ref", "s"), (2, "format", "s"), (3, "title", "s"), (4, "description", "s"), (5, "default", "a"),
        (6, "multipleOf", "d"), (7, "maximum", "d"), (8, "exclusiveMaximum", "b"), (9, "minimum", "d"),
        (10, "exclusiveMinimum", "b"), (11, "maxLength", "i"), (12, "minLength", "i"), (13, "pattern", "s"),
        (14, "maxItems", "i"), (15, "minItems", "i"), (16, "uniqueItems", "b"), (17, "maxProperties", "i"),
        (18, "minProperties", "i"), (19, "required", "S"), (20, "enum", "A"),
        (21, "additionalProperties", "!AdditionalPropertiesItem"), (22, "type", "!TypeItem"),
        (23, "items", "!ItemsItem"), (24, "allOf", "*Schema"), (25, "properties", "{Schema}"),
        (26, "discriminator", "s"), (27, "readOnly", "b"), (28, "xml", "Xml"),
        (29, "externalDocs", "ExternalDocs"), (30, "example", "a"),
    ), 31),
    "Xml": ((
        (1, "name", "s"), (2, "namespace", "s"), (3, "prefix", "s"), (4, "attribute", "b"), (5, "wrapped", "b"),
    ), 6),
    "BasicAuthenticationSecurity": (((1, "type", "s"), (2, "description", "s")), 3),
    "ApiKeySecurity": (((1, "type", "s"), (2, "name", "s"), (3, "in", "s"), (4, "description", "s")), 5),
    "Oauth2ImplicitSecurity": ((
        (1, "type", "s"), (2, "flow", "s"), (3, "scopes", "{s}"), (4, "authorizationUrl", "s"),
        (5, "description", "s"),
    ), 6),
    "Oauth2PasswordSecurity": ((
        (1, "type", "s"), (2, "flow", "s"), (3, "scopes", "{s}"), (4, "tokenUrl", "s"), (5, "description", "s"),
    ), 6),
    "Oauth2ApplicationSecurity": ((
        (1, "type", "s"), (2, "flow", "s"), (3, "scopes", "{s}"), (4, "tokenUrl", "s"), (5, "description", "s"),
    ), 6),
    "Oauth2AccessCodeSecurity": ((
        (1, "type", "s"), (2, "flow", "s"), (3, "scopes", "{s}"), (4, "authorizationUrl", "s"),
        (5, "tokenUrl", "s"), (6, "description", "s"),
    ), 7),
}

# ---------------------------------------------------------------------------------------------
# Wire writing


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int64: two's complement, ten bytes
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _tag(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _len_field(number: int, payload: bytes) -> bytes:
    return _tag(number, _LEN) + _varint(len(payload)) + payload


def _string_field(number: int, value: str) -> bytes:
    return _len_field(number, value.encode())


def _any_message(value: Any) -> bytes:
    """gnostic ``Any``: the value as YAML text (JSON is YAML) in field 2."""
    return _string_field(2, orjson.dumps(value).decode())


def _scalar(number: int, kind: str, value: Any, *, keep_zero: bool = False) -> bytes:
    if kind == "s":
        if isinstance(value, str) and (value or keep_zero):
            return _string_field(number, value)
    elif kind == "b":
        if isinstance(value, bool) and (value or keep_zero):
            return _tag(number, _VARINT) + _varint(int(value))
    elif kind == "i":
        if isinstance(value, int | float) and not isinstance(value, bool) and (value or keep_zero):
            return _tag(number, _VARINT) + _varint(int(value))
    elif kind == "d":
        if isinstance(value, int | float) and not isinstance(value, bool) and (value or keep_zero):
            return _tag(number, _I64) + struct.pack("<d", float(value))
    elif kind == "a":
        return _len_field(number, _any_message(value))
    return b""


def _field(number: int, kind: str, value: Any) -> bytes:
    """One JSON value as field ``number`` of kind ``kind`` (see the table's legend)."""
    if kind == "S":
        if not isinstance(value, list):
            return b""
        return b"".join(_string_field(number, x) for x in value if isinstance(x, str))
    if kind == "A":
        if not isinstance(value, list):
            return b""
        return b"".join(_len_field(number, _any_message(x)) for x in value)
    if kind.startswith("*"):
        if not isinstance(value, list):
            return b""
        return b"".join(_field(number, kind[1:], x) for x in value)
    if kind.startswith("{"):
        if not isinstance(value, dict):
            return b""
        return _len_field(number, _named(1, kind[1:-1], value))
    if kind.startswith("!"):
        body = _SPECIAL[kind[1:]](value)
        return b"" if body is None else _len_field(number, body)
    if kind in _MESSAGES:
        return _len_field(number, encode_message(kind, value)) if isinstance(value, dict) else b""
    return _scalar(number, kind, value)


def _named(number: int, kind: str, entries: Obj) -> bytes:
    """A JSON object as repeated ``Named<kind>`` {1 name, 2 value} entries at field ``number``."""
    out = bytearray()
    for name, value in entries.items():
        body = _string_field(1, name) + _field(2, kind, value)
        out += _len_field(number, body)
    return bytes(out)


def _extensions(number: int, obj: Obj) -> bytes:
    """The ``x-`` keys of ``obj`` as repeated ``NamedAny`` at field ``number``."""
    ext = {k: v for k, v in obj.items() if k.startswith("x-")}
    return _named(number, "a", ext) if ext else b""


def encode_message(name: str, obj: Obj) -> bytes:
    """A JSON object as the gnostic message ``name`` of the table."""
    fields, ext_number = _MESSAGES[name]
    out = bytearray()
    for number, key, kind in fields:
        if key in obj:
            out += _field(number, kind, obj[key])
    if ext_number is not None:
        out += _extensions(ext_number, obj)
    return bytes(out)


# ---------------------------------------------------------------------------------------------
# Irregular messages: oneofs, and the maps whose extensions share the object with the entries.


def _paths(value: Any) -> bytes | None:
    """``Paths``: 1 vendor extensions, 2 repeated NamedPathItem."""
    if not isinstance(value, dict):
        return None
    items = {k: v for k, v in value.items() if not k.startswith("x-")}
    return _extensions(1, value) + _named(2, "PathItem", items)


def _responses(value: Any) -> bytes | None:
    """``Responses``: 1 repeated NamedResponseValue (status code or ``default``), 2 extensions."""
    if not isinstance(value, dict):
        return None
    codes = {k: v for k, v in value.items() if not k.startswith("x-")}
    return _named(1, "!ResponseValue", codes) + _extensions(2, value)


def _ref_or(message_number: int, message_kind: str) -> Callable[[Any], bytes | None]:
    """A oneof of a message (at ``message_number``) or, for ``{$ref}``, a JsonReference (2)."""
    def encode(value: Any) -> bytes | None:
        if not isinstance(value, dict):
            return None
        if "$ref" in value:
            return _field(2, "JsonReference", value)
        return _field(message_number, message_kind, value)
    return encode


_NON_BODY = {"header": (1, "HeaderParameterSubSchema"), "formData": (2, "FormDataParameterSubSchema"),
             "query": (3, "QueryParameterSubSchema"), "path": (4, "PathParameterSubSchema")}


def _parameter(value: Any) -> bytes | None:
    """``Parameter``: 1 BodyParameter, or 2 NonBodyParameter (a oneof chosen by ``in``)."""
    if not isinstance(value, dict):
        return None
    where = value.get("in")
    if where == "body":
        return _field(1, "BodyParameter", value)
    if where in _NON_BODY:
        number, kind = _NON_BODY[where]
        return _len_field(2, _field(number, kind, value))
    return None


def _additional_properties(value: Any) -> bytes | None:
    """``AdditionalPropertiesItem``: 1 Schema, or 2 bool (written even when false)."""
    if isinstance(value, bool):
        return _scalar(2, "b", value, keep_zero=True)
    if isinstance(value, dict):
        return _field(1, "Schema", value)
    return None


def _items(value: Any) -> bytes | None:
    """``ItemsItem``: 1 repeated Schema (one for a single schema, several for a tuple)."""
    if isinstance(value, dict):
        return _field(1, "Schema", value)
    if isinstance(value, list):
        return _field(1, "*Schema", value)
    return None


def _type(value: Any) -> bytes | None:
    """``TypeItem``: 1 repeated string."""
    if isinstance(value, str):
        value = [value]
    return _field(1, "S", value) if isinstance(value, list) else None


def _schema_item(value: Any) -> bytes | None:
    """``SchemaItem``: 1 Schema, or 2 FileSchema for ``type: file``."""
    if not isinstance(value, dict):
        return None
    if value.get("type") == "file":
        return _field(2, "FileSchema", value)
    return _field(1, "Schema", value)


_SECURITY: dict[tuple[Any, Any], tuple[int, str]] = {("basic", None): (1, "BasicAuthenticationSecurity"), ("apiKey", None): (2, "ApiKeySecurity"),
             ("oauth2", "implicit"): (3, "Oauth2ImplicitSecurity"),
             ("oauth2", "password"): (4, "Oauth2PasswordSecurity"),
             ("oauth2", "application"): (5, "Oauth2ApplicationSecurity"),
             ("oauth2", "accessCode"): (6, "Oauth2AccessCodeSecurity")}


def _security_definition(value: Any) -> bytes | None:
    """``SecurityDefinitionsItem``: a oneof chosen by ``type`` (and ``flow`` for OAuth 2)."""
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    found = _SECURITY.get((kind, value.get("flow") if kind == "oauth2" else None))
    return None if found is None else _field(found[0], found[1], value)


def _security_requirement(value: Any) -> bytes | None:
    """``SecurityRequirement``: 1 repeated NamedStringArray {1 name, 2 StringArray {1 repeated value}}."""
    if not isinstance(value, dict):
        return None
    out = bytearray()
    for name, scopes in value.items():
        array = _field(1, "S", scopes)
        out += _len_field(1, _string_field(1, name) + _len_field(2, array))
    return bytes(out)


_SPECIAL: dict[str, Callable[[Any], bytes | None]] = {
    "Paths": _paths,
    "Responses": _responses,
    "ResponseValue": _ref_or(1, "Response"),
    "ParametersItem": _ref_or(1, "!Parameter"),
    "Parameter": _parameter,
    "AdditionalPropertiesItem": _additional_properties,
    "ItemsItem": _items,
    "TypeItem": _type,
    "SchemaItem": _schema_item,
    "SecurityDefinitionsItem": _security_definition,
    "SecurityRequirement": _security_requirement,
}


# ---------------------------------------------------------------------------------------------
# Entry points


def encode_document(doc: Obj) -> bytes:
    """A Swagger 2.0 document (as JSON-decoded dict) as the ``openapi.v2.Document`` protobuf."""
    return encode_message("Document", doc)


_lock = threading.Lock()
_last: tuple[str, Document] | None = None


def protobuf_document(json_doc: Document) -> Document:
    """The protobuf form of the served JSON document, with its own hash (for its ETag).

    The last result is kept, keyed by the JSON document's hash, so the document is encoded once
    per change of the API rather than once per request.
    """
    global _last
    with _lock:
        if _last is None or _last[0] != json_doc.hash:
            body = encode_document(orjson.loads(json_doc.body))
            _last = (json_doc.hash, Document(body, hashlib.sha512(body).hexdigest().upper()))
        return _last[1]


def wants_protobuf(accept: str) -> bool:
    """Whether an Accept header prefers the gnostic protobuf over JSON (the first listed wins)."""
    ranges = [part.split(";", 1)[0].strip().lower() for part in accept.split(",")]
    for media in ranges:
        if media.startswith(_MEDIA_TYPE_PREFIX):
            return True
        if media in ("application/json", "application/*", "*/*"):
            return False
    return False


__all__ = ["PROTOBUF_V2_MEDIA_TYPE", "encode_document", "encode_message", "protobuf_document", "wants_protobuf"]
