"""Decoding an object against its schema, as Go's typed decoding does for built-in kinds.

kube-apiserver decodes a request body into a Go struct: a value of the wrong JSON type is a 400
(``cannot unmarshal string into Go struct field ...``), and a field the struct does not have is
dropped — or reported, when the client asks for ``fieldValidation=Strict`` (error) or ``Warn``
(warning header). :func:`check` does both in one walk over the object, guided by
:class:`~kybernetes.api.schema.Schema`, and mutates the object to drop unknown fields. Fields
that are ``[]byte`` in Go (``format: byte``) are decoded as Go decodes them and rewritten in
the canonical base64 Go writes back (:mod:`kybernetes.api.gobytes`); what Go refuses is a 400
with Go's message, e.g. ``illegal base64 data at input byte 4``. Timestamps (``metav1.Time``,
``MicroTime``) are parsed with Go's layouts and stored in the form Go writes back
(:mod:`kybernetes.api.gotime`), and quantities in their canonical form (values of a
``ResourceList`` rounded up to thousandths, as core/v1 defaulting does). Doing it
here, before any strategy runs, means strategies can trust the shape of what they read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kybernetes.api import gobytes, gotime, quantity
from kybernetes.api.schema import Schema

_JSON_TYPE = {
    dict: "object",
    list: "array",
    str: "string",
    bool: "boolean",
    int: "integer",
    float: "number",
}

_GO_TYPE = {"string": "string", "integer": "int", "number": "float64", "boolean": "bool",
            "object": "object", "array": "array"}


@dataclass
class DecodeResult:
    unknown: list[str] = field(default_factory=list)
    """Paths of fields that the schema does not have (already removed from the object)."""
    type_errors: list[str] = field(default_factory=list)
    """Human-readable type mismatches; any of them makes the request a 400."""


def go_json_type(v: Any) -> str:
    """The JSON type Go's encoding/json names in a "cannot unmarshal X into ..." error."""
    if isinstance(v, bool):
        return "boolean"
    return _JSON_TYPE.get(type(v), "unknown")


def _matches(value: Any, s: Schema) -> bool:
    if value is None:
        return True
    if s.int_or_string:
        return isinstance(value, str | int) and not isinstance(value, bool)
    if s.quantity_like:
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    want = s.type
    if want is None:
        return True
    got = go_json_type(value)
    if want == "number":
        return got in ("number", "integer")
    if want == "integer" and got == "number":
        return float(value).is_integer()
    return got == want


def check(obj: dict[str, Any], schema: Schema, *, skip_top: tuple[str, ...] = ("apiVersion", "kind")) -> DecodeResult:
    """Drop unknown fields from ``obj`` and collect type errors, recursively."""
    res = DecodeResult()
    _walk_object(obj, schema, "", res, skip_top)
    return res


# Leaf types that need no further checks when the schema asks for exactly that type.
_PLAIN_LEAF = {str: "string", bool: "boolean", int: "integer"}
_CONTAINER: dict[type, str] = {dict: "object", list: "array"}


def _walk(value: Any, s: Schema, path: str, res: DecodeResult) -> Any:
    """Check ``value`` against ``s``; returns what to keep in its place (a ``[]byte`` field's
    value becomes the canonical base64 Go writes back; anything else is returned as is)."""
    want, ios, qty, is_open, is_bytes = s.shape()
    if qty and isinstance(value, str | int | float) and not isinstance(value, bool):
        return _canonical_quantity(value, res)
    if s.time_kind is not None and type(value) is str:
        try:
            return gotime.canonical(value, s.time_kind)
        except gotime.GoTimeError as e:
            res.type_errors.append(str(e))
            return value
    if is_bytes:
        try:
            return gobytes.canonical(value, path)
        except gobytes.JSONBytesError as e:
            res.type_errors.append(str(e))
            return value
    if value is None or is_open:
        return value
    # Fast path for the common leaf (a string field holding a string, ...): _matches would
    # say yes whatever the int-or-string/quantity flags, and there is nothing to descend into.
    if _PLAIN_LEAF.get(type(value)) == want and want is not None:
        return value
    # Likewise an object or array where the schema asks for one (what _matches would accept).
    matched = not ios and not qty and _CONTAINER.get(type(value)) == want
    if not matched and not _matches(value, s):
        res.type_errors.append(
            f"json: cannot unmarshal {go_json_type(value)} into Go struct field {path or '.'} of type "
            f"{_GO_TYPE.get(s.type or '', s.type or 'value')}"
        )
        return value
    if isinstance(value, dict):
        _walk_object(value, s, path, res, ())
    elif isinstance(value, list):
        items = s.items
        if items is None:
            return value
        for i, item in enumerate(value):
            kept = _walk(item, items, f"{path}[{i}]", res)
            if kept is not item:
                value[i] = kept
    return value


def _canonical_quantity(value: str | int | float, res: DecodeResult, *, resource_list: bool = False) -> Any:
    """A ``resource.Quantity`` as Go writes it back (``0.5`` -> ``500m``, ``1024Mi`` -> ``1Gi``);
    inside a core/v1 ``ResourceList`` also rounded up to thousandths, as its defaulting does."""
    try:
        return quantity.canonical_resource(value) if resource_list else quantity.canonical(value)
    except ValueError:
        res.type_errors.append(quantity.ERR_FORMAT_WRONG)
        return value


def _walk_object(obj: dict[str, Any], s: Schema, path: str, res: DecodeResult, skip: tuple[str, ...]) -> None:
    props = s.properties
    extra = s.additional_properties
    if not props and extra is not None and extra.quantity_like:
        # A ResourceList (resource name -> Quantity): every such map of the core types is one.
        for k, v in obj.items():
            if isinstance(v, str | int | float) and not isinstance(v, bool):
                obj[k] = _canonical_quantity(v, res, resource_list=True)
            else:
                _walk(v, extra, f"{path}.{k}" if path else k, res)
        return
    if not props:
        if extra is not None:
            for k, v in obj.items():
                kept = _walk(v, extra, f"{path}.{k}" if path else k, res)
                if kept is not v:
                    obj[k] = kept
        return
    for k in list(obj):
        if k in skip:
            continue
        sub = props.get(k)
        child_path = f"{path}.{k}" if path else k
        if sub is None:
            if extra is not None:
                kept = _walk(obj[k], extra, child_path, res)
                if kept is not obj[k]:
                    obj[k] = kept
                continue
            res.unknown.append(child_path)
            del obj[k]
            continue
        if obj[k] is None:
            # Go decodes null into the zero value, which encodes as absent for the optional
            # fields that clients send null for (e.g. creationTimestamp in pod templates).
            del obj[k]
            continue
        child = s.prop(k)
        assert child is not None
        value = obj[k]
        kept = _walk(value, child, child_path, res)
        if kept is not value:
            obj[k] = kept
