"""The ``paths`` of the OpenAPI documents: one operation per verb of every resource and subresource.

The operations follow kube-apiserver's (operation ids, tags, query parameters, the
``x-kubernetes-action`` and ``x-kubernetes-group-version-kind`` extensions) because kubectl reads
them: before every write kubectl 1.32 looks in the group-version document for a ``patch``
operation whose ``x-kubernetes-group-version-kind`` equals the object's GVK and then for a
``fieldValidation`` query parameter, and falls back to client-side validation if there is none;
so every PATCH operation here carries that parameter. v3 and v2 differ only in how a parameter
and a body are spelled (:func:`_v2_param`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from kybernetes.api import schema as k8s_schema
from kybernetes.api.resources import Resource
from kybernetes.apiserver.transport.openapi_schemas import (
    DELETE_OPTIONS,
    PATCH,
    PATCH_TYPES,
    RESPONSE_TYPES,
    STATUS,
    WATCH_EVENT,
    WATCH_TYPES,
    Obj,
)


def camel(s: str) -> str:
    """``v1beta1`` -> ``V1beta1``, ``rbac.authorization`` -> ``RbacAuthorization``."""
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[.\-]", s) if p)


def group_camel(group: str) -> str:
    """``Core`` / ``Apps`` / ``RbacAuthorization`` / ``StableExampleCom`` as in operation ids."""
    if not group:
        return "Core"
    return camel(group.removesuffix(".k8s.io"))


def gv_path(group: str, version: str) -> str:
    """The index key and URL tail of a group-version: ``api/v1``, ``apis/apps/v1``."""
    return f"api/{version}" if not group else f"apis/{group}/{version}"


def gv_tag(group: str, version: str) -> str:
    """The tag of a group-version's operations: ``core_v1``, ``apps_v1``, ``rbac_authorization_v1``."""
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
class PathContext:
    """What an operation needs to know: the document flavour and the definition names in use."""

    v3: bool
    prefix: str
    kind_def: str
    list_def: str
    group: str
    version: str


def _ref(ctx: PathContext, name: str) -> Obj:
    return {"$ref": ctx.prefix + name}


def _gvk(group: str, version: str, kind: str) -> Obj:
    return {"group": group, "kind": kind, "version": version}


