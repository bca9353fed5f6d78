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

The parts: schema names and conversion in :mod:`.openapi_schemas`, the paths in
:mod:`.openapi_paths`; this module assembles the documents and caches them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from kybernetes.api import schema as k8s_schema
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.transport.openapi_paths import (
    PathContext,
    camel,
    group_camel,
    gv_path,
    gv_tag,
    operation,
    resource_paths,
)
from kybernetes.apiserver.transport.openapi_schemas import (
    API_GROUP,
    API_GROUP_LIST,
    API_RESOURCE_LIST,
    API_VERSIONS,
    DELETE_OPTIONS,
    K8S_VERSION,
    PATCH,
    STATUS,
    V2_PREFIX,
    V3_PREFIX,
    VERSION_INFO,
    WATCH_EVENT,
    CRDSchemas,
    Obj,
    collect_refs,
    convert_definition,
    crd_definition_name,
    crd_definitions,
)


def _definitions_for(
    resources: list[Resource], crd_schemas: CRDSchemas, prefix: str, *, v3: bool,
) -> tuple[dict[str, Obj], dict[tuple[str, str, str], tuple[str, str]]]:
    """Converted custom definitions plus (kind, list) definition names per GVK."""
    custom: dict[str, Obj] = {}
    names: dict[tuple[str, str, str], tuple[str, str]] = {}
    for r in resources:
        kind_def = k8s_schema.definition_name(r.group, r.version, r.kind) if r.builtin else None
        list_def = k8s_schema.definition_name(r.group, r.version, r.list_kind) if r.builtin else None
        if kind_def and (list_def or "list" not in r.verbs):
            # A kind served without list (TokenReview, Binding) has no List type: no path needs one.
            names[(r.group, r.version, r.kind)] = (kind_def, list_def or "")
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
        collect_refs(d, prefix, found)
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
        ctx = PathContext(v3, prefix, kind_def, list_def, r.group, r.version)
        paths.update(resource_paths(ctx, r))
    roots: set[str] = {STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT, API_RESOURCE_LIST}
    for kind_def, list_def in names.values():
        roots.update((kind_def, list_def))
    collect_refs(paths, prefix, roots)
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
    ctx = PathContext(True, V3_PREFIX, "", "", group, version)
    paths[base] = {"get": _discovery_op(ctx, f"get{group_camel(group)}{camel(version)}APIResources",
                                        "get available resources", API_RESOURCE_LIST)}
    return _v3_doc(dict(sorted(paths.items())), schemas)


def _discovery_op(ctx: PathContext, op_id: str, desc: str, def_name: str) -> Obj:
    op = operation(ctx, op_id=op_id, desc=desc, action="get", gvk=None, responses={"200": def_name, "401": None})
    del op["x-kubernetes-action"]  # discovery endpoints are not resource actions
    return op


def _discovery_doc(path: str, op_id: str, desc: str, def_name: str, tag: str) -> Obj:
    ctx = PathContext(True, V3_PREFIX, "", "", "", "")
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
                              gv_tag(g, "").rstrip("_"))
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
    """A document as the bytes served."""
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
    "serialize",
    "v2_document",
    "v3_document",
    "v3_group_version",
    "v3_index",
    "v3_keys",
]
