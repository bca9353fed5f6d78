"""The schemas of the OpenAPI documents: definition names and the conversion into OpenAPI form.

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

The same conversion serves v3 (``#/components/schemas/``) and v2 (``#/definitions/``); the paths
that refer to these schemas are built in :mod:`.openapi_paths`, the documents in :mod:`.openapi`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from kybernetes.api.obj import Obj
from kybernetes.api.resources import Resource

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


def collect_refs(node: Any, prefix: str, found: set[str]) -> None:
    """Every definition name ``node`` refers to (references start with ``prefix``)."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith(prefix):
                found.add(v[len(prefix):])
            elif isinstance(v, dict | list):
                collect_refs(v, prefix, found)
    elif isinstance(node, list):
        for x in node:
            collect_refs(x, prefix, found)


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


__all__ = [
    "CRDSchemas",
    "convert_definition",
    "convert_node",
    "crd_definition_name",
    "crd_definitions",
]
