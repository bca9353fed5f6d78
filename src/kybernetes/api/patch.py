"""The three patch formats of a Kubernetes ``PATCH`` request.

* ``application/json-patch+json``: :func:`apply_json_patch`, RFC 6902 operations addressed by
  RFC 6901 JSON pointers.
* ``application/merge-patch+json``: :func:`apply_merge_patch`, RFC 7386 (``null`` deletes,
  objects merge, everything else replaces).
* ``application/strategic-merge-patch+json``: :func:`apply_strategic_merge_patch`, Kubernetes'
  own format. It is a merge patch whose list handling is driven by the type's OpenAPI
  extensions (``x-kubernetes-patch-strategy`` / ``x-kubernetes-patch-merge-key``) plus a small
  set of in-band directives: ``$patch`` (replace / delete / list replace), ``$retainKeys``,
  ``$setElementOrder/<field>`` and ``$deleteFromPrimitiveList/<field>``.

Design
------
Every function returns a new document and never mutates its inputs, yet none of them deep-copies
the document: they copy *along the patched paths only* (persistent-data-structure style). A
``kubectl label`` patch against a 50 KB pod therefore copies the root and ``metadata`` dicts and
the labels map, and shares everything else with the input. The consequence for callers: the
result and the input share untouched subtrees, so treat documents as immutable, or deep-copy
before mutating in place. Values that come *from the patch* are always copied into fresh
containers, so the result never aliases the patch (nor one part of itself, e.g. after a JSON
patch ``copy``).

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

Errors: a malformed patch is :class:`~kybernetes.errors.BadRequest` (400); a well-formed patch
that cannot be applied (missing path, failed ``test``, retainKeys contradicted by the patch)
is a 422 ``Invalid`` :class:`~kybernetes.errors.StatusError`, as the API server answers.
"""

from __future__ import annotations

from typing import Any

import orjson

from kybernetes import errors
from kybernetes.api import schema as schema_mod
from kybernetes.api.schema import Schema

__all__ = [
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "create_two_way_merge_patch",
    "strategic_merge_patch_for_kind",
]


def _unprocessable(message: str) -> errors.StatusError:
    return errors.StatusError(message, code=422, reason="Invalid")


# --- JSON value helpers --------------------------------------------------------------------


