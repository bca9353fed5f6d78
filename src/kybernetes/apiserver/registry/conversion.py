"""Resources stored once and served through several API versions, converted on the way.

Kubernetes stores each resource in one form and serves it through every (group, version) that
has it, converting between them: ``autoscaling/v1`` and ``autoscaling/v2`` HorizontalPodAutoscalers
are the same objects, and so are ``v1`` and ``events.k8s.io/v1`` Events (one storage, whichever
API wrote an event). A custom resource's served versions are the same idea with conversion
``None``: only ``apiVersion`` differs; with conversion ``Webhook`` its conversion webhook
converts (a view's ``remote``: asynchronous, one call for many objects, used through the
``async`` methods below; such a view's strategy is its own version's and needs no conversion).

The generic store (``store.py``) runs every request in the form of the version it was made
through (its *view*): decoding checks, patches, server-side apply and managedFields all use that
version's schema. It meets the stored form at two points only, both answered here:

* :meth:`Conversions.to_storage` (:meth:`~Conversions.to_storage_async`) just before an object
  is encoded for the store;
* :meth:`Conversions.to_view` (:meth:`~Conversions.to_view_all`) on every object that leaves it
  (get, list, watch, delete, and the old object an update or patch starts from).

Strategies are written for the stored form (as Kubernetes' are written for its internal one).
A view gets that strategy, or one of its own (``events.k8s.io/v1`` validates more strictly),
adapted by :func:`adapted`: each hook sees the object converted to the stored form, and whatever
the hook changes comes back converted to the view. Field selectors are matched against stored
objects, so a view names how its field labels map onto the stored form's.

Conversions never mutate their input (it may be a cached object other readers share) and always
return an object whose ``apiVersion`` is the target's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kybernetes import errors
from kybernetes.api.field_selectors import FieldSelector
from kybernetes.api.resources import Resource
from kybernetes.api.validation import FieldError
from kybernetes.apiserver.registry.strategy import Obj, Strategy

Convert = Callable[[Obj], Obj]
Remote = Callable[[list[Obj], str, str], Awaitable[list[Obj]]]
"""``(objects, desired apiVersion, list kind or "")`` -> the objects converted, new ones, in order
(one call for all of them; raises a Status error when the conversion fails)."""


@dataclass(frozen=True)
class View:
    """One served version of a stored resource and how its objects map to the stored form."""

    api_version: str
    to_storage: Convert
    from_storage: Convert
    strategy: Strategy | None = None
    """This version's own rules, written for the stored form (None: the stored kind's rules)."""
    field_labels: Mapping[str, str] | None = None
    """fieldSelector label of this version -> the stored form's label; None: the same labels."""
    adapt_strategy: bool = True
    """False when the forms differ in apiVersion only, so a strategy needs no conversion."""
    remote: Remote | None = None
    """Set when a conversion webhook converts (``to_storage``/``from_storage`` then refuse)."""


@dataclass(frozen=True)
class Stored:
    """A resource kept once, as ``storage_api_version`` objects, under (group, plural) ``stored_in``."""

    stored_in: tuple[str, str]
    storage_api_version: str
    views: tuple[View, ...]


def api_version_only(api_version: str, storage_api_version: str) -> View:
    """A view whose objects differ from the stored ones in ``apiVersion`` alone (CRD conversion None)."""
    return View(api_version, lambda o: {**o, "apiVersion": storage_api_version},
                lambda o: {**o, "apiVersion": api_version}, adapt_strategy=False)


def by_webhook(api_version: str, remote: Remote) -> View:
    """A view whose objects ``remote`` converts (CRD conversion Webhook); its requests run in their
    own version's form under that version's strategy."""

    def synchronous(obj: Obj) -> Obj:
        raise errors.InternalError(f"Internal error occurred: {api_version} objects are converted only by "
                                   "their conversion webhook")

    return View(api_version, synchronous, synchronous, adapt_strategy=False, remote=remote)


