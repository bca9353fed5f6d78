"""Reading an API request: its path, its body, its query, and what it accepts in return.

Pure functions over strings and bytes, so the routing rules are unit-testable without a server.
Kubernetes' URL grammar:

    /api/v1/[watch/][namespaces/{ns}/]{resource}[/{name}[/{subresource}]]
    /apis/{group}/{version}/[watch/][namespaces/{ns}/]{resource}[/{name}[/{subresource}]]

where ``/api/v1/namespaces/{name}[/{subresource}]`` is the namespaces resource itself.
"""

from __future__ import annotations

import codecs
import json
import re
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from kybernetes import errors
from kybernetes.api import gojsonsyntax
from kybernetes.api.label_selectors import parse_int64
from kybernetes.apiserver.transport.protobuf import decode_k8s_protobuf, envelope_type, is_protobuf
from kybernetes.httpserver.messages import Request

MAX_BODY = 3 * 1024 * 1024
"""kube-apiserver's limit on a request body (413 beyond it)."""

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class ResourcePath:
    group: str
    version: str
    plural: str
    namespace: str = ""
    name: str = ""
    subresource: str = ""
    watch: bool = False
    """The legacy ``/watch/`` path prefix."""


def parse_resource_path(path: str) -> ResourcePath | None:
    """Split a resource URL; None if it is not one (discovery and other endpoints)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
        group, version, rest = "", "v1", parts[2:]
    elif len(parts) >= 3 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    if not rest:
        return None
    watch = False
    if rest[0] == "watch":
        watch = True
        rest = rest[1:]
        if not rest:
            return None
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and rest[2] in ("status", "finalize")):
        namespace = rest[1]
        rest = rest[2:]
    if len(rest) > 3:
        return None
    plural = rest[0]
    name = rest[1] if len(rest) > 1 else ""
    sub = rest[2] if len(rest) > 2 else ""
    return ResourcePath(group, version, plural, namespace, name, sub, watch)


RESCAN_STEPS = 1_000_000
"""The most steps the rescan for Go's words takes (about half a second on a quiet machine): an
ordinary body, even 3 MiB of it, takes far fewer; a crafted one (a million ``[1],``) gets
orjson's message inside kube's words instead of holding the event loop for seconds."""

_YAML_TYPES = ("application/yaml", "application/apply-patch+yaml")
_JSON_TYPES = ("", "application/json", "application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json")

BODY_MEDIA_TYPES = ("application/json", "application/yaml", "application/vnd.kubernetes.protobuf")
"""The media types a create, update or delete body may have: every scope's serializer lists these
three (``negotiation.NegotiateInputSerializer`` against ``SupportedMediaTypes``; a CRD's
``unstructuredNegotiatedSerializer`` lists protobuf too; CBOR only behind the
CBORServingAndStorage gate, off in 1.32). No Content-Type is the first, JSON."""


def read_body(raw: bytes, content_type: str, *, into: str | None = None, words: bool = True,
              field_validation: str = "", patch: bool | None = None, custom_version: str = "") -> object:
    """Decode a request body as JSON or YAML (protobuf for kubectl's typed clients); too large is
    413, an unknown media type 415, and a body that does not decode 400 in kube-apiserver's words
    (:func:`decode_failure`). ``into`` is the kind a create or update body is decoded into (a
    subresource's own: Binding, Eviction, Scale); None for a DeleteOptions body. A patch body is
    known by its content type, whatever ``into`` says. ``words=False`` (a reader that only wants
    the object, as the audit log does) skips the rescan that finds Go's words: the 400 says
    only that the body does not decode. ``field_validation`` is the request's fieldValidation
    parameter (a PATCH under ``Ignore`` is decoded, and worded, otherwise). ``patch`` says whether
    the request is a PATCH: False (a create, update or delete) refuses a patch media type with
    415 as :func:`body_media_type` does; None (a reader that does not know, the audit log)
    decodes either. ``custom_version`` is the group version of a custom resource the body is
    decoded into (``into`` its kind), which no protobuf body decodes into
    (:func:`protobuf_into_custom_resource`)."""
    if len(raw) > MAX_BODY:
        raise errors.RequestEntityTooLarge("Request entity too large: limit is 3145728")
    ctype = content_type.split(";", 1)[0].strip().lower()
    if patch is False:
        ctype = body_media_type(content_type)
    if ctype in _YAML_TYPES:
        if not raw.strip():
            raise errors.BadRequest("the request body is empty")
        try:
            value = _load_yaml(raw)
        except yaml.YAMLError as e:
            raise decode_failure(ctype, into, raw, yaml_error=_first_line(str(e)),
                                 field_validation=field_validation) from None
    elif ctype in _JSON_TYPES:
        try:
            value = _loads_json(raw)
        except orjson.JSONDecodeError as e:
            if not words:
                raise errors.BadRequest("the request body is not JSON") from None
            # orjson's words where Go's scanner accepts the body (nesting over 1024 levels, a number
            # past a double) or the rescan would take too long (a crafted body of many small arrays)
            go_error = gojsonsyntax.syntax_error(raw, max_steps=RESCAN_STEPS) or str(e)
            raise decode_failure(ctype, into, raw, go_error=go_error,
                                 field_validation=field_validation) from None
    elif is_protobuf(ctype):
        if custom_version and into:
            raise protobuf_into_custom_resource(raw, into, custom_version)
        return decode_k8s_protobuf(raw)
    else:
        raise unknown_format(BODY_MEDIA_TYPES)
    go_type = _go_type(ctype, field_validation)
    wants = list if PATCH_TYPES.get(ctype) == "json" else dict
    if go_type and value is not None and not isinstance(value, wants):
        raise decode_failure(ctype, into, raw, go_error=gojsonsyntax.unmarshal_type_error(value, go_type),
                             field_validation=field_validation)
    if go_type == _META_STRUCT and ctype in _JSON_TYPES and isinstance(value, dict):
        _interpret(value, ctype, into, raw)
    return value


def _interpret(obj: dict[str, Any], ctype: str, into: str | None, raw: bytes) -> None:
    """``SimpleMetaFactory.Interpret``'s refusals of a JSON object: an ``apiVersion`` or ``kind``
    (Go matches the names case-insensitively) that is not a string or null, the first in document
    order, in Go's words; then an apiVersion with more than one slash (``schema.ParseGroupVersion``,
    returned as it is, without the json parse error prefix)."""
    for key, value in obj.items():
        name = {"apiversion": "apiVersion", "kind": "kind"}.get(key.lower())
        if name is not None and value is not None and not isinstance(value, str):
            go_error = (f"json: cannot unmarshal {gojsonsyntax.json_type(value)} into Go struct field "
                        f".{name} of type string")
            raise decode_failure(ctype, into, raw, go_error=go_error)
    version = obj.get("apiVersion")
    if isinstance(version, str) and version.count("/") > 1:
        raise decode_failure(ctype, into, raw, bare=f"unexpected GroupVersion string: {version}")


_META_STRUCT = 'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
"""The anonymous struct ``SimpleMetaFactory.Interpret`` decodes apiVersion and kind into, as
``reflect`` names it in a type error."""


def _go_type(ctype: str, field_validation: str) -> str:
    """The Go type kube-apiserver first decodes a body of ``ctype`` into (``patch.go``); "" for a
    merge patch under fieldValidation=Ignore, which ``MergePatch`` takes whatever its type."""
    kind = PATCH_TYPES.get(ctype)
    ignore = field_validation == "Ignore"
    if kind == "json":
        return "jsonpatch.Patch" if ignore else "[]handlers.jsonPatchOp"
    if kind == "merge" and ignore:
        return ""
    if kind in ("merge", "strategic", "apply"):
        return "map[string]interface {}"
    return _META_STRUCT


def decode_failure(ctype: str, into: str | None, raw: bytes, *, go_error: str = "",
                   yaml_error: str = "", bare: str = "", field_validation: str = "") -> errors.BadRequest:
    """The 400 kube-apiserver 1.32 answers for a body that does not decode, worded per path
    (``go_error`` is Go's ``encoding/json`` message, :mod:`kybernetes.api.gojsonsyntax`; or
    ``yaml_error`` go-yaml's, which PyYAML's only approximates; or ``bare``, an error the meta
    factory returns as it is):

    * create (POST) and update (PUT), subresources included (``handlers/create.go``,
      ``update.go``): the serializer's ``SimpleMetaFactory.Interpret`` (``serializer/json/meta.go``)
      says ``couldn't get version/kind; json parse error: <go error>`` (a YAML body fails before,
      ``error converting YAML to JSON: <yaml error>``), and ``transformDecodeError``
      (``handlers/rest.go``) wraps it as ``the object provided is unrecognized (must be of type
      <kind>): <error> (<summary>)``, the summary being the first 30 bytes as text when the body
      starts with ``{``, else in hex, `` ...`` after a cut, ``<empty>`` for none;
    * DELETE with a DeleteOptions body (``handlers/delete.go``): the Interpret error as it is.
      kube-apiserver answers it as a 500 (the error is not a Status); we keep it a 400;
    * PATCH (``handlers/patch.go``, fieldValidation Strict or the default Warn; of an object
      that exists: :func:`~kybernetes.apiserver.registry.rest.read_patch`): a JSON patch or
      merge patch is ``error decoding patch: <go error>`` (``sigs.k8s.io/json`` into
      ``[]jsonPatchOp`` or ``map[string]interface{}``), a strategic merge patch the bare ``<go
      error>``, an apply patch (YAML or JSON, read as YAML) ``error decoding YAML: error
      converting YAML to JSON: <yaml error>`` (``error decoding YAML: error unmarshaling JSON:
      while decoding JSON: <go error>`` for a document that is not a mapping). With
      fieldValidation=Ignore a JSON patch is ``jsonpatch.DecodePatch``'s bare ``<go error>``
      (``encoding/json`` into ``jsonpatch.Patch``) and a merge patch that is not JSON ``Invalid
      JSON Patch`` (json-patch's ``ErrBadJSONPatch``).
    """
    patch = PATCH_TYPES.get(ctype)
    if bare:  # an error of the meta factory's own, not the JSON decoder's
        base = bare
    elif yaml_error:
        converting = f"error converting YAML to JSON: {yaml_error}"
        base = f"error decoding YAML: {converting}" if patch == "apply" else converting
    elif patch in ("json", "merge") and field_validation == "Ignore":
        base = go_error if patch == "json" else "Invalid JSON Patch"
    elif patch in ("json", "merge"):
        base = f"error decoding patch: {go_error}"
    elif patch == "strategic":
        base = go_error
    elif patch == "apply":  # a YAML document of the wrong type: sigs.k8s.io/yaml's second step
        base = f"error decoding YAML: error unmarshaling JSON: while decoding JSON: {go_error}"
    else:
        base = f"couldn't get version/kind; json parse error: {go_error}"
    if patch is not None or into is None:
        return errors.BadRequest(base)
    return errors.BadRequest(f"the object provided is unrecognized (must be of type {into}): {base} "
                             f"({_summary(raw)})")


def protobuf_into_custom_resource(raw: bytes, kind: str, group_version: str) -> errors.BadRequest:
    """The 400 for a protobuf create or update of a custom resource. A CRD's serializer lists
    protobuf (``customresource_handler.go``), so the media type passes, but its protobuf
    serializer decodes into an empty ``Unstructured`` whose typer has no kind for it: ``Object
    'Kind' is missing in 'object has no kind field '`` (``crdserverscheme``), under the kind
    and version the envelope names, the resource's filling what it leaves out
    (``copyKindDefaults``), as ``transformDecodeError`` words it. That is kube-apiserver 1.32's
    answer under fieldValidation=Ignore; under Warn or Strict (the default is Warn) the
    serializer has no strict variant and kube-apiserver panics (a 500): we answer the 400."""
    try:
        api_version, named = envelope_type(raw)
    except ValueError as e:  # no envelope, so no kind: the summary form
        return errors.BadRequest(f"the object provided is unrecognized (must be of type {kind}): {e} "
                                 f"({_summary(raw)})")
    parts = api_version.split("/")
    version = parts[-1] if len(parts) <= 2 else ""  # schema.ParseGroupVersion; an error is none
    version = version or group_version.rsplit("/", 1)[-1]
    return errors.BadRequest(f"{named or kind} in version \"{version}\" cannot be handled as a {kind}: "
                             "Object 'Kind' is missing in 'object has no kind field '")


def _summary(data: bytes, limit: int = 30) -> str:
    """``summarizeData``: a body's first bytes as transformDecodeError quotes them."""
    if not data:
        return "<empty>"
    more = " ..." if len(data) > limit else ""
    if data[:1] == b"{":
        return data[:limit].decode("utf-8", "kyb-go-utf8") + more
    return data[:limit].hex() + more


def _one_replacement_per_byte(e: UnicodeError) -> tuple[str, int]:
    assert isinstance(e, UnicodeDecodeError)
    return "\ufffd" * (e.end - e.start), e.end


codecs.register_error("kyb-go-utf8", _one_replacement_per_byte)
_SURROGATE = re.compile("[\ud800-\udfff]")


def _loads_json(raw: bytes) -> object:
    """JSON as Go's ``encoding/json`` reads it into Kubernetes' objects: invalid UTF-8 in a string
    is not an error but one U+FFFD per bad byte (``utf8.DecodeRune``), and so is a ``\\u``
    escape of a UTF-16 surrogate that is not half of a pair; orjson refuses both (a 400 where
    Kubernetes stores the object). Anything else orjson refuses is refused
    (``orjson.JSONDecodeError``)."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        if "surrogate" not in str(e) and "UTF-8" not in str(e):
            raise
        refused = e
    try:
        value = json.loads(raw.decode("utf-8", "kyb-go-utf8"), parse_constant=_no_constant)
    except ValueError:
        raise refused from None
    return _replace_surrogates(value)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    return value


def _load_yaml(raw: bytes) -> object:
    """One YAML document, refused (``yaml.YAMLError``) where go-yaml refuses it: an anchor whose value
    contains itself, or a document that is mostly alias expansion (a "billion laughs" bomb,
    CVE-2019-11253). PyYAML shares an alias's value instead of copying it, so the bomb is small
    once loaded, but every later step that walks the object (defaulting, validation, managed
    fields, encoding) would expand it; go-yaml counts what it would expand and stops."""
    loader = _YAML_LOADER(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_aliasing(node)
        return loader.construct_document(node)
    finally:
        loader.dispose()


_ALIAS_RATIO_LOW = 400_000
_ALIAS_RATIO_HIGH = 4_000_000


def _allowed_alias_ratio(decodes: int) -> float:
    """go-yaml's ``allowedAliasRatio``: 99% of the nodes decoded may come from alias expansion in
    documents of up to 400,000 decodes, scaling down to 10% at 4,000,000."""
    if decodes <= _ALIAS_RATIO_LOW:
        return 0.99
    if decodes >= _ALIAS_RATIO_HIGH:
        return 0.10
    return 0.99 - 0.89 * (decodes - _ALIAS_RATIO_LOW) / (_ALIAS_RATIO_HIGH - _ALIAS_RATIO_LOW)


def _check_aliasing(root: yaml.Node) -> None:
    """Walk ``root`` as go-yaml's decoder does, aliases expanded (a node met a second time is an
    alias: PyYAML composes an alias as the anchored node itself), and fail as go-yaml fails."""
    decodes = aliases = 0
    seen: set[int] = set()
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool, bool]] = [(root, False, False)]
    while stack:
        node, under_alias, leaving = stack.pop()
        key = id(node)
        if leaving:
            on_path.discard(key)
            continue
        if key in on_path:
            raise yaml.YAMLError("yaml: anchor value contains itself")
        if key in seen:  # the alias node itself, then its anchor's value expanded under it
            decodes += 1
            aliases += under_alias
            under_alias = True
        seen.add(key)
        decodes += 1
        aliases += under_alias
        if aliases > 100 and decodes > 1000 and aliases / decodes > _allowed_alias_ratio(decodes):
            raise yaml.YAMLError("yaml: document contains excessive aliasing")
        if isinstance(node, yaml.MappingNode):
            children = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            continue
        on_path.add(key)
        stack.append((node, under_alias, True))
        stack.extend((child, under_alias, False) for child in reversed(children))


def _first_line(s: str) -> str:
    return s.strip().splitlines()[0] if s.strip() else s


PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


CUSTOM_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json", "application/apply-patch+yaml")
"""A custom resource's patch types, in the CRD handler's order (``customresource_handler.go``
``supportedTypes``): no strategic merge patch, CBOR apply only behind its gate."""


def unknown_format(accepted: tuple[str, ...]) -> errors.UnsupportedMediaType:
    """``negotiation.NewUnsupportedMediaTypeError``'s 415 (``negotiation/errors.go``; no details)."""
    return errors.UnsupportedMediaType("the body of the request was in an unknown format - "
                                       "accepted media types include: " + ", ".join(accepted))


def body_media_type(content_type: str) -> str:
    """The media type of a create, update or delete body, or 415 (``NegotiateInputSerializer``):
    Go's ``mime.ParseMediaType`` lowercases and trims the type and drops its parameters; none is
    JSON; anything but :data:`BODY_MEDIA_TYPES` (a patch type included) is refused."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    if not ctype:
        return "application/json"
    if ctype not in BODY_MEDIA_TYPES:
        raise unknown_format(BODY_MEDIA_TYPES)
    return ctype


def patch_type(content_type: str, *, builtin: bool = True, content_length: str | None = "1") -> str:
    """A PATCH's type (json, merge, strategic or apply) from its Content-Type, checked before
    anything else of the request (the object's 404 and the body's 400 come after):

    * a built-in resource's PATCH route consumes only the four patch types (``installer.go``
      ``supportedTypes``, go-restful's ``Consumes``), so go-restful's router refuses another
      with its own ``415: Unsupported Media Type`` (``jsr311.go``), which kube-apiserver's
      ``serviceErrorHandler`` wraps in ``NewGenericServerResponse`` (details ``{}``);
    * a custom resource's is ``handlers/patch.go``'s check against :data:`CUSTOM_PATCH_TYPES`.

    Both compare the type exactly as sent (case included), after cutting ``;`` parameters.
    go-restful's 415 needs a body it knows of (``content_length``, the Content-Length header,
    over 0); with none its router goes on to match Accept among no routes: 415 with an empty
    list of representations when the header is absent, else 406.
    """
    idx = content_type.find(";")
    ctype = content_type[:idx] if idx > 0 else content_type
    if builtin:
        # go-restful trims blanks around the type; patch.go, next, does not
        t = PATCH_TYPES.get(ctype.strip())
        if t is None:
            raise _unrouted(content_length)
        if ctype in PATCH_TYPES:
            return t
        raise unknown_format(tuple(PATCH_TYPES))
    if ctype not in CUSTOM_PATCH_TYPES:
        raise unknown_format(CUSTOM_PATCH_TYPES)
    return PATCH_TYPES[ctype]


def _unrouted(content_length: str | None) -> errors.StatusError:
    """go-restful's refusal of a PATCH no route consumes (``jsr311.go`` ``detectRoute``)."""
    if content_length is not None and content_length.strip().isdigit() and int(content_length) > 0:
        return errors.UnsupportedMediaType("415: Unsupported Media Type", details={})
    if content_length is None:
        return errors.UnsupportedMediaType("415: Unsupported Media Type\n\nAvailable representations: ", details={})
    return errors.NotAcceptable("406: Not Acceptable\n\nAvailable representations: ", details={})


