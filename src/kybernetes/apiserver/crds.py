"""Serving custom resources: the part of apiextensions-apiserver that reacts to CRDs.

A small controller inside the API server watches CustomResourceDefinitions through the registry:

- on a new or changed CRD it registers every served version in the catalogue (so discovery and
  routing see it at once), records each version's structural schema, printer columns and scale
  paths, and marks the CRD ``NamesAccepted`` and ``Established``;
- CRDs carry the ``customresourcecleanup.apiextensions.k8s.io`` finalizer; when one is deleted,
  all its objects are deleted from the store, the resources leave the catalogue, and the
  finalizer is removed so the CRD itself goes.

Custom objects are stored in the storage version. With conversion strategy ``None`` other served
versions differ only in ``apiVersion`` (and share one strategy); with ``Webhook`` the CRD's
conversion webhook converts between versions (:mod:`kybernetes.apiserver.crdconversion`) and each
version validates with its own schema, as in Kubernetes, where a request runs in its version and
meets the storage version only at the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from typing import TYPE_CHECKING, Any

from kybernetes import errors
from kybernetes.api import schema as schemas
from kybernetes.api import structural
from kybernetes.api import validation as v
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue, Resource, storage_prefix
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.apiserver.admission.webhook.client import WebhookClient
from kybernetes.apiserver.cel import has_rules
from kybernetes.apiserver.crdconversion import WebhookConverter
from kybernetes.apiserver.registry.conversion import Remote, Stored, View, api_version_only, by_webhook
from kybernetes.apiserver.registry.request import ListOptions, RequestContext, User
from kybernetes.apiserver.registry.rest import ResourceREST, ScaleREST, generic_subresources
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.registry.strategy import Strategy, semantic_equal

if TYPE_CHECKING:
    from kybernetes.apiserver.cel.crdrules import RuleValidator

log = logging.getLogger(__name__)
CLEANUP_FINALIZER = "customresourcecleanup.apiextensions.k8s.io"
SYSTEM = RequestContext(user=User("system:apiserver", ("system:masters",)), field_manager="kube-apiserver")


class CustomResourceStrategy(Strategy):
    """Validation, defaulting and pruning against one CRD version's schema."""

    def __init__(self, kind: str, schema: dict[str, Any] | None, has_status: bool, namespaced: bool) -> None:
        self.kind_name = kind
        self.raw_schema = schema or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        self.status_enabled = has_status
        self.namespaced = namespaced
        # The version's x-kubernetes-validations, compiled once for as long as the schema lives.
        self.rules = _compile_rules(self.raw_schema)

    @property  # type: ignore[override]
    def has_status(self) -> bool:  # type: ignore[override]
        return self.status_enabled

    def prepare_for_create(self, obj: Obj) -> None:
        if self.status_enabled:
            obj.pop("status", None)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        if self.status_enabled:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        # Kubernetes: any change but metadata. With a status subresource prepare_for_update has
        # put the old status back, so that is the spec; without one, status counts too.
        return not semantic_equal(_body(new), _body(old))

    def default(self, obj: Obj) -> None:
        structural.default_custom_object(obj, self.raw_schema)

    def validate(self, obj: Obj) -> list[v.FieldError]:
        return self._validate(obj, None)

    def validate_update(self, new: Obj, old: Obj) -> list[v.FieldError]:
        return self._validate(new, old)

    def validate_status_update(self, new: Obj, old: Obj) -> list[v.FieldError]:
        return self._validate(new, old)

    def _validate(self, obj: Obj, old: Obj | None) -> list[v.FieldError]:
        """The schema's value validations, then (unless one of them makes the object unfit for
        the rules: a wrong type, a missing required field, a value not in the enum, a string or
        list too long) its CEL rules, with ``oldSelf`` on updates."""
        errs = structural.validate_custom_object(_body(obj), self.raw_schema)
        if self.rules is None:
            return errs
        if any(e.type in _BLOCKING for e in errs):
            from kybernetes.apiserver.cel.crdrules import NOT_CHECKED, ROOT  # loaded with self.rules

            return [*errs, v.invalid(ROOT, "null", NOT_CHECKED)]
        new_root, old_root = _rule_root(obj), (_rule_root(old) if old is not None else None)
        return errs + self.rules.validate(new_root, old_root, has_old=old is not None)


def _compile_rules(schema: dict[str, Any]) -> RuleValidator | None:
    """The schema's compiled rules, None without any: CEL loads with the first schema that has some."""
    if not has_rules(schema):
        return None
    from kybernetes.apiserver.cel import crdrules

    return crdrules.compile_schema(schema)


