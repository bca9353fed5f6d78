"""What is special about one kind: the strategy (Kubernetes' ``RESTCreateStrategy`` and friends).

The generic store (``registry/store.py``) owns the order of the steps of every write:

    create:  decode -> strategy.prepare_for_create -> strategy.default -> validate object meta
             -> strategy.validate -> admission -> store.create
    update:  decode -> strategy.prepare_for_update(new, old) -> strategy.default
             -> validate object meta (+update) -> strategy.validate_update -> store.update (CAS)
    status:  the same store, but the status strategy keeps the old spec and takes the new status.

A strategy only says what differs for its kind. Objects are plain dicts in their JSON (camelCase)
form. Validators return lists of :class:`~kybernetes.api.validation.FieldError` and never raise;
the generic store turns them into one 422. Defaulting mutates in place.

Strategies never touch the store; what needs the store lives in the resource's REST object
(``rest.py``: a Service's IP allocation is its ``begin_create``/``begin_update``) or in admission.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from kybernetes.api import validation as v
from kybernetes.api.obj import Obj
from kybernetes.api.validation import FieldError


class Strategy:
    """Defaults for every kind; subclass and override what differs."""

    kind: ClassVar[str] = ""
    has_status: ClassVar[bool] = False
    """True if the kind has a ``status`` written only through ``/status``."""
    tracks_generation: ClassVar[bool] = True
    """True if ``metadata.generation`` is 1 on create and moves by one on every update of the main
    resource that :meth:`generation_changed` calls a new generation, and when the object is first
    marked for deletion (the generic store does both). False for kinds whose Kubernetes strategy
    never sets it (Pods in 1.32, Services, ConfigMaps, ...)."""
    name_validator: ClassVar[Any] = staticmethod(v.is_dns1123_subdomain)
    allow_create_on_update: ClassVar[bool] = False
    """PUT of a missing object creates it (Leases, Endpoints, Events do; most kinds do not)."""
    field_selectors: ClassVar[dict[str, Callable[[Obj], str]]] = {}
    """Extra fields usable in fieldSelector, beyond metadata.name and metadata.namespace."""
    update_subresources: ClassVar[tuple[str, ...]] = ()
    """Subresources besides ``status`` written by GET/PUT/PATCH of the object itself, each with
    its own rules (:meth:`prepare_for_subresource_update`), e.g. a CSR's ``approval``."""

    def prepare_for_create(self, obj: Obj) -> None:
        """Called before defaulting on create. By default drops any status for kinds that have one."""
        if self.has_status:
            obj.pop("status", None)

    def prepare_and_default_for_create(self, obj: Obj) -> None:
        """The create's :meth:`prepare_for_create` then :meth:`default`; a kind whose preparation
        already applies its defaults (Pods) says so by overriding this, saving a second pass."""
        self.prepare_for_create(obj)
        self.default(obj)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Called on an update of the main resource. By default keeps the old status."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

    def generation_changed(self, new: Obj, old: Obj) -> bool:
        """Whether an update of the main resource (prepared and defaulted) is a new generation.

        Kubernetes' rule for most kinds (each strategy's ``PrepareForUpdate``): the spec changed,
        compared as ``apiequality.Semantic.DeepEqual`` does. Here that is every top-level field
        but metadata, status, apiVersion and kind: ``spec`` for most kinds, ``template`` for a
        PodTemplate, ``webhooks`` for webhook configurations. Metadata (labels, annotations,
        finalizers, ...) and status never count, unless a kind says otherwise.
        """
        return not semantic_equal(_desired_state(new), _desired_state(old))

    def default(self, obj: Obj) -> None:
        """Fill in defaults as the real API server does (on create and on every update)."""

    def validate(self, obj: Obj) -> list[FieldError]:
        """Validate everything but ``metadata`` (the generic store validates that)."""
        return []

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        """Validate an update; by default the new object as on create."""
        return self.validate(new)

    def holds_deletion(self, obj: Obj) -> bool:
        """True while something must finish before a deleted object may go (finalizers)."""
        return bool((obj.get("metadata") or {}).get("finalizers"))

    def graceful_delete_seconds(self, obj: Obj, requested: int | None) -> int:
        """Seconds a DELETE of the stored ``obj`` leaves it marked before it goes (Kubernetes'
        ``RESTGracefulDeleteStrategy``); ``requested`` is the client's gracePeriodSeconds. 0: the
        object goes at once, unless finalizers hold it."""
        return 0

    def prepare_for_delete_marking(self, obj: Obj) -> None:
        """Called on the stored form when a DELETE only marks ``obj`` (finalizers or a grace
        period): what the kind records about being deleted, beyond deletionTimestamp."""

    # --- the status subresource -----------------------------------------------------------

    def prepare_for_status_update(self, new: Obj, old: Obj) -> None:
        """``/status`` writes only status: everything else comes from the old object."""
        status = new.get("status")
        keep_meta = new.get("metadata", {})
        new.clear()
        new.update({k: val for k, val in old.items() if k != "status"})
        if status is not None:
            new["status"] = status
        # Labels and annotations written through /status are kept, as in Kubernetes.
        meta = dict(new.get("metadata", {}))
        for f in ("labels", "annotations"):
            if f in keep_meta:
                meta[f] = keep_meta[f]
        new["metadata"] = meta

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        return []

    # --- other update subresources (``update_subresources``) ------------------------------

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> None:
        """What a write through ``subresource`` takes from the request; the rest comes from ``old``."""
        raise NotImplementedError(f"{self.kind} has no {subresource} subresource")

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj) -> list[FieldError]:
        return []

    # --- output ------------------------------------------------------------------------

    def decorate(self, obj: Obj) -> None:
        """Adjust an object on its way out (rarely needed)."""


_NOT_DESIRED_STATE = frozenset(("metadata", "status", "apiVersion", "kind"))


def _desired_state(obj: Obj) -> Obj:
    return {k: val for k, val in obj.items() if k not in _NOT_DESIRED_STATE}


def semantic_equal(a: Any, b: Any) -> bool:
    """Equality of two decoded JSON values as Go's ``apiequality.Semantic.DeepEqual`` sees the
    structs they decode into: a null field is a missing one, and an empty list equals a missing
    one (Go's nil and empty slices are equal there). Empty objects are not: a pointer to an empty
    struct (``emptyDir: {}``) is not a nil one."""
    if a == b:  # the common case, compared in C
        return True
    if type(a) is dict and type(b) is dict:
        keys = a.keys() | b.keys()
        return all(semantic_equal(a.get(k), b.get(k)) for k in keys)
    if type(a) is list and type(b) is list:
        return len(a) == len(b) and all(semantic_equal(x, y) for x, y in zip(a, b, strict=True))
    return (a is None and b == []) or (b is None and a == [])


class ClusterScoped(Strategy):
    pass
