"""metrics-server's HTTPS API: ``metrics.k8s.io/v1beta1`` as metrics-server serves it.

Contract:

- Paths: ``/apis`` (APIGroupList), ``/apis/metrics.k8s.io`` (APIGroup), ``/apis/metrics.k8s.io/v1beta1``
  (APIResourceList: ``nodes`` NodeMetrics, cluster-scoped, and ``pods`` PodMetrics, namespaced; verbs
  get and list), ``.../nodes[/NAME]``, ``.../pods`` (all namespaces), ``.../namespaces/NS/pods[/NAME]``;
  ``labelSelector`` selects by the Node's or Pod's labels, ``fieldSelector`` by ``metadata.name`` and
  ``metadata.namespace``; ``Accept: ...;as=Table`` gets metrics-server's Table. Pods not Running and
  nodes or pods without two points are left out of lists; a get of one answers 404
  (``nodemetrics.metrics.k8s.io "N" not found``, ``podmetrics.metrics.k8s.io "NS/N" not found``).
- Who: a client certificate signed by the request-header CA whose CN is an allowed name (when the
  list is not empty) makes the front-proxy headers (``X-Remote-User``, ``X-Remote-Group``,
  ``X-Remote-Extra-*``, the names of the ConfigMap) the user; otherwise a bearer token is reviewed
  (TokenReview); otherwise 401. Then a SubjectAccessReview: resource attributes for metrics requests,
  non-resource ones (path, verb get) for discovery; 403 with the API server's wording when denied.
  Reviews are cached for k8s.io/apiserver's delegating defaults, 10 s (the daemon's ``DELEGATING_TTLS``).
- ``/healthz``, ``/livez`` answer ok without a user; ``/readyz`` once the storage can serve metrics;
  ``/metrics`` (the process's own, :mod:`kybernetes.metrics`) to users allowed ``get`` on it;
  ``/openapi/v2``, ``/openapi/v3`` and the group-version's v3 document (:mod:`.openapi`).
"""

from __future__ import annotations

import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kybernetes import errors
from kybernetes.api.field_selectors import parse_field_selector
from kybernetes.api.label_selectors import parse_label_selector
from kybernetes.client import Informer
from kybernetes.client.delegatedauth import DelegatedAuth, User
from kybernetes.metrics import exposition
from kybernetes.metricsserver import openapi
from kybernetes.metricsserver.storage import (
    API_VERSION,
    GROUP,
    VERSION,
    Storage,
    metrics_list,
    node_metrics,
    pod_metrics,
    table,
)

log = logging.getLogger(__name__)
Obj = dict[str, Any]

RESOURCES = [
    {"name": "nodes", "singularName": "", "namespaced": False, "kind": "NodeMetrics", "verbs": ["get", "list"]},
    {"name": "pods", "singularName": "", "namespaced": True, "kind": "PodMetrics", "verbs": ["get", "list"]},
]


@dataclass
class RequestHeader:
    """The front-proxy trust read from ``kube-system/extension-apiserver-authentication``."""

    ca_pem: str = ""
    allowed_names: list[str] = field(default_factory=list)
    username_headers: list[str] = field(default_factory=lambda: ["X-Remote-User"])
    group_headers: list[str] = field(default_factory=lambda: ["X-Remote-Group"])
    extra_prefixes: list[str] = field(default_factory=lambda: ["X-Remote-Extra-"])

    @classmethod
    def from_configmap(cls, cm: Obj) -> RequestHeader:
        data = cm.get("data") or {}

        def listed(key: str, default: list[str]) -> list[str]:
            value = data.get(key)
            return list(json.loads(value)) if value else default

        return cls(ca_pem=data.get("requestheader-client-ca-file", ""),
                   allowed_names=listed("requestheader-allowed-names", []),
                   username_headers=listed("requestheader-username-headers", ["X-Remote-User"]),
                   group_headers=listed("requestheader-group-headers", ["X-Remote-Group"]),
                   extra_prefixes=listed("requestheader-extra-headers-prefix", ["X-Remote-Extra-"]))

    def user(self, request: web.Request, cn: str) -> User | None:
        """The front-proxy user of a request on a connection with a request-header CA certificate."""
        if self.allowed_names and cn not in self.allowed_names:
            return None
        name = next((v for h in self.username_headers for v in request.headers.getall(h, []) if v), "")
        if not name:
            return None
        groups = tuple(v for h in self.group_headers for v in request.headers.getall(h, []))
        extra: dict[str, list[str]] = {}
        for header, value in request.headers.items():
            for prefix in self.extra_prefixes:
                if header.lower().startswith(prefix.lower()):
                    key = urllib.parse.unquote(header[len(prefix):].lower())
                    extra.setdefault(key, []).append(value)
        return User(name=name, groups=groups, extra=tuple(sorted((k, tuple(v)) for k, v in extra.items())))