def _body(obj: Obj) -> Obj:
    """The object without metadata, which the generic store validates itself."""
    return {k: val for k, val in obj.items() if k != "metadata"}


_BLOCKING = frozenset({"FieldValueNotSupported", "FieldValueRequired", "FieldValueTooLong", "FieldValueTooMany",
                       "FieldValueTypeInvalid"})
"""Kubernetes' ``hasBlockingErr``: schema errors after which the CEL rules are not run."""


def _rule_root(obj: Obj) -> Obj:
    """The object as CEL rules at the root see it: metadata reduced to name and generateName."""
    meta = obj.get("metadata") or {}
    out = _body(obj)
    out["metadata"] = {k: meta[k] for k in ("name", "generateName") if k in meta}
    return out


def custom_rest(registry: Registry, crd: Obj, namespaced: bool) -> list[ResourceREST]:
    """The REST object of each served version of ``crd``'s resource: its schema, printer columns,
    status and scale subresources. With conversion ``Webhook`` each version has its own strategy;
    with ``None`` every version shares one, the last served version's (as the server has always
    validated such custom resources)."""
    spec = crd.get("spec") or {}
    group, names = spec.get("group", ""), spec.get("names") or {}
    out: list[ResourceREST] = []
    for ver in spec.get("versions") or []:
        if not ver.get("served", True):
            continue
        sr = ver.get("subresources") or {}
        subs = tuple(sub for sub in ("status", "scale") if sub in sr)
        r = Resource(
            group=group, version=ver["name"], kind=names.get("kind", ""), plural=names.get("plural", ""),
            namespaced=namespaced, short_names=tuple(names.get("shortNames") or ()),
            categories=tuple(names.get("categories") or ()), subresources=subs,
            singular=names.get("singular") or names.get("kind", "").lower(), builtin=False,
        )
        raw = ((ver.get("schema") or {}).get("openAPIV3Schema")) or None
        strategy = CustomResourceStrategy(r.kind, raw, "status" in sr, namespaced)
        rest = ResourceREST(
            r, registry, strategy, generic_subresources(r, strategy),
            custom_schema=schemas.from_openapi_v3(raw or {"type": "object", "x-kubernetes-preserve-unknown-fields": True}),
            columns=list(ver.get("additionalPrinterColumns") or []),
        )
        if "scale" in sr:
            rest.subresources["scale"] = ScaleREST(dict(sr["scale"]))
        out.append(rest)
    if not _webhook_converted(crd):
        for rest in out:
            rest.strategy = out[-1].strategy
    return out


def _webhook_converted(crd: Obj) -> bool:
    return ((crd.get("spec") or {}).get("conversion") or {}).get("strategy") == "Webhook"


