"""One object per served resource and one per subresource: Kubernetes' ``pkg/registry/.../storage``.

A :class:`ResourceREST` holds everything the server knows about one resource in one version: its
strategy (the stored kind's rules), its schema, its printer columns (custom resources) and its
subresources, each an object of its own with one small interface (:class:`SubresourceREST`).
The request handlers look a subresource up here and call it; they know no subresource by name,
and the generic store (``store.py``) knows no kind.

Built-in resources get their object from :func:`kybernetes.apiserver.registry.builtin_rest`
(each API group's module says which subresources its resources have); custom resources get the
same object, built from their CRD in one place (:func:`kybernetes.apiserver.crds.custom_rest`).
A resource whose objects are computed rather than stored (componentstatuses) has a
:class:`ComputedREST`.

Generic subresources live here: ``status`` (:class:`StatusREST`), ``scale``
(:class:`ScaleREST`), a strategy's own update subresources (:class:`UpdateSubresourceREST`, e.g.
a CSR's ``approval``) and the connect-style ones that hand over to the streaming proxy
(:class:`ConnectREST`). Kind-specific ones live with their kind (pods' ``binding`` and
``eviction``, serviceaccounts' ``token``, namespaces' ``finalize``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api import schema as schemas
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Resource
from kybernetes.apiserver.registry.strategy import Strategy

if TYPE_CHECKING:
    from kybernetes.apiserver.registry.request import RequestContext
    from kybernetes.apiserver.registry.store import Registry


METHOD_NOT_ALLOWED = "the server does not allow this method on the requested resource"


@dataclass
class SubresourceCall:
    """One request to a subresource, as the handlers read it from HTTP."""

    method: str
    namespace: str
    name: str
    ctx: RequestContext
    read_body: Callable[[str], Awaitable[Any]]
    """Reads and decodes the request body into the kind named (only subresources that take one
    call it; a decode failure names the kind, as kube-apiserver's does)."""
    read_patch_type: Callable[[], str] = lambda: ""
    """For PATCH: json, merge, strategic or apply (415 for another Content-Type)."""
    force: bool = False
    request: Any = None
    """The HTTP request itself, for connect subresources that take the connection over."""


@dataclass
class Reply:
    """What a subresource answers: an object, or a finished HTTP response (connect)."""

    obj: Obj | None = None
    status: int = 200
    as_resource: bool = False
    """True: ``obj`` is the resource's own object, rendered as the resource is (its version, a
    Table, PartialObjectMetadata); False: ``obj`` is sent as it is (Scale, Eviction's Status)."""
    response: Any = None


class SubresourceREST:
    """One subresource of one resource. ``methods`` are the HTTP methods it serves: any other is
    405; :meth:`serve` answers the rest."""

    methods: frozenset[str] = frozenset()

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        raise NotImplementedError


Finish = Callable[[bool], Awaitable[None]]
"""Kubernetes' ``FinishFunc``: called once the write's outcome is known, True when it was stored,
False when it was refused before anything was stored (an error the request answers with)."""
WriteStep = Callable[["ResourceREST", Obj, "Obj | None", "RequestContext"], Awaitable["Finish | None"]]
"""``(rest, new, old or None, ctx)``: a step of a resource's own storage in the generic store's
writes; it may return a :data:`Finish` (to undo what it did if the write is refused)."""
AfterDelete = Callable[["ResourceREST", Obj], Awaitable[None]]
"""``(rest, deleted object)``: called by the generic store once an object is gone from the store."""


@dataclass
class ResourceREST:
    """Everything about one served resource (one group, version and plural).

    ``strategy`` is the stored kind's (the registry adapts it to ``resource``'s version); a custom
    resource brings its ``schema`` and ``columns`` (its CRD's additionalPrinterColumns), a built-in
    one finds its schema in :mod:`kybernetes.api.schema`.
    """

    resource: Resource
    registry: Registry
    strategy: Strategy
    subresources: dict[str, SubresourceREST] = field(default_factory=dict)
    custom_schema: schemas.Schema | None = None
    columns: list[Obj] | None = None
    """Printer columns of a custom resource (None: the built-in printer of its kind)."""
    create: SubresourceREST | None = None
    """What serves POST to the collection instead of the generic store (the older ``bindings``)."""
    computed: ComputedREST | None = None
    """Set for a resource computed on each read instead of stored (componentstatuses)."""
    begin_create: WriteStep | None = None
    """Called by the generic store on create after defaulting, before admission and validation
    (Kubernetes' ``BeginCreate``): what the resource's own storage must do, such as allocating a
    Service's ClusterIP and node ports."""
    begin_update: WriteStep | None = None
    """The same on every update (``BeginUpdate``), with the old object."""
    after_delete: AfterDelete | None = None
    """Called once an object is deleted from the store (``AfterDelete``): releasing what it held."""

    @property
    def schema(self) -> schemas.Schema | None:
        r = self.resource
        if r.builtin:
            return schemas.for_kind(r.group, r.version, r.kind)
        return self.custom_schema

    def subresource(self, name: str) -> SubresourceREST:
        """The object serving ``name``; 404 with Kubernetes' message when this resource has none."""
        if name not in self.resource.subresources:
            raise errors.NotFound.no_resource()
        sub = self.subresources.get(name)
        if sub is None:
            # In the catalogue (discovery lists it) but not wired in this server.
            raise errors.NotFound(f"the server could not find the requested resource ({name} is not served yet)")
        return sub


class ComputedREST:
    """A resource computed on every read and never stored (get and list only): componentstatuses.

    ``warning`` is added to every response (a deprecation notice)."""

    warning: str = ""

    async def get(self, name: str) -> Obj:
        raise NotImplementedError

    async def list(self) -> list[Obj]:
        raise NotImplementedError


async def read_patch(registry: Registry, r: Resource, namespace: str, name: str, patch_type: str,
                     read: Callable[[str], Awaitable[Any]]) -> Any:
    """A PATCH body decoded (``read``), but a missing object's 404 before the body's 400:
    patch.go reads a JSON, merge or strategic merge patch only once it has the object (an apply
    patch is decoded to create one)."""
    try:
        return await read(r.kind)
    except errors.BadRequest:
        if patch_type != "apply":
            await registry.get(r, namespace, name)
        raise


# --- generic subresources -----------------------------------------------------------------


class _ObjectWrite(SubresourceREST):
    """GET reads the object; PUT and PATCH write it through the store with ``wire`` as the
    subresource ("" for the main resource's rules)."""

    methods = frozenset(("GET", "PUT", "PATCH"))
    wire = ""

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        reg, r = rest.registry, rest.resource
        if call.method == "GET":
            return Reply(await reg.get(r, call.namespace, call.name), as_resource=True)
        if call.method == "PUT":
            body = await call.read_body(r.kind)
            obj, _ = await reg.update(r, call.namespace, call.name, body, call.ctx, subresource=self.wire)
        else:
            ptype = call.read_patch_type()
            body = await read_patch(reg, r, call.namespace, call.name, ptype, call.read_body)
            obj, _ = await reg.patch(r, call.namespace, call.name, ptype, body, call.ctx,
                                     subresource=self.wire, force=call.force)
        return Reply(obj, as_resource=True)


class StatusREST(_ObjectWrite):
    """``/status``: writes only status (the strategy's ``prepare_for_status_update``)."""

    wire = "status"


class UpdateSubresourceREST(_ObjectWrite):
    """A subresource the strategy writes with its own rules (``Strategy.update_subresources``)."""

    def __init__(self, name: str, methods: frozenset[str] = frozenset(("GET", "PUT", "PATCH"))) -> None:
        self.wire = name
        self.methods = methods


class ConnectREST(SubresourceREST):
    """A connect subresource (log, exec, attach, portforward): the streaming proxy takes the
    connection over (:class:`kybernetes.apiserver.transport.proxy.StreamingProxy`)."""

    methods = frozenset(("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))

    def __init__(self, name: str, proxy: Any) -> None:
        self.name = name
        self.proxy = proxy

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        return Reply(response=await self.proxy.handle(call.request, self.name, call.namespace, call.name))


REPLICAS_PATHS = {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas",
                  "labelSelectorPath": ".spec.selector"}
"""Where every scalable built-in kind keeps its replicas and selector."""


class ScaleREST(SubresourceREST):
    """``/scale``: an ``autoscaling/v1`` Scale view of the object's replicas (``paths`` say where
    they are: a CRD's ``subresources.scale``, or :data:`REPLICAS_PATHS`)."""

    methods = frozenset(("GET", "PUT", "PATCH"))

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths

    async def serve(self, rest: ResourceREST, call: SubresourceCall) -> Reply:
        reg, r, ns, name = rest.registry, rest.resource, call.namespace, call.name
        # A PUT's body is decoded before the object is read (a 400 before a 404, as update.go
        # does); a PATCH's after (patch.go finds the object missing before it reads the patch).
        put_body: Any = await call.read_body("Scale") if call.method == "PUT" else None
        ptype = call.read_patch_type() if call.method == "PATCH" else ""  # 415 before all else
        obj = await reg.to_version(r, await reg.get(r, ns, name))
        if call.method == "GET":
            return Reply(to_scale(obj, self.paths))
        body = put_body if call.method == "PUT" else await call.read_body("Scale")
        if call.method == "PUT":
            scale = body
        else:
            from kybernetes.api import patch as patching

            current = to_scale(obj, self.paths)
            if ptype == "json":
                scale = patching.apply_json_patch(current, body)
            elif ptype in ("merge", "strategic"):
                scale = patching.apply_merge_patch(current, body)
            else:
                raise errors.UnsupportedMediaType("apply is not supported on the scale subresource")
        replicas = _replicas(scale, name)
        want_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != obj["metadata"]["resourceVersion"]:
            raise errors.Conflict.of(r.plural, name, r.group)
        patch = _set_path({}, self.paths["specReplicasPath"], replicas)
        new, _ = await reg.patch(r, ns, name, "merge", patch, call.ctx)
        return Reply(to_scale(new, self.paths))


def _replicas(scale: Any, name: str) -> int:
    if not isinstance(scale, dict):
        raise errors.BadRequest("body must be a Scale")
    replicas = (scale.get("spec") or {}).get("replicas", 0)
    if not isinstance(replicas, int) or isinstance(replicas, bool):
        raise errors.BadRequest("Scale in version \"v1\" cannot be handled as a Scale: spec.replicas must be an integer")
    if replicas < 0:
        raise errors.Invalid("Scale", name, [{"reason": "FieldValueInvalid", "field": "spec.replicas",
                                              "message": f"Invalid value: {replicas}: must be greater than or equal to 0"}],
                             group="autoscaling")
    return replicas


def to_scale(obj: Obj, paths: dict[str, str]) -> Obj:
    """The autoscaling/v1 Scale of ``obj``."""
    from kybernetes.api.label_selectors import from_label_selector_object

    meta = obj.get("metadata", {})
    sel_raw = _get_path(obj, paths.get("labelSelectorPath", ""))
    if isinstance(sel_raw, dict):
        selector = str(from_label_selector_object(sel_raw)) if sel_raw.get("matchLabels") or sel_raw.get(
            "matchExpressions") else ""
        if not sel_raw.get("matchExpressions") and sel_raw.get("matchLabels") is None:
            selector = ",".join(f"{k}={v}" for k, v in sel_raw.items())
    else:
        selector = str(sel_raw or "")
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                     if k in meta},
        "spec": {"replicas": _get_path(obj, paths["specReplicasPath"]) or 0},
        "status": {"replicas": _get_path(obj, paths.get("statusReplicasPath", "")) or 0, "selector": selector},
    }


def _get_path(obj: Any, path: str) -> Any:
    cur = obj
    for part in [p for p in path.split(".") if p]:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _set_path(obj: Obj, path: str, value: Any) -> Obj:
    parts = [p for p in path.split(".") if p]
    cur = obj
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return obj


def generic_subresources(r: Resource, strategy: Strategy) -> dict[str, SubresourceREST]:
    """The subresources any resource has by what it declares: ``status``, and the strategy's own
    update subresources. Kind-specific ones are added by the kind's group module."""
    out: dict[str, SubresourceREST] = {}
    if "status" in r.subresources:
        out["status"] = StatusREST()
    for name in strategy.update_subresources:
        out[name] = UpdateSubresourceREST(name)
    return out


__all__ = [
    "REPLICAS_PATHS",
    "ComputedREST",
    "ConnectREST",
    "Reply",
    "ResourceREST",
    "ScaleREST",
    "StatusREST",
    "SubresourceCall",
    "SubresourceREST",
    "UpdateSubresourceREST",
    "generic_subresources",
    "to_scale",
]
