"""Namespaces: the strategy (``kubernetes`` finalizer, Terminating on delete) and ``/finalize``.

Mirrors ``pkg/registry/core/<resource>`` with the rules of ``pkg/apis/core/validation`` and the
``v1`` defaults; field paths and messages are Kubernetes' own.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path
from kybernetes.api.validation.fields import as_dict, as_list, validate_enum
from kybernetes.apiserver.registry.core.common import field_reader
from kybernetes.apiserver.registry.rest import UpdateSubresourceREST
from kybernetes.apiserver.registry.strategy import ClusterScoped, Obj

# --- Namespace -------------------------------------------------------------------------------

STANDARD_FINALIZERS = ("kubernetes", "orphan", "foregroundDeletion")
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"


class NamespaceStrategy(ClusterScoped):
    kind = "Namespace"
    has_status = True
    tracks_generation = False
    name_validator = staticmethod(v.is_dns1123_label)  # type: ignore[assignment]  # mypy misreads staticmethod in a ClassVar
    field_selectors = {"status.phase": field_reader("status", "phase")}
    update_subresources = ("finalize",)

    def prepare_for_create(self, obj: Obj) -> None:
        obj["status"] = {"phase": "Active"}
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            spec = obj["spec"] = {}
        finalizers = spec.get("finalizers")
        if not isinstance(finalizers, list):
            finalizers = spec["finalizers"] = []
        if "kubernetes" not in finalizers:
            finalizers.append("kubernetes")

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        # spec.finalizers change only through /finalize (the generic store routes it).
        super().prepare_for_update(new, old)
        old_fins = as_dict(old.get("spec")).get("finalizers")
        spec = new.get("spec")
        if not isinstance(spec, dict):
            spec = new["spec"] = {}
        if old_fins is None:
            spec.pop("finalizers", None)
        else:
            spec["finalizers"] = old_fins

    def holds_deletion(self, obj: Obj) -> bool:
        # A namespace goes only when its contents are gone: spec.finalizers ("kubernetes") too.
        return super().holds_deletion(obj) or bool(as_dict(obj.get("spec")).get("finalizers"))

    def default(self, obj: Obj) -> None:
        # Every namespace is labelled with its own name, so selectors can pick namespaces by name.
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if name:
            labels = meta.get("labels")
            if not isinstance(labels, dict):
                labels = meta["labels"] = {}
            labels[NAMESPACE_NAME_LABEL] = name
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("phase"):
            status["phase"] = "Active"

    def validate(self, obj: Obj) -> list[FieldError]:
        errs: list[FieldError] = []
        path = Path("spec", "finalizers")
        for i, fin in enumerate(as_list(as_dict(obj.get("spec")).get("finalizers"))):
            errs.extend(_validate_finalizer_name(fin, path.index(i)))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = as_dict(new.get("status"))
        return validate_enum(status.get("phase"), Path("status", "phase"), ("Active", "Terminating"),
                             required=False)

    def prepare_for_delete_marking(self, obj: Obj) -> None:
        # Kubernetes' namespace REST Delete: a namespace being deleted is Terminating.
        obj.setdefault("status", {})["phase"] = "Terminating"

    def prepare_for_subresource_update(self, subresource: str, new: Obj, old: Obj) -> None:
        """``/finalize``: only spec.finalizers is taken from the request."""
        fins = as_dict(new.get("spec")).get("finalizers") or []
        new.clear()
        new.update(copy.deepcopy(old))
        new.setdefault("spec", {})["finalizers"] = fins

    def validate_subresource_update(self, subresource: str, new: Obj, old: Obj) -> list[FieldError]:
        return self.validate(new)


def _validate_finalizer_name(name: Any, path: Path) -> list[FieldError]:
    if not isinstance(name, str) or not name:
        return [v.required(path)]
    errs = [v.invalid(path, name, m) for m in v.is_qualified_name(name)]
    if "/" not in name and name not in STANDARD_FINALIZERS:
        errs.append(v.invalid(path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return errs


class FinalizeREST(UpdateSubresourceREST):
    """``namespaces/NAME/finalize`` (GET, PUT): writes only spec.finalizers (the Namespace
    strategy's subresource rules)."""

    def __init__(self) -> None:
        super().__init__("finalize", frozenset(("GET", "PUT")))
