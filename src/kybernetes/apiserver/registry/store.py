"""The generic store: the order of the steps of every read and write, for every kind.

Kubernetes' ``genericregistry.Store`` in Python. A request handler calls one of
:meth:`Registry.create`, :meth:`get`, :meth:`list`, :meth:`update`, :meth:`patch`,
:meth:`delete`, :meth:`delete_collection` or :meth:`watch` with a :class:`Resource` and a
:class:`RequestContext`; the registry looks up the kind's strategy and runs:

    create: decode-check -> generateName -> uid/timestamps -> strategy.prepare_for_create
            -> strategy.default -> mutating admission -> rest.begin_create (a Service's IPs)
            -> registry hooks -> validate -> validating admission -> managedFields
            -> store.create (409 AlreadyExists) -> the finish begin_create returned (stored or not)
    update: read current -> precondition (resourceVersion CAS) -> prepare_for_update / status
            -> default -> mutating admission -> rest.begin_update -> registry hooks -> validate_update
            -> validating admission -> generation bump -> managedFields -> no-op check
            -> store.update (409 Conflict on a lost CAS; patch retries, PUT does not)
    delete: preconditions -> admission (DELETE, the object as old object) -> finalizers or
            strategy.graceful_delete_seconds (only mark deletionTimestamp;
            strategy.prepare_for_delete_marking) -> store.delete -> rest.after_delete

The store names no kind: what differs per kind is its strategy's, and what a subresource does is
its REST object's (``rest.py``). Admission is :attr:`Registry.admission`, a
:class:`~kybernetes.apiserver.admission.chain.Chain` (empty unless the server installs one); it
runs on dry-run requests too. Registry hooks (``create_hooks``/``update_hooks``) are not
admission: they are per-kind steps that need the store or the request (a CSR's requestor, a CRD's
finalizer); a Service's IPs and ports are its REST object's ``begin_create``/``begin_update``.

Reads (:mod:`.reads`) are served from the watch cache (:mod:`kybernetes.storage.cacher`), made consistent by
waiting until the cache has applied every acknowledged write. A request runs in the form of the
version it was made through; objects are converted to and from their stored form only as they
leave and enter the store (:meth:`Registry.to_version`, ``_encode_for``; see ``conversion.py``;
where a conversion webhook converts, a failed call fails that request alone, before any write). Objects leave the registry as dicts
that the caller must not mutate (the cache shares them).
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from kybernetes import errors
from kybernetes.api import gojson
from kybernetes.api import schema as schemas
from kybernetes.api import validation as v
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.api.timeutil import format_rfc3339, now_rfc3339
from kybernetes.apiserver.admission.chain import CREATE, DELETE, UPDATE, Attributes, Chain
from kybernetes.apiserver.registry import bodies
from kybernetes.apiserver.registry.conversion import Conversions, Stored
from kybernetes.apiserver.registry.objutil import copy_json, decode, encode, meta_of, new_uid, random_suffix
from kybernetes.apiserver.registry.reads import StoreReads
from kybernetes.apiserver.registry.request import DeleteOptions, ListOptions, RequestContext
from kybernetes.apiserver.registry.rest import ResourceREST
from kybernetes.apiserver.registry.strategy import Strategy
from kybernetes.storage import interface as st
from kybernetes.storage.cacher import Cacher

ObjList = list[Obj]
StrList = list[str]

_PATCH_RETRIES = 8

Hook = Callable[["Registry", Resource, Obj, Obj | None, RequestContext], Awaitable[None]]


class Registry(StoreReads):
    """Every kind's CRUD over one store, with one watch cache (reads: :class:`StoreReads`)."""

    def __init__(self, store: st.Store, catalogue: Catalogue, strategies: dict[tuple[str, str], Strategy],
                 stored: Iterable[Stored] = ()) -> None:
        self.store = store
        self.catalogue = catalogue
        self.strategies = strategies
        self.cacher = Cacher(store, decode)
        self.create_hooks: dict[tuple[str, str], list[Hook]] = {}
        self.update_hooks: dict[tuple[str, str], list[Hook]] = {}
        self.admission = Chain()
        """The admission plugins (set by the server from its flags; none by default)."""
        self._rest: dict[tuple[str, str, str], ResourceREST] = {}
        """(group, version, plural) -> the resource's REST object: built-in ones made on first
        use, custom ones installed by the CRD controller (:meth:`install_rest`)."""
        self.conversions = Conversions(stored)
        """Resources served through versions other than their stored one (CRD versions register here)."""
        self._default_strategy = Strategy()

    async def start(self) -> None:
        await self.cacher.start()

    async def stop(self) -> None:
        await self.cacher.stop()

    # --- lookups ------------------------------------------------------------------------

    def strategy(self, r: Resource) -> Strategy:
        """The rules for requests made through ``r`` (adapted when ``r`` is not the stored form)."""
        return self.conversions.strategy(r, self._stored_strategy(r))

    def rest_for(self, r: Resource) -> ResourceREST:
        """``r``'s REST object (its strategy, schema, subresources). A custom resource whose CRD
        is gone has a bare one: the default strategy and no schema."""
        rest = self._rest.get((r.group, r.version, r.plural))
        if rest is not None:
            return rest
        if not r.builtin:
            return ResourceREST(r, self, self._default_strategy)
        from kybernetes.apiserver.registry import builtin_rest

        strategy = self.strategies.get((r.stored_in[0], r.kind)) or self._default_strategy
        rest = self._rest[(r.group, r.version, r.plural)] = builtin_rest(self, r, strategy)
        return rest

    def install_rest(self, rest: ResourceREST) -> None:
        """Serve ``rest`` for its resource (a custom resource's, built from its CRD)."""
        r = rest.resource
        self._rest[(r.group, r.version, r.plural)] = rest

    def remove_rest(self, r: Resource) -> None:
        self._rest.pop((r.group, r.version, r.plural), None)

    def _stored_strategy(self, r: Resource) -> Strategy:
        """The strategy of the kind as it is stored (the one that reads stored objects)."""
        return self.rest_for(r).strategy

    def schema(self, r: Resource) -> schemas.Schema | None:
        return self.rest_for(r).schema

    async def _encode_for(self, r: Resource, obj: Obj) -> tuple[bytes, Obj]:
        """An object of ``r``'s version, encoded in its stored form (top level and metadata in Go's
        field order), whatever version wrote it; and that stored form. A failed conversion
        raises before anything is written."""
        gojson.order_fields(obj)
        stored = await self.conversions.to_storage_async(r, obj)
        if stored is not obj:
            gojson.order_fields(stored)
        return encode(stored), stored

    async def _written(self, r: Resource, obj: Obj, stored: Obj, rev: int) -> Obj:
        """The answer to a write stored at ``rev``: ``obj`` with its new resourceVersion; where a
        webhook converts, what was stored read back in ``r``'s version, as Kubernetes decodes
        the stored bytes for the answer."""
        obj["metadata"]["resourceVersion"] = str(rev)
        if stored is obj or not self.conversions.has_remote(r):
            return obj
        stored["metadata"]["resourceVersion"] = str(rev)
        return await self.to_version(r, stored)


    async def _dry_run_answer(self, r: Resource, obj: Obj) -> Obj:
        """A dry run's answer: ``obj``, or where a webhook converts, ``obj`` converted to the
        storage version and back (Kubernetes' dry-run storage encodes and decodes it)."""
        if not self.conversions.has_remote(r):
            return obj
        _, stored = await self._encode_for(r, obj)
        return await self.to_version(r, stored)

    # --- writes -------------------------------------------------------------------------

    def _check_typed(self, r: Resource, obj: Obj, ctx: RequestContext) -> None:
        bodies.check_typed(r, self.schema(r), obj, ctx)

    def decode_typed(self, r: Resource, obj: Obj, ctx: RequestContext) -> None:
        """The create path's Go-style decoding, for REST objects that serve create themselves
        (the access reviews): 400 for a wrong type; unknown fields dropped, warned or refused."""
        self._check_typed(r, obj, ctx)

    def _validate(self, r: Resource, obj: Obj, old: Obj | None) -> None:
        s = self.strategy(r)
        meta = obj.get("metadata", {})
        errs = v.validate_object_meta(meta, namespaced=r.namespaced, name_validator=s.name_validator)
        if old is None:
            errs += s.validate(obj)
        else:
            errs += v.validate_object_meta_update(meta, old.get("metadata", {}))
            errs += s.validate_update(obj, old)
        v.raise_if_errors(r.kind, meta.get("name") or meta.get("generateName") or "", errs, r.group)

    async def create(self, r: Resource, namespace: str, body: Obj, ctx: RequestContext,
                     *, check_typed: bool = True, managed_fields: list[Any] | None = None,
                     body_handed_over: bool = False) -> Obj:
        """POST. ``managed_fields``: an apply that creates the object (its Apply entries, which the
        stored object carries instead of an Update entry of this request's manager).
        ``body_handed_over``: the caller does not use ``body`` afterwards (a request's decoded
        body), so it becomes the object instead of a copy of it."""
        bodies.check_type_meta(r, body)
        obj = body if body_handed_over else copy_json(body)
        if check_typed:
            self._check_typed(r, obj, ctx)
        meta = meta_of(obj)
        if r.namespaced:
            ns = meta.get("namespace")
            if ns and ns != namespace:
                raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on the request")
            meta["namespace"] = namespace
        elif "namespace" in meta and not meta["namespace"]:
            del meta["namespace"]
        if meta.get("resourceVersion"):
            raise errors.BadRequest("resourceVersion should not be set on objects to be created")
        requested_name = str(meta.get("name") or "")  # admission sees "" when the name is generated
        if not meta.get("name") and meta.get("generateName"):
            gen = str(meta["generateName"])
            meta["name"] = gen[:58] + random_suffix(5)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = now_rfc3339()
        for f in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(f, None)
        s = self.strategy(r)
        meta.pop("generation", None)
        if s.tracks_generation:
            meta["generation"] = 1
        s.prepare_and_default_for_create(obj)
        attrs = _attributes(r, CREATE, namespace, requested_name, obj, None, ctx)
        await self.admission.admit(attrs)
        rest = self.rest_for(r)
        finish = await rest.begin_create(rest, obj, None, ctx) if rest.begin_create is not None else None
        try:
            for hook in self.create_hooks.get((r.group, r.kind), ()):
                await hook(self, r, obj, None, ctx)
            self._validate(r, obj, None)
            await self.admission.validate(attrs)
            if managed_fields is None:
                self._manage_fields(r, None, obj, ctx, "Update")
            else:
                meta["managedFields"] = managed_fields
            name = meta["name"]
            if ctx.dry_run:
                cache = await self._cache(r)
                if r.key(namespace, name) in cache.objects:
                    raise errors.AlreadyExists.of(r.plural, name, r.group)
                answer = await self._dry_run_answer(r, obj)
                if finish is not None:
                    await finish(False)
                return answer
            data, stored = await self._encode_for(r, obj)
            try:
                rev = await self.store.create(r.key(namespace, name), data)
            except st.KeyExistsError:
                raise errors.AlreadyExists.of(r.plural, name, r.group) from None
        except errors.StatusError:
            # Refused before anything was stored. (Any other failure, such as an unavailable store,
            # may have stored the object: what begin_create did stays, for the repair to judge.)
            if finish is not None:
                await finish(False)
            raise
        if finish is not None:
            await finish(True)
        return await self._written(r, obj, stored, rev)

    def _manage_fields(self, r: Resource, old: Obj | None, new: Obj, ctx: RequestContext, operation: str,
                       subresource: str = "", known: Any = None) -> None:
        from kybernetes.api import apply as ssa

        manager = ctx.field_manager or _default_manager(ctx.user_agent)
        ssa.update_managed_fields(old, new, manager, self.schema(r), operation=operation,
                                  api_version=r.api_version, subresource=subresource, known=known)

    async def _current(self, r: Resource, namespace: str, name: str) -> st.KeyValue | None:
        return await self.store.get(r.key(namespace, name))

    async def update(self, r: Resource, namespace: str, name: str, body: Obj, ctx: RequestContext,
                     *, subresource: str = "") -> tuple[Obj, bool]:
        """PUT. Returns the stored object and whether it was created."""
        bodies.check_type_meta(r, body)
        new = copy_json(body)
        self._check_typed(r, new, ctx)
        meta = meta_of(new)
        if meta.get("name") and meta["name"] != name:
            raise errors.BadRequest("the name of the object ({}) does not match the name on the URL ({})".format(meta["name"], name))
        if r.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise errors.BadRequest("the namespace of the provided object does not match the namespace sent on the request")
        meta["name"] = name
        if r.namespaced:
            meta["namespace"] = namespace
        want_rv = meta.get("resourceVersion") or ""
        kv = await self._current(r, namespace, name)
        if kv is None:
            if subresource or not self.strategy(r).allow_create_on_update:
                raise errors.NotFound.of(r.plural, name, r.group)
            meta.pop("resourceVersion", None)
            return await self.create(r, namespace, new, ctx, check_typed=False), True
        old = await self.to_version(r, decode(kv.value, kv.mod_revision))
        if want_rv and want_rv != str(kv.mod_revision):
            raise errors.Conflict.of(r.plural, name, r.group)
        return await self._write_update(r, namespace, name, old, new, kv.mod_revision, ctx, subresource), False

    async def _write_update(self, r: Resource, namespace: str, name: str, old: Obj, new: Obj, revision: int,
                            ctx: RequestContext, subresource: str, *, operation: str = "Update",
                            managed: bool = True) -> Obj:
        s = self.strategy(r)
        meta = meta_of(new)
        old_meta = old.get("metadata", {})
        # System-owned metadata always comes from the stored object.
        for f in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"):
            if f in old_meta:
                meta[f] = old_meta[f]
            else:
                meta.pop(f, None)
        meta["resourceVersion"] = old_meta.get("resourceVersion")
        if subresource == "status":
            s.prepare_for_status_update(new, old)
            meta = meta_of(new)
        elif subresource:
            s.prepare_for_subresource_update(subresource, new, old)
            meta = meta_of(new)
        else:
            s.prepare_for_update(new, old)
        s.default(new)
        attrs = _attributes(r, UPDATE, namespace, name, new, old, ctx, subresource)
        await self.admission.admit(attrs)
        rest = self.rest_for(r)
        finish = await rest.begin_update(rest, new, old, ctx) if rest.begin_update is not None else None
        try:
            out = await self._update_after_begin(r, namespace, name, old, new, revision, ctx, subresource,
                                                 operation, managed)
        except errors.StatusError:
            if finish is not None:
                await finish(False)
            raise
        if finish is not None:
            await finish(not ctx.dry_run)
        return out

    async def _update_after_begin(self, r: Resource, namespace: str, name: str, old: Obj, new: Obj, revision: int,
                                  ctx: RequestContext, subresource: str, operation: str, managed: bool) -> Obj:
        s = self.strategy(r)
        meta = meta_of(new)
        old_meta = old.get("metadata", {})
        attrs = _attributes(r, UPDATE, namespace, name, new, old, ctx, subresource)
        for hook in self.update_hooks.get((r.group, r.kind), ()):
            await hook(self, r, new, old, ctx)
        if subresource:
            errs = v.validate_object_meta_update(meta, old_meta)
            if subresource == "status":
                errs += s.validate_status_update(new, old)
            else:
                errs += s.validate_subresource_update(subresource, new, old)
            v.raise_if_errors(r.kind, name, errs, r.group)
        else:
            self._validate(r, new, old)
        await self.admission.validate(attrs)
        if s.tracks_generation and not subresource and s.generation_changed(new, old):
            meta["generation"] = int(old_meta.get("generation") or 0) + 1
        if managed:
            self._manage_fields(r, old, new, ctx, operation, subresource)
        if (old_meta.get("deletionTimestamp") and not s.holds_deletion(new)
                and not int(old_meta.get("deletionGracePeriodSeconds") or 0)):
            # Kubernetes' ShouldDeleteDuringUpdate: the last finalizer went, and no graceful
            # deletion (a pod's kubelet finishing its grace period) is still under way.
            # The last finalizer is gone: the object goes now.
            if ctx.dry_run:
                return new
            try:
                rev, _ = await self.store.delete(r.key(namespace, name), revision)
            except st.RevisionMismatchError:
                raise errors.Conflict.of(r.plural, name, r.group) from None
            except st.KeyNotFoundError:
                raise errors.NotFound.of(r.plural, name, r.group) from None
            await self._after_delete(r, old)
            meta["resourceVersion"] = str(rev)
            return new
        if new == old:
            return old
        if ctx.dry_run:
            return await self._dry_run_answer(r, new)
        data, stored = await self._encode_for(r, new)
        try:
            rev = await self.store.update(r.key(namespace, name), data, revision)
        except st.RevisionMismatchError:
            raise errors.Conflict.of(r.plural, name, r.group) from None
        except st.KeyNotFoundError:
            raise errors.NotFound.of(r.plural, name, r.group) from None
        return await self._written(r, new, stored, rev)

    async def patch(self, r: Resource, namespace: str, name: str, patch_type: str, patch: Any,
                    ctx: RequestContext, *, subresource: str = "", force: bool = False) -> tuple[Obj, bool]:
        """PATCH in any of the four types; retried on lost compare-and-swap like Kubernetes."""
        from kybernetes.api import apply as ssa
        from kybernetes.api import patch as patching

        for _attempt in range(_PATCH_RETRIES):
            kv = await self._current(r, namespace, name)
            if kv is None:
                if patch_type == "apply" and not subresource:
                    return await self._apply_create(r, namespace, name, patch, ctx), True
                raise errors.NotFound.of(r.plural, name, r.group)
            old = await self.to_version(r, decode(kv.value, kv.mod_revision))
            if patch_type == "json":
                new = patching.apply_json_patch(old, patch)
            elif patch_type == "merge":
                new = patching.apply_merge_patch(old, patch)
            elif patch_type == "strategic":  # built-ins only: transport's patch_type refuses it for a CR
                new = patching.apply_strategic_merge_patch(old, patch, self.schema(r))
            elif patch_type == "apply":
                if not isinstance(patch, dict):
                    raise errors.BadRequest("apply patch must be an object")
                bodies.check_type_meta_apply(r, patch)
                applied = copy.deepcopy(patch)
                self._check_typed(r, applied, ctx)
                manager = ctx.field_manager
                if not manager:
                    raise errors.BadRequest("PATCH /apply requires a non-empty fieldManager query parameter")
                new = ssa.apply(old, applied, manager, self.schema(r), force=force, api_version=r.api_version,
                                ignore_top_level=("status",) if not subresource else ())
            else:
                raise errors.UnsupportedMediaType(f"unsupported patch type {patch_type}")
            if not isinstance(new, dict):
                raise errors.BadRequest("patch produced an object that is not a JSON object")
            bodies.check_type_meta(r, new)
            # Only a resourceVersion the client put in the patch is a precondition; the patched
            # object always carries the current one.
            patched_rv = _pinned_resource_version(patch_type, patch)
            if patched_rv and patched_rv != str(kv.mod_revision):
                raise errors.Conflict.of(r.plural, name, r.group)
            if patch_type != "apply":
                self._check_typed(r, new, ctx)
            meta = meta_of(new)
            if meta.get("name", name) != name:
                raise errors.BadRequest("metadata.name: Invalid value: the name of the object cannot be changed by a patch")
            meta["name"] = name
            if r.namespaced:
                meta["namespace"] = namespace
            try:
                return await self._write_update(
                    r, namespace, name, old, new, kv.mod_revision, ctx, subresource,
                    operation="Apply" if patch_type == "apply" else "Update",
                    managed=patch_type != "apply",
                ), False
            except errors.Conflict:
                if patched_rv:
                    raise
                await asyncio.sleep(0)
                continue
        raise errors.Conflict.of(r.plural, name, r.group, why="too many conflicting writes; please retry")

    async def _apply_create(self, r: Resource, namespace: str, name: str, patch: Any, ctx: RequestContext) -> Obj:
        from kybernetes.api import apply as ssa

        if not isinstance(patch, dict):
            raise errors.BadRequest("apply patch must be an object")
        bodies.check_type_meta_apply(r, patch)
        if not ctx.field_manager:
            raise errors.BadRequest("PATCH /apply requires a non-empty fieldManager query parameter")
        applied = copy.deepcopy(patch)
        self._check_typed(r, applied, ctx)
        meta = meta_of(applied)
        if meta.get("name", name) != name:
            raise errors.BadRequest("the name of the object does not match the name on the URL")
        new = ssa.apply(None, applied, ctx.field_manager, self.schema(r), force=True, api_version=r.api_version)
        meta_of(new)["name"] = name
        # The apply entry is already in managedFields; create must not add an Update entry. One
        # write: a second one (managedFields fixed up after the create) could race another writer.
        saved = list(new["metadata"].get("managedFields") or [])
        return await self.create(r, namespace, new, ctx, check_typed=False, managed_fields=saved)

    async def write_prepared(self, r: Resource, namespace: str, name: str, new: Obj, old: Obj,
                             ctx: RequestContext, *, changed: Any = None) -> Obj:
        """Store ``new``, which a subresource prepared from ``old`` under rules of its own (a pod's
        binding), bypassing the strategy's update rules; compare-and-swap on ``old``'s
        resourceVersion (409 Conflict when it moved on). ``changed``: the
        :class:`~kybernetes.api.structured_merge.FieldDiff` of what the subresource changed,
        when it knows it exactly (its managedFields are then recorded without comparing the
        objects; see :func:`kybernetes.api.apply.update_managed_fields`)."""
        self._manage_fields(r, old, new, ctx, "Update", known=changed)
        if ctx.dry_run:
            return new
        rv = int(old["metadata"]["resourceVersion"])
        try:
            rev = await self.store.update(r.key(namespace, name), encode(new), rv)
        except st.RevisionMismatchError:
            raise errors.Conflict.of(r.plural, name, r.group) from None
        except st.KeyNotFoundError:
            raise errors.NotFound.of(r.plural, name, r.group) from None
        new["metadata"]["resourceVersion"] = str(rev)
        return new

    async def delete(self, r: Resource, namespace: str, name: str, opts: DeleteOptions,
                     ctx: RequestContext) -> tuple[Obj, bool]:
        """DELETE. Returns the object and whether it is gone now (False: only marked)."""
        for _attempt in range(_PATCH_RETRIES):
            kv = await self._current(r, namespace, name)
            if kv is None:
                raise errors.NotFound.of(r.plural, name, r.group)
            obj = decode(kv.value, kv.mod_revision)
            meta = obj["metadata"]
            pre = opts.preconditions or {}
            if pre.get("uid") and pre["uid"] != meta.get("uid"):
                raise errors.Conflict.of(
                    r.plural, name, r.group,
                    why=f"Precondition failed: UID in precondition: {pre['uid']}, UID in object meta: {meta.get('uid')}",
                )
            if pre.get("resourceVersion") and pre["resourceVersion"] != meta.get("resourceVersion"):
                raise errors.Conflict.of(
                    r.plural, name, r.group,
                    why=f"Precondition failed: ResourceVersion in precondition: {pre['resourceVersion']}, "
                        f"ResourceVersion in object meta: {meta.get('resourceVersion')}",
                )
            # A webhook-converted object is read in the request's version first, as Kubernetes
            # decodes it: with the webhook down the delete fails before anything changes.
            seen = await self.to_version(r, obj) if self.conversions.has_remote(r) else obj
            attrs = _attributes(r, DELETE, namespace, name, None, seen, ctx, options=opts)
            await self.admission.admit(attrs)
            await self.admission.validate(attrs)
            updated = copy.deepcopy(obj)
            umeta = updated["metadata"]
            finalizers = list(umeta.get("finalizers") or [])
            policy = opts.propagation_policy
            if policy is not None and policy not in ("Foreground", "Background", "Orphan"):
                raise errors.Invalid("DeleteOptions", "", [v.not_supported("propagationPolicy", policy,
                                                                          ["Foreground", "Background", "Orphan"]).cause()])
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers.append("foregroundDeletion")
            elif policy == "Orphan" and "orphan" not in finalizers:
                finalizers.append("orphan")
            stored_strategy = self._stored_strategy(r)
            grace = stored_strategy.graceful_delete_seconds(obj, opts.grace_period_seconds)
            if finalizers or grace or self.strategy(r).holds_deletion(obj):
                # Only marked: the finalizers' owners (or the kubelet) finish the deletion.
                if umeta.get("deletionTimestamp") and finalizers == list(umeta.get("finalizers") or []) and not grace:
                    return obj, False
                umeta["finalizers"] = finalizers
                if not umeta.get("deletionTimestamp"):
                    umeta["deletionTimestamp"] = now_rfc3339() if not grace else _in_seconds(grace)
                    umeta["deletionGracePeriodSeconds"] = grace or 0
                    # Kubernetes (markAsDeleting, rest.BeforeDelete): being deleted changes what
                    # the object's controllers must do, so a tracked generation moves once.
                    if int(umeta.get("generation") or 0) > 0:
                        umeta["generation"] = int(umeta["generation"]) + 1
                elif grace is not None and grace < int(umeta.get("deletionGracePeriodSeconds") or 0):
                    umeta["deletionGracePeriodSeconds"] = grace
                stored_strategy.prepare_for_delete_marking(updated)
                if ctx.dry_run:
                    return updated, False
                try:
                    rev = await self.store.update(r.key(namespace, name), encode(updated), kv.mod_revision)
                except st.RevisionMismatchError:
                    continue
                umeta["resourceVersion"] = str(rev)
                return updated, False
            if ctx.dry_run:
                return obj, True
            try:
                rev, _prev = await self.store.delete(r.key(namespace, name), kv.mod_revision)
            except st.RevisionMismatchError:
                continue
            except st.KeyNotFoundError:
                raise errors.NotFound.of(r.plural, name, r.group) from None
            await self._after_delete(r, obj)
            meta["resourceVersion"] = str(rev)
            return obj, True
        raise errors.Conflict.of(r.plural, name, r.group, why="too many conflicting writes; please retry")

    async def _after_delete(self, r: Resource, obj: Obj) -> None:
        rest = self.rest_for(r)
        if rest.after_delete is not None:
            await rest.after_delete(rest, obj)

    async def delete_collection(self, r: Resource, namespace: str, list_opts: ListOptions,
                                opts: DeleteOptions, ctx: RequestContext) -> ObjList:
        res = await self.list(r, namespace, ListOptions(list_opts.label_selector, list_opts.field_selector))
        out = []
        for obj in res.items:
            m = obj["metadata"]
            try:
                deleted, _gone = await self.delete(r, m.get("namespace", ""), m["name"], opts, ctx)
            except errors.NotFound:
                continue
            out.append(deleted)
        return out


