"""The OpenAPI documents the API server publishes: ``/openapi/v3``, ``/openapi/v3/<gv>`` and ``/openapi/v2``.

Why this matters to clients: kubectl 1.32 reads ``/openapi/v3`` for ``kubectl explain``, for the
strategic-merge-patch metadata of ``kubectl apply`` and, before every write, to decide whether the
server does field validation itself. That last check (``query_param_verifier_v3``) looks through
the group-version document for a ``patch`` operation whose ``x-kubernetes-group-version-kind``
equals the object's GVK and then for an operation parameter ``fieldValidation`` ``in: query``. If
it finds none it falls back to client-side validation through ``/openapi/v2`` in protobuf (served by
``openapi_pb.py``, and needed for ``kind: List`` files); every PATCH operation here carries that parameter.

Where the schemas come from:

* built-in kinds: Kubernetes 1.32's definitions (:func:`kybernetes.api.schema.definitions`),
  which are JSON-Schema flavoured (``"type": ["string", "null"]``, ``$ref: "#/$defs/..."``). They
  are converted node by node into the OpenAPI form kube-apiserver serves: one ``type``, refs to
  ``#/components/schemas/`` (v3, wrapped as ``allOf: [{$ref}]`` when the property has its own
  description, as kube-openapi does) or ``#/definitions/`` (v2), IntOrString as
  ``format: int-or-string`` plus ``oneOf`` integer/string, Quantity as ``oneOf`` string/number;
* custom resources: the CRD version's ``openAPIV3Schema`` (through the ``crd_schemas`` callback),
  published under Kubernetes' name ``<reversed group>.<version>.<Kind>`` with ``apiVersion``,
  ``kind``, ``metadata`` (ObjectMeta) and ``x-kubernetes-group-version-kind`` added.

A group-version document holds only the definitions reachable from its own paths (kinds, lists,
Status, DeleteOptions, Patch, WatchEvent, subresource kinds such as autoscaling/v1 Scale), so each
document is self-contained: every ``$ref`` in it resolves within it.

Building a document walks hundreds of definitions, so :class:`OpenAPIService` memoizes the
serialized bytes per group-version and rebuilds only the group-versions whose resources (or CRD
schemas) changed; the index advertises each document with a content hash, which clients use as a
cache key (``?hash=``) and which doubles as the ETag.
"""

from __future__ import annotations

import copy
import hashlib
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from kybernetes.api import schema as k8s_schema
from kybernetes.api.resources import Catalogue, Resource

Obj = dict[str, Any]
CRDSchemas = Callable[[str, str, str], "dict[str, Any] | None"]

K8S_VERSION = "v1.32.0"
V3_PREFIX = "#/components/schemas/"
V2_PREFIX = "#/definitions/"
_DEFS_PREFIX = "#/$defs/"

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
OBJECT_META = META + "ObjectMeta"
LIST_META = META + "ListMeta"
STATUS = META + "Status"
DELETE_OPTIONS = META + "DeleteOptions"
PATCH = META + "Patch"
WATCH_EVENT = META + "WatchEvent"
API_RESOURCE_LIST = META + "APIResourceList"
API_GROUP = META + "APIGroup"
API_GROUP_LIST = META + "APIGroupList"
API_VERSIONS = META + "APIVersions"
VERSION_INFO = "io.k8s.apimachinery.pkg.version.Info"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"

PATCH_TYPES = (
    "application/apply-patch+yaml",
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
)
RESPONSE_TYPES = ("application/json", "application/yaml")
WATCH_TYPES = ("application/json", "application/json;stream=watch", "application/yaml")

# The keywords whose values are schema nodes (or maps / lists of them); everything else in a
# node is a scalar or an extension whose content must not be rewritten.
_NODE_KEYS = ("items", "additionalProperties", "not")
_NODE_LIST_KEYS = ("allOf", "anyOf", "oneOf")


# --- schema conversion -------------------------------------------------------------------------


def _first_type(t: Any) -> Any:
    if isinstance(t, list):
        return next((x for x in t if x != "null"), None)
    return t


def _ref_target(ref: str) -> str:
    return ref[len(_DEFS_PREFIX):] if ref.startswith(_DEFS_PREFIX) else ref


def convert_node(node: Any, prefix: str, *, v3: bool) -> Any:
    """One JSON-Schema-flavoured node in the form kube-apiserver publishes (v3 or v2)."""
    if not isinstance(node, dict):
        return node
    out: Obj = {}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = prefix + _ref_target(ref)
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        if not siblings:
            return {"$ref": target}
        # OpenAPI 3.0 ignores siblings of $ref; kube-openapi therefore wraps the reference in a
        # one-element allOf so the field's own description survives. Swagger 2 keeps siblings.
        if v3:
            out["allOf"] = [{"$ref": target}]
        else:
            out["$ref"] = target
        node = siblings
    for k, v in node.items():
        if k == "type":
            t = _first_type(v)
            if t is not None:
                out["type"] = t
        elif k == "properties" and isinstance(v, dict):
            out[k] = {pk: convert_node(pv, prefix, v3=v3) for pk, pv in v.items()}
        elif k in _NODE_KEYS and isinstance(v, dict):
            out[k] = convert_node(v, prefix, v3=v3)
        elif k in _NODE_LIST_KEYS and isinstance(v, list):
            out[k] = [convert_node(x, prefix, v3=v3) for x in v]
        else:
            out[k] = v
    return out