class Conversions:
    """Every resource some version serves in another form than the stored one.

    Lookups cost one dict access; a resource served only in its stored form has no entry.
    """

    def __init__(self, stored: Iterable[Stored] = ()) -> None:
        self._storage: dict[tuple[str, str], str] = {}
        self._views: dict[tuple[tuple[str, str], str], View] = {}
        self._plurals: set[str] = set()
        """Plurals that have a view: most lookups (pods, ...) end at this one set lookup."""
        self._adapted: dict[tuple[int, int], tuple[View, Strategy, Strategy]] = {}
        """(id(view), id(strategy)) -> (view, strategy, the adapted strategy): the references held
        keep the ids from being reused by other objects."""
        for s in stored:
            self.register(s)

    def register(self, stored: Stored) -> None:
        """Serve ``stored`` through its views (replacing what was registered for it before)."""
        self.unregister(stored.stored_in)
        self._storage[stored.stored_in] = stored.storage_api_version
        for view in stored.views:
            # A webhook's view of the storage version itself converts what older storage
            # versions wrote.
            if view.api_version != stored.storage_api_version or view.remote is not None:
                self._views[(stored.stored_in, view.api_version)] = view
        self._plurals = {k[0][1] for k in self._views}

    def unregister(self, stored_in: tuple[str, str]) -> None:
        self._storage.pop(stored_in, None)
        for key in [k for k in self._views if k[0] == stored_in]:
            del self._views[key]
        self._plurals = {k[0][1] for k in self._views}

    def view(self, r: Resource) -> View | None:
        """How ``r``'s objects differ from the stored ones; None if ``r`` serves the stored form."""
        if r.plural not in self._plurals:
            return None
        return self._views.get((r.stored_in, r.api_version))

    def to_view(self, r: Resource, obj: Obj) -> Obj:
        """A stored object as ``r`` serves it (the object itself when nothing differs)."""
        view = self.view(r)
        if view is None or obj.get("apiVersion") == r.api_version:
            return obj
        return view.from_storage(obj)

    def to_storage(self, r: Resource, obj: Obj) -> Obj:
        """An object of ``r``'s version in the stored form (the object itself when nothing differs)."""
        view = self.view(r)
        if view is None or obj.get("apiVersion") == self._storage.get(r.stored_in):
            return obj
        return view.to_storage(obj)

    async def to_view_all(self, r: Resource, objs: list[Obj], *, list_kind: str = "") -> list[Obj]:
        """Stored objects as ``r`` serves them (a list's items when ``list_kind`` is set: one
        webhook call for all of them); the list itself when nothing differs."""
        view = self.view(r)
        if view is None:
            return objs
        if view.remote is not None:
            return await view.remote(objs, r.api_version, list_kind)
        return [self.to_view(r, o) for o in objs]

    async def to_storage_async(self, r: Resource, obj: Obj) -> Obj:
        """:meth:`to_storage`, through the conversion webhook where there is one."""
        view = self.view(r)
        if view is None or view.remote is None:
            return self.to_storage(r, obj)
        storage = self._storage.get(r.stored_in, "")
        return obj if obj.get("apiVersion") == storage else (await view.remote([obj], storage, ""))[0]

    async def convert(self, src: Resource, dst: Resource, obj: Obj) -> Obj:
        """An object of ``src``'s version in ``dst``'s (through the stored form)."""
        stored = await self.to_storage_async(src, obj)
        return (await self.to_view_all(dst, [stored]))[0]

    def has_remote(self, r: Resource) -> bool:
        """Whether ``r``'s objects are converted by a webhook."""
        view = self.view(r)
        return view is not None and view.remote is not None

    def strategy(self, r: Resource, base: Strategy) -> Strategy:
        """The strategy for requests made through ``r``: ``base`` (the stored kind's) or the view's
        own, adapted to see stored-form objects."""
        view = self.view(r)
        if view is None:
            return base
        inner = view.strategy or base
        if not view.adapt_strategy:
            return inner
        key = (id(view), id(inner))
        hit = self._adapted.get(key)
        if hit is None:
            hit = self._adapted[key] = (view, inner, adapted(inner, view))
        return hit[2]

    def field_selector(self, r: Resource, fs: FieldSelector) -> FieldSelector:
        """``fs`` in the stored form's labels; a label the view does not offer is a 400."""
        view = self.view(r)
        labels = view.field_labels if view is not None else None
        if labels is None:
            return fs

        def relabel(label: str, value: str) -> tuple[str, str]:
            if label in ("metadata.name", "metadata.namespace"):
                return label, value
            if label not in labels:
                raise errors.BadRequest(f"field label not supported: {label}")
            return labels[label], value

        return fs.transform(relabel)


# --- strategies on another version's objects ----------------------------------------------------

_FACTS = ("kind", "has_status", "tracks_generation", "name_validator", "allow_create_on_update",
          "field_selectors")


def replace_in_place(obj: Obj, new: Obj) -> None:
    """Make ``obj`` equal ``new`` in place, keeping ``obj``'s metadata dict (the store holds it)."""
    meta, new_meta = obj.get("metadata"), new.get("metadata")
    if isinstance(meta, dict) and isinstance(new_meta, dict) and meta is not new_meta:
        meta.clear()
        meta.update(new_meta)
        new = {**new, "metadata": meta}
    obj.clear()
    obj.update(new)


class _Adapted(Strategy):
    """``inner`` (written for stored objects) applied to objects of ``view``'s version."""

    def __init__(self, inner: Strategy, view: View) -> None:
        self.inner = inner
        self.view = view

    def _stored(self, obj: Obj) -> Obj:
        return self.view.to_storage(obj)

    def _in_place(self, hook: Callable[..., None], obj: Obj, *others: Obj) -> None:
        stored = self._stored(obj)
        hook(stored, *[self._stored(o) for o in others])
        replace_in_place(obj, self.view.from_storage(stored))

    def prepare_for_create(self, obj: Obj) -> None:
        self._in_place(self.inner.prepare_for_create, obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        self._in_place(self.inner.prepare_for_update, new, old)

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        self._in_place(self.inner.prepare_for_status_update, new, old)

    def default(self, obj: Obj) -> None:
        self._in_place(self.inner.default, obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return self.inner.validate(self._stored(obj))

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.inner.validate_update(self._stored(new), self._stored(old))

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return self.inner.validate_status_update(self._stored(new), self._stored(old))

    def holds_deletion(self, obj: Obj) -> bool:
        return self.inner.holds_deletion(obj)  # metadata only: the same in every form

    def decorate(self, obj: Obj) -> None:
        self._in_place(self.inner.decorate, obj)


def adapted(inner: Strategy, view: View) -> Strategy:
    """``inner`` for objects of ``view``'s version, with ``inner``'s class facts (has_status, ...)."""
    facts: dict[str, Any] = {name: getattr(inner, name) for name in _FACTS}
    facts["name_validator"] = staticmethod(inner.name_validator)
    cls = type(f"{type(inner).__name__}For{view.api_version.replace('/', '_').replace('.', '_')}",
               (_Adapted,), facts)
    return cls(inner, view)  # type: ignore[no-any-return]


__all__ = ["Conversions", "Convert", "Remote", "Stored", "View", "adapted", "api_version_only", "by_webhook"]
