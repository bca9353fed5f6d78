"""Kubernetes strategic merge patch (``application/strategic-merge-patch+json``).

A merge patch whose list handling is driven by the type's OpenAPI extensions
(``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key``) plus a small set of in-band
directives: ``$patch`` (replace / delete / list replace), ``$retainKeys``,
``$setElementOrder/<field>`` and ``$deleteFromPrimitiveList/<field>``. Like the other formats it
copies along the patched paths only (see :mod:`kybernetes.api.patch`).

Strategic merge patch follows the semantics of ``k8s.io/apimachinery/pkg/util/strategicpatch``
as the API server applies it (parallel lists merged, unmatched nulls ignored), including its
list ordering rule: items named by the patch are placed in patch (or ``$setElementOrder``) order
and interleaved with the server-only items, which keep their live order. One consequence that
surprises people but is faithful: an item *added* by a patch without ``$setElementOrder`` lands
before the server-only items. kubectl apply and kubectl edit always send ``$setElementOrder``,
so for them new items land where the user wrote them.

One deliberate deviation: ``{"$patch": "delete"}`` as a map's value removes the key, where Go
leaves an empty map that its ``omitempty`` encoding then hides; with plain dicts, removing the
key is what produces the same wire result.

Where the schema says nothing (``schema=None``, an unknown field, a free-form subtree) the
strategic merge falls back to merge-patch semantics: maps merge, lists are replaced.
"""

from __future__ import annotations

from typing import Any

from kybernetes import errors
from kybernetes.api import schema as schema_mod
from kybernetes.api.patch.jsonvalues import deepcopy_json, hashable_key, json_equal, json_kind, unprocessable
from kybernetes.api.schema import Schema

_DIRECTIVE = "$patch"
_RETAIN_KEYS = "$retainKeys"
_SET_ORDER = "$setElementOrder/"
_DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"

# Returned by a map merge when the map itself must disappear (``$patch: delete``).
_DROP: Any = object()


class _Field:
    """Patch metadata of one field, read from its schema (None when the schema is silent)."""

    __slots__ = ("merge_key", "merge_list", "replace", "schema")

    def __init__(self, parent: Schema | None, name: str) -> None:
        fs = _child(parent, name)
        self.schema = fs
        strategies = fs.patch_strategy if fs is not None else []
        # "retainKeys" is acted on via the in-band $retainKeys directive, so only the other
        # strategy matters here ("merge" for lists, "replace" for maps or lists).
        self.merge_list = "merge" in strategies
        self.replace = "replace" in strategies
        self.merge_key = fs.patch_merge_key if fs is not None else None

    @property
    def item_schema(self) -> Schema | None:
        # Resolved on demand: most patched fields are scalars or maps.
        return self.schema.items if self.schema is not None else None


def _child(schema: Schema | None, name: str) -> Schema | None:
    if schema is None or schema.is_open:
        return None
    return schema.child(name)


def _is_declared(schema: Schema | None, name: str) -> bool:
    return schema is not None and name in schema.properties


def _check_directive_key(key: str, schema: Schema | None) -> None:
    """Reject ``$``-prefixed keys that are not directives (unless the schema declares the field)."""
    if key in (_DIRECTIVE, _RETAIN_KEYS) or key.startswith((_SET_ORDER, _DELETE_PRIMITIVE)):
        return
    if key.startswith("$") and not _is_declared(schema, key):
        raise errors.BadRequest(f"strategic merge patch: unknown directive {key!r}")


def _list_value(value: Any, key: str) -> list[Any]:
    if not isinstance(value, list):
        raise errors.BadRequest(f"strategic merge patch: {key} must be a list, got {json_kind(value)}")
    return value


def apply_strategic_merge_patch(doc: dict[str, Any], patch: dict[str, Any], schema: Schema | None) -> dict[str, Any]:
    """Apply a Kubernetes strategic merge patch to ``doc`` under ``schema`` (the kind's root).

    ``schema=None`` applies merge-patch semantics (maps merge, lists replace) while still
    honouring the ``$`` directives.
    """
    if not isinstance(patch, dict):
        raise errors.BadRequest("strategic merge patch: the patch must be a JSON object")
    if not isinstance(doc, dict):
        raise errors.BadRequest("strategic merge patch: the document must be a JSON object")
    out = _merge_map(doc, patch, schema)
    return {} if out is _DROP else out


def strategic_merge_patch_for_kind(
    doc: dict[str, Any], patch: dict[str, Any], group: str, version: str, kind: str
) -> dict[str, Any]:
    """:func:`apply_strategic_merge_patch` with the built-in kind's schema (None if unknown)."""
    return apply_strategic_merge_patch(doc, patch, schema_mod.for_kind(group, version, kind))