def convert_definition(name: str, raw: Obj, prefix: str, *, v3: bool) -> Obj:
    """A whole built-in definition, with the two special scalar types Kubernetes hand-writes."""
    desc = raw.get("description")
    if name == INT_OR_STRING:
        out: Obj = {"type": "string", "format": "int-or-string"}
        if v3:
            out = {"format": "int-or-string", "oneOf": [{"type": "integer"}, {"type": "string"}]}
    elif name == QUANTITY:
        out = {"oneOf": [{"type": "string"}, {"type": "number"}]} if v3 else {"type": "string"}
    else:
        out = convert_node(raw, prefix, v3=v3)
        props = out.get("properties")
        # kubernetes-validate pins apiVersion/kind with one-value enums; kube-apiserver does not,
        # and a List kind's apiVersion is shared across kinds anyway.
        if isinstance(props, dict):
            for f in ("apiVersion", "kind"):
                p = props.get(f)
                if isinstance(p, dict) and "enum" in p:
                    props[f] = {k: v for k, v in p.items() if k != "enum"}
        return out
    if desc:
        out = {"description": desc, **out}
    return out


def _refs_in(node: Any, prefix: str, found: set[str]) -> None:
    """Every definition name ``node`` refers to (references start with ``prefix``)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(prefix):
                found.add(v[len(prefix):])
            elif isinstance(v, dict | list):
                _refs_in(v, prefix, found)
    elif isinstance(node, list):
        for x in node:
            _refs_in(x, prefix, found)


def crd_definition_name(group: str, version: str, kind: str) -> str:
    """Kubernetes' published name of a custom kind: ``com.example.stable.v1.CronTab``."""
    rev = ".".join(reversed(group.split("."))) if group else ""
    return ".".join(x for x in (rev, version, kind) if x)


def _strip_for_v2(node: Any) -> Any:
    """Swagger 2 has no nullable/oneOf/anyOf/not; kube-apiserver drops them from CRD schemas."""
    if isinstance(node, dict):
        out: Obj = {}
        for k, v in node.items():
            if k in ("nullable", "oneOf", "anyOf", "not"):
                continue
            if k == "properties" and isinstance(v, dict):
                out[k] = {pk: _strip_for_v2(pv) for pk, pv in v.items()}
            elif k in ("items", "additionalProperties") and isinstance(v, dict):
                out[k] = _strip_for_v2(v)
            elif k == "allOf" and isinstance(v, list):
                out[k] = [_strip_for_v2(x) for x in v]
            else:
                out[k] = v
        return out
    return node


def crd_definitions(r: Resource, raw_schema: Obj | None, prefix: str, *, v3: bool) -> dict[str, Obj]:
    """The published definitions of a custom kind and its List."""
    gvk = [{"group": r.group, "kind": r.kind, "version": r.version}]
    body: Obj = copy.deepcopy(raw_schema) if raw_schema else {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    if not v3:
        body = _strip_for_v2(body)
    body.setdefault("type", "object")
    props: Obj = dict(body.get("properties") or {})
    props["apiVersion"] = {"type": "string", "description": _APIVERSION_DESC}
    props["kind"] = {"type": "string", "description": _KIND_DESC}
    meta_ref = {"$ref": prefix + OBJECT_META}
    props["metadata"] = (
        {"allOf": [meta_ref], "description": _META_DESC} if v3 else {**meta_ref, "description": _META_DESC}
    )
    body["properties"] = props
    body["x-kubernetes-group-version-kind"] = gvk
    name = crd_definition_name(r.group, r.version, r.kind)
    items = {"items": {"$ref": prefix + name}, "type": "array", "description": f"List of {r.plural}."}
    list_meta = {"$ref": prefix + LIST_META}
    lst: Obj = {
        "description": f"{r.kind}List is a list of {r.kind}",
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": _APIVERSION_DESC},
            "items": items,
            "kind": {"type": "string", "description": _KIND_DESC},
            "metadata": {"allOf": [list_meta], "description": _LISTMETA_DESC} if v3
            else {**list_meta, "description": _LISTMETA_DESC},
        },
        "x-kubernetes-group-version-kind": [{"group": r.group, "kind": r.list_kind, "version": r.version}],
    }
    return {name: body, crd_definition_name(r.group, r.version, r.list_kind): lst}


