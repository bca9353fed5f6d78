"""Custom resources: what apiextensions-apiserver does with a CRD's ``openAPIV3Schema``.

A custom object goes through three steps on every write, each driven by the schema of the CRD
version it is written in:

1. :func:`prune_custom_object` drops fields the schema does not declare (unless a node says
   ``x-kubernetes-preserve-unknown-fields``). The dropped paths are returned: the API server turns
   them into ``unknown field "spec.foo"`` errors under ``fieldValidation=Strict`` and into
   warnings under ``Warn``.
2. :func:`default_custom_object` fills ``default`` values where a field is absent (or null but
   not nullable), top down, so defaults inside defaulted objects apply too.
3. :func:`validate_custom_object` checks the result against the OpenAPI v3 value validations and
   reports errors in the words kube-apiserver uses (``spec.replicas in body should be less than
   or equal to 10``), as :class:`~kybernetes.api.validation.FieldError` so the generic store
   makes one 422 of them.

The CRD itself is validated by :func:`validate_crd` (names, versions, storage version, printer
columns, scale paths) including the "structural schema" rules: every node says its type, arrays
say their items, logical junctors (allOf/anyOf/oneOf/not) only add value validations. A
structural schema is what makes pruning and defaulting well defined, which is why Kubernetes
refuses CRDs without one. :func:`default_crd` fills the defaults the API server applies.

Schemas are plain dicts exactly as written in the CRD (no ``$ref``; OpenAPI 3.0 ``nullable`` and
boolean ``exclusiveMaximum``). Everything here is pure and never raises on malformed input: a
node that is not a dict is treated as "no schema".
"""

from __future__ import annotations

import binascii
import copy
import datetime as dt
import functools
import ipaddress
import json
import re
import uuid
from typing import Any

from kybernetes.api import gobytes
from kybernetes.api import validation as v
from kybernetes.api.validation import FieldError, Path

Obj = dict[str, Any]

_ROOT_RESERVED = ("apiVersion", "kind", "metadata")
_JUNCTORS = ("allOf", "anyOf", "oneOf")


# --- helpers -------------------------------------------------------------------------------------


def json_type(value: Any) -> str:
    """The JSON type name kube-openapi reports for a decoded value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type(value).__name__


def _is_int(value: Any) -> bool:
    # JSON has one number type; an integral float (1.0) counts as an integer, as in go-openapi.
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _type_matches(t: str, value: Any) -> bool:
    if t == "integer":
        return _is_int(value)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return json_type(value) == t


def _num(x: Any) -> str:
    """Numbers as Go's %v prints them: 10, not 10.0."""
    if isinstance(x, float) and x.is_integer():
        return str(int(x))
    return str(x)