def _status(code: int, reason: str, message: str, details: Obj | None = None) -> web.Response:
    return web.json_response(errors.status_object("Failure", message, reason, details, code), status=code)


def _not_found(resource: str, name: str) -> web.Response:
    return _status(404, "NotFound", f'{resource}.{GROUP} "{name}" not found', {"name": name, "group": GROUP,
                                                                               "kind": resource})


class MetricsAPI:
    """The aiohttp application over a storage, the Node and Pod informers and the delegated auth."""

    def __init__(self, storage: Storage, nodes: Informer, pods: Informer, auth: DelegatedAuth,
                 requestheader: RequestHeader, *, core_schemas: dict[str, Obj] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.storage, self.nodes, self.pods = storage, nodes, pods
        self.openapi_v3 = json.dumps(openapi.v3_document(core_schemas or {})).encode()
        self.openapi_v2 = json.dumps(openapi.v2_document()).encode()
        self.auth, self.requestheader = auth, requestheader
        self.clock = clock

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._access])
        r = app.router
        for path in ("/healthz", "/livez"):
            r.add_get(path, self._ok)
        r.add_get("/readyz", self._ready)
        r.add_get("/metrics", self._metrics)
        r.add_get("/openapi/v2", self._openapi_v2)
        r.add_get("/openapi/v3", self._openapi_v3_index)
        r.add_get(openapi.v3_path(), self._openapi_v3)
        r.add_get("/apis", self._group_list)
        r.add_get(f"/apis/{GROUP}", self._group)
        r.add_get(f"/apis/{API_VERSION}", self._resources)
        r.add_get(f"/apis/{API_VERSION}/nodes", self._list_nodes)
        r.add_get(f"/apis/{API_VERSION}/nodes/{{name}}", self._get_node)
        r.add_get(f"/apis/{API_VERSION}/pods", self._list_pods)
        r.add_get(f"/apis/{API_VERSION}/namespaces/{{namespace}}/pods", self._list_pods)
        r.add_get(f"/apis/{API_VERSION}/namespaces/{{namespace}}/pods/{{name}}", self._get_pod)
        return app

    # -- who --

    async def _user(self, request: web.Request) -> User | None:
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        if peercert:
            cn = next((v for rdn in peercert.get("subject", ()) for k, v in rdn if k == "commonName"), "")
            user = self.requestheader.user(request, cn)
            if user is not None:
                return user
        bearer = request.headers.get("Authorization", "")
        if bearer[:7].lower() == "bearer ":
            return await self.auth.authenticate_token(bearer[7:].strip())
        return None

    @web.middleware
    async def _access(self, request: web.Request,
                      handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path in ("/healthz", "/livez", "/readyz"):
            return await handler(request)
        user = await self._user(request)
        if user is None:
            return _status(401, "Unauthorized", "Unauthorized")
        resource, forbidden = _attributes(request)
        if resource is not None:
            decision = await self.auth.authorize(user, resource=resource)
        else:
            decision = await self.auth.authorize(user, non_resource={"path": request.path, "verb": "get"})
        if not decision.allowed:
            return _status(403, "Forbidden", forbidden(user.name))
        return await handler(request)

    # -- health and discovery --

    async def _ok(self, request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _openapi_v2(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi_v2, content_type="application/json")

    async def _openapi_v3_index(self, request: web.Request) -> web.Response:
        return web.json_response(openapi.v3_index(self.openapi_v3))

    async def _openapi_v3(self, request: web.Request) -> web.Response:
        return web.Response(body=self.openapi_v3, content_type="application/json")

    async def _metrics(self, request: web.Request) -> web.Response:
        body, content_type = exposition(request.headers.get("Accept", ""))
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def _ready(self, request: web.Request) -> web.Response:
        if self.storage.ready():
            return web.Response(text="ok")
        return web.Response(status=500, text="[-]metric-storage-ready failed: not metrics to serve\nreadyz check failed")

    def _group_obj(self) -> Obj:
        gv = {"groupVersion": API_VERSION, "version": VERSION}
        return {"name": GROUP, "versions": [gv], "preferredVersion": gv}

    async def _group_list(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": [self._group_obj()]})

    async def _group(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIGroup", "apiVersion": "v1", **self._group_obj()})

    async def _resources(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": API_VERSION,
                                  "resources": RESOURCES})

    # -- metrics --

    def _respond(self, request: web.Request, kind: str, items: list[Obj], single: bool = False) -> web.Response:
        if "as=Table" in request.headers.get("Accept", ""):
            return web.json_response(table(items))
        return web.json_response(items[0] if single else metrics_list(kind, items))

    async def _list_nodes(self, request: web.Request) -> web.Response:
        selected = _select(self.nodes.store.list(), request)
        if isinstance(selected, web.Response):
            return selected
        now = self.clock()
        items = []
        for node in sorted(selected, key=lambda n: n["metadata"]["name"]):
            u = self.storage.node_usage(node["metadata"]["name"])
            if u is not None:
                items.append(node_metrics(node, u, now))
        return self._respond(request, "NodeMetrics", items)

    async def _get_node(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        node = self.nodes.store.get(name)
        u = self.storage.node_usage(name) if node is not None else None
        if node is None or u is None:
            return _not_found("nodemetrics", name)
        return self._respond(request, "NodeMetrics", [node_metrics(node, u, self.clock())], single=True)

    async def _list_pods(self, request: web.Request) -> web.Response:
        namespace = request.match_info.get("namespace", "")
        pods = [p for p in self.pods.store.list() if not namespace or p["metadata"].get("namespace") == namespace]
        selected = _select(pods, request)
        if isinstance(selected, web.Response):
            return selected
        now = self.clock()
        items = []
        for pod in sorted(selected, key=lambda p: (p["metadata"].get("namespace", ""), p["metadata"]["name"])):
            item = self._pod_item(pod, now)
            if item is not None:
                items.append(item)
        return self._respond(request, "PodMetrics", items)

    def _pod_item(self, pod: Obj, now: float) -> Obj | None:
        if (pod.get("status") or {}).get("phase") != "Running":
            return None
        m = pod["metadata"]
        u = self.storage.pod_usage(m.get("namespace", ""), m["name"])
        return pod_metrics(pod, u, now) if u is not None else None

    async def _get_pod(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        pod = self.pods.store.get(f"{namespace}/{name}")
        item = self._pod_item(pod, self.clock()) if pod is not None else None
        if item is None:
            return _not_found("podmetrics", f"{namespace}/{name}")
        return self._respond(request, "PodMetrics", [item], single=True)


def _attributes(request: web.Request) -> tuple[dict[str, str] | None, Callable[[str], str]]:
    """The SubjectAccessReview attributes of a request (None: a non-resource path) and its 403's words."""
    parts = request.path.strip("/").split("/")
    if len(parts) < 4 or parts[:3] != ["apis", GROUP, VERSION]:
        return None, lambda user: f'forbidden: User "{user}" cannot get path "{request.path}"'
    rest = parts[3:]
    namespace = ""
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource, name = rest[0], (rest[1] if len(rest) > 1 else "")
    verb = "get" if name else "list"
    attrs = {"verb": verb, "group": GROUP, "version": VERSION, "resource": resource, "namespace": namespace,
             "name": name}
    subject = f"{resource}.{GROUP}" + (f' "{name}"' if name else "")
    scope = f'in the namespace "{namespace}"' if namespace else "at the cluster scope"
    return attrs, lambda user: (f'{subject} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
                                f'in API group "{GROUP}" {scope}')


def _select(objs: list[Obj], request: web.Request) -> list[Obj] | web.Response:
    """The objects matching the request's label and field selectors (400 on a malformed one)."""
    try:
        labels = parse_label_selector(request.query.get("labelSelector", ""))
        fields = parse_field_selector(request.query.get("fieldSelector", ""))
    except errors.StatusError as err:
        return web.json_response(err.status(), status=err.code)
    out = []
    for obj in objs:
        m = obj.get("metadata") or {}
        if not labels.matches(m.get("labels") or {}):
            continue
        if not fields.matches({"metadata.name": m.get("name", ""), "metadata.namespace": m.get("namespace", "")}):
            continue
        out.append(obj)
    return out


def serving_context(cert: str, key: str, requestheader_ca: str) -> ssl.SSLContext:
    """TLS for the API: our certificate; client certificates optional, verified against the request-header CA."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    if requestheader_ca:
        ctx.load_verify_locations(cadata=requestheader_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx
