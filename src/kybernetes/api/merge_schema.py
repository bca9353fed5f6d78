"""The schema as server-side apply walks it: a pre-compiled view of :class:`~kybernetes.api.schema.Schema`.

``Schema.child`` resolves ``$ref`` and builds a new wrapper on every call, so the walks of
:mod:`kybernetes.api.structured_merge` use :class:`MergeNode` instead: each node says how its
value merges (scalar, struct with named fields, atomic, map-type list with its keys, set-type
list, or "deduced" where the schema says nothing: objects merge per key, lists are atomic).
The compiled tree is built lazily and cached per schema root, so a write touches each schema
node once in the life of the process.
"""

from __future__ import annotations

from typing import Any

from kybernetes import errors
from kybernetes.api.fieldset import (
    Path,
    canonical_json,
    path_string,
)
from kybernetes.api.schema import Schema

# Map-list key fields that Kubernetes' schema defaults when an item omits them (the
# OpenAPI definitions we read do not carry the default, structured-merge-diff's do).
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}


_SCALAR, STRUCT, _ATOMIC, LIST_MAP, LIST_SET, _DEDUCED = range(6)


class MergeNode:
    """How one schema node merges: its kind and (lazily) its children."""

    __slots__ = ("_elem", "_extra", "_props", "key_defaults", "key_parts", "keys", "kind", "listish",
                 "mapish", "prop_names", "schema")

    def __init__(self, kind: int, schema: Schema | None) -> None:
        self.kind = kind
        # Values of these nodes are walked key by key (dicts) or item by item (lists).
        self.mapish = kind in (STRUCT, _DEDUCED)
        self.listish = kind in (LIST_MAP, LIST_SET)
        self.schema = schema
        self._props: dict[str, MergeNode] = {}
        self._extra: MergeNode | None = None
        self._elem: MergeNode | None = None
        self.prop_names: frozenset[str] = frozenset(schema.properties) if schema is not None else frozenset()
        self.keys: tuple[str, ...] = ()
        # (key name, its JSON spelling + ":"), sorted by name: the k:{...} element is built
        # by concatenation, without a dict and a sorted dump per item.
        self.key_parts: tuple[tuple[str, str], ...] = ()
        self.key_defaults: dict[str, Any] = {}
        if kind == LIST_MAP and schema is not None:
            self.keys = tuple(schema.list_map_keys)
            self.key_parts = tuple((k, canonical_json(k) + ":") for k in sorted(self.keys))
            item = schema.items
            for k in self.keys:
                ks = item.prop(k) if item is not None else None
                if ks is not None and "default" in ks.raw:
                    self.key_defaults[k] = ks.raw["default"]
                elif k in _KEY_DEFAULTS:
                    self.key_defaults[k] = _KEY_DEFAULTS[k]

    def child(self, name: str) -> MergeNode:
        if self.kind != STRUCT or self.schema is None:
            return DEDUCED_NODE
        node = self._props.get(name)
        if node is not None:
            return node
        if name in self.prop_names:
            node = self._props[name] = _compile_node(self.schema.prop(name))
            return node
        # Map keys (labels, data, ...) share one node: memoizing per key would grow forever.
        if self._extra is None:
            ap = self.schema.additional_properties
            self._extra = _compile_node(ap) if ap is not None else DEDUCED_NODE
        return self._extra

    @property
    def elem(self) -> MergeNode:
        if self._elem is None:
            self._elem = _compile_node(self.schema.items if self.schema is not None else None)
        return self._elem

    def named(self, name: str) -> bool:
        return self.kind == STRUCT and name in self.prop_names


def _compile_node(schema: Schema | None) -> MergeNode:
    if schema is None:
        return DEDUCED_NODE
    if schema.int_or_string or schema.quantity_like:
        return MergeNode(_SCALAR, schema)
    t = schema.type
    if t == "object":
        return MergeNode(_ATOMIC if schema.map_type == "atomic" else STRUCT, schema)
    if t == "array":
        lt = schema.list_type
        if lt == "map" and schema.list_map_keys:
            return MergeNode(LIST_MAP, schema)
        if lt == "set":
            return MergeNode(LIST_SET, schema)
        return MergeNode(_ATOMIC, schema)
    if t is None:
        return MergeNode(_SCALAR, schema) if schema.raw.get("oneOf") or schema.raw.get("anyOf") else DEDUCED_NODE
    return MergeNode(_SCALAR, schema)


DEDUCED_NODE = MergeNode(_DEDUCED, None)
_ROOTS: dict[int, tuple[dict[str, Any], MergeNode]] = {}
_MAX_ROOTS = 512


def compile_schema(schema: Schema | None) -> MergeNode:
    """The compiled root for ``schema``, cached by the identity of its raw definition."""
    if schema is None:
        return DEDUCED_NODE
    hit = _ROOTS.get(id(schema.raw))
    # The cache holds the raw dict, so its id cannot be reused while the entry lives.
    if hit is not None and hit[0] is schema.raw:
        return hit[1]
    node = _compile_node(schema)
    if len(_ROOTS) >= _MAX_ROOTS:
        _ROOTS.pop(next(iter(_ROOTS)))
    _ROOTS[id(schema.raw)] = (schema.raw, node)
    return node


def _is_leaf(node: MergeNode, value: Any) -> bool:
    if node.mapish:
        return not isinstance(value, dict)
    if node.listish:
        return not isinstance(value, list)
    return True


def item_element(item: Any, node: MergeNode, strict: bool = False, path: Path = ()) -> str:
    """The path element of one item of a map-list (``k:``) or set-list (``v:``)."""
    if node.kind == LIST_SET:
        return "v:" + canonical_json(item)
    if not isinstance(item, dict):
        if strict:
            raise errors.BadRequest(f"{path_string(path)}: associative list item must be an object")
        return "v:" + canonical_json(item)
    parts: list[str] = []
    for k, spelled in node.key_parts:
        v = item.get(k)
        if v is None:
            v = node.key_defaults.get(k)
            if v is None:
                if strict:
                    raise errors.BadRequest(
                        f"{path_string(path)}: associative list with keys has an element that omits key field {k!r}"
                    )
                continue
        parts.append(spelled + canonical_json(v))
    return "k:{" + ",".join(parts) + "}"