def _merge_map(orig: dict[str, Any], patch: dict[str, Any], schema: Schema | None) -> Any:
    """Merge ``patch`` into a copy of ``orig``; returns the new dict or ``_DROP``."""
    if _DIRECTIVE in patch:
        directive = patch[_DIRECTIVE]
        if directive == "replace":
            # The map becomes the patch itself (minus the directive), cleaned of directives.
            rest = {k: v for k, v in patch.items() if k != _DIRECTIVE}
            return _merge_map({}, rest, schema)
        if directive == "delete":
            return _DROP
        raise errors.BadRequest(f"strategic merge patch: unknown $patch directive {directive!r} in a map")

    out = dict(orig)

    if _RETAIN_KEYS in patch:
        retain = _list_value(patch[_RETAIN_KEYS], _RETAIN_KEYS)
        keep = {k for k in retain if isinstance(k, str)}
        for key, value in patch.items():
            if value is None or key == _RETAIN_KEYS or key.startswith((_SET_ORDER, _DELETE_PRIMITIVE)):
                continue
            if key not in keep:
                raise unprocessable(
                    f"strategic merge patch: patch content doesn't match retainKeys list: {key!r} is not retained"
                )
        for key in list(out):
            if key not in keep:
                del out[key]

    # $setElementOrder lists are handled together with the list they order; remember which
    # lists are done so the main loop skips them.
    ordered: set[str] = set()
    delete_lists: list[str] = []
    for key in patch:
        _check_directive_key(key, schema)
        if key.startswith(_SET_ORDER) and not _is_declared(schema, key):
            field = key[len(_SET_ORDER):]
            if _apply_set_element_order(out, patch, field, _list_value(patch[key], key), schema):
                ordered.add(field)
        elif key.startswith(_DELETE_PRIMITIVE) and not _is_declared(schema, key):
            delete_lists.append(key)

    # Parallel deletion lists first: kubectl never names an item in both the deletion list and
    # the list itself, so the order only matters for determinism.
    for key in delete_lists:
        field = key[len(_DELETE_PRIMITIVE):]
        to_delete = _list_value(patch[key], key)
        current = out.get(field)
        if isinstance(current, list):
            gone = {hashable_key(v) for v in to_delete}
            out[field] = [v for v in current if hashable_key(v) not in gone]

    for key, value in patch.items():
        if key in ordered or (key.startswith("$") and not _is_declared(schema, key)):
            continue
        if value is None:
            # An unmatched null is ignored (the API server's IgnoreUnmatchedNulls).
            out.pop(key, None)
            continue
        merged = _merge_value(out.get(key, _DROP), value, _Field(schema, key))
        if merged is _DROP:
            out.pop(key, None)
        else:
            out[key] = merged
    return out


def _merge_value(orig: Any, value: Any, field: _Field) -> Any:
    """Merge one field's patch value into its live value (``_DROP`` when the field is absent)."""
    if orig is _DROP or json_kind(orig) != json_kind(value):
        return _materialize(value, field)
    if isinstance(value, dict):
        if field.replace:
            return _merge_map({}, value, field.schema)
        return _merge_map(orig, value, field.schema)
    if isinstance(value, list):
        return _merge_list(orig, value, field)
    return value


def _materialize(value: Any, field: _Field) -> Any:
    """A patch value that lands where nothing can be merged: directives applied, nulls dropped."""
    if isinstance(value, dict):
        return _merge_map({}, value, field.schema)
    if isinstance(value, list):
        return _merge_list([], value, field)
    return value


def _merge_list(orig: list[Any], patch: list[Any], field: _Field) -> list[Any]:
    if not field.merge_list:
        return _replace_list(patch, field)
    if not orig and not patch:
        return []
    element = _element_kind(orig, patch)
    if element != "object":
        # A merging list of primitives is a set union that keeps order.
        merged = _dedupe(orig + patch)
        return _normalize_order(merged, patch, orig, None)
    key = field.merge_key
    if not key:
        raise errors.BadRequest("strategic merge patch: cannot merge a list of objects without a merge key")

    # Special elements first: deletions by merge key, and a whole-list replacement.
    plain: list[dict[str, Any]] = []
    replace = False
    for item in patch:
        if _DIRECTIVE not in item:
            plain.append(item)
            continue
        directive = item[_DIRECTIVE]
        if directive == "delete":
            if key not in item:
                raise errors.BadRequest(
                    f"strategic merge patch: $patch: delete element does not contain the merge key {key!r}"
                )
            gone = hashable_key(item[key])
            orig = [o for o in orig if not (key in o and hashable_key(o[key]) == gone)]
        elif directive == "replace":
            replace = True
        else:
            raise errors.BadRequest(f"strategic merge patch: unknown $patch directive {directive!r} in a list")
    if replace:
        return [_merge_map({}, item, field.item_schema) for item in plain]

    item_schema = field.item_schema
    result = list(orig)
    position: dict[Any, int] = {}
    for i, item in enumerate(result):
        if key in item:
            position.setdefault(hashable_key(item[key]), i)
    for item in plain:
        if key not in item:
            raise errors.BadRequest(
                f"strategic merge patch: list element does not contain the merge key {key!r}: {item!r}"
            )
        ident = hashable_key(item[key])
        at = position.get(ident)
        if at is None:
            position[ident] = len(result)
            result.append(_merge_map({}, item, item_schema))
        else:
            result[at] = _merge_map(result[at], item, item_schema)
    return _normalize_order(result, plain, orig, key)


