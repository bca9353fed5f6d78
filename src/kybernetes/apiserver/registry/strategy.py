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

Strategies never touch the store; what needs the store (allocating Service IPs) lives in hooks the
generic store calls with a context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError

Obj = dict[str, Any]


class Strategy:
    """Defaults for every kind; subclass and override what differs."""

    kind: ClassVar[str] = ""
    has_status: ClassVar[bool] = False
    """True if the kind has a ``status`` written only through ``/status``."""
    tracks_generation: ClassVar[bool] = True
    """True if ``metadata.generation`` is set and bumped when anything but metadata and status changes."""
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

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        """Called on an update of the main resource. By default keeps the old status."""
        if self.has_status:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)

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


class ClusterScoped(Strategy):
    pass
