"""The walks over objects that server-side apply is made of, driven by :mod:`kybernetes.api.merge_schema`.

:func:`fieldset_of` (the fields an object sets), :func:`compare` (added, removed and changed
fields between two versions), and the merge of an applied configuration into a live object,
the removal of fields nobody owns any more, and the completion of a field set with the named
parents it implies. The walks are linear in the size of the parts of the objects that differ:
equal subtrees are skipped with one C-level ``==`` and map-list items are matched through
dicts.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson

from kybernetes import errors
from kybernetes.api.fieldset import (
    FieldSet,
    Path,
    field_element,
    path_string,
)
from kybernetes.api.merge_schema import (
    DEDUCED_NODE,
    LIST_MAP,
    LIST_SET,
    MergeNode,
    compile_schema,
    item_element,
)
from kybernetes.api.schema import Schema


def deep_copy(obj: Any) -> Any:
    """A deep copy of a JSON object."""
    # A JSON round trip through orjson is several times faster than copy.deepcopy.
    try:
        return orjson.loads(orjson.dumps(obj))
    except TypeError:
        return copy.deepcopy(obj)


def collect_fields(value: Any, node: MergeNode, strict: bool, path: Path) -> dict[str, Any]:
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
                sub = collect_fields(v, c, strict, (*path, "f:" + k))
                if sub:
                    out["f:" + k] = sub
    elif isinstance(value, list) and node.listish:
        el = node.elem
        is_map = node.kind == LIST_MAP
        for item in value:
            pe = item_element(item, node, strict, path)
            if strict and pe in out:
                raise errors.BadRequest(
                    f"{path_string(path)}: duplicate entries for key {path_string((pe,))}"
                )
            if is_map and isinstance(item, dict):
                sub = collect_fields(item, el, strict, (*path, pe))
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
    return FieldSet.from_fields_v1(collect_fields(obj, compile_schema(schema), False, ()), trusted=True)


def _whole(value: Any, node: MergeNode) -> FieldSet:
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
        is_map = node.kind == LIST_MAP
        for item in value:
            pe = item_element(item, node)
            out.members.add(pe)
            if is_map and item and isinstance(item, dict):
                sub = _whole(item, el)
                if sub:
                    out.children[pe] = sub
    return out


def _whole_v1(value: Any, node: MergeNode) -> dict[str, Any]:
    """:func:`_whole` in encoded (``fieldsV1``) form: ``_whole(value, node).to_fields_v1()``,
    built in one walk (a create's field set is the whole object)."""
    out: dict[str, Any] = {}
    if isinstance(value, dict) and node.mapish:
        for k, v in value.items():
            sub = _whole_v1(v, node.child(k)) if v and isinstance(v, dict | list) else None
            out["f:" + k] = {".": {}, **sub} if sub else {}
    elif isinstance(value, list) and node.listish:
        el = node.elem
        is_map = node.kind == LIST_MAP
        for item in value:
            pe = item_element(item, node)
            sub = _whole_v1(item, el) if is_map and item and isinstance(item, dict) else None
            if sub:
                out[pe] = {".": {}, **sub}
            elif pe not in out:
                out[pe] = {}
    if len(out) > 1:
        # Only f:, k: and v: elements here, never i:, so plain string order is Kubernetes' order.
        out = {k: out[k] for k in sorted(out)}
    return out


def added_v1(a: dict[str, Any], b: dict[str, Any], node: MergeNode) -> dict[str, Any]:
    """The fields added or changed from ``a`` to ``b`` in encoded (``fieldsV1``) form, where
    every value of ``a`` is an empty map (a create's baseline): what :func:`compare_into`
    finds as ``added | modified``, encoded, in one walk."""
    out: dict[str, Any] = {}
    for k, vb in b.items():
        va = a.get(k)
        if va is vb or va == vb:
            continue
        c = node.child(k)
        pe = "f:" + k
        if _pair_is_leaf(c, va, vb):
            out[pe] = {}
        elif va is None:
            sub = _whole_v1(vb, c)
            out[pe] = {".": {}, **sub} if sub else {}
        else:  # an empty map of the baseline against a map with fields (the pair is no leaf)
            sub = added_v1({}, vb, c)
            if sub:
                out[pe] = sub
    if len(out) > 1:
        out = {k: out[k] for k in sorted(out)}
    return out


class FieldDiff:
    """What changed between two objects: ``added``, ``modified`` and ``removed`` paths."""

    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added = FieldSet()
        self.modified = FieldSet()
        self.removed = FieldSet()

    def attach(self, pe: str, sub: FieldDiff) -> None:
        if sub.added:
            self.added.children[pe] = sub.added
        if sub.modified:
            self.modified.children[pe] = sub.modified
        if sub.removed:
            self.removed.children[pe] = sub.removed


def _pair_is_leaf(node: MergeNode, a: Any, b: Any) -> bool:
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


def _compare_child(out: FieldDiff, pe: str, a: Any, b: Any, node: MergeNode) -> None:
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
        sub = FieldDiff()
        compare_into(sub, a, b, node)
        out.attach(pe, sub)


def _index(items: list[Any], node: MergeNode) -> dict[str, Any]:
    return {item_element(item, node): item for item in items}


def compare_into(out: FieldDiff, a: Any, b: Any, node: MergeNode) -> None:
    """Record in ``out`` the fields added, removed and changed from ``a`` to ``b``."""
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
        if kind == LIST_SET:
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
    out = FieldDiff()
    if old != new:
        compare_into(out, old, new, compile_schema(schema))
    return out.added, out.modified, out.removed


def merge_config(live: Any, cfg: Any, node: MergeNode) -> Any:
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
                out[k] = merge_config(out.get(k), v, node.child(k))
            else:
                out[k] = v  # scalars replace, whatever the schema says
        return out
    if isinstance(cfg, list) and node.listish:
        # Also when live has no list: the items are then copied, not shared with cfg.
        return _merge_list(live if isinstance(live, list) else [], cfg, node)
    return cfg


def _merge_list(live: list[Any], cfg: list[Any], node: MergeNode) -> list[Any]:
    """Items in the configuration keep its order; live-only items keep their place among them."""
    el = node.elem
    if not live:
        # Nothing to interleave with (duplicates were rejected when the config was read).
        if node.kind == LIST_MAP:
            return [merge_config(None, x, el) for x in cfg]
        return list(dict.fromkeys(cfg)) if all(isinstance(x, str | int) for x in cfg) else list(cfg)
    lpes = [item_element(x, node) for x in live]
    cpes = [item_element(x, node) for x in cfg]
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
        out.append(merge_config(lmap.get(pe), cfg[j - 1], el) if node.kind == LIST_MAP else cfg[j - 1])
    return out


def remove_fields(value: Any, fs: FieldSet, node: MergeNode) -> None:
    """Delete (in place) every path of ``fs`` from ``value``, with everything below it."""
    if isinstance(value, dict) and node.mapish:
        for pe in fs.members:
            if pe[:2] == "f:":
                value.pop(pe[2:], None)
        for pe, sub in fs.children.items():
            if pe[:2] == "f:" and pe[2:] in value:
                remove_fields(value[pe[2:]], sub, node.child(pe[2:]))
    elif isinstance(value, list) and node.listish:
        keep: list[Any] = []
        for item in value:
            pe = item_element(item, node)
            if pe in fs.members:
                continue
            below = fs.children.get(pe)
            if below is not None:
                remove_fields(item, below, node.elem)
            keep.append(item)
        value[:] = keep


def ensure_named(fs: FieldSet, node: MergeNode) -> FieldSet:
    """``fs`` plus every struct field that has something of ``fs`` below it.

    Pruning uses this so that a struct field nobody owns anything in any more goes away with
    its last owned leaf, instead of lingering as an empty ``{}``. Map keys and list items are
    not named fields and are not added.
    """
    if not fs.children:
        return fs
    out = FieldSet()
    out.members = set(fs.members)
    list_like = node.kind == LIST_MAP or node.kind == LIST_SET
    for pe, sub in fs.children.items():
        if list_like:
            child = node.elem
        elif pe[:2] == "f:":
            child = node.child(pe[2:])
            if node.named(pe[2:]):
                out.members.add(pe)
        else:
            child = DEDUCED_NODE
        out.children[pe] = ensure_named(sub, child)
    return out


__all__ = [
    "compare",
    "fieldset_of",
]
