"""Server-side apply and ``metadata.managedFields``: kybernetes' structured-merge-diff.

Every field of an object may be *owned* by one or more field managers. Ownership is recorded
in ``metadata.managedFields``, one entry per (manager, operation, subresource), plus the
apiVersion for ``Update`` entries, each holding a :class:`~kybernetes.api.fieldset.FieldSet`
in ``fieldsV1`` form. Two write paths change it:

* :func:`apply` (PATCH ``application/apply-patch+yaml``). The applied configuration is merged
  into the live object following the schema's merge semantics (granular maps merge per key,
  map-type lists merge per item key, set-type lists union, atomic values are replaced). The
  applier then owns exactly the fields of its configuration. Fields it owned last time but no
  longer mentions are removed from the object, unless somebody else (or the new
  configuration) still owns them. Changing a field owned by another manager is a conflict
  (409) unless ``force``, which moves ownership to the applier. Setting a field to the value
  it already has is not a change: the field becomes shared.
* :func:`update_managed_fields` (create, update, every other patch). The fields that were
  added or changed become the writer's, and are taken away from everybody else; removed
  fields are taken away from everybody.

Both work on a pre-compiled view of :class:`~kybernetes.api.schema.Schema` (:class:`_Node`),
because ``Schema.child`` resolves ``$ref`` and builds a new wrapper on every call; the compiled
tree is built lazily and cached per schema root, so a write touches each schema node once in
the life of the process. The walks are linear in the size of the parts of the objects that
differ: equal subtrees are skipped with one C-level ``==``, map-list items are matched through
dicts, and in the update path a manager's ``fieldsV1`` is only decoded when the change
touches it.

Where the schema says nothing (``schema=None``, free-form fields, preserve-unknown-fields),
structured-merge-diff's "deduced" rules apply: objects merge per key, lists are atomic.

Fields never owned (as in Kubernetes): ``apiVersion``, ``kind``, the ``metadata`` node itself
and ``metadata.{name, namespace, uid, resourceVersion, generation, creationTimestamp,
selfLink, managedFields}``; plus the caller's ``ignore_top_level`` fields (``status`` for the
main resource; the status subresource passes the fields *it* may not change).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from kybernetes import errors
from kybernetes.api.fieldset import (
    FieldSet,
    Path,
    canonical_json,
    field_element,
    fields_v1_difference,
    fields_v1_intersection,
    fields_v1_intersects,
    fields_v1_union,
    path_string,
)
from kybernetes.api.schema import Schema
from kybernetes.api.timeutil import now_rfc3339, parse_rfc3339

Now = Callable[[], str]

# Kubernetes caps the number of Update entries; the oldest are folded into this one.
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
# Owner of everything an object already had when it is first applied without managedFields.
BEFORE_FIRST_APPLY = "before-first-apply"

_UNOWNED_META = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "selfLink",
     "managedFields", "clusterName"}
)
_UNOWNED_TOP = frozenset({"apiVersion", "kind"})
_METADATA_PE = field_element("metadata")

# Map-list key fields that Kubernetes' schema defaults when an item omits them (the
# OpenAPI definitions we read do not carry the default, structured-merge-diff's do).
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}


def _deepcopy(obj: Any) -> Any:
    # A JSON round trip through orjson is several times faster than copy.deepcopy.
    try:
        return orjson.loads(orjson.dumps(obj))
    except TypeError:
        return copy.deepcopy(obj)


# ==========================================================================================
# Compiled schema
# ==========================================================================================

_SCALAR, _STRUCT, _ATOMIC, _LIST_MAP, _LIST_SET, _DEDUCED = range(6)


class _Node:
    """How one schema node merges: its kind and (lazily) its children."""

    __slots__ = ("_elem", "_extra", "_props", "key_defaults", "key_parts", "keys", "kind", "listish",
                 "mapish", "prop_names", "schema")

    def __init__(self, kind: int, schema: Schema | None) -> None:
        self.kind = kind
        # Values of these nodes are walked key by key (dicts) or item by item (lists).
        self.mapish = kind in (_STRUCT, _DEDUCED)
        self.listish = kind in (_LIST_MAP, _LIST_SET)
        self.schema = schema
        self._props: dict[str, _Node] = {}
        self._extra: _Node | None = None
        self._elem: _Node | None = None
        self.prop_names: frozenset[str] = frozenset(schema.properties) if schema is not None else frozenset()
        self.keys: tuple[str, ...] = ()
        # (key name, its JSON spelling + ":"), sorted by name: the k:{...} element is built
        # by concatenation, without a dict and a sorted dump per item.
        self.key_parts: tuple[tuple[str, str], ...] = ()
        self.key_defaults: dict[str, Any] = {}
        if kind == _LIST_MAP and schema is not None:
            self.keys = tuple(schema.list_map_keys)
            self.key_parts = tuple((k, canonical_json(k) + ":") for k in sorted(self.keys))
            item = schema.items
            for k in self.keys:
                ks = item.prop(k) if item is not None else None
                if ks is not None and "default" in ks.raw:
                    self.key_defaults[k] = ks.raw["default"]
                elif k in _KEY_DEFAULTS:
                    self.key_defaults[k] = _KEY_DEFAULTS[k]

    def child(self, name: str) -> _Node:
        if self.kind != _STRUCT or self.schema is None:
            return _DEDUCED_NODE
        node = self._props.get(name)
        if node is not None:
            return node
        if name in self.prop_names:
            node = self._props[name] = _compile_node(self.schema.prop(name))
            return node
        # Map keys (labels, data, ...) share one node: memoizing per key would grow forever.
        if self._extra is None:
            ap = self.schema.additional_properties
            self._extra = _compile_node(ap) if ap is not None else _DEDUCED_NODE
        return self._extra

    @property
    def elem(self) -> _Node:
        if self._elem is None:
            self._elem = _compile_node(self.schema.items if self.schema is not None else None)
        return self._elem

    def named(self, name: str) -> bool:
        return self.kind == _STRUCT and name in self.prop_names


def _compile_node(schema: Schema | None) -> _Node:
    if schema is None:
        return _DEDUCED_NODE
    if schema.int_or_string or schema.quantity_like:
        return _Node(_SCALAR, schema)
    t = schema.type
    if t == "object":
        return _Node(_ATOMIC if schema.map_type == "atomic" else _STRUCT, schema)
    if t == "array":
        lt = schema.list_type
        if lt == "map" and schema.list_map_keys:
            return _Node(_LIST_MAP, schema)
        if lt == "set":
            return _Node(_LIST_SET, schema)
        return _Node(_ATOMIC, schema)
    if t is None:
        return _Node(_SCALAR, schema) if schema.raw.get("oneOf") or schema.raw.get("anyOf") else _DEDUCED_NODE
    return _Node(_SCALAR, schema)


_DEDUCED_NODE = _Node(_DEDUCED, None)
_ROOTS: dict[int, tuple[dict[str, Any], _Node]] = {}
_MAX_ROOTS = 512


def _compile(schema: Schema | None) -> _Node:
    """The compiled root for ``schema``, cached by the identity of its raw definition."""
    if schema is None:
        return _DEDUCED_NODE
    hit = _ROOTS.get(id(schema.raw))
    # The cache holds the raw dict, so its id cannot be reused while the entry lives.
    if hit is not None and hit[0] is schema.raw:
        return hit[1]
    node = _compile_node(schema)
    if len(_ROOTS) >= _MAX_ROOTS:
        _ROOTS.pop(next(iter(_ROOTS)))
    _ROOTS[id(schema.raw)] = (schema.raw, node)
    return node


def _is_leaf(node: _Node, value: Any) -> bool:
    if node.mapish:
        return not isinstance(value, dict)
    if node.listish:
        return not isinstance(value, list)
    return True


def _item_element(item: Any, node: _Node, strict: bool = False, path: Path = ()) -> str:
    """The path element of one item of a map-list (``k:``) or set-list (``v:``)."""
    if node.kind == _LIST_SET:
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


# ==========================================================================================
# Walks over objects
# ==========================================================================================


def _collect_v1(value: Any, node: _Node, strict: bool, path: Path) -> dict[str, Any]:
    """The fields ``value`` sets (structured-merge-diff's ``ToFieldSet``), encoded as fieldsV1.

    Built directly in encoded form: an applier's set is mostly compared with the stored one
    (a C-level ``==``) and stored, and only decoded when fields were dropped.
    """
    out: dict[str, Any] = {}
    if isinstance(value, dict) and node.mapish:
        for k, v in value.items():
            c = node.child(k)
            if c.mapish:
                leaf = not isinstance(v, dict)
            elif c.listish:
                leaf = not isinstance(v, list)
            else:
                leaf = True
            if leaf:
                out["f:" + k] = {}
            else:
                sub = _collect_v1(v, c, strict, (*path, "f:" + k))
                if sub:
                    out["f:" + k] = sub
    elif isinstance(value, list) and node.listish:
        el = node.elem
        is_map = node.kind == _LIST_MAP
        for item in value:
            pe = _item_element(item, node, strict, path)
            if strict and pe in out:
                raise errors.BadRequest(
                    f"{path_string(path)}: duplicate entries for key {path_string((pe,))}"
                )
            if is_map and isinstance(item, dict):
                sub = _collect_v1(item, el, strict, (*path, pe))
                out[pe] = {".": {}, **sub} if sub else {}
            else:
                out[pe] = {}
    if len(out) > 1:
        # Fields (f:) and items (k:/v:) never mix at one level, so plain string order is
        # Kubernetes' order.
        out = {k: out[k] for k in sorted(out)}
    return out


def fieldset_of(obj: Any, schema: Schema | None) -> FieldSet:
    """The leaf fields ``obj`` sets: scalars, atomic lists/maps, and map/set-list items.

    Granular maps and structs are not members themselves (only what they hold); items of
    map-type and set-type lists are, since an item exists in its own right.
    """
    return FieldSet.from_fields_v1(_collect_v1(obj, _compile(schema), False, ()), trusted=True)


def _whole(value: Any, node: _Node) -> FieldSet:
    """Every path inside ``value``, containers included: what appears (or goes) with it."""
    out = FieldSet()
    if isinstance(value, dict) and node.mapish:
        for k, v in value.items():
            pe = "f:" + k
            out.members.add(pe)
            if v and isinstance(v, dict | list):
                sub = _whole(v, node.child(k))
                if sub:
                    out.children[pe] = sub
    elif isinstance(value, list) and node.listish:
        el = node.elem
        is_map = node.kind == _LIST_MAP
        for item in value:
            pe = _item_element(item, node)
            out.members.add(pe)
            if is_map and item and isinstance(item, dict):
                sub = _whole(item, el)
                if sub:
                    out.children[pe] = sub
    return out


class _Diff:
    """What changed between two objects: ``added``, ``modified`` and ``removed`` paths."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added = FieldSet()
        self.modified = FieldSet()
        self.removed = FieldSet()

    def attach(self, pe: str, sub: _Diff) -> None:
        if sub.added:
            self.added.children[pe] = sub.added
        if sub.modified:
            self.modified.children[pe] = sub.modified
        if sub.removed:
            self.removed.children[pe] = sub.removed


def _pair_is_leaf(node: _Node, a: Any, b: Any) -> bool:
    if node.mapish:
        container: type = dict
    elif node.listish:
        container = list
    else:
        return True
    if (a is not None and not isinstance(a, container)) or (b is not None and not isinstance(b, container)):
        return True
    # Both empty or absent: compare as a value, so that {} vs absent still counts.
    return not a and not b


def _compare_child(out: _Diff, pe: str, a: Any, b: Any, node: _Node) -> None:
    if a is b or a == b:
        return
    if _pair_is_leaf(node, a, b):
        if a is None:
            out.added.members.add(pe)
        elif b is None:
            out.removed.members.add(pe)
        else:
            out.modified.members.add(pe)
        return
    # A map, struct or list item that appears or disappears is itself added or removed,
    # with everything in it.
    if a is None:
        out.added.members.add(pe)
        inner = _whole(b, node)
        if inner:
            out.added.children[pe] = inner
    elif b is None:
        out.removed.members.add(pe)
        inner = _whole(a, node)
        if inner:
            out.removed.children[pe] = inner
    else:
        sub = _Diff()
        _compare(sub, a, b, node)
        out.attach(pe, sub)


def _index(items: list[Any], node: _Node) -> dict[str, Any]:
    return {_item_element(item, node): item for item in items}


def _compare(out: _Diff, a: Any, b: Any, node: _Node) -> None:
    kind = node.kind
    if node.mapish:
        da: dict[str, Any] = a if isinstance(a, dict) else {}
        db: dict[str, Any] = b if isinstance(b, dict) else {}
        for k, va in da.items():
            _compare_child(out, field_element(k), va, db.get(k), node.child(k))
        for k, vb in db.items():
            if k not in da:
                _compare_child(out, field_element(k), None, vb, node.child(k))
    elif node.listish:
        la = _index(a, node) if isinstance(a, list) else {}
        lb = _index(b, node) if isinstance(b, list) else {}
        if kind == _LIST_SET:
            # Set items are values: they can only come or go.
            out.added.members.update(pe for pe in lb if pe not in la)
            out.removed.members.update(pe for pe in la if pe not in lb)
            return
        el = node.elem
        for pe, ia in la.items():
            _compare_child(out, pe, ia, lb.get(pe), el)
        for pe, ib in lb.items():
            if pe not in la:
                _compare_child(out, pe, None, ib, el)


def compare(old: Any, new: Any, schema: Schema | None) -> tuple[FieldSet, FieldSet, FieldSet]:
    """``(added, modified, removed)`` paths between two objects, as structured-merge-diff does."""
    out = _Diff()
    if old != new:
        _compare(out, old, new, _compile(schema))
    return out.added, out.modified, out.removed


def _merge(live: Any, cfg: Any, node: _Node) -> Any:
    """Merge an applied configuration into a live value.

    ``live`` is a private copy and is updated in place; ``cfg`` is only read. Maps and lists
    of the result are new or live's; only atomic values are shared with ``cfg``.
    """
    if isinstance(cfg, dict) and node.mapish:
        out: dict[str, Any] = live if isinstance(live, dict) else {}
        for k, v in cfg.items():
            if v is None:
                # An explicit null in an applied configuration clears the field.
                out.pop(k, None)
            elif isinstance(v, dict | list):
                out[k] = _merge(out.get(k), v, node.child(k))
            else:
                out[k] = v  # scalars replace, whatever the schema says
        return out
    if isinstance(cfg, list) and node.listish:
        # Also when live has no list: the items are then copied, not shared with cfg.
        return _merge_list(live if isinstance(live, list) else [], cfg, node)
    return cfg


def _merge_list(live: list[Any], cfg: list[Any], node: _Node) -> list[Any]:
    """Items in the configuration keep its order; live-only items keep their place among them."""
    el = node.elem
    if not live:
        # Nothing to interleave with (duplicates were rejected when the config was read).
        if node.kind == _LIST_MAP:
            return [_merge(None, x, el) for x in cfg]
        return list(dict.fromkeys(cfg)) if all(isinstance(x, str | int) for x in cfg) else list(cfg)
    lpes = [_item_element(x, node) for x in live]
    cpes = [_item_element(x, node) for x in cfg]
    lmap: dict[str, Any] = {}
    for pe, x in zip(lpes, live, strict=True):
        lmap.setdefault(pe, x)
    cset = set(cpes)
    out: list[Any] = []
    done: set[str] = set()
    i = j = 0
    while i < len(live) or j < len(cfg):
        if i < len(live):
            pe = lpes[i]
            if pe in done:
                i += 1
                continue
            if pe not in cset:
                out.append(live[i])
                done.add(pe)
                i += 1
                continue
        pe = cpes[j]
        j += 1
        if pe in done:
            continue
        done.add(pe)
        out.append(_merge(lmap.get(pe), cfg[j - 1], el) if node.kind == _LIST_MAP else cfg[j - 1])
    return out


def _remove(value: Any, fs: FieldSet, node: _Node) -> None:
    """Delete (in place) every path of ``fs`` from ``value``, with everything below it."""
    if isinstance(value, dict) and node.mapish:
        for pe in fs.members:
            if pe[:2] == "f:":
                value.pop(pe[2:], None)
        for pe, sub in fs.children.items():
            if pe[:2] == "f:" and pe[2:] in value:
                _remove(value[pe[2:]], sub, node.child(pe[2:]))
    elif isinstance(value, list) and node.listish:
        keep: list[Any] = []
        for item in value:
            pe = _item_element(item, node)
            if pe in fs.members:
                continue
            below = fs.children.get(pe)
            if below is not None:
                _remove(item, below, node.elem)
            keep.append(item)
        value[:] = keep


def _ensure_named(fs: FieldSet, node: _Node) -> FieldSet:
    """``fs`` plus every struct field that has something of ``fs`` below it.

    Pruning uses this so that a struct field nobody owns anything in any more goes away with
    its last owned leaf, instead of lingering as an empty ``{}``. Map keys and list items are
    not named fields and are not added.
    """
    if not fs.children:
        return fs
    out = FieldSet()
    out.members = set(fs.members)
    list_like = node.kind == _LIST_MAP or node.kind == _LIST_SET
    for pe, sub in fs.children.items():
        if list_like:
            child = node.elem
        elif pe[:2] == "f:":
            child = node.child(pe[2:])
            if node.named(pe[2:]):
                out.members.add(pe)
        else:
            child = _DEDUCED_NODE
        out.children[pe] = _ensure_named(sub, child)
    return out


# ==========================================================================================
# managedFields entries
# ==========================================================================================


class _Entry:
    """One managedFields entry.

    Its field set lives either encoded (``_raw``: canonical fieldsV1, as stored) or decoded
    (``_fs``); whichever is not None is authoritative. Stored entries stay encoded unless a
    caller needs the whole set, so taking a few fields away costs only as much as those fields.
    """

    __slots__ = ("_fs", "_raw", "api_version", "changed", "manager", "operation", "source",
                 "subresource", "time")

    def __init__(
        self,
        manager: str,
        operation: str,
        api_version: str,
        subresource: str = "",
        time: str | None = None,
        fields: FieldSet | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.manager = manager
        self.operation = operation
        self.api_version = api_version
        self.subresource = subresource
        self.time = time
        self.source = source  # the entry as stored: re-emitted untouched unless changed
        self.changed = source is None
        self._fs = fields
        self._raw: dict[str, Any] | None = None
        if fields is None:
            raw = source.get("fieldsV1") if source is not None else None
            self._raw = raw if isinstance(raw, dict) else {}

    @property
    def ident(self) -> tuple[str, str, str, str]:
        # Apply entries are one per manager whatever the apiVersion (Kubernetes does the same).
        av = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, av, self.subresource)

    @property
    def fields(self) -> FieldSet:
        if self._fs is None:
            self._fs = FieldSet.from_fields_v1(self._raw or {}, trusted=True)
            self._raw = None
        return self._fs

    def fields_v1(self) -> dict[str, Any]:
        return self._raw if self._raw is not None else self.fields.to_fields_v1()

    def set_fields_v1(self, raw: dict[str, Any]) -> None:
        self._raw, self._fs = raw, None
        self.changed = True

    def empty(self) -> bool:
        return not self._raw if self._raw is not None else self.fields.empty()

    def touches(self, fs: FieldSet) -> bool:
        if self._raw is not None:
            return fields_v1_intersects(self._raw, fs)
        return self.fields.intersects(fs)

    def intersection(self, fs: FieldSet) -> FieldSet:
        if self._raw is not None:
            return fields_v1_intersection(self._raw, fs)
        return self.fields.intersection(fs)

    def subtract(self, fs: FieldSet) -> None:
        if not self.touches(fs):
            return
        if self._raw is not None:
            self._raw = fields_v1_difference(self._raw, fs)
        else:
            self._fs = self.fields.difference(fs)
        self.changed = True

    def add(self, fs: FieldSet) -> None:
        if self._raw is not None:
            self._raw = fields_v1_union(self._raw, fs)
        else:
            self._fs = self.fields.union(fs)
        self.changed = True

    def encode(self) -> dict[str, Any]:
        if not self.changed and self.source is not None:
            return self.source
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version}
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = self.fields_v1()
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def describe(self) -> str:
        """The manager as Kubernetes names it in conflict messages."""
        text = _go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {_go_quote(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


def _go_quote(s: str) -> str:
    return orjson.dumps(s).decode()


def _decode_trusted(raw: Any) -> list[_Entry]:
    """Entries of a stored object (written by us); anything unreadable is dropped, not fatal."""
    out: list[_Entry] = []
    if not isinstance(raw, list):
        return out
    for e in raw:
        if not isinstance(e, dict) or not isinstance(e.get("manager", ""), str):
            continue
        out.append(_Entry(e.get("manager") or "", str(e.get("operation") or "Update"),
                          str(e.get("apiVersion") or ""), str(e.get("subresource") or ""),
                          e.get("time"), source=e))
    return out


def validate_managed_fields(raw: Any) -> list[dict[str, Any]]:
    """Check client-sent ``metadata.managedFields`` and return it in canonical form.

    Raises :class:`errors.BadRequest` naming the first malformed entry.
    """
    return [e.encode() for e in _decode_strict(raw)]


def _decode_strict(raw: Any) -> list[_Entry]:
    if not isinstance(raw, list):
        raise errors.BadRequest("metadata.managedFields: must be a list")
    out: list[_Entry] = []
    seen: set[tuple[str, str, str, str]] = set()
    for i, e in enumerate(raw):
        where = f"metadata.managedFields[{i}]"
        if not isinstance(e, dict):
            raise errors.BadRequest(f"{where}: must be an object")
        for key in ("manager", "apiVersion", "time", "subresource"):
            if e.get(key) is not None and not isinstance(e[key], str):
                raise errors.BadRequest(f"{where}.{key}: must be a string")
        op = e.get("operation")
        if op not in ("Apply", "Update"):
            raise errors.BadRequest(f'{where}.operation: Unsupported value: {_go_quote(str(op))}: '
                                    'supported values: "Apply", "Update"')
        if e.get("fieldsType") != "FieldsV1":
            raise errors.BadRequest(f'{where}.fieldsType: Unsupported value: '
                                    f'{_go_quote(str(e.get("fieldsType")))}: supported values: "FieldsV1"')
        time = e.get("time")
        if time is not None and parse_rfc3339(time) is None:
            raise errors.BadRequest(f"{where}.time: not an RFC 3339 time: {time!r}")
        try:
            fs = FieldSet.from_fields_v1(e.get("fieldsV1") if e.get("fieldsV1") is not None else {})
        except ValueError as exc:
            raise errors.BadRequest(f"{where}.fieldsV1: {exc}")
        entry = _Entry(e.get("manager") or "", op, e.get("apiVersion") or "", e.get("subresource") or "",
                       time, fields=fs)
        if entry.ident in seen:
            raise errors.BadRequest(f"{where}: duplicate entry for manager {_go_quote(entry.manager)}")
        seen.add(entry.ident)
        out.append(entry)
    return out


def _is_reset(raw: Any) -> bool:
    """``[]`` or ``[{}]``: the client asks to forget all ownership (Kubernetes' rule)."""
    return isinstance(raw, list) and (len(raw) == 0 or (len(raw) == 1 and raw[0] == {}))


def _finish(entries: Iterable[_Entry]) -> list[dict[str, Any]]:
    """Drop empty entries, cap Update entries, encode in Kubernetes' order."""
    kept = [e for e in entries if not (e.changed and e.empty())]
    updaters = sorted((e for e in kept if e.operation == "Update"), key=lambda e: e.time or "")
    if len(updaters) > MAX_UPDATE_MANAGERS:
        # Fold the oldest updaters into one "ancient-changes" entry, as Kubernetes does.
        excess = len(updaters) - MAX_UPDATE_MANAGERS + 1
        folded = [e for e in updaters[:excess] if e.manager != ANCIENT_CHANGES]
        ancient = next((e for e in kept if e.manager == ANCIENT_CHANGES and e.operation == "Update"), None)
        fs = ancient.fields if ancient is not None else FieldSet()
        for e in folded:
            fs = fs.union(e.fields)
        drop = {id(e) for e in folded}
        kept = [e for e in kept if id(e) not in drop]
        if ancient is None:
            ancient = _Entry(ANCIENT_CHANGES, "Update", folded[0].api_version, time=folded[-1].time)
            kept.append(ancient)
        ancient.set_fields_v1(fs.to_fields_v1())
    kept.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.encode() for e in kept]


def _store(obj: dict[str, Any], encoded: list[dict[str, Any]]) -> None:
    md = obj.get("metadata")
    if not isinstance(md, dict):
        md = obj["metadata"] = {}
    if encoded:
        md["managedFields"] = encoded
    else:
        md.pop("managedFields", None)


# ==========================================================================================
# The two write paths
# ==========================================================================================


def _strip(obj: dict[str, Any] | None, ignore: Iterable[str]) -> dict[str, Any]:
    """A shallow view of ``obj`` without the fields nobody owns (see the module docstring)."""
    if not obj:
        return {}
    skip = _UNOWNED_TOP.union(ignore)
    out = {k: v for k, v in obj.items() if k not in skip}
    md = out.get("metadata")
    if isinstance(md, dict):
        out["metadata"] = {k: v for k, v in md.items() if k not in _UNOWNED_META}
    return out


def _without_metadata_node(fs: FieldSet) -> FieldSet:
    if _METADATA_PE in fs.members:
        fs = fs.copy()
        fs.members.discard(_METADATA_PE)
    return fs


def _create_baseline(new: dict[str, Any], root: _Node) -> dict[str, Any]:
    """What a create is compared against.

    Kubernetes compares a create of a built-in kind with the Go zero value of the type, in
    which non-pointer structs (``spec``, ``status``) already exist as ``{}``; so ``f:spec``
    gets no ``"."`` there. Custom resources start from nothing, and their ``f:spec`` does.
    """
    if root.schema is None or not root.schema.raw.get("x-kubernetes-group-version-kind"):
        return {}
    out: dict[str, Any] = {}
    for k, v in new.items():
        if isinstance(v, dict):
            c = root.child(k)
            if c.kind == _STRUCT and c.prop_names:
                out[k] = {}
    return out


def _changes(old: dict[str, Any] | None, new: dict[str, Any], root: _Node,
             ignore: Iterable[str]) -> _Diff:
    a = _strip(old, ignore) if old is not None else _create_baseline(new, root)
    b = _strip(new, ignore)
    out = _Diff()
    if a != b:
        _compare(out, a, b, root)
        out.added = _without_metadata_node(out.added)
        out.removed = _without_metadata_node(out.removed)
    return out


def update_managed_fields(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    schema: Schema | None,
    *,
    operation: str = "Update",
    api_version: str,
    subresource: str = "",
    ignore_top_level: tuple[str, ...] = ("status",),
    now: Now | None = None,
) -> None:
    """Record a non-apply write (create: ``old`` is None; update; patch) in ``new``'s managedFields.

    Fields that were added or changed go to ``manager`` (one entry per manager, operation,
    apiVersion and subresource) and are taken from everybody else; removed fields are taken
    from everybody. A client may send managedFields: ``[]`` or ``[{}]`` clears them, a valid
    list replaces them (malformed: :class:`errors.BadRequest`), absence keeps the stored ones.
    Subresource writes always keep the stored ones. Mutates ``new``.
    """
    md = new.get("metadata")
    sent = md.get("managedFields") if isinstance(md, dict) else None
    stored = (old.get("metadata") or {}).get("managedFields") if old is not None else None
    if subresource or sent is None or (stored is not None and sent == stored):
        entries = _decode_trusted(stored)
    elif _is_reset(sent):
        entries = []
    else:
        entries = _decode_strict(sent)
        if not entries:
            entries = _decode_trusted(stored)

    root = _compile(schema)
    diff = _changes(old, new, root, ignore_top_level)
    changed = diff.added.union(diff.modified)
    gone = changed.union(diff.removed)
    if gone:
        for e in entries:
            e.subtract(gone)
    if changed:
        ident = (manager, operation, "" if operation == "Apply" else api_version, subresource)
        mine = next((e for e in entries if e.ident == ident), None)
        if mine is None:
            mine = _Entry(manager, operation, api_version, subresource)
            entries.append(mine)
        mine.add(changed)
        mine.time = (now or now_rfc3339)()
    _store(new, _finish(entries))


def _conflict_error(conflicts: list[tuple[_Entry, FieldSet]]) -> errors.Conflict:
    found: list[tuple[str, Path]] = []
    for entry, fs in sorted(conflicts, key=lambda c: c[0].describe()):
        found.extend((entry.describe(), p) for p in fs)
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path_string(p)}
              for who, p in found]
    if len(found) == 1:
        who, p = found[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {path_string(p)}"
    else:
        lines: list[str] = []
        last = None
        for who, p in found:
            if who != last:
                lines.append(f"conflicts with {who}:")
                last = who
            lines.append(f"- {path_string(p)}")
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return errors.Conflict(message, details={"causes": causes})


def apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    schema: Schema | None,
    *,
    force: bool,
    api_version: str,
    ignore_top_level: tuple[str, ...] = ("status",),
    subresource: str = "",
    now: Now | None = None,
) -> dict[str, Any]:
    """Server-side apply of ``applied`` by ``manager`` onto ``live`` (None: create).

    Returns a new object (inputs are not modified) with managedFields updated. Raises
    :class:`errors.Conflict` (409, causes per field) when the configuration changes fields
    other managers own and ``force`` is false; :class:`errors.BadRequest` for a configuration
    that cannot be applied (managedFields set, duplicate or keyless map-list items).
    Fields in ``ignore_top_level`` are neither taken from the configuration nor owned.
    """
    if not manager:
        raise errors.BadRequest("PATCH, application/apply-patch+yaml requires fieldManager to be set")
    if not isinstance(applied, dict):
        raise errors.BadRequest("the applied configuration must be an object")
    amd = applied.get("metadata")
    if isinstance(amd, dict) and amd.get("managedFields"):
        raise errors.BadRequest("metadata.managedFields must be nil")
    clock = now or now_rfc3339
    root = _compile(schema)

    # Shallow views only: _merge never writes into cfg.
    cfg = {k: v for k, v in applied.items() if k not in ignore_top_level}
    if isinstance(amd, dict) and "managedFields" in amd:
        cfg["metadata"] = {k: v for k, v in amd.items() if k != "managedFields"}
    config_v1 = _collect_v1(_strip(cfg, ignore_top_level), root, True, ())
    if config_v1.get(_METADATA_PE) == {}:
        # A non-object metadata would make the node itself a leaf; it is never owned.
        del config_v1[_METADATA_PE]

    stored: Any = None
    merged: dict[str, Any] = {}
    if live is not None:
        # Copy live without its managedFields: they are often as large as the rest.
        view = dict(live)
        lmd = live.get("metadata")
        if isinstance(lmd, dict):
            stored = lmd.get("managedFields")
            view["metadata"] = {k: v for k, v in lmd.items() if k != "managedFields"}
        merged = _deepcopy(view)
    entries = _decode_trusted(stored)
    if live is not None and not entries:
        # An object nobody owns anything in yet: its current fields belong to a placeholder
        # updater, so the first apply conflicts on them like on any other manager's fields.
        seed = _changes(None, live, root, ignore_top_level).added
        if seed:
            entries.append(_Entry(BEFORE_FIRST_APPLY, "Update", api_version, fields=seed, time=clock()))

    merged = _merge(merged, cfg, root)

    ident = (manager, "Apply", "", subresource)
    mine = next((e for e in entries if e.ident == ident), None)
    others = [e for e in entries if e is not mine]
    # Comparing encoded forms is cheaper than decoding the stored set.
    set_changed = mine is None or mine.fields_v1() != config_v1
    if mine is not None and set_changed:
        last = mine.fields
        config_set = FieldSet.from_fields_v1(config_v1, trusted=True)
        if last.difference(config_set):
            # Fields this manager applied before and dropped now: remove them from the
            # object, except where the new configuration or another manager still owns them.
            managed = config_set
            for e in others:
                managed = managed.union(e.fields)
            to_remove = _ensure_named(last, root).difference(_ensure_named(managed, root))
            # metadata is a named field too, but never ours to delete (the name lives there).
            to_remove = _without_metadata_node(to_remove)
            if to_remove:
                _remove(merged, to_remove, root)

    # Conflicts and lost ownership come from what actually changed in the object.
    diff = _changes(live, merged, root, ignore_top_level) if live is not None else _Diff()
    changed = diff.added.union(diff.modified)
    conflicts: list[tuple[_Entry, FieldSet]] = []
    if changed:
        for e in others:
            if e.touches(changed):
                conflicts.append((e, e.intersection(changed)))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    gone = changed.union(diff.removed)
    if gone:
        for e in others:
            e.subtract(gone)

    if mine is None:
        mine = _Entry(manager, "Apply", api_version, subresource)
        entries.append(mine)
    object_changed = bool(diff.added or diff.modified or diff.removed) or live is None
    if object_changed or set_changed or mine.api_version != api_version:
        mine.set_fields_v1(config_v1)
        mine.api_version = api_version
        mine.time = clock()
    _store(merged, _finish(entries))
    return merged


__all__ = [
    "ANCIENT_CHANGES",
    "BEFORE_FIRST_APPLY",
    "MAX_UPDATE_MANAGERS",
    "apply",
    "compare",
    "fieldset_of",
    "update_managed_fields",
    "validate_managed_fields",
]