@dataclass
class Accept:
    table: bool = False
    partial_metadata: bool = False
    aggregated_discovery: bool = False
    json_ok: bool = True
    yaml: bool = False


_ACCEPT_CACHE: dict[str, Accept] = {}
_ACCEPT_CACHE_MAX = 256


def parse_accept(header: str) -> Accept:
    """What representation the client asks for, in its order of preference.

    Clients send the same few headers over and over: parsed ones are remembered (bounded, as
    the header is the client's to choose). The result is shared: callers must not modify it.
    """
    hit = _ACCEPT_CACHE.get(header)
    if hit is not None:
        return hit
    out = _parse_accept(header)
    if len(_ACCEPT_CACHE) >= _ACCEPT_CACHE_MAX:
        _ACCEPT_CACHE.clear()
    _ACCEPT_CACHE[header] = out
    return out


def _parse_accept(header: str) -> Accept:
    if not header:
        return Accept()
    out = Accept(json_ok=False)
    for raw in header.split(","):
        parts = [p.strip() for p in raw.split(";")]
        media = parts[0].lower()
        params = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        if media in ("application/json", "*/*", "application/*"):
            as_ = params.get("as")
            if as_ == "Table" and params.get("g") == "meta.k8s.io":
                out.table = out.table or not (out.json_ok or out.partial_metadata)
            elif as_ in ("PartialObjectMetadata", "PartialObjectMetadataList") and params.get("g") == "meta.k8s.io":
                out.partial_metadata = out.partial_metadata or not (out.json_ok or out.table)
            elif as_ == "APIGroupDiscoveryList" and params.get("g") == "apidiscovery.k8s.io" and params.get("v") == "v2":
                out.aggregated_discovery = True
            elif as_ is None:
                out.json_ok = True
        elif media in ("application/yaml",):
            out.yaml = not (out.json_ok or out.table)
            out.json_ok = True
    if not (out.json_ok or out.table or out.partial_metadata or out.aggregated_discovery):
        raise errors.NotAcceptable(
            "only the following media types are accepted: application/json, application/yaml, "
            "application/json;as=Table;v=v1;g=meta.k8s.io"
        )
    return out