def _pinned_resource_version(patch_type: str, patch: Any) -> str | None:
    """The resourceVersion a patch itself asks for (a compare-and-swap precondition), if any."""
    if patch_type == "json":
        for op in patch if isinstance(patch, list) else []:
            if isinstance(op, dict) and op.get("path") == "/metadata/resourceVersion" and op.get("op") in (
                    "add", "replace", "test"):
                return str(op.get("value"))
        return None
    meta = patch.get("metadata") if isinstance(patch, dict) else None
    rv = meta.get("resourceVersion") if isinstance(meta, dict) else None
    return str(rv) if rv else None


async def admit_subresource_create(registry: Registry, r: Resource, kind: str, namespace: str, name: str,
                                   obj: Obj, ctx: RequestContext, subresource: str) -> None:
    """Both admission phases for a create on a subresource that does not go through the generic
    store (``pods/eviction``, ``serviceaccounts/token``): plugins see ``kind``'s object."""
    attrs = Attributes(CREATE, r.group, r.version, r.plural, kind, namespace, name, obj, None, ctx.user,
                       subresource, ctx.dry_run)
    await registry.admission.admit(attrs)
    await registry.admission.validate(attrs)


def _attributes(r: Resource, operation: str, namespace: str, name: str, obj: Obj | None, old: Obj | None,
                ctx: RequestContext, subresource: str = "", options: Any = None) -> Attributes:
    """The admission record of one request."""
    return Attributes(operation, r.group, r.version, r.plural, r.kind, namespace, name, obj, old, ctx.user,
                      subresource, ctx.dry_run, options, ctx.warnings, ctx.audit_annotations,
                      field_manager=ctx.field_manager)


def _in_seconds(seconds: int) -> str:
    return format_rfc3339(time.time() + seconds)


def _default_manager(user_agent: str) -> str:
    """Kubernetes names an unnamed manager after the client's user agent, up to the first '/'."""
    if not user_agent:
        return "unknown"
    return user_agent.split("/", 1)[0][:128]