def _deepcopy(value: Any) -> Any:
    """Copy a JSON value (dicts, lists, scalars); far cheaper than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: _deepcopy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_deepcopy(v) for v in value]
    return value


def _json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but, unlike Python, ``true != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_json_equal(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_json_equal, a, b))
    return type(a) is type(b) and a == b


def _hkey(value: Any) -> Any:
    """A hashable identity for a JSON value with JSON equality (for merge keys and sets).

    Numbers share a tag so ``80`` and ``80.0`` match (Go decodes both to float64) while
    ``true`` does not match ``1``.
    """
    if isinstance(value, bool):
        return ("b", value)
    if isinstance(value, int | float):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if value is None:
        return ("0", None)
    return ("j", orjson.dumps(value, option=orjson.OPT_SORT_KEYS))


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"


# =========================================================================================
# RFC 6902 JSON patch
# =========================================================================================

_JSON_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


def _parse_pointer(pointer: Any, what: str) -> list[str]:
    """RFC 6901: ``""`` is the whole document; otherwise ``/``-separated, ``~1`` = ``/``, ``~0`` = ``~``."""
    if not isinstance(pointer, str):
        raise errors.BadRequest(f"json patch: {what} must be a string, got {pointer!r}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise errors.BadRequest(f"json patch: {what} {pointer!r} must start with '/'")
    tokens = pointer[1:].split("/")
    for tok in tokens:
        # A "~" must be followed by 0 or 1; anything else is not a valid pointer.
        i = tok.find("~")
        while i != -1:
            if i + 1 >= len(tok) or tok[i + 1] not in "01":
                raise errors.BadRequest(f"json patch: invalid escape in {what} {pointer!r}")
            i = tok.find("~", i + 2)
    # Order matters: "~01" must decode to "~1", not "/".
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _array_index(token: str, length: int, *, allow_end: bool, pointer: str) -> int:
    """Decode an array index token; ``allow_end`` admits ``len`` and ``-`` (only ``add`` may)."""
    if token == "-":
        if allow_end:
            return length
        raise _unprocessable(f"json patch: '-' does not name an existing element in {pointer!r}")
    # RFC 6901 array indices are "0" or digits without a leading zero.
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise _unprocessable(f"json patch: invalid array index {token!r} in {pointer!r}")
    idx = int(token)
    if idx > length or (idx == length and not allow_end):
        raise _unprocessable(f"json patch: array index {idx} out of bounds in {pointer!r}")
    return idx


def _get(doc: Any, tokens: list[str], pointer: str) -> Any:
    cur = doc
    for tok in tokens:
        if isinstance(cur, dict):
            if tok not in cur:
                raise _unprocessable(f"json patch: path {pointer!r} does not exist")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_array_index(tok, len(cur), allow_end=False, pointer=pointer)]
        else:
            raise _unprocessable(f"json patch: path {pointer!r} does not exist")
    return cur


def _copy_to_parent(root: Any, tokens: list[str], pointer: str) -> tuple[Any, Any]:
    """Shallow-copy every container from the root to the parent of ``tokens``.

    Returns ``(new_root, parent)``; ``parent`` is a fresh copy owned by the new root, so the
    caller may mutate it without touching the input document.
    """
    if not isinstance(root, dict | list):
        raise _unprocessable(f"json patch: path {pointer!r} does not exist")
    new_root: Any = dict(root) if isinstance(root, dict) else list(root)
    cur = new_root
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise _unprocessable(f"json patch: path {pointer!r} does not exist")
            key: Any = tok
        else:
            key = _array_index(tok, len(cur), allow_end=False, pointer=pointer)
        child = cur[key]
        if isinstance(child, dict):
            child = dict(child)
        elif isinstance(child, list):
            child = list(child)
        else:
            raise _unprocessable(f"json patch: path {pointer!r} does not exist")
        cur[key] = child
        cur = child
    return new_root, cur


def _op_add(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    root, parent = _copy_to_parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    else:
        parent.insert(_array_index(last, len(parent), allow_end=True, pointer=pointer), value)
    return root


def _op_remove(doc: Any, tokens: list[str], pointer: str) -> tuple[Any, Any]:
    """Remove the value at ``tokens``; returns ``(new_doc, removed_value)``."""
    if not tokens:
        raise _unprocessable("json patch: cannot remove the whole document")
    root, parent = _copy_to_parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"json patch: cannot remove {pointer!r}: path does not exist")
        return root, parent.pop(last)
    return root, parent.pop(_array_index(last, len(parent), allow_end=False, pointer=pointer))


def _op_replace(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    root, parent = _copy_to_parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise _unprocessable(f"json patch: cannot replace {pointer!r}: path does not exist")
        parent[last] = value
    else:
        parent[_array_index(last, len(parent), allow_end=False, pointer=pointer)] = value
    return root


def _validate_json_patch(ops: Any) -> list[tuple[str, list[str], str, Any]]:
    """Check the whole patch's shape before applying anything: malformed patches are 400s."""
    if not isinstance(ops, list):
        raise errors.BadRequest("json patch: the patch must be a JSON array of operations")
    parsed: list[tuple[str, list[str], str, Any]] = []
    for i, op in enumerate(ops):
        if not isinstance(op, dict):
            raise errors.BadRequest(f"json patch: operation {i} is not a JSON object")
        name = op.get("op")
        if not isinstance(name, str) or not name:
            raise errors.BadRequest(f"json patch: operation {i} is missing 'op'")
        if name not in _JSON_PATCH_OPS:
            raise errors.BadRequest(f"json patch: operation {i} has unknown op {name!r}")
        if "path" not in op:
            raise errors.BadRequest(f"json patch: operation {i} ({name}) is missing 'path'")
        path = op["path"]
        tokens = _parse_pointer(path, "path")
        extra: Any = None
        if name in ("add", "replace", "test"):
            if "value" not in op:
                raise errors.BadRequest(f"json patch: operation {i} ({name}) is missing 'value'")
            extra = op["value"]
        elif name in ("move", "copy"):
            if "from" not in op:
                raise errors.BadRequest(f"json patch: operation {i} ({name}) is missing 'from'")
            extra = (_parse_pointer(op["from"], "from"), op["from"])
        parsed.append((name, tokens, path, extra))
    return parsed