_APIVERSION_DESC = (
    "APIVersion defines the versioned schema of this representation of an object. Servers should "
    "convert recognized schemas to the latest internal value, and may reject unrecognized values."
)
_KIND_DESC = (
    "Kind is a string value representing the REST resource this object represents. Servers may "
    "infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase."
)
_META_DESC = "Standard object's metadata."
_LISTMETA_DESC = "Standard list metadata."


# --- names of things ----------------------------------------------------------------------------


def _camel(s: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[.\-]", s) if p)


def group_camel(group: str) -> str:
    """``Core`` / ``Apps`` / ``RbacAuthorization`` / ``StableExampleCom`` as in operation ids."""
    if not group:
        return "Core"
    return _camel(group.removesuffix(".k8s.io"))


def gv_path(group: str, version: str) -> str:
    """The index key and URL tail of a group-version: ``api/v1``, ``apis/apps/v1``."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def _tag(group: str, version: str) -> str:
    g = group.removesuffix(".k8s.io").replace(".", "_").replace("-", "_") if group else "core"
    return f"{g}_{version}"


# --- parameters ---------------------------------------------------------------------------------


def _qparam(name: str, typ: str, desc: str) -> Obj:
    return {"name": name, "in": "query", "description": desc, "schema": {"type": typ, "uniqueItems": True}}


def _pparam(name: str, desc: str) -> Obj:
    return {"name": name, "in": "path", "description": desc, "required": True,
            "schema": {"type": "string", "uniqueItems": True}}


P_PRETTY = _qparam("pretty", "string", "If 'true', then the output is pretty printed.")
P_DRY_RUN = _qparam("dryRun", "string", "When present, indicates that modifications should not be persisted. "
                    "Valid values are: - All: all dry run stages will be processed")
P_FIELD_MANAGER = _qparam("fieldManager", "string", "fieldManager is a name associated with the actor or entity "
                          "that is making these changes.")
P_FIELD_VALIDATION = _qparam(
    "fieldValidation", "string",
    "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing "
    "unknown or duplicate fields. Valid values are: - Ignore - Warn (default) - Strict",
)
P_FORCE = _qparam("force", "boolean", "Force is going to \"force\" Apply requests. It means user will re-acquire "
                  "conflicting fields owned by other people. Must be unset for non-apply patch requests.")
P_NAMESPACE = _pparam("namespace", "object name and auth scope, such as for teams and projects")
LIST_PARAMS = (
    _qparam("allowWatchBookmarks", "boolean", "allowWatchBookmarks requests watch events with type \"BOOKMARK\"."),
    _qparam("continue", "string", "The continue option should be set when retrieving more results from the server."),
    _qparam("fieldSelector", "string", "A selector to restrict the list of returned objects by their fields."),
    _qparam("labelSelector", "string", "A selector to restrict the list of returned objects by their labels."),
    _qparam("limit", "integer", "limit is a maximum number of responses to return for a list call."),
    _qparam("resourceVersion", "string", "resourceVersion sets a constraint on what resource versions a request "
            "may be served from."),
    _qparam("resourceVersionMatch", "string", "resourceVersionMatch determines how resourceVersion is applied to "
            "list calls."),
    _qparam("sendInitialEvents", "boolean", "`sendInitialEvents=true` may be set together with `watch=true`."),
    _qparam("timeoutSeconds", "integer", "Timeout for the list/watch call."),
    _qparam("watch", "boolean", "Watch for changes to the described resources and return them as a stream of add, "
            "update, and remove notifications."),
)
DELETE_PARAMS = (
    P_DRY_RUN,
    _qparam("gracePeriodSeconds", "integer", "The duration in seconds before the object should be deleted."),
    _qparam("ignoreStoreReadErrorWithClusterBreakingPotential", "boolean",
            "if set to true, it will trigger an unsafe deletion of the resource in case the normal deletion flow "
            "fails with a corrupt object error."),
    _qparam("orphanDependents", "boolean", "Deprecated: please use the PropagationPolicy."),
    _qparam("propagationPolicy", "string", "Whether and how garbage collection will be performed."),
)
WRITE_PARAMS = (P_DRY_RUN, P_FIELD_MANAGER, P_FIELD_VALIDATION)


# --- paths --------------------------------------------------------------------------------------


@dataclass
class _Ctx:
    """What an operation needs to know: the document flavour and the definition names in use."""

    v3: bool
    prefix: str
    kind_def: str
    list_def: str
    group: str
    version: str


def _ref(ctx: _Ctx, name: str) -> Obj:
    return {"$ref": ctx.prefix + name}


def _gvk(group: str, version: str, kind: str) -> Obj:
    return {"group": group, "kind": kind, "version": version}


def _op(
    ctx: _Ctx,
    *,
    op_id: str,
    desc: str,
    action: str,
    gvk: Obj | None,
    params: Iterable[Obj] = (),
    body: str | None = None,
    body_types: tuple[str, ...] = ("*/*",),
    responses: dict[str, str | None],
    response_types: tuple[str, ...] = RESPONSE_TYPES,
) -> Obj:
    """One operation; ``responses`` maps status codes to a definition name (None: no body)."""
    op: Obj = {"description": desc, "operationId": op_id, "tags": [_tag(ctx.group, ctx.version)]}
    plist = [dict(p) for p in params]
    if ctx.v3:
        if plist:
            op["parameters"] = plist
        if body:
            op["requestBody"] = {"content": {t: {"schema": _ref(ctx, body)} for t in body_types}, "required": True}
        resp: Obj = {}
        for code, name in responses.items():
            r: Obj = {"description": _CODE_TEXT.get(code, "OK")}
            if name:
                r["content"] = {t: {"schema": _ref(ctx, name)} for t in response_types}
            resp[code] = r
        op["responses"] = resp
    else:
        v2params = [_v2_param(p) for p in plist]
        if body:
            v2params.insert(0, {"name": "body", "in": "body", "required": True, "schema": _ref(ctx, body)})
            op["consumes"] = list(body_types)
        if v2params:
            op["parameters"] = v2params
        op["produces"] = list(response_types)
        op["schemes"] = ["https"]
        resp = {}
        for code, name in responses.items():
            r = {"description": _CODE_TEXT.get(code, "OK")}
            if name:
                r["schema"] = _ref(ctx, name)
            resp[code] = r
        op["responses"] = resp
    op["x-kubernetes-action"] = action
    if gvk is not None:
        op["x-kubernetes-group-version-kind"] = gvk
    return op


_CODE_TEXT = {"200": "OK", "201": "Created", "202": "Accepted", "401": "Unauthorized"}


def _v2_param(p: Obj) -> Obj:
    """Swagger 2 parameters carry their type inline instead of in a ``schema``."""
    out = {k: v for k, v in p.items() if k != "schema"}
    out.update(p.get("schema") or {})
    return out


def _name_param(kind: str, what: str = "") -> Obj:
    return _pparam("name", f"name of the {what or kind}")


def _std_item_ops(
    ctx: _Ctx, r: Resource, *, suffix: str, subject: str, gvk: Obj, noun: str, verbs: Iterable[str],
) -> Obj:
    """get/put/patch (and delete on the main resource) on one object or one of its subresources."""
    ns = "Namespaced" if r.namespaced else ""
    gc, vc = group_camel(r.group), _camel(r.version)
    ops: Obj = {}
    verbs = set(verbs)
    if "get" in verbs:
        ops["get"] = _op(ctx, op_id=f"read{gc}{vc}{ns}{r.kind}{suffix}", desc=f"read {noun} of the specified {r.kind}",
                         action="get", gvk=gvk, responses={"200": subject, "401": None})
    if "update" in verbs:
        ops["put"] = _op(ctx, op_id=f"replace{gc}{vc}{ns}{r.kind}{suffix}",
                         desc=f"replace {noun} of the specified {r.kind}", action="put", gvk=gvk,
                         params=WRITE_PARAMS, body=subject,
                         responses={"200": subject, "201": subject, "401": None})
    if "patch" in verbs:
        ops["patch"] = _op(ctx, op_id=f"patch{gc}{vc}{ns}{r.kind}{suffix}",
                           desc=f"partially update {noun} of the specified {r.kind}", action="patch", gvk=gvk,
                           params=(*WRITE_PARAMS, P_FORCE), body=PATCH, body_types=PATCH_TYPES,
                           responses={"200": subject, "201": subject, "401": None})
    if "delete" in verbs and not suffix:
        ops["delete"] = _op(ctx, op_id=f"delete{gc}{vc}{ns}{r.kind}", desc=f"delete a {r.kind}", action="delete",
                            gvk=gvk, params=DELETE_PARAMS, body=DELETE_OPTIONS,
                            responses={"200": STATUS, "202": STATUS, "401": None})
    return ops


# Subresources that are not status/scale: (methods, action, body kind, response kind, gvk kind).
# A gvk of None means the subresource speaks in terms of the parent kind.
_SPECIAL_SUBRESOURCES: dict[str, tuple[tuple[str, ...], str, tuple[str, str, str] | None]] = {
    "binding": (("post",), "post", ("", "v1", "Binding")),
    "eviction": (("post",), "post", ("policy", "v1", "Eviction")),
    "token": (("post",), "post", ("authentication.k8s.io", "v1", "TokenRequest")),
    "finalize": (("put",), "put", None),
    "ephemeralcontainers": (("get", "put", "patch"), "", None),
    "log": (("get",), "get", None),
    "exec": (("get", "post"), "connect", ("", "v1", "PodExecOptions")),
    "attach": (("get", "post"), "connect", ("", "v1", "PodAttachOptions")),
    "portforward": (("get", "post"), "connect", ("", "v1", "PodPortForwardOptions")),
    # The kind is <Parent>ProxyOptions, filled in below: a proxy PATCH must never carry the
    # parent's GVK, or kubectl's fieldValidation probe could land on it.
    "proxy": (("get", "post", "put", "patch", "delete"), "connect", ("", "v1", "")),
}


def _resource_paths(ctx: _Ctx, r: Resource) -> dict[str, Obj]:
    base = "/api/" + r.version if not r.group else f"/apis/{r.group}/{r.version}"
    gc, vc = group_camel(r.group), _camel(r.version)
    ns = "Namespaced" if r.namespaced else ""
    gvk = _gvk(r.group, r.version, r.kind)
    scope = f"{base}/namespaces/{{namespace}}" if r.namespaced else base
    scope_params = [P_NAMESPACE] if r.namespaced else []
    verbs = set(r.verbs)
    paths: dict[str, Obj] = {}

    # The collection.
    coll: Obj = {}
    if "list" in verbs:
        coll["get"] = _op(ctx, op_id=f"list{gc}{vc}{ns}{r.kind}", desc=f"list or watch objects of kind {r.kind}",
                          action="list", gvk=gvk, params=LIST_PARAMS,
                          responses={"200": ctx.list_def, "401": None}, response_types=WATCH_TYPES)
    if "create" in verbs:
        coll["post"] = _op(ctx, op_id=f"create{gc}{vc}{ns}{r.kind}", desc=f"create a {r.kind}", action="post",
                           gvk=gvk, params=WRITE_PARAMS, body=ctx.kind_def,
                           responses={"200": ctx.kind_def, "201": ctx.kind_def, "202": ctx.kind_def, "401": None})
    if "deletecollection" in verbs:
        coll["delete"] = _op(ctx, op_id=f"delete{gc}{vc}Collection{ns}{r.kind}",
                             desc=f"delete collection of {r.kind}", action="deletecollection", gvk=gvk,
                             params=(*DELETE_PARAMS, *LIST_PARAMS), body=DELETE_OPTIONS,
                             responses={"200": STATUS, "401": None})
    if coll:
        coll["parameters"] = [*scope_params, P_PRETTY]
        paths[f"{scope}/{r.plural}"] = coll

    # All namespaces, and the deprecated watch paths kube-apiserver still lists.
    if r.namespaced and "list" in verbs:
        paths[f"{base}/{r.plural}"] = {
            "get": _op(ctx, op_id=f"list{gc}{vc}{r.kind}ForAllNamespaces",
                       desc=f"list or watch objects of kind {r.kind}", action="list", gvk=gvk,
                       responses={"200": ctx.list_def, "401": None}, response_types=WATCH_TYPES),
            "parameters": [*LIST_PARAMS, P_PRETTY],
        }
    if "watch" in verbs:
        watch_scope = f"{base}/watch/namespaces/{{namespace}}" if r.namespaced else f"{base}/watch"
        paths[f"{watch_scope}/{r.plural}"] = {
            "get": _op(ctx, op_id=f"watch{gc}{vc}{ns}{r.kind}List",
                       desc=f"watch individual changes to a list of {r.kind}", action="watchlist", gvk=gvk,
                       responses={"200": WATCH_EVENT, "401": None}, response_types=WATCH_TYPES),
            "parameters": [*LIST_PARAMS, *scope_params, P_PRETTY],
        }
        paths[f"{watch_scope}/{r.plural}/{{name}}"] = {
            "get": _op(ctx, op_id=f"watch{gc}{vc}{ns}{r.kind}", desc=f"watch changes to an object of kind {r.kind}",
                       action="watch", gvk=gvk, responses={"200": WATCH_EVENT, "401": None},
                       response_types=WATCH_TYPES),
            "parameters": [*LIST_PARAMS, _name_param(r.kind), *scope_params, P_PRETTY],
        }
        if r.namespaced:
            paths[f"{base}/watch/{r.plural}"] = {
                "get": _op(ctx, op_id=f"watch{gc}{vc}{r.kind}ListForAllNamespaces",
                           desc=f"watch individual changes to a list of {r.kind}", action="watchlist", gvk=gvk,
                           responses={"200": WATCH_EVENT, "401": None}, response_types=WATCH_TYPES),
                "parameters": [*LIST_PARAMS, P_PRETTY],
            }

    # The object.
    item = _std_item_ops(ctx, r, suffix="", subject=ctx.kind_def, gvk=gvk, noun="the", verbs=verbs)
    item_params = [_name_param(r.kind), *scope_params, P_PRETTY]
    if item:
        item["parameters"] = item_params
        paths[f"{scope}/{r.plural}/{{name}}"] = item

    # Subresources.
    for sub in r.subresources:
        sub_path = f"{scope}/{r.plural}/{{name}}/{sub}"
        sub_params = [_name_param(r.kind), *scope_params, P_PRETTY]
        if sub in ("status", "approval"):
            ops = _std_item_ops(ctx, r, suffix=sub.capitalize(), subject=ctx.kind_def, gvk=gvk, noun=sub,
                                verbs=("get", "update", "patch"))
        elif sub == "scale":
            scale = "io.k8s.api.autoscaling.v1.Scale"
            ops = _std_item_ops(ctx, r, suffix="Scale", subject=scale, gvk=_gvk("autoscaling", "v1", "Scale"),
                                noun="scale", verbs=("get", "update", "patch"))
        elif sub in _SPECIAL_SUBRESOURCES:
            ops = _special_subresource(ctx, r, sub, gvk)
        else:
            continue
        if ops:
            ops["parameters"] = sub_params
            paths[sub_path] = ops
    return paths


def _special_subresource(ctx: _Ctx, r: Resource, sub: str, parent_gvk: Obj) -> Obj:
    methods, action, sub_gvk = _SPECIAL_SUBRESOURCES[sub]
    gc, vc = group_camel(r.group), _camel(r.version)
    ns = "Namespaced" if r.namespaced else ""
    suffix = _camel(sub)
    if sub == "ephemeralcontainers":
        return _std_item_ops(ctx, r, suffix="Ephemeralcontainers", subject=ctx.kind_def, gvk=parent_gvk,
                             noun="ephemeralcontainers", verbs=("get", "update", "patch"))
    if sub == "proxy":
        sub_gvk = ("", "v1", f"{r.kind}ProxyOptions")
    gvk = _gvk(*sub_gvk) if sub_gvk else parent_gvk
    sub_def = (k8s_schema.definition_name(*sub_gvk) or ctx.kind_def) if sub_gvk else ctx.kind_def
    ops: Obj = {}
    for m in methods:
        verb = {"get": "read", "post": "create", "put": "replace", "patch": "patch", "delete": "delete"}[m]
        if action == "connect":
            verb = "connect" + m.capitalize()
            ops[m] = _op(ctx, op_id=f"{verb}{gc}{vc}{ns}{r.kind}{suffix}", desc=f"connect {m.upper()} requests to "
                         f"{sub} of {r.kind}", action="connect", gvk=gvk, responses={"200": None, "401": None},
                         response_types=("*/*",))
            continue
        if sub == "log":
            ops[m] = _op(ctx, op_id=f"read{gc}{vc}{ns}{r.kind}Log", desc=f"read log of the specified {r.kind}",
                         action="get", gvk=gvk, responses={"200": None, "401": None},
                         params=(_qparam("container", "string", "The container for which to stream logs."),
                                 _qparam("follow", "boolean", "Follow the log stream of the pod."),
                                 _qparam("previous", "boolean", "Return previous terminated container logs."),
                                 _qparam("sinceSeconds", "integer", "A relative time in seconds."),
                                 _qparam("tailLines", "integer", "Number of lines from the end of the logs."),
                                 _qparam("timestamps", "boolean", "Add an RFC3339 timestamp to every line.")),
                         response_types=("text/plain",))
            continue
        body = sub_def if m in ("post", "put") else None
        ops[m] = _op(ctx, op_id=f"{verb}{gc}{vc}{ns}{r.kind}{suffix}", desc=f"{verb} {sub} of a {r.kind}",
                     action=action, gvk=gvk, params=WRITE_PARAMS if body else (), body=body,
                     responses={"200": sub_def, "201": sub_def, "202": sub_def, "401": None})
    return ops


# --- documents ----------------------------------------------------------------------------------


def _definitions_for(
    resources: list[Resource], crd_schemas: CRDSchemas, prefix: str, *, v3: bool,
) -> tuple[dict[str, Obj], dict[tuple[str, str, str], tuple[str, str]]]:
    """Converted custom definitions plus (kind, list) definition names per GVK."""
    custom: dict[str, Obj] = {}
    names: dict[tuple[str, str, str], tuple[str, str]] = {}
    for r in resources:
        kind_def = k8s_schema.definition_name(r.group, r.version, r.kind) if r.builtin else None
        list_def = k8s_schema.definition_name(r.group, r.version, r.list_kind) if r.builtin else None
        if kind_def and list_def:
            names[(r.group, r.version, r.kind)] = (kind_def, list_def)
            continue
        defs = crd_definitions(r, crd_schemas(r.group, r.version, r.kind), prefix, v3=v3)
        custom.update(defs)
        names[(r.group, r.version, r.kind)] = (
            crd_definition_name(r.group, r.version, r.kind),
            crd_definition_name(r.group, r.version, r.list_kind),
        )
    return custom, names


def _close_over(roots: set[str], custom: dict[str, Obj], prefix: str, *, v3: bool) -> dict[str, Obj]:
    """Every definition reachable from ``roots`` (built-in ones converted on the way), sorted."""
    builtin = k8s_schema.definitions()
    out: dict[str, Obj] = {}
    todo = sorted(roots)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        if name in custom:
            d = custom[name]
        elif name in builtin:
            d = convert_definition(name, builtin[name], prefix, v3=v3)
        else:
            continue
        out[name] = d
        found: set[str] = set()
        _refs_in(d, prefix, found)
        todo.extend(sorted(found - out.keys()))
    return dict(sorted(out.items()))


def _paths_and_defs(
    resources: list[Resource], crd_schemas: CRDSchemas, *, v3: bool,
) -> tuple[dict[str, Obj], dict[str, Obj]]:
    prefix = V3_PREFIX if v3 else V2_PREFIX
    custom, names = _definitions_for(resources, crd_schemas, prefix, v3=v3)
    paths: dict[str, Obj] = {}
    for r in sorted(resources, key=lambda r: (r.group, r.version, r.plural)):
        kind_def, list_def = names[(r.group, r.version, r.kind)]
        ctx = _Ctx(v3, prefix, kind_def, list_def, r.group, r.version)
        paths.update(_resource_paths(ctx, r))
    roots: set[str] = {STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT, API_RESOURCE_LIST}
    for kind_def, list_def in names.values():
        roots.update((kind_def, list_def))
    _refs_in(paths, prefix, roots)
    return dict(sorted(paths.items())), _close_over(roots, custom, prefix, v3=v3)


def _v3_doc(paths: dict[str, Obj], schemas: dict[str, Obj]) -> Obj:
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": K8S_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        },
    }


def v3_group_version(catalogue: Catalogue, group: str, version: str, crd_schemas: CRDSchemas) -> Obj:
    """The ``/openapi/v3/api/v1`` or ``/openapi/v3/apis/<group>/<version>`` document."""
    resources = catalogue.in_group_version(group, version)
    paths, schemas = _paths_and_defs(resources, crd_schemas, v3=True)
    base = f"/api/{version}/" if not group else f"/apis/{group}/{version}/"
    ctx = _Ctx(True, V3_PREFIX, "", "", group, version)
    paths[base] = {"get": _discovery_op(ctx, f"get{group_camel(group)}{_camel(version)}APIResources",
                                        "get available resources", API_RESOURCE_LIST)}
    return _v3_doc(dict(sorted(paths.items())), schemas)


def _discovery_op(ctx: _Ctx, op_id: str, desc: str, def_name: str) -> Obj:
    op = _op(ctx, op_id=op_id, desc=desc, action="get", gvk=None, responses={"200": def_name, "401": None})
    del op["x-kubernetes-action"]  # discovery endpoints are not resource actions
    return op


def _discovery_doc(path: str, op_id: str, desc: str, def_name: str, tag: str) -> Obj:
    ctx = _Ctx(True, V3_PREFIX, "", "", "", "")
    op = _discovery_op(ctx, op_id, desc, def_name)
    op["tags"] = [tag]
    return _v3_doc({path: {"get": op}}, _close_over({def_name}, {}, V3_PREFIX, v3=True))


def v3_document(catalogue: Catalogue, key: str, crd_schemas: CRDSchemas) -> Obj | None:
    """Any document of the v3 index by its key (``api/v1``, ``apis/apps``, ``version``...); None if unknown."""
    groups = catalogue.groups()
    if key == "version":
        return _discovery_doc("/version/", "getCodeVersion", "get the version information for this server",
                              VERSION_INFO, "version")
    if key == "api":
        return _discovery_doc("/api/", "getCoreAPIVersions", "get available API versions", API_VERSIONS, "core")
    if key == "apis":
        return _discovery_doc("/apis/", "getAPIVersions", "get available API versions", API_GROUP_LIST, "apis")
    parts = key.split("/")
    if parts[0] == "api" and len(parts) == 2 and parts[1] in groups.get("", []):
        return v3_group_version(catalogue, "", parts[1], crd_schemas)
    if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups and parts[1]:
        g = parts[1]
        return _discovery_doc(f"/apis/{g}/", f"get{group_camel(g)}APIGroup", "get information of a group", API_GROUP,
                              _tag(g, "").rstrip("_"))
    if parts[0] == "apis" and len(parts) == 3 and parts[2] in groups.get(parts[1], []) and parts[1]:
        return v3_group_version(catalogue, parts[1], parts[2], crd_schemas)
    return None


def v3_keys(catalogue: Catalogue) -> list[str]:
    """The keys of the v3 index, in kube-apiserver's (sorted) order."""
    keys = ["api", "apis", "version"]
    for g, versions in catalogue.groups().items():
        if g:
            keys.append(f"apis/{g}")
        keys.extend(gv_path(g, v) for v in versions)
    return sorted(keys)


def serialize(doc: Obj) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


def content_hash(body: bytes) -> str:
    """kube-apiserver's document hash: the SHA-512 of the bytes, upper-case hex."""
    return hashlib.sha512(body).hexdigest().upper()


def v3_index(catalogue: Catalogue, crd_schemas: CRDSchemas) -> Obj:
    """The ``/openapi/v3`` index: every document's key and URL, the URL carrying its content hash."""
    out: Obj = {}
    for key in v3_keys(catalogue):
        doc = v3_document(catalogue, key, crd_schemas)
        if doc is not None:
            out[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={content_hash(serialize(doc))}"}
    return {"paths": out}


def v2_document(catalogue: Catalogue, crd_schemas: CRDSchemas) -> Obj:
    """The whole API as one Swagger 2.0 document (``/openapi/v2`` in JSON)."""
    paths, defs = _paths_and_defs(catalogue.all(), crd_schemas, v3=False)
    return {
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": K8S_VERSION},
        "paths": paths,
        "definitions": defs,
        "securityDefinitions": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }


# --- the cache ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """A serialized document and its hash (also its ETag, quoted by the HTTP layer)."""

    body: bytes
    hash: str

    @property
    def etag(self) -> str:
        return f'"{self.hash}"'


class OpenAPIService:
    """Memoized OpenAPI documents for an API server.

    Documents are cached per index key together with a fingerprint of what they were built from
    (the resources of that group-version and, for custom resources, their schemas). Nothing is
    recomputed while ``catalogue.generation`` and ``crd_version()`` stay the same; when either
    moves, only the keys whose fingerprint changed are rebuilt, so adding one CRD costs one
    document, not all of them. ``crd_version`` is whatever counter the CRD controller bumps when
    a schema changes (the catalogue generation alone does not move on a schema-only edit).
    """

    def __init__(
        self,
        catalogue: Catalogue,
        crd_schemas: CRDSchemas,
        crd_version: Callable[[], int] | None = None,
    ) -> None:
        self._catalogue = catalogue
        self._crd_schemas = crd_schemas
        self._crd_version = crd_version or (lambda: 0)
        self._lock = threading.Lock()
        self._state: tuple[int, int] | None = None
        self._docs: dict[str, tuple[Any, Document]] = {}
        self._index: Document | None = None
        self._v2: tuple[tuple[int, int], Document] | None = None
        self.builds = 0
        """How many documents were built (tests use it to check the memoization)."""

    def _fingerprint(self, key: str) -> Any:
        parts = key.split("/")
        if parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        elif parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        else:
            return ("static", key)
        rs = sorted(self._catalogue.in_group_version(group, version), key=lambda r: r.plural)
        schemas = [
            serialize(self._crd_schemas(r.group, r.version, r.kind) or {}) for r in rs if not r.builtin
        ]
        return (tuple(rs), tuple(schemas))

    def _refresh(self) -> None:
        state = (self._catalogue.generation, self._crd_version())
        if state == self._state:
            return
        keys = v3_keys(self._catalogue)
        docs: dict[str, tuple[Any, Document]] = {}
        for key in keys:
            fp = self._fingerprint(key)
            cached = self._docs.get(key)
            if cached is not None and cached[0] == fp:
                docs[key] = cached
                continue
            doc = v3_document(self._catalogue, key, self._crd_schemas)
            if doc is None:
                continue
            body = serialize(doc)
            self.builds += 1
            docs[key] = (fp, Document(body, content_hash(body)))
        self._docs = docs
        index = {"paths": {k: {"serverRelativeURL": f"/openapi/v3/{k}?hash={d.hash}"} for k, (_, d) in docs.items()}}
        body = serialize(index)
        self._index = Document(body, content_hash(body))
        self._state = state

    def index(self) -> Document:
        with self._lock:
            self._refresh()
            assert self._index is not None
            return self._index

    def document(self, key: str) -> Document | None:
        """The v3 document at ``/openapi/v3/<key>``, or None (the HTTP layer answers 404)."""
        with self._lock:
            self._refresh()
            entry = self._docs.get(key.strip("/"))
            return entry[1] if entry else None

    def v2(self) -> Document:
        with self._lock:
            state = (self._catalogue.generation, self._crd_version())
            if self._v2 is None or self._v2[0] != state:
                body = serialize(v2_document(self._catalogue, self._crd_schemas))
                self.builds += 1
                self._v2 = (state, Document(body, content_hash(body)))
            return self._v2[1]


__all__ = [
    "Document",
    "OpenAPIService",
    "content_hash",
    "convert_definition",
    "convert_node",
    "crd_definition_name",
    "gv_path",
    "serialize",
    "v2_document",
    "v3_document",
    "v3_group_version",
    "v3_index",
    "v3_keys",
]
