"""Validation of a custom object against its CRD version's ``openAPIV3Schema``.

:func:`validate_custom_object` checks a (pruned, defaulted) object against the OpenAPI v3 value
validations and reports errors in the words kube-apiserver uses (``spec.replicas in body should be
less than or equal to 10``), as :class:`~kybernetes.api.validation.FieldError` so the generic store
makes one 422 of them. Schemas are plain dicts exactly as written in the CRD (no ``$ref``; OpenAPI
3.0 ``nullable`` and boolean ``exclusiveMaximum``); a node that is not a dict is "no schema".
"""

from __future__ import annotations

from typing import Any

from kybernetes.api import validation as v
from kybernetes.api.structural.values import (
    INT_RANGES,
    ROOT_RESERVED,
    Obj,
    _num,
    _type_matches,
    as_dict,
    canonical,
    compile_pattern,
    format_ok,
    in_body,
    is_int,
    json_type,
)
from kybernetes.api.validation import FieldError, Path


def validate_custom_object(obj: Any, schema: Any, path: Path | None = None) -> list[FieldError]:
    """Validate a custom object (or, with ``path``, a value inside one) against a CRD schema.

    At the root (``path`` None) ``apiVersion``, ``kind`` and ``metadata`` are skipped: the caller
    checks the first two against the URL and validates metadata as ObjectMeta.
    """
    errs: list[FieldError] = []
    if path is None:
        if not isinstance(obj, dict):
            return [v.type_invalid("", json_type(obj), 'in body must be of type object: "' + json_type(obj) + '"')]
        _validate(obj, schema, Path(), errs, root=True)
    else:
        _validate(obj, schema, path, errs)
    return errs


def _validate(value: Any, s: Any, p: Path, errs: list[FieldError], *, root: bool = False) -> None:
    if not isinstance(s, dict):
        return
    if value is None:
        if s.get("nullable"):
            return
        if not s.get("type") and not s.get("x-kubernetes-int-or-string"):
            # An untyped node (preserve-unknown-fields, or a junctor branch) takes anything.
            _junctors(value, s, p, errs)
            return
    if s.get("x-kubernetes-int-or-string"):
        if not (is_int(value) or isinstance(value, str)):
            jt = json_type(value)
            errs.append(v.type_invalid(p, jt, f'{in_body(p)} must be of type integer,string: "{jt}"'))
            return
    else:
        t = s.get("type")
        if isinstance(t, str) and t and not _type_matches(t, value):
            jt = json_type(value)
            errs.append(v.type_invalid(p, jt, f'{in_body(p)} must be of type {t}: "{jt}"'))
            return

    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        allowed = {canonical(e) for e in enum}
        if canonical(value) not in allowed:
            shown = [e if isinstance(e, str) else canonical(e) for e in enum]
            errs.append(v.not_supported(p, value, shown))

    if isinstance(value, str):
        _validate_string(value, s, p, errs)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, s, p, errs)
    elif isinstance(value, list):
        _validate_array(value, s, p, errs)
    elif isinstance(value, dict):
        _validate_object(value, s, p, errs, root=root)
    _junctors(value, s, p, errs)


def _validate_string(value: str, s: Obj, p: Path, errs: list[FieldError]) -> None:
    max_len = s.get("maxLength")
    if isinstance(max_len, int) and len(value) > max_len:
        errs.append(v.too_long(p, max_len))
    min_len = s.get("minLength")
    if isinstance(min_len, int) and len(value) < min_len:
        errs.append(v.invalid(p, value, f"{in_body(p)} should be at least {min_len} chars long"))
    pattern = s.get("pattern")
    if isinstance(pattern, str):
        rx = compile_pattern(pattern)
        if rx is not None and not rx.search(value):
            errs.append(v.invalid(p, value, f"{in_body(p)} should match '{pattern}'"))
    fmt = s.get("format")
    if isinstance(fmt, str) and fmt and not s.get("x-kubernetes-int-or-string") and not format_ok(fmt, value):
        errs.append(v.invalid(p, value, f'{in_body(p)} must be of type {fmt}: "{value}"'))


def _validate_number(value: float, s: Obj, p: Path, errs: list[FieldError]) -> None:
    mx = s.get("maximum")
    if isinstance(mx, int | float) and not isinstance(mx, bool):
        if s.get("exclusiveMaximum") is True and value >= mx:
            errs.append(v.invalid(p, value, f"{in_body(p)} should be less than {_num(mx)}"))
        elif value > mx:
            errs.append(v.invalid(p, value, f"{in_body(p)} should be less than or equal to {_num(mx)}"))
    mn = s.get("minimum")
    if isinstance(mn, int | float) and not isinstance(mn, bool):
        if s.get("exclusiveMinimum") is True and value <= mn:
            errs.append(v.invalid(p, value, f"{in_body(p)} should be greater than {_num(mn)}"))
        elif value < mn:
            errs.append(v.invalid(p, value, f"{in_body(p)} should be greater than or equal to {_num(mn)}"))
    mult = s.get("multipleOf")
    if isinstance(mult, int | float) and not isinstance(mult, bool) and mult > 0:
        q = value / mult
        if abs(q - round(q)) > 1e-9:
            errs.append(v.invalid(p, value, f"{in_body(p)} should be a multiple of {_num(mult)}"))
    fmt = s.get("format")
    if fmt in INT_RANGES and is_int(value):
        lo, hi = INT_RANGES[fmt]
        if not lo <= int(value) <= hi:
            errs.append(v.invalid(p, value, f"{in_body(p)} must be of type {fmt}: {_num(value)}"))


