"""metrics.k8s.io/v1beta1's OpenAPI documents, which the aggregator merges into the API server's
(``kubectl explain nodemetrics``).

Contract:

- ``v2_document()``: the group's paths and the metrics kinds' definitions (``io.k8s.metrics.pkg.apis.
  metrics.v1beta1.NodeMetrics``, ``...List``, ``PodMetrics``, ``...List``, ``ContainerMetrics``), with
  the descriptions of k8s.io/metrics' types; ObjectMeta, ListMeta, Time and Quantity are referenced,
  not repeated: the aggregator adds the definitions to the API server's document, which has them.
- ``v3_document(core)``: the same as a self-contained OpenAPI 3 document; the referenced meta types
  are copied (with everything they reference) from ``core``, the components of the API server's own
  ``/openapi/v3/api/v1`` document, so they are the API server's schemas word for word.
- ``v3_index(body)``: the ``/openapi/v3`` index naming the document with its content hash.
"""

from __future__ import annotations

import hashlib
from typing import Any

from kybernetes.metricsserver.storage import API_VERSION, GROUP, VERSION

Obj = dict[str, Any]
PREFIX = "io.k8s.metrics.pkg.apis.metrics.v1beta1."
META = "io.k8s.apimachinery.pkg.apis.meta.v1."
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
WINDOW_DOC = ("The following fields define time interval from which metrics were collected from the interval "
              "[Timestamp-Window, Timestamp].")
LIST_META_DOC = ("Standard list metadata. More info: "
                 "https://git.k8s.io/community/contributors/devel/api-conventions.md#types-kinds")


def _ref(v3: bool, name: str) -> Obj:
    return {"$ref": ("#/components/schemas/" if v3 else "#/definitions/") + name}


def _with(v3: bool, name: str, description: str = "") -> Obj:
    """A property of a referenced type (kube-openapi wraps it in allOf when it has its own description)."""
    if not description:
        return _ref(v3, name)
    return {"description": description, "allOf": [_ref(v3, name)]} if v3 else {**_ref(v3, name),
                                                                              "description": description}


def _usage(v3: bool, description: str) -> Obj:
    return {"description": description, "type": "object", "additionalProperties": _ref(v3, QUANTITY)}


def _kind(v3: bool, kind: str, description: str, fields: dict[str, Obj], required: list[str]) -> Obj:
    props: Obj = {
        "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this "
                       "representation of an object."},
        "kind": {"type": "string", "description": "Kind is a string value representing the REST resource "
                 "this object represents."},
        **fields,
    }
    out: Obj = {"description": description, "type": "object", "required": required, "properties": props}
    if kind:
        out["x-kubernetes-group-version-kind"] = [{"group": GROUP, "kind": kind, "version": VERSION}]
    return out


def schemas(v3: bool) -> dict[str, Obj]:
    """The metrics kinds' definitions (names: ``io.k8s.metrics.pkg.apis.metrics.v1beta1.<Kind>``)."""
    timed = {"timestamp": _with(v3, META + "Time", WINDOW_DOC), "window": {"type": "string"}}
    container = {"description": "ContainerMetrics sets resource usage metrics of a container.", "type": "object",
                 "required": ["name", "usage"],
                 "properties": {"name": {"description": "Container name corresponding to the one from "
                                         "pod.spec.containers.", "type": "string", "default": ""},
                                "usage": _usage(v3, "The memory usage is the memory working set.")}}
    out = {
        "NodeMetrics": _kind(v3, "NodeMetrics", "NodeMetrics sets resource usage metrics of a node.",
                             {"metadata": _with(v3, META + "ObjectMeta", " "), **timed,
                              "usage": _usage(v3, "The memory usage is the memory working set.")},
                             ["timestamp", "window", "usage"]),
        "NodeMetricsList": _kind(v3, "NodeMetricsList", "NodeMetricsList is a list of NodeMetrics.",
                                 {"metadata": _with(v3, META + "ListMeta", LIST_META_DOC),
                                  "items": {"description": "List of node metrics.", "type": "array",
                                            "items": _ref(v3, PREFIX + "NodeMetrics")}},
                                 ["items"]),
        "PodMetrics": _kind(v3, "PodMetrics", "PodMetrics sets resource usage metrics of a pod.",
                            {"metadata": _with(v3, META + "ObjectMeta", " "), **timed,
                             "containers": {"description": "Metrics for all containers are collected within "
                                            "the same time window.", "type": "array",
                                            "items": _ref(v3, PREFIX + "ContainerMetrics")}},
                            ["timestamp", "window", "containers"]),
        "PodMetricsList": _kind(v3, "PodMetricsList", "PodMetricsList is a list of PodMetrics.",
                                {"metadata": _with(v3, META + "ListMeta", LIST_META_DOC),
                                 "items": {"description": "List of pod metrics.", "type": "array",
                                           "items": _ref(v3, PREFIX + "PodMetrics")}},
                                ["items"]),
        "ContainerMetrics": container,
    }
    return {PREFIX + k: v for k, v in out.items()}