class CRDController:
    def __init__(self, registry: Registry, catalogue: Catalogue) -> None:
        self.registry = registry
        self.catalogue = catalogue
        self._task: asyncio.Task[None] | None = None
        self._served: dict[str, list[Resource]] = {}
        self.webhooks = WebhookClient(registry, catalogue)
        """Calls conversion webhooks (the admission webhooks' client)."""
        self.schema_version = 0
        """Bumped whenever a served schema changes (the OpenAPI documents rebuild)."""
        self.crd_resource = catalogue.get("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        assert self.crd_resource is not None
        registry.create_hooks.setdefault(("apiextensions.k8s.io", "CustomResourceDefinition"), []).append(
            self._on_create)

    async def _on_create(self, registry: Registry, r: Resource, obj: Obj, old: Obj | None, ctx: RequestContext) -> None:
        fins = obj["metadata"].setdefault("finalizers", [])
        if CLEANUP_FINALIZER not in fins:
            fins.append(CLEANUP_FINALIZER)

    async def start(self) -> None:
        # Serve what exists before the server answers, so a restart does not 404 for a moment.
        res = await self.registry.list(self.crd_resource, "", ListOptions())  # type: ignore[arg-type]
        for crd in res.items:
            self._serve(crd)
        self._task = asyncio.create_task(self._run(res.resource_version), name="crd-controller")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        await self.webhooks.close()

    def custom_schema_for(self, group: str, version: str, kind: str) -> dict[str, Any] | None:
        r = self.catalogue.by_kind(group, version, kind)
        s = self.registry.rest_for(r).schema if r is not None and not r.builtin else None
        return s.raw if s is not None else None

    async def _run(self, rv: str) -> None:
        assert self.crd_resource is not None
        while True:
            try:
                async for ev in self.registry.watch(self.crd_resource, "", ListOptions(resource_version=rv)):
                    rv = str(ev.revision)
                    if ev.type == "DELETED":
                        self._unserve(ev.obj)
                        continue
                    await self._reconcile(ev.obj)
            except asyncio.CancelledError:
                raise
            except errors.Expired:
                rv = ""
            except Exception:
                log.exception("CRD controller failed; restarting")
                await asyncio.sleep(0.5)

    async def _reconcile(self, crd: Obj) -> None:
        if crd["metadata"].get("deletionTimestamp"):
            await self._cleanup(crd)
            return
        self._serve(crd)
        status = crd.get("status") or {}
        conds = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
        names = crd["spec"]["names"]
        if conds.get("Established") == "True" and status.get("acceptedNames") == _accepted(names):
            return
        now = now_rfc3339()
        new_status = {
            "acceptedNames": _accepted(names),
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "lastTransitionTime": now, "reason": "NoConflicts",
                 "message": "no conflicts found"},
                {"type": "Established", "status": "True", "lastTransitionTime": now, "reason": "InitialNamesAccepted",
                 "message": "the initial names have been accepted"},
            ],
            "storedVersions": sorted({ver["name"] for ver in crd["spec"]["versions"] if ver.get("storage")}
                                     | set(status.get("storedVersions") or [])),
        }
        assert self.crd_resource is not None
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.registry.patch(self.crd_resource, "", crd["metadata"]["name"], "merge",
                                      {"status": new_status}, SYSTEM, subresource="status")

    def _serve(self, crd: Obj) -> None:
        spec = crd.get("spec") or {}
        group = spec.get("group", "")
        namespaced = spec.get("scope", "Namespaced") == "Namespaced"
        name = crd["metadata"]["name"]
        old = self._served.pop(name, [])
        for r in old:
            self.catalogue.remove(r.group, r.version, r.plural)
            self.registry.remove_rest(r)
        rests = custom_rest(self.registry, crd, namespaced)
        served = [rest.resource for rest in rests]
        for rest in rests:
            self.registry.install_rest(rest)
        storage = next((ver["name"] for ver in spec.get("versions") or [] if ver.get("storage")), None)
        if storage and served:
            stored_av = f"{group}/{storage}"
            self.registry.conversions.register(Stored(served[0].stored_in, stored_av,
                                                      self._views(crd, served, stored_av)))
        self.catalogue.add_all(served)
        self._served[name] = served
        self.schema_version += 1

    def _views(self, crd: Obj, served: list[Resource], stored_av: str) -> tuple[View, ...]:
        """How each served version meets the stored one: through the CRD's conversion webhook, or
        (conversion None) as the stored object with its own apiVersion."""
        if not _webhook_converted(crd):
            return tuple(api_version_only(r.api_version, stored_av) for r in served)
        converter = WebhookConverter(crd, self.webhooks)

        async def remote(objs: list[Obj], desired: str, list_kind: str) -> list[Obj]:
            return await converter.convert(objs, desired, as_list=list_kind)

        convert: Remote = remote
        return tuple(by_webhook(r.api_version, convert) for r in served)

    def _unserve(self, crd: Obj) -> None:
        name = crd["metadata"]["name"]
        for r in self._served.pop(name, []):
            self.catalogue.remove(r.group, r.version, r.plural)
            self.registry.remove_rest(r)
            self.registry.conversions.unregister(r.stored_in)

    async def _cleanup(self, crd: Obj) -> None:
        """Delete every object of a CRD being deleted, then let the CRD go."""
        spec = crd.get("spec") or {}
        prefix = f"/registry/{storage_prefix(spec.get('group') or '', (spec.get('names') or {}).get('plural') or '', False)}/"
        store = self.registry.store
        while True:
            res = await store.list(prefix, limit=500)
            for kv in res.items:
                with contextlib.suppress(Exception):
                    await store.delete(kv.key)
            if not res.more:
                break
        self._unserve(crd)
        self.registry.cacher.drop(prefix)
        fins = [f for f in crd["metadata"].get("finalizers") or [] if f != CLEANUP_FINALIZER]
        assert self.crd_resource is not None
        new = copy.deepcopy(crd)
        new["metadata"]["finalizers"] = fins
        with contextlib.suppress(errors.NotFound, errors.Conflict):
            await self.registry.update(self.crd_resource, "", crd["metadata"]["name"], new, SYSTEM)


def _accepted(names: Obj) -> Obj:
    out = dict(names)
    out.setdefault("singular", out.get("kind", "").lower())
    out.setdefault("listKind", out.get("kind", "") + "List")
    return out