def _replace_list(patch: list[Any], field: _Field) -> list[Any]:
    """A non-merging list is replaced by the patch's list (cleaned of directives and nulls)."""
    out: list[Any] = []
    item_schema = field.item_schema
    for item in patch:
        if isinstance(item, dict):
            if _DIRECTIVE in item:
                continue
            out.append(_merge_map({}, item, item_schema))
        elif isinstance(item, list):
            out.append(deepcopy_json(item))
        else:
            out.append(item)
    return out


def _element_kind(*lists: list[Any]) -> str:
    kinds = {json_kind(v) for lst in lists for v in lst}
    if "array" in kinds:
        raise unprocessable("strategic merge patch: lists of lists are not supported")
    if len(kinds) > 1:
        raise errors.BadRequest("strategic merge patch: list elements are not all of the same type")
    return kinds.pop() if kinds else "scalar"


def _dedupe(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in items:
        h = hashable_key(v)
        if h not in seen:
            seen.add(h)
            out.append(v)
    return out


def _ident(item: Any, merge_key: str | None) -> Any:
    if merge_key is None:
        return hashable_key(item)
    return hashable_key(item.get(merge_key)) if isinstance(item, dict) else hashable_key(None)


def _first_index(items: list[Any], merge_key: str | None) -> dict[Any, int]:
    index: dict[Any, int] = {}
    for i, item in enumerate(items):
        index.setdefault(_ident(item, merge_key), i)
    return index


def _normalize_order(merged: list[Any], patch_order: list[Any], server_order: list[Any], merge_key: str | None) -> list[Any]:
    """Kubernetes' ordering of a merged list.

    Items named in ``patch_order`` take that order; the others (server-only items) keep their
    ``server_order``. The two runs are then interleaved: a server-only item goes first only
    while it precedes the next patch item in ``server_order``; a patch item that is not in the
    live list at all stops the scan, which is why new items land before the remaining
    server-only items.
    """
    pidx = _first_index(patch_order, merge_key)
    sidx = _first_index(server_order, merge_key)
    patch_items: list[tuple[int, int, Any]] = []
    server_only: list[tuple[int, int, Any]] = []
    for n, item in enumerate(merged):
        ident = _ident(item, merge_key)
        p = pidx.get(ident)
        if p is not None:
            patch_items.append((p, n, item))
        else:
            s = sidx.get(ident)
            # Items absent from both orders keep their merged position, after the known ones.
            server_only.append((s if s is not None else len(server_order), n, item))
    patch_items.sort(key=lambda t: (t[0], t[1]))
    server_only.sort(key=lambda t: (t[0], t[1]))
    left = [t[2] for t in server_only]
    right = [t[2] for t in patch_items]
    out: list[Any] = []
    i = j = 0
    while i < len(left) and j < len(right):
        li = sidx.get(_ident(left[i], merge_key))
        ri = sidx.get(_ident(right[j], merge_key))
        if li is not None and ri is not None and li < ri:
            out.append(left[i])
            i += 1
        else:
            out.append(right[j])
            j += 1
    out.extend(left[i:])
    out.extend(right[j:])
    return out


def _apply_set_element_order(
    out: dict[str, Any], patch: dict[str, Any], field_name: str, order: list[Any], schema: Schema | None
) -> bool:
    """Merge ``patch[field_name]`` into ``out`` and impose ``$setElementOrder/<field_name>``.

    Returns False when the field is not a merging list: it is then replaced by the main loop
    like any other list, and the order directive has nothing to add.
    """
    field = _Field(schema, field_name)
    if not field.merge_list:
        return False
    current = out.get(field_name)
    if current is not None and not isinstance(current, list):
        raise errors.BadRequest(f"strategic merge patch: {field_name} is not a list")
    orig: list[Any] = current or []
    have_patch = field_name in patch
    patch_list = _list_value(patch[field_name], field_name) if have_patch else []
    key = field.merge_key if _element_kind(orig, patch_list, order) == "object" else None
    _check_order_consistency(patch_list, order, key)
    if current is None and not have_patch:
        return True
    merged = _merge_list(orig, patch_list, field) if have_patch else orig
    out[field_name] = _normalize_order(merged, order, orig, key)
    return True


def _check_order_consistency(patch_list: list[Any], order: list[Any], merge_key: str | None) -> None:
    """The patch list's items must appear in ``$setElementOrder`` in the same relative order."""
    if not order or not patch_list:
        return
    items = [p for p in patch_list if not (isinstance(p, dict) and _DIRECTIVE in p)]
    if merge_key is not None:
        for it in [*items, *order]:
            if not isinstance(it, dict) or merge_key not in it:
                raise errors.BadRequest(
                    f"strategic merge patch: $setElementOrder element does not contain the merge key {merge_key!r}"
                )
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        if _ident(items[pi], merge_key) == _ident(order[oi], merge_key):
            pi += 1
        oi += 1
    if pi < len(items):
        raise errors.BadRequest(
            "strategic merge patch: the order in the patch list doesn't match the $setElementOrder list"
        )


# =========================================================================================
# Two-way strategic merge patch creation (what kubectl computes client-side)
# =========================================================================================


def create_two_way_merge_patch(original: dict[str, Any], modified: dict[str, Any], schema: Schema | None) -> dict[str, Any]:
    """The strategic merge patch that turns ``original`` into ``modified``.

    Like Kubernetes' ``CreateTwoWayMergePatch``: removed keys become ``null``; merging lists
    of objects send changed items (with their merge key), new items in full and
    ``{"$patch": "delete", key: v}`` for removed ones; merging primitive lists send additions
    plus ``$deleteFromPrimitiveList/<field>``; both carry ``$setElementOrder/<field>``;
    maps under a ``retainKeys`` strategy carry ``$retainKeys``; other lists are sent whole.
    """
    return _diff_maps(original, modified, schema, retain_keys=False)


def _diff_maps(original: dict[str, Any], modified: dict[str, Any], schema: Schema | None, *, retain_keys: bool) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    for key in original:
        if key not in modified:
            patch[key] = None
    for key, new in modified.items():
        if key not in original:
            patch[key] = deepcopy_json(new)
            continue
        old = original[key]
        if json_kind(old) != json_kind(new):
            patch[key] = deepcopy_json(new)
            continue
        fs = _child(schema, key)
        strategies = fs.patch_strategy if fs is not None else []
        if isinstance(new, dict):
            if "replace" in strategies:
                if not json_equal(old, new):
                    patch[key] = deepcopy_json(new)
                continue
            sub = _diff_maps(old, new, fs, retain_keys="retainKeys" in strategies)
            if sub:
                patch[key] = sub
        elif isinstance(new, list):
            if "merge" in strategies and fs is not None:
                _diff_merging_list(patch, key, old, new, fs, "retainKeys" in strategies)
            elif not json_equal(old, new):
                patch[key] = deepcopy_json(new)
        elif not json_equal(old, new):
            patch[key] = new
    if retain_keys and patch:
        patch[_RETAIN_KEYS] = sorted(modified)
    return patch


def _diff_merging_list(
    patch: dict[str, Any], key: str, old: list[Any], new: list[Any], fs: Schema, retain_keys: bool
) -> None:
    kinds = {json_kind(v) for v in old + new}
    merge_key = fs.patch_merge_key
    if kinds == {"object"} and merge_key:
        old_by = {hashable_key(o.get(merge_key)): o for o in old}
        new_idents = {hashable_key(n.get(merge_key)) for n in new}
        changes: list[Any] = []
        for item in new:
            before = old_by.get(hashable_key(item.get(merge_key)))
            if before is None:
                changes.append(deepcopy_json(item))
                continue
            sub = _diff_maps(before, item, fs.items, retain_keys=retain_keys)
            if sub:
                sub[merge_key] = item.get(merge_key)
                changes.append(sub)
        deletions = [
            {merge_key: o.get(merge_key), _DIRECTIVE: "delete"}
            for o in old
            if hashable_key(o.get(merge_key)) not in new_idents
        ]
        if changes or deletions:
            patch[key] = changes + deletions
        if changes or deletions or not json_equal(old, new):
            # A pure reordering is sent as the order directive alone.
            patch[_SET_ORDER + key] = [{merge_key: n.get(merge_key)} for n in new]
    elif "object" not in kinds and "array" not in kinds:
        old_set = {hashable_key(v) for v in old}
        new_set = {hashable_key(v) for v in new}
        added = [v for v in new if hashable_key(v) not in old_set]
        removed = [v for v in old if hashable_key(v) not in new_set]
        if added:
            patch[key] = added
        if removed:
            patch[_DELETE_PRIMITIVE + key] = removed
        if added or removed or not json_equal(old, new):
            patch[_SET_ORDER + key] = list(new)
    elif not json_equal(old, new):
        patch[key] = deepcopy_json(new)


__all__ = [
    "apply_strategic_merge_patch",
    "create_two_way_merge_patch",
    "strategic_merge_patch_for_kind",
]