_RESOURCES = (("nodes", "NodeMetrics", False), ("pods", "PodMetrics", True))


def _operation(v3: bool, kind: str, action: str, schema: str) -> Obj:
    body = _ref(v3, PREFIX + schema)
    response: Obj = {"description": "OK"}
    if v3:
        response["content"] = {"application/json": {"schema": body}}
    else:
        response["schema"] = body
    return {"operationId": f"{'list' if action == 'list' else 'read'}MetricsV1beta1{kind}",
            "tags": ["metrics_v1beta1"], "responses": {"200": response}, "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": {"group": GROUP, "kind": kind, "version": VERSION}}


def _parameter(v3: bool, name: str, location: str) -> Obj:
    if v3:
        return {"name": name, "in": location, "required": location == "path", "schema": {"type": "string"}}
    return {"name": name, "in": location, "required": location == "path", "type": "string"}


def paths(v3: bool) -> dict[str, Obj]:
    base = f"/apis/{API_VERSION}"
    selectors = [_parameter(v3, "labelSelector", "query"), _parameter(v3, "fieldSelector", "query")]
    out: dict[str, Obj] = {}
    for plural, kind, namespaced in _RESOURCES:
        scopes = [(f"{base}/namespaces/{{namespace}}/{plural}", [_parameter(v3, "namespace", "path")])] \
            if namespaced else []
        scopes.append((f"{base}/{plural}", []))
        for path, params in scopes:
            out[path] = {"get": _operation(v3, kind, "list", kind + "List"), "parameters": params + selectors}
            if params or not namespaced:
                out[path + "/{name}"] = {"get": _operation(v3, kind, "get", kind),
                                         "parameters": [*params, _parameter(v3, "name", "path")]}
    return dict(sorted(out.items()))


def v2_document() -> Obj:
    return {"swagger": "2.0", "info": {"title": "Kubernetes metrics-server", "version": VERSION},
            "paths": paths(False), "definitions": schemas(False)}


def _refs(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.removeprefix("#/components/schemas/"))
        for value in node.values():
            _refs(value, found)
    elif isinstance(node, list):
        for value in node:
            _refs(value, found)


def v3_document(core: dict[str, Obj]) -> Obj:
    """The group-version's OpenAPI 3 document, the referenced meta types copied from ``core``."""
    own = schemas(True)
    components = dict(own)
    todo: set[str] = set()
    _refs(own, todo)
    while todo:
        name = todo.pop()
        if name in components or name not in core:
            continue
        components[name] = core[name]
        found: set[str] = set()
        _refs(core[name], found)
        todo |= found - components.keys()
    return {"openapi": "3.0.0", "info": {"title": "Kubernetes metrics-server", "version": VERSION},
            "paths": paths(True), "components": {"schemas": dict(sorted(components.items()))}}


def v3_path() -> str:
    return f"/openapi/v3/apis/{API_VERSION}"


def v3_index(body: bytes) -> Obj:
    digest = hashlib.sha512(body).hexdigest().upper()
    return {"paths": {f"apis/{API_VERSION}": {"serverRelativeURL": f"{v3_path()}?hash={digest}"}}}