def _canonical(value: Any) -> str:
    """A comparable form of a JSON value (Python's ``True == 1`` must not make them equal)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@functools.lru_cache(maxsize=512)
def _compile(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except re.error:
        return None


def _body(path: Path) -> str:
    return f"{path} in body" if str(path) else "in body"


# --- formats -------------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d|w))+$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")


def _format_ok(fmt: str, value: str) -> bool:
    """String formats Kubernetes checks; unknown formats pass, as in kube-openapi."""
    try:
        if fmt == "date-time":
            if not _RFC3339.match(value):
                return False
            dt.datetime.fromisoformat(value.replace("z", "Z").replace("Z", "+00:00").replace(" ", "T"))
            return True
        if fmt == "date":
            if not _DATE.match(value):
                return False
            dt.date.fromisoformat(value)
            return True
        if fmt == "byte":
            gobytes.decode(value)  # kube-openapi's check is StdEncoding.DecodeString
            return True
        if fmt == "uuid":
            uuid.UUID(value)
            return True
        if fmt == "ipv4":
            ipaddress.IPv4Address(value)
            return True
        if fmt == "ipv6":
            ipaddress.IPv6Address(value)
            return True
        if fmt == "cidr":
            ipaddress.ip_network(value, strict=False)
            return "/" in value
        if fmt == "hostname":
            return bool(_HOSTNAME.match(value)) and len(value) <= 253
        if fmt == "email":
            return bool(_EMAIL.match(value))
        if fmt == "duration":
            return bool(_DURATION.match(value))
        if fmt == "mac":
            return bool(_MAC.match(value))
    except (ValueError, binascii.Error):
        return False
    return True


_INT_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


# --- validation ----------------------------------------------------------------------------------


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
        if not (_is_int(value) or isinstance(value, str)):
            jt = json_type(value)
            errs.append(v.type_invalid(p, jt, f'{_body(p)} must be of type integer,string: "{jt}"'))
            return
    else:
        t = s.get("type")
        if isinstance(t, str) and t and not _type_matches(t, value):
            jt = json_type(value)
            errs.append(v.type_invalid(p, jt, f'{_body(p)} must be of type {t}: "{jt}"'))
            return

    enum = s.get("enum")
    if isinstance(enum, list) and enum:
        allowed = {_canonical(e) for e in enum}
        if _canonical(value) not in allowed:
            shown = [e if isinstance(e, str) else _canonical(e) for e in enum]
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
        errs.append(v.invalid(p, value, f"{_body(p)} should be at least {min_len} chars long"))
    pattern = s.get("pattern")
    if isinstance(pattern, str):
        rx = _compile(pattern)
        if rx is not None and not rx.search(value):
            errs.append(v.invalid(p, value, f"{_body(p)} should match '{pattern}'"))
    fmt = s.get("format")
    if isinstance(fmt, str) and fmt and not s.get("x-kubernetes-int-or-string") and not _format_ok(fmt, value):
        errs.append(v.invalid(p, value, f'{_body(p)} must be of type {fmt}: "{value}"'))


def _validate_number(value: float, s: Obj, p: Path, errs: list[FieldError]) -> None:
    mx = s.get("maximum")
    if isinstance(mx, int | float) and not isinstance(mx, bool):
        if s.get("exclusiveMaximum") is True and value >= mx:
            errs.append(v.invalid(p, value, f"{_body(p)} should be less than {_num(mx)}"))
        elif value > mx:
            errs.append(v.invalid(p, value, f"{_body(p)} should be less than or equal to {_num(mx)}"))
    mn = s.get("minimum")
    if isinstance(mn, int | float) and not isinstance(mn, bool):
        if s.get("exclusiveMinimum") is True and value <= mn:
            errs.append(v.invalid(p, value, f"{_body(p)} should be greater than {_num(mn)}"))
        elif value < mn:
            errs.append(v.invalid(p, value, f"{_body(p)} should be greater than or equal to {_num(mn)}"))
    mult = s.get("multipleOf")
    if isinstance(mult, int | float) and not isinstance(mult, bool) and mult > 0:
        q = value / mult
        if abs(q - round(q)) > 1e-9:
            errs.append(v.invalid(p, value, f"{_body(p)} should be a multiple of {_num(mult)}"))
    fmt = s.get("format")
    if fmt in _INT_RANGES and _is_int(value):
        lo, hi = _INT_RANGES[fmt]
        if not lo <= int(value) <= hi:
            errs.append(v.invalid(p, value, f"{_body(p)} must be of type {fmt}: {_num(value)}"))


def _validate_array(value: list[Any], s: Obj, p: Path, errs: list[FieldError]) -> None:
    max_items = s.get("maxItems")
    if isinstance(max_items, int) and len(value) > max_items:
        errs.append(v.too_many(p, len(value), max_items))
    min_items = s.get("minItems")
    if isinstance(min_items, int) and len(value) < min_items:
        errs.append(v.invalid(p, value, f"{_body(p)} should have at least {min_items} items"))
    list_type = s.get("x-kubernetes-list-type")
    if s.get("uniqueItems") is True or list_type == "set":
        seen: set[str] = set()
        for i, item in enumerate(value):
            c = _canonical(item)
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
            c = _canonical(k)
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
        if isinstance(name, str) and name not in value and not (root and name in _ROOT_RESERVED):
            errs.append(v.required(p.child(name)))
    nprops = len(value)
    max_props = s.get("maxProperties")
    if isinstance(max_props, int) and nprops > max_props:
        errs.append(v.too_many(p, nprops, max_props))
    min_props = s.get("minProperties")
    if isinstance(min_props, int) and nprops < min_props:
        errs.append(v.invalid(p, value, f"{_body(p)} should have at least {min_props} properties"))
    if s.get("x-kubernetes-embedded-resource"):
        errs.extend(_validate_embedded(value, p))
    props = _d(s.get("properties"))
    additional = s.get("additionalProperties")
    for k, item in value.items():
        if root and k in _ROOT_RESERVED:
            continue
        # Map values are addressed like fields (spec.selector.app), as kube-openapi does.
        if k in props:
            _validate(item, props[k], p.child(k), errs)
        elif isinstance(additional, dict):
            _validate(item, additional, p.child(k), errs)
        elif additional is False:
            errs.append(v.forbidden(p.child(k), f"{_body(p.child(k))} is a forbidden property"))


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
            errs.append(v.type_invalid(mp, json_type(meta), f'{_body(mp)} must be of type object: "{json_type(meta)}"'))
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
            errs.append(v.type_invalid(p, jt, f'{_body(p)} must be of type {",".join(str(t) for t in types)}: "{jt}"'))
        else:
            errs.append(v.invalid(p, value, f"{_body(p)} must validate at least one schema (anyOf)"))
    one_of = [x for x in s.get("oneOf") or () if isinstance(x, dict)]
    if one_of and sum(1 for x in one_of if not _sub_errors(value, x, p)) != 1:
        errs.append(v.invalid(p, value, f"{_body(p)} must validate one and only one schema (oneOf)"))
    negated = s.get("not")
    if isinstance(negated, dict) and not _sub_errors(value, negated, p):
        errs.append(v.invalid(p, value, f"{_body(p)} must not validate the schema (not)"))


def _sub_errors(value: Any, s: Obj, p: Path) -> list[FieldError]:
    out: list[FieldError] = []
    _validate(value, s, p, out)
    return out


# --- defaulting ----------------------------------------------------------------------------------


def default_custom_object(obj: Any, schema: Any) -> None:
    """Apply ``default`` values in place, top down, as Kubernetes' structural defaulting does.

    A null in a field that is not nullable is dropped first (as Kubernetes does since 1.20), and
    a default is then applied wherever the field is absent; nullable nulls are kept. The walk
    continues into every value, defaulted ones included, through ``properties``,
    ``additionalProperties`` and array ``items``.
    """
    if not isinstance(schema, dict):
        return
    if isinstance(obj, dict):
        props = _d(schema.get("properties"))
        additional = schema.get("additionalProperties")
        # Since Kubernetes 1.20 a null in a non-nullable field is dropped before defaulting (so
        # a default, if any, takes its place) rather than failing validation later.
        for k in [k for k, val in obj.items() if val is None]:
            sub = props.get(k) if k in props else additional if isinstance(additional, dict) else None
            if isinstance(sub, dict) and not sub.get("nullable"):
                del obj[k]
        for k, prop in props.items():
            if isinstance(prop, dict) and "default" in prop and k not in obj:
                obj[k] = copy.deepcopy(prop["default"])
        for k, val in obj.items():
            if k in props:
                default_custom_object(val, props[k])
            elif isinstance(additional, dict):
                default_custom_object(val, additional)
    elif isinstance(obj, list):
        items = schema.get("items")
        if isinstance(items, dict):
            for item in obj:
                default_custom_object(item, items)


# --- pruning -------------------------------------------------------------------------------------


def prune_custom_object(obj: Any, schema: Any) -> list[str]:
    """Drop fields the schema does not declare; return the dropped paths (``spec.foo``).

    ``apiVersion``, ``kind`` and ``metadata`` at the root, and inside embedded resources, are
    never pruned here (metadata is ObjectMeta, handled by the generic store).
    """
    pruned: list[str] = []
    _prune(obj, schema if isinstance(schema, dict) else {}, Path(), pruned, keep_type_meta=True)
    return pruned


def _prune(value: Any, s: Obj | None, p: Path, pruned: list[str], *, keep_type_meta: bool = False) -> None:
    if isinstance(value, dict):
        if s is None:
            # No schema at all below a preserved node: nothing is known, nothing is dropped.
            return
        preserve = bool(s.get("x-kubernetes-preserve-unknown-fields"))
        keep_type_meta = keep_type_meta or bool(s.get("x-kubernetes-embedded-resource"))
        props = _d(s.get("properties"))
        additional = s.get("additionalProperties")
        for k in list(value):
            if keep_type_meta and k in _ROOT_RESERVED:
                continue
            if k in props:
                _prune(value[k], props[k] if isinstance(props[k], dict) else None, p.child(k), pruned)
            elif isinstance(additional, dict):
                _prune(value[k], additional, p.child(k), pruned)
            elif preserve or additional is True:
                continue
            else:
                pruned.append(str(p.child(k)))
                del value[k]
    elif isinstance(value, list):
        if s is None:
            return
        items = s.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                _prune(item, items, p.index(i), pruned)
        elif not s.get("x-kubernetes-preserve-unknown-fields"):
            # An array whose items are unspecified: objects in it have no known fields.
            for i, item in enumerate(value):
                _prune(item, {}, p.index(i), pruned)


# --- structural schemas --------------------------------------------------------------------------


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
    for j in _JUNCTORS:
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


# --- CustomResourceDefinition --------------------------------------------------------------------

SCOPES = ("Cluster", "Namespaced")
COLUMN_TYPES = ("boolean", "date", "integer", "number", "string")
COLUMN_FORMATS = ("byte", "date", "date-time", "double", "float", "int32", "int64", "password")
CONVERSION_STRATEGIES = ("None", "Webhook")
_SIMPLE_JSON_PATH = re.compile(r"^(\.[A-Za-z0-9_\-]+)+$")


def _d(x: Any) -> Obj:
    return x if isinstance(x, dict) else {}


def _l(x: Any) -> list[Any]:
    return x if isinstance(x, list) else []


def default_crd(crd: Obj) -> None:
    """The defaults kube-apiserver fills in a CustomResourceDefinition (in place)."""
    spec = crd.setdefault("spec", {})
    if not isinstance(spec, dict):
        return
    names = spec.setdefault("names", {})
    if isinstance(names, dict):
        kind = names.get("kind")
        if isinstance(kind, str) and kind:
            names.setdefault("singular", kind.lower())
            names.setdefault("listKind", kind + "List")
    conv = spec.get("conversion")
    if conv is None:
        spec["conversion"] = {"strategy": "None"}
    elif isinstance(conv, dict):
        conv.setdefault("strategy", "None")
        if conv.get("strategy") == "Webhook":
            webhook = conv.get("webhook")
            if isinstance(webhook, dict):
                cc = webhook.get("clientConfig")
                if isinstance(cc, dict) and isinstance(cc.get("service"), dict):
                    cc["service"].setdefault("port", 443)
    for ver in _l(spec.get("versions")):
        if not isinstance(ver, dict):
            continue
        sc = _d(_d(ver.get("subresources")).get("scale"))
        if sc and "labelSelectorPath" in sc and sc["labelSelectorPath"] is None:
            del sc["labelSelectorPath"]


def storage_version(crd: Obj) -> str | None:
    for ver in _l(_d(crd.get("spec")).get("versions")):
        if isinstance(ver, dict) and ver.get("storage") is True:
            name = ver.get("name")
            return name if isinstance(name, str) else None
    return None


def validate_crd(crd: Obj) -> list[FieldError]:
    """CustomResourceDefinition validation as kube-apiserver does it (metadata aside)."""
    errs: list[FieldError] = []
    spec = crd.get("spec")
    sp = Path("spec")
    if not isinstance(spec, dict):
        return [v.required(sp)]
    group = spec.get("group")
    names = _d(spec.get("names"))
    plural = names.get("plural")

    # The object's name is the resource's fully qualified name.
    meta = _d(crd.get("metadata"))
    name = meta.get("name")
    if isinstance(group, str) and isinstance(plural, str) and name != f"{plural}.{group}":
        errs.append(v.invalid(Path("metadata", "name"), name, 'must be spec.names.plural+"."+spec.group'))

    if not group:
        errs.append(v.required(sp.child("group")))
    elif not isinstance(group, str):
        errs.append(v.type_invalid(sp.child("group"), group, "must be a string"))
    elif msgs := v.is_dns1123_subdomain(group):
        errs.append(v.invalid(sp.child("group"), group, ",".join(msgs)))
    elif len(group.split(".")) < 2:
        errs.append(v.invalid(sp.child("group"), group, "should be a domain with at least one dot"))

    scope = spec.get("scope")
    if not scope:
        errs.append(v.required(sp.child("scope")))
    elif scope not in SCOPES:
        errs.append(v.not_supported(sp.child("scope"), scope, SCOPES))

    errs.extend(_validate_versions(spec, sp))

    for f in ("plural", "singular", "kind", "listKind"):
        if not names.get(f):
            errs.append(v.required(sp.child("names", f)))
    errs.extend(validate_names(names, sp.child("names")))
    errs.extend(_validate_conversion(spec.get("conversion"), sp.child("conversion")))
    return errs


def _validate_versions(spec: Obj, sp: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    versions = spec.get("versions")
    vp = sp.child("versions")
    if not isinstance(versions, list) or not versions:
        return [v.required(vp, "must have exactly one version marked as storage version")]
    seen: set[str] = set()
    unique = True
    storage = 0
    served = 0
    for i, ver in enumerate(versions):
        p = vp.index(i)
        if not isinstance(ver, dict):
            errs.append(v.type_invalid(p, ver, "must be an object"))
            continue
        name = ver.get("name")
        if not isinstance(name, str) or not name:
            errs.append(v.required(p.child("name")))
        else:
            if name in seen:
                unique = False
            seen.add(name)
            if msgs := v.is_dns1035_label(name):
                errs.append(v.invalid(p.child("name"), name, ",".join(msgs)))
        if ver.get("storage") is True:
            storage += 1
        if ver.get("served") is True:
            served += 1
        for f in ("served", "storage"):
            if f in ver and not isinstance(ver[f], bool):
                errs.append(v.type_invalid(p.child(f), ver[f], "must be a boolean"))
        schema = _d(ver.get("schema")).get("openAPIV3Schema")
        errs.extend(structural_errors(schema, p.child("schema", "openAPIV3Schema")))
        errs.extend(_validate_subresources(ver.get("subresources"), p.child("subresources")))
        for j, col in enumerate(_l(ver.get("additionalPrinterColumns"))):
            errs.extend(_validate_column(col, p.child("additionalPrinterColumns").index(j)))
    if not unique:
        errs.append(v.invalid(vp, versions, "must contain unique version names"))
    if storage != 1:
        errs.append(v.invalid(vp, versions, "must have exactly one version marked as storage version"))
    if served == 0:
        errs.append(v.invalid(vp, versions, "must have at least one version marked as served"))
    return errs


def validate_names(names: Obj, p: Path) -> list[FieldError]:
    """Shape of ``spec.names`` / ``status.acceptedNames`` (requiredness is the caller's)."""
    errs: list[FieldError] = []
    for f in ("plural", "singular"):
        val = names.get(f)
        if isinstance(val, str) and val and (msgs := v.is_dns1035_label(val)):
            errs.append(v.invalid(p.child(f), val, ",".join(msgs)))
    for f in ("kind", "listKind"):
        val = names.get(f)
        if isinstance(val, str) and val and (msgs := v.is_dns1035_label(val.lower())):
            errs.append(v.invalid(p.child(f), val, "may have mixed case, but should otherwise match: " + ",".join(msgs)))
    kind, list_kind = names.get("kind"), names.get("listKind")
    if kind and kind == list_kind:
        errs.append(v.invalid(p.child("listKind"), list_kind, "kind and listKind may not be the same"))
    for i, short in enumerate(_l(names.get("shortNames"))):
        if not isinstance(short, str) or (msgs := v.is_dns1035_label(short)):
            errs.append(v.invalid(p.child("shortNames").index(i), short,
                                  ",".join(v.is_dns1035_label(short)) if isinstance(short, str) else "must be a string"))
    for i, cat in enumerate(_l(names.get("categories"))):
        if not isinstance(cat, str) or (msgs := v.is_dns1035_label(cat)):
            errs.append(v.invalid(p.child("categories").index(i), cat,
                                  ",".join(v.is_dns1035_label(cat)) if isinstance(cat, str) else "must be a string"))
    return errs


def _validate_subresources(subs: Any, p: Path) -> list[FieldError]:
    errs: list[FieldError] = []
    if not isinstance(subs, dict):
        return errs
    scale = subs.get("scale")
    if scale is None:
        return errs
    sp = p.child("scale")
    if not isinstance(scale, dict):
        return [v.type_invalid(sp, scale, "must be an object")]
    for f, prefixes, what in (
        ("specReplicasPath", (".spec.",), ".spec"),
        ("statusReplicasPath", (".status.",), ".status"),
        ("labelSelectorPath", (".spec.", ".status."), "either .spec or .status"),
    ):
        val = scale.get(f)
        if val is None or val == "":
            if f != "labelSelectorPath":
                errs.append(v.required(sp.child(f)))
            continue
        if not isinstance(val, str) or not _SIMPLE_JSON_PATH.match(val) or not val.startswith(prefixes):
            errs.append(v.invalid(sp.child(f), val, f"should be a json path under {what}"))
    return errs


def _validate_column(col: Any, p: Path) -> list[FieldError]:
    if not isinstance(col, dict):
        return [v.type_invalid(p, col, "must be an object")]
    errs: list[FieldError] = []
    if not col.get("name"):
        errs.append(v.required(p.child("name")))
    typ = col.get("type")
    if not typ:
        errs.append(v.required(p.child("type")))
    elif typ not in COLUMN_TYPES:
        errs.append(v.not_supported(p.child("type"), typ, COLUMN_TYPES))
    fmt = col.get("format")
    if fmt and fmt not in COLUMN_FORMATS:
        errs.append(v.not_supported(p.child("format"), fmt, COLUMN_FORMATS))
    jp = col.get("jsonPath")
    if not jp:
        errs.append(v.required(p.child("jsonPath")))
    elif not isinstance(jp, str) or not jp.startswith("."):
        errs.append(v.invalid(p.child("jsonPath"), jp, "must be a simple json path starting with ."))
    prio = col.get("priority")
    if prio is not None and (not _is_int(prio) or prio < 0):
        errs.append(v.invalid(p.child("priority"), prio, "must be greater than or equal to 0"))
    return errs


def _validate_conversion(conv: Any, p: Path) -> list[FieldError]:
    if conv is None:
        return []
    if not isinstance(conv, dict):
        return [v.type_invalid(p, conv, "must be an object")]
    errs: list[FieldError] = []
    strategy = conv.get("strategy")
    if not strategy:
        errs.append(v.required(p.child("strategy")))
    elif strategy not in CONVERSION_STRATEGIES:
        errs.append(v.not_supported(p.child("strategy"), strategy, CONVERSION_STRATEGIES))
    webhook = conv.get("webhook")
    if strategy == "Webhook":
        cc = _d(_d(webhook).get("clientConfig"))
        if not cc:
            errs.append(v.required(p.child("webhook", "clientConfig"), "required when strategy is set to Webhook"))
        elif ("url" in cc) == ("service" in cc):
            errs.append(v.required(p.child("webhook", "clientConfig"), "exactly one of url or service is required"))
        if not _l(_d(webhook).get("conversionReviewVersions")):
            errs.append(v.required(p.child("webhook", "conversionReviewVersions"),
                                   "must include at least one of v1, v1beta1"))
    elif webhook is not None:
        errs.append(v.forbidden(p.child("webhook"), "should not be set when strategy is not set to Webhook"))
    return errs


__all__ = [
    "default_crd",
    "default_custom_object",
    "json_type",
    "prune_custom_object",
    "storage_version",
    "structural_errors",
    "validate_crd",
    "validate_custom_object",
    "validate_names",
]
