"""The "structural schema" rules a CRD's ``openAPIV3Schema`` must follow.

Every node says its type, arrays say their items, logical junctors (allOf/anyOf/oneOf/not) only
add value validations. A structural schema is what makes pruning and defaulting well defined,
which is why Kubernetes refuses CRDs without one. :func:`structural_errors` lists the
violations as field errors.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.structural.values import JUNCTORS, Obj
from kybernetes.api.validation import FieldError, Path


def structural_errors(schema: Any, path: Path) -> list[FieldError]:
    """Why ``schema`` (a CRD's openAPIV3Schema) is not structural; empty if it is."""
    errs: list[FieldError] = []
    if not isinstance(schema, dict):
        return [v.required(path, "schemas are required")]
    t = schema.get("type")
    if not t:
        errs.append(v.required(path.child("type"), "must not be empty at the root"))
    elif t != "object":
        errs.append(v.invalid(path.child("type"), t, "must be object at the root"))
    if schema.get("nullable"):
        errs.append(v.forbidden(path.child("nullable"), "must be false at the root"))
    _structural(schema, path, errs, where="root")
    meta = (schema.get("properties") or {}).get("metadata") if isinstance(schema.get("properties"), dict) else None
    if isinstance(meta, dict):
        mpath = path.child("properties").key("metadata")
        allowed = {"name", "generateName"}
        for k in (meta.get("properties") or {}):
            if k not in allowed:
                errs.append(v.forbidden(mpath.child("properties").key(k), "must not be specified"))
        if meta.get("type") not in (None, "object"):
            errs.append(v.invalid(mpath.child("type"), meta.get("type"), "must be object"))
    return errs


_TYPES = ("object", "array", "string", "integer", "number", "boolean")
_JUNCTOR_FORBIDDEN = ("type", "description", "default", "additionalProperties", "nullable",
                      "x-kubernetes-preserve-unknown-fields", "x-kubernetes-embedded-resource",
                      "x-kubernetes-int-or-string")


def _structural(s: Obj, p: Path, errs: list[FieldError], *, where: str) -> None:
    t = s.get("type")
    exempt = bool(s.get("x-kubernetes-preserve-unknown-fields") or s.get("x-kubernetes-int-or-string"))
    if t is not None and t not in _TYPES:
        errs.append(v.not_supported(p.child("type"), t, _TYPES))
    if not t and not exempt and where != "root":
        errs.append(v.required(p.child("type"), f"must not be empty for specified {where}"))
    if "$ref" in s:
        errs.append(v.forbidden(p.child("$ref"), "$ref is not supported"))
    if s.get("uniqueItems") is True:
        errs.append(v.forbidden(p.child("uniqueItems"),
                                "uniqueItems cannot be set to true since the runtime complexity becomes quadratic"))
    props = s.get("properties")
    additional = s.get("additionalProperties")
    if isinstance(props, dict) and props and additional is not None and additional is not False:
        errs.append(v.forbidden(p.child("additionalProperties"), "additionalProperties and properties are mutual exclusive"))
    if additional is False:
        errs.append(v.forbidden(p.child("additionalProperties"), "must not be false"))
    if s.get("x-kubernetes-embedded-resource") and t != "object":
        errs.append(v.required(p.child("type"), "must be object if x-kubernetes-embedded-resource is true"))
    if s.get("x-kubernetes-int-or-string") and t:
        errs.append(v.forbidden(p.child("type"), "must be empty if x-kubernetes-int-or-string is true"))
    if t == "array" and not isinstance(s.get("items"), dict):
        errs.append(v.required(p.child("items"), "must be specified"))
    if t is not None and t != "array" and "items" in s:
        errs.append(v.forbidden(p.child("items"), "must be empty if type is not array"))
    list_type = s.get("x-kubernetes-list-type")
    if list_type is not None:
        if list_type not in ("atomic", "set", "map"):
            errs.append(v.not_supported(p.child("x-kubernetes-list-type"), list_type, ("atomic", "set", "map")))
        if t != "array":
            errs.append(v.invalid(p.child("type"), t, "must be array if x-kubernetes-list-type is specified"))
        if list_type == "map" and not s.get("x-kubernetes-list-map-keys"):
            errs.append(v.required(p.child("x-kubernetes-list-map-keys"),
                                   "must not be empty if x-kubernetes-list-type is map"))
    if isinstance(props, dict):
        for k, sub in props.items():
            sp = p.child("properties").key(k)
            if isinstance(sub, dict):
                _structural(sub, sp, errs, where="object fields")
            else:
                errs.append(v.required(sp.child("type"), "must not be empty for specified object fields"))
    if isinstance(additional, dict):
        _structural(additional, p.child("additionalProperties"), errs, where="additionalProperties")
    items = s.get("items")
    if isinstance(items, dict):
        _structural(items, p.child("items"), errs, where="array items")
    for j in JUNCTORS:
        for i, sub in enumerate(s.get(j) or ()):
            if isinstance(sub, dict):
                _junctor_structural(sub, p.child(j).index(i), errs, int_or_string=bool(s.get("x-kubernetes-int-or-string")))
    if isinstance(s.get("not"), dict):
        _junctor_structural(s["not"], p.child("not"), errs, int_or_string=False)


def _junctor_structural(s: Obj, p: Path, errs: list[FieldError], *, int_or_string: bool) -> None:
    """Inside allOf/anyOf/oneOf/not only value validations are allowed (types only for int-or-string)."""
    for k in _JUNCTOR_FORBIDDEN:
        if k not in s:
            continue
        if k == "type" and int_or_string and s["type"] in ("integer", "string"):
            continue
        errs.append(v.forbidden(p.child(k), "must be empty to be structural"))
    for k, sub in (s.get("properties") or {}).items():
        if isinstance(sub, dict):
            _junctor_structural(sub, p.child("properties").key(k), errs, int_or_string=False)
    if isinstance(s.get("items"), dict):
        _junctor_structural(s["items"], p.child("items"), errs, int_or_string=False)


__all__ = [
    "structural_errors",
]