def operation(
    ctx: PathContext,
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
    op: Obj = {"description": desc, "operationId": op_id, "tags": [gv_tag(ctx.group, ctx.version)]}
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
    ctx: PathContext, r: Resource, *, suffix: str, subject: str, gvk: Obj, noun: str, verbs: Iterable[str],
) -> Obj:
    """get/put/patch (and delete on the main resource) on one object or one of its subresources."""
    ns = "Namespaced" if r.namespaced else ""
    gc, vc = group_camel(r.group), camel(r.version)
    ops: Obj = {}
    verbs = set(verbs)
    # Kubernetes' words: "read the specified Pod", "read status of the specified Pod".
    what = f"the specified {r.kind}" if noun == "the" else f"{noun} of the specified {r.kind}"
    if "get" in verbs:
        ops["get"] = operation(ctx, op_id=f"read{gc}{vc}{ns}{r.kind}{suffix}", desc=f"read {what}",
                               action="get", gvk=gvk, responses={"200": subject, "401": None})
    if "update" in verbs:
        ops["put"] = operation(ctx, op_id=f"replace{gc}{vc}{ns}{r.kind}{suffix}",
                               desc=f"replace {what}", action="put", gvk=gvk,
                               params=WRITE_PARAMS, body=subject,
                               responses={"200": subject, "201": subject, "401": None})
    if "patch" in verbs:
        ops["patch"] = operation(ctx, op_id=f"patch{gc}{vc}{ns}{r.kind}{suffix}",
                                 desc=f"partially update {what}", action="patch", gvk=gvk,
                                 params=(*WRITE_PARAMS, P_FORCE), body=PATCH, body_types=PATCH_TYPES,
                                 responses={"200": subject, "201": subject, "401": None})
    if "delete" in verbs and not suffix:
        ops["delete"] = operation(ctx, op_id=f"delete{gc}{vc}{ns}{r.kind}", desc=f"delete a {r.kind}", action="delete",
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


def _op_names(r: Resource) -> tuple[str, str, str, Obj]:
    """The parts of ``r``'s operation ids (group and version camel-cased, ``Namespaced``) and its GVK."""
    ns = "Namespaced" if r.namespaced else ""
    return group_camel(r.group), camel(r.version), ns, _gvk(r.group, r.version, r.kind)


def resource_paths(ctx: PathContext, r: Resource) -> dict[str, Obj]:
    """Every path of ``r``: its collection, the list and watch paths, the object, its subresources."""
    base = "/api/" + r.version if not r.group else f"/apis/{r.group}/{r.version}"
    scope = f"{base}/namespaces/{{namespace}}" if r.namespaced else base
    scope_params = [P_NAMESPACE] if r.namespaced else []
    paths: dict[str, Obj] = {}
    _add_collection_paths(paths, ctx, r, base, scope, scope_params)
    if "watch" in r.verbs:
        _add_watch_paths(paths, ctx, r, base, scope_params)
    _add_object_paths(paths, ctx, r, scope, scope_params)
    return paths


def _add_collection_paths(paths: dict[str, Obj], ctx: PathContext, r: Resource, base: str, scope: str,
                          scope_params: list[Obj]) -> None:
    """The collection (list, create, deletecollection) and the all-namespaces list."""
    gc, vc, ns, gvk = _op_names(r)
    verbs = set(r.verbs)
    coll: Obj = {}
    if "list" in verbs:
        coll["get"] = operation(ctx, op_id=f"list{gc}{vc}{ns}{r.kind}", desc=f"list or watch objects of kind {r.kind}",
                                action="list", gvk=gvk, params=LIST_PARAMS,
                                responses={"200": ctx.list_def, "401": None}, response_types=WATCH_TYPES)
    if "create" in verbs:
        coll["post"] = operation(ctx, op_id=f"create{gc}{vc}{ns}{r.kind}", desc=f"create a {r.kind}", action="post",
                                 gvk=gvk, params=WRITE_PARAMS, body=ctx.kind_def,
                                 responses={"200": ctx.kind_def, "201": ctx.kind_def, "202": ctx.kind_def, "401": None})
    if "deletecollection" in verbs:
        coll["delete"] = operation(ctx, op_id=f"delete{gc}{vc}Collection{ns}{r.kind}",
                                   desc=f"delete collection of {r.kind}", action="deletecollection", gvk=gvk,
                                   params=(*DELETE_PARAMS, *LIST_PARAMS), body=DELETE_OPTIONS,
                                   responses={"200": STATUS, "401": None})
    if coll:
        coll["parameters"] = [*scope_params, P_PRETTY]
        paths[f"{scope}/{r.plural}"] = coll

    # All namespaces.
    if r.namespaced and "list" in verbs:
        paths[f"{base}/{r.plural}"] = {
            "get": operation(ctx, op_id=f"list{gc}{vc}{r.kind}ForAllNamespaces",
                             desc=f"list or watch objects of kind {r.kind}", action="list", gvk=gvk,
                             responses={"200": ctx.list_def, "401": None}, response_types=WATCH_TYPES),
            "parameters": [*LIST_PARAMS, P_PRETTY],
        }


def _add_watch_paths(paths: dict[str, Obj], ctx: PathContext, r: Resource, base: str,
                     scope_params: list[Obj]) -> None:
    """The deprecated ``/watch/`` paths, which kube-apiserver still lists."""
    gc, vc, ns, gvk = _op_names(r)
    watch_scope = f"{base}/watch/namespaces/{{namespace}}" if r.namespaced else f"{base}/watch"
    paths[f"{watch_scope}/{r.plural}"] = {
        "get": operation(ctx, op_id=f"watch{gc}{vc}{ns}{r.kind}List",
                         desc=f"watch individual changes to a list of {r.kind}", action="watchlist", gvk=gvk,
                         responses={"200": WATCH_EVENT, "401": None}, response_types=WATCH_TYPES),
        "parameters": [*LIST_PARAMS, *scope_params, P_PRETTY],
    }
    paths[f"{watch_scope}/{r.plural}/{{name}}"] = {
        "get": operation(ctx, op_id=f"watch{gc}{vc}{ns}{r.kind}", desc=f"watch changes to an object of kind {r.kind}",
                         action="watch", gvk=gvk, responses={"200": WATCH_EVENT, "401": None},
                         response_types=WATCH_TYPES),
        "parameters": [*LIST_PARAMS, _name_param(r.kind), *scope_params, P_PRETTY],
    }
    if r.namespaced:
        paths[f"{base}/watch/{r.plural}"] = {
            "get": operation(ctx, op_id=f"watch{gc}{vc}{r.kind}ListForAllNamespaces",
                             desc=f"watch individual changes to a list of {r.kind}", action="watchlist", gvk=gvk,
                             responses={"200": WATCH_EVENT, "401": None}, response_types=WATCH_TYPES),
            "parameters": [*LIST_PARAMS, P_PRETTY],
        }


def _add_object_paths(paths: dict[str, Obj], ctx: PathContext, r: Resource, scope: str,
                      scope_params: list[Obj]) -> None:
    """The object's own path and one per subresource served."""
    gvk = _gvk(r.group, r.version, r.kind)
    # The object.
    item = _std_item_ops(ctx, r, suffix="", subject=ctx.kind_def, gvk=gvk, noun="the", verbs=set(r.verbs))
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


def _special_subresource(ctx: PathContext, r: Resource, sub: str, parent_gvk: Obj) -> Obj:
    methods, action, sub_gvk = _SPECIAL_SUBRESOURCES[sub]
    gc, vc = group_camel(r.group), camel(r.version)
    ns = "Namespaced" if r.namespaced else ""
    suffix = camel(sub)
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
            ops[m] = operation(ctx, op_id=f"{verb}{gc}{vc}{ns}{r.kind}{suffix}", desc=f"connect {m.upper()} requests to "
                               f"{sub} of {r.kind}", action="connect", gvk=gvk, responses={"200": None, "401": None},
                               response_types=("*/*",))
            continue
        if sub == "log":
            ops[m] = operation(ctx, op_id=f"read{gc}{vc}{ns}{r.kind}Log", desc=f"read log of the specified {r.kind}",
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
        ops[m] = operation(ctx, op_id=f"{verb}{gc}{vc}{ns}{r.kind}{suffix}", desc=f"{verb} {sub} of a {r.kind}",
                           action=action, gvk=gvk, params=WRITE_PARAMS if body else (), body=body,
                           responses={"200": sub_def, "201": sub_def, "202": sub_def, "401": None})
    return ops


__all__ = [
    "gv_path",
]