def apply_json_patch(doc: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch to ``doc`` and return the new document.

    The operations apply in order and atomically: on any failure an error is raised and the
    input is untouched (it is never mutated anyway).
    """
    parsed = _validate_json_patch(ops)
    for name, tokens, path, extra in parsed:
        if name == "add":
            doc = _op_add(doc, tokens, _deepcopy(extra), path)
        elif name == "remove":
            doc, _ = _op_remove(doc, tokens, path)
        elif name == "replace":
            doc = _op_replace(doc, tokens, _deepcopy(extra), path)
        elif name == "test":
            if not _json_equal(_get(doc, tokens, path), extra):
                raise _unprocessable(f"json patch: test operation for path {path!r} failed")
        else:  # move / copy
            from_tokens, from_path = extra
            if name == "move":
                if from_tokens == tokens:
                    continue
                if tokens[: len(from_tokens)] == from_tokens:
                    raise _unprocessable(
                        f"json patch: cannot move {from_path!r} into its own child {path!r}"
                    )
                doc, value = _op_remove(doc, from_tokens, from_path)
            else:
                # A copy must not alias its source: later in-place edits would hit both.
                value = _deepcopy(_get(doc, from_tokens, from_path))
            doc = _op_add(doc, tokens, value, path)
    return doc


# =========================================================================================
# RFC 7386 JSON merge patch
# =========================================================================================


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, ``null`` deletes, all else replaces."""
    if not isinstance(patch, dict):
        return _deepcopy(patch)
    out: dict[str, Any] = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


# =========================================================================================
# Kubernetes strategic merge patch
# =========================================================================================

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
        raise errors.BadRequest(f"strategic merge patch: {key} must be a list, got {_kind(value)}")
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
                raise _unprocessable(
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
            gone = {_hkey(v) for v in to_delete}
            out[field] = [v for v in current if _hkey(v) not in gone]

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
    if orig is _DROP or _kind(orig) != _kind(value):
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
            gone = _hkey(item[key])
            orig = [o for o in orig if not (key in o and _hkey(o[key]) == gone)]
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
            position.setdefault(_hkey(item[key]), i)
    for item in plain:
        if key not in item:
            raise errors.BadRequest(
                f"strategic merge patch: list element does not contain the merge key {key!r}: {item!r}"
            )
        ident = _hkey(item[key])
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
            out.append(_deepcopy(item))
        else:
            out.append(item)
    return out


def _element_kind(*lists: list[Any]) -> str:
    kinds = {_kind(v) for lst in lists for v in lst}
    if "array" in kinds:
        raise _unprocessable("strategic merge patch: lists of lists are not supported")
    if len(kinds) > 1:
        raise errors.BadRequest("strategic merge patch: list elements are not all of the same type")
    return kinds.pop() if kinds else "scalar"


def _dedupe(items: list[Any]) -> list[Any]:
    seen: set[Any] = set()
    out = []
    for v in items:
        h = _hkey(v)
        if h not in seen:
            seen.add(h)
            out.append(v)
    return out


def _ident(item: Any, merge_key: str | None) -> Any:
    if merge_key is None:
        return _hkey(item)
    return _hkey(item.get(merge_key)) if isinstance(item, dict) else _hkey(None)


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
            patch[key] = _deepcopy(new)
            continue
        old = original[key]
        if _kind(old) != _kind(new):
            patch[key] = _deepcopy(new)
            continue
        fs = _child(schema, key)
        strategies = fs.patch_strategy if fs is not None else []
        if isinstance(new, dict):
            if "replace" in strategies:
                if not _json_equal(old, new):
                    patch[key] = _deepcopy(new)
                continue
            sub = _diff_maps(old, new, fs, retain_keys="retainKeys" in strategies)
            if sub:
                patch[key] = sub
        elif isinstance(new, list):
            if "merge" in strategies and fs is not None:
                _diff_merging_list(patch, key, old, new, fs, "retainKeys" in strategies)
            elif not _json_equal(old, new):
                patch[key] = _deepcopy(new)
        elif not _json_equal(old, new):
            patch[key] = new
    if retain_keys and patch:
        patch[_RETAIN_KEYS] = sorted(modified)
    return patch


def _diff_merging_list(
    patch: dict[str, Any], key: str, old: list[Any], new: list[Any], fs: Schema, retain_keys: bool
) -> None:
    kinds = {_kind(v) for v in old + new}
    merge_key = fs.patch_merge_key
    if kinds == {"object"} and merge_key:
        old_by = {_hkey(o.get(merge_key)): o for o in old}
        new_idents = {_hkey(n.get(merge_key)) for n in new}
        changes: list[Any] = []
        for item in new:
            before = old_by.get(_hkey(item.get(merge_key)))
            if before is None:
                changes.append(_deepcopy(item))
                continue
            sub = _diff_maps(before, item, fs.items, retain_keys=retain_keys)
            if sub:
                sub[merge_key] = item.get(merge_key)
                changes.append(sub)
        deletions = [
            {merge_key: o.get(merge_key), _DIRECTIVE: "delete"}
            for o in old
            if _hkey(o.get(merge_key)) not in new_idents
        ]
        if changes or deletions:
            patch[key] = changes + deletions
        if changes or deletions or not _json_equal(old, new):
            # A pure reordering is sent as the order directive alone.
            patch[_SET_ORDER + key] = [{merge_key: n.get(merge_key)} for n in new]
    elif "object" not in kinds and "array" not in kinds:
        old_set = {_hkey(v) for v in old}
        new_set = {_hkey(v) for v in new}
        added = [v for v in new if _hkey(v) not in old_set]
        removed = [v for v in old if _hkey(v) not in new_set]
        if added:
            patch[key] = added
        if removed:
            patch[_DELETE_PRIMITIVE + key] = removed
        if added or removed or not _json_equal(old, new):
            patch[_SET_ORDER + key] = list(new)
    elif not _json_equal(old, new):
        patch[key] = _deepcopy(new)