def _validate_array(value: list[Any], s: Obj, p: Path, errs: list[FieldError]) -> None:
    max_items = s.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        errs.append(v.too_many(p, len(value), max_items))
    min_items = s.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        errs.append(v.invalid(p, value, f"{in_body(p)} should have at least {min_items} items"))
    list_type = s.get("x-kubernetes-list-type")
    if s.get("uniqueItems") is True or list_type == "set":
        seen: set[str] = set()
        for i, item in enumerate(value):
            c = canonical(item)
            if c in seen:
                errs.append(v.duplicate(p.index(i), item))
            seen.add(c)
    if list_type == "map":
        keys = [k for k in s.get("x-kubernetes-list-map-keys") or () if isinstance(k, str)]
        seen_keys: set[str] = set()
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not keys:
                continue
            # A key field missing from an item counts as its default (or null), as in Kubernetes.
            k = {name: item.get(name, _key_default(s, name)) for name in keys}
            c = canonical(k)
            if c in seen_keys:
                errs.append(v.duplicate(p.index(i), k))
            seen_keys.add(c)
    items = s.get("items")
    if isinstance(items, dict):
        for i, item in enumerate(value):
            _validate(item, items, p.index(i), errs)


def _key_default(s: Obj, name: str) -> Any:
    items = s.get("items")
    if isinstance(items, dict):
        prop = (items.get("properties") or {}).get(name)
        if isinstance(prop, dict):
            return prop.get("default")
    return None


def _validate_object(value: Obj, s: Obj, p: Path, errs: list[FieldError], *, root: bool) -> None:
    for name in s.get("required") or ():
        if isinstance(name, str) and name not in value and not (root and name in ROOT_RESERVED):
            errs.append(v.required(p.child(name)))
    nprops = len(value)
    max_props = s.get("maxProperties")
    if isinstance(max_props, int) and nprops > max_props:
        errs.append(v.too_many(p, nprops, max_props))
    min_props = s.get("minProperties")
    if isinstance(min_props, int) and nprops < min_props:
        errs.append(v.invalid(p, value, f"{in_body(p)} should have at least {min_props} properties"))
    if s.get("x-kubernetes-embedded-resource"):
        errs.extend(_validate_embedded(value, p))
    props = as_dict(s.get("properties"))
    additional = s.get("additionalProperties")
    for k, item in value.items():
        if root and k in ROOT_RESERVED:
            continue
        # Map values are addressed like fields (spec.selector.app), as kube-openapi does.
        if k in props:
            _validate(item, props[k], p.child(k), errs)
        elif isinstance(additional, dict):
            _validate(item, additional, p.child(k), errs)
        elif additional is False:
            errs.append(v.forbidden(p.child(k), f"{in_body(p.child(k))} is a forbidden property"))


def _validate_embedded(value: Obj, p: Path) -> list[FieldError]:
    """An embedded object carries TypeMeta and (light-checked) ObjectMeta."""
    errs: list[FieldError] = []
    for f in ("apiVersion", "kind"):
        if not value.get(f):
            errs.append(v.required(p.child(f), "must not be empty"))
        elif not isinstance(value[f], str):
            errs.append(v.type_invalid(p.child(f), value[f], "must be a string"))
    meta = value.get("metadata")
    if meta is not None:
        mp = p.child("metadata")
        if not isinstance(meta, dict):
            errs.append(v.type_invalid(mp, json_type(meta), f'{in_body(mp)} must be of type object: "{json_type(meta)}"'))
        else:
            name = meta.get("name")
            if isinstance(name, str) and name:
                errs.extend(v.invalid(mp.child("name"), name, m) for m in v.is_dns1123_subdomain(name))
            errs.extend(v.validate_labels(meta.get("labels"), mp.child("labels")))
            errs.extend(v.validate_annotations(meta.get("annotations"), mp.child("annotations")))
    return errs


def _junctors(value: Any, s: Obj, p: Path, errs: list[FieldError]) -> None:
    for sub in s.get("allOf") or ():
        _validate(value, sub, p, errs)
    any_of = [x for x in s.get("anyOf") or () if isinstance(x, dict)]
    if any_of and not any(not _sub_errors(value, x, p) for x in any_of):
        # The int-or-string idiom (anyOf integer/string) is reported like a type error.
        types = [x.get("type") for x in any_of]
        if all(isinstance(t, str) for t in types) and not any(len(x) > 1 for x in any_of):
            jt = json_type(value)
            errs.append(v.type_invalid(p, jt, f'{in_body(p)} must be of type {",".join(str(t) for t in types)}: "{jt}"'))
        else:
            errs.append(v.invalid(p, value, f"{in_body(p)} must validate at least one schema (anyOf)"))
    one_of = [x for x in s.get("oneOf") or () if isinstance(x, dict)]
    if one_of and sum(1 for x in one_of if not _sub_errors(value, x, p)) != 1:
        errs.append(v.invalid(p, value, f"{in_body(p)} must validate one and only one schema (oneOf)"))
    negated = s.get("not")
    if isinstance(negated, dict) and not _sub_errors(value, negated, p):
        errs.append(v.invalid(p, value, f"{in_body(p)} must not validate the schema (not)"))


def _sub_errors(value: Any, s: Obj, p: Path) -> list[FieldError]:
    out: list[FieldError] = []
    _validate(value, s, p, out)
    return out


__all__ = [
    "validate_custom_object",
]