_PRETTY_AGENTS = ("curl", "Wget", "Mozilla/5.0")


def pretty_requested(request: Request) -> bool:
    """kube-apiserver's ``isPrettyPrint``: ``?pretty=`` when given (``strconv.ParseBool``), else
    pretty for curl, Wget and browsers."""
    value = request.query.get("pretty")
    if value:
        return value in ("1", "t", "T", "TRUE", "true", "True")
    return str(request.headers.get("User-Agent", "")).startswith(_PRETTY_AGENTS)


def bool_param(value: str | None) -> bool:
    """A boolean query parameter as Kubernetes' parameter codec reads it
    (``runtime.Convert_Slice_string_To_bool``): absent, ``0`` or ``false`` in any case is false,
    anything else, the empty value included, is true (``?watch=yes`` is a watch). Not ``pretty``,
    which is ``strconv.ParseBool`` (:func:`pretty_requested`)."""
    return value is not None and value != "0" and value.casefold() != "false"


def int_param(value: str | None, name: str) -> int | None:
    """An int64 query parameter as Kubernetes' parameter codec reads it (``strconv.ParseInt``): a
    value that is not one, or out of int64's range, is a 400 with Go's words."""
    if value is None or value == "":
        return None
    parsed = parse_int64(value)
    if parsed is None:
        why = "value out of range" if value.lstrip("+-").isdigit() and value.isascii() else "invalid syntax"
        raise errors.BadRequest(f'strconv.ParseInt: parsing "{value}": {why}')
    return parsed
