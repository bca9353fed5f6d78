"""The CustomResourceDefinition strategy (apiextensions.k8s.io/v1, cluster-scoped).

Validation and defaulting live in :mod:`kybernetes.api.structural`; this module only wires them
into the generic store and plays the part of Kubernetes' CRD controllers. In Kubernetes the
naming controller and the establishing controller write ``status.acceptedNames`` and the
``NamesAccepted`` / ``Established`` conditions a moment after a CRD is created; clients
(``kubectl wait --for=condition=established``, operators) wait for them. kybernetes serves a
new CRD as soon as it is stored, so the strategy sets that status itself, on create and on
every spec update, and keeps ``status.storedVersions`` listing every version ever used for
storage (it must, or objects written in an older version could no longer be read).

Name conflicts between CRDs (two CRDs claiming one plural) are the registry's concern: it knows
the catalogue; the strategy does not.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api import structural
from kybernetes.api import validation as v
from kybernetes.api.timeutil import now_rfc3339
from kybernetes.api.validation import FieldError, Path
from kybernetes.apiserver.cel import has_rules
from kybernetes.apiserver.registry.crdconversion import validate_conversion
from kybernetes.apiserver.registry.strategy import Obj, Strategy

GROUP = "apiextensions.k8s.io"
KIND = "CustomResourceDefinition"


def _dict(x: Any) -> Obj:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def _condition(type_: str, reason: str, message: str, old: list[Any]) -> Obj:
    """A True condition, keeping the old transition time if it already was True."""
    for c in old:
        if isinstance(c, dict) and c.get("type") == type_ and c.get("status") == "True":
            return {**c, "reason": reason, "message": message}
    return {"type": type_, "status": "True", "lastTransitionTime": now_rfc3339(), "reason": reason, "message": message}


def accept(crd: Obj, initial: bool) -> None:
    """Set status as the naming and establishing controllers would: names accepted, established."""
    spec = _dict(crd.get("spec"))
    status = _dict(crd.get("status"))
    old_conditions = _list(status.get("conditions"))
    names = copy.deepcopy(_dict(spec.get("names")))
    conditions = [
        _condition("NamesAccepted", "NoConflicts", "no conflicts found", old_conditions),
        _condition("Established", "InitialNamesAccepted" if initial else "NamesAccepted",
                   "the initial names have been accepted" if initial else "the names have been accepted",
                   old_conditions),
    ]
    # Conditions other than these two (e.g. NonStructuralSchema, set by others) are kept.
    conditions += [c for c in old_conditions if isinstance(c, dict)
                   and c.get("type") not in ("NamesAccepted", "Established")]
    stored = [x for x in status.get("storedVersions") or () if isinstance(x, str)]
    sv = structural.storage_version(crd)
    if sv and sv not in stored:
        stored.append(sv)
    crd["status"] = {**status, "acceptedNames": names, "conditions": conditions, "storedVersions": stored}


class CustomResourceDefinitionStrategy(Strategy):
    kind = KIND
    has_status = True
    tracks_generation = True

    def prepare_for_create(self, obj: Obj) -> None:
        super().prepare_for_create(obj)
        # Defaults first, so acceptedNames carries the defaulted singular and listKind.
        structural.default_crd(obj)
        accept(obj, initial=True)

    def prepare_for_update(self, new: Obj, old: Obj) -> None:
        super().prepare_for_update(new, old)
        structural.default_crd(new)
        accept(new, initial=False)

    def default(self, obj: Obj) -> None:
        structural.default_crd(obj)

    def validate(self, obj: Obj) -> list[FieldError]:
        return structural.validate_crd(obj) + validate_conversion(obj, None) + _rule_errors(obj)

    def validate_update(self, new: Obj, old: Obj) -> list[FieldError]:
        errs = structural.validate_crd(new) + validate_conversion(new, old) + _rule_errors(new, old)
        ns, os_ = new.get("spec") or {}, old.get("spec") or {}
        if not isinstance(ns, dict) or not isinstance(os_, dict):
            return errs
        sp = Path("spec")
        nn = _dict(ns.get("names"))
        on = _dict(os_.get("names"))
        # The group and plural make the resource's name; scope and kind shape stored objects
        # (kybernetes CRDs are established from creation, so these are always frozen).
        errs.extend(v.immutable(ns.get("group"), os_.get("group"), sp.child("group")))
        errs.extend(v.immutable(nn.get("plural"), on.get("plural"), sp.child("names", "plural")))
        errs.extend(v.immutable(ns.get("scope"), os_.get("scope"), sp.child("scope")))
        errs.extend(v.immutable(nn.get("kind"), on.get("kind"), sp.child("names", "kind")))
        errs.extend(self._validate_stored_versions(new))
        return errs

    def validate_status_update(self, new: Obj, old: Obj) -> list[FieldError]:
        status = _dict(new.get("status"))
        names = _dict(status.get("acceptedNames"))
        errs = structural.validate_names(names, Path("status", "acceptedNames"))
        return errs + self._validate_stored_versions(new)

    @staticmethod
    def _validate_stored_versions(crd: Obj) -> list[FieldError]:
        status = _dict(crd.get("status"))
        stored = status.get("storedVersions")
        if stored is None:
            return []
        p = Path("status", "storedVersions")
        if not isinstance(stored, list) or not stored:
            return [v.invalid(p, stored, "must have at least one stored version")]
        spec = _dict(crd.get("spec"))
        versions = [x for x in spec.get("versions") or () if isinstance(x, dict)]
        names = {x.get("name") for x in versions}
        errs = [v.invalid(p.index(i), s, "must appear in spec.versions") for i, s in enumerate(stored) if s not in names]
        for ver in versions:
            if ver.get("storage") is True and ver.get("name") not in stored:
                errs.append(v.invalid(p, ver, f"must have the storage version {ver.get('name')}"))
        return errs


def _rule_errors(crd: Obj, old: Obj | None = None) -> list[FieldError]:
    """Every version's ``x-kubernetes-validations`` that do not compile or are otherwise invalid.
    On update, a version whose schema is unchanged is not refused for one rule's estimated cost
    (apiextensions' suppressExpressionCostForUnchangedSchema), only for its schema's total."""
    errs: list[FieldError] = []
    vp = Path("spec", "versions")
    old_schemas = {_dict(ver).get("name"): _dict(_dict(ver).get("schema")).get("openAPIV3Schema")
                   for ver in _list(_dict((old or {}).get("spec")).get("versions"))}
    for i, ver in enumerate(_list(_dict(crd.get("spec")).get("versions"))):
        schema = _dict(_dict(ver).get("schema")).get("openAPIV3Schema")
        unchanged = old is not None and _dict(ver).get("name") in old_schemas and \
            old_schemas[_dict(ver).get("name")] == schema
        if not has_rules(schema):
            continue
        from kybernetes.apiserver.cel import crdrules  # CEL: loaded with the first schema that has rules

        errs.extend(crdrules.rule_errors(schema, vp.index(i).child("schema", "openAPIV3Schema"),
                                         per_expression_cost=not unchanged))
    return errs


crd_strategy = CustomResourceDefinitionStrategy()

STRATEGIES: dict[tuple[str, str], Strategy] = {(GROUP, KIND): crd_strategy}

__all__ = ["STRATEGIES", "CustomResourceDefinitionStrategy", "accept", "crd_strategy"]
