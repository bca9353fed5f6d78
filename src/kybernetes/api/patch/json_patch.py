"""RFC 6902 JSON patch (``application/json-patch+json``): operations addressed by RFC 6901 pointers.

Copies along the patched paths only (see :mod:`kybernetes.api.patch`); a malformed patch is a 400,
a well-formed one that cannot apply (missing path, failed ``test``) a 422 ``Invalid``.

Bounded as kube-apiserver bounds it, so that a small body cannot make a huge document: at most
:data:`MAX_OPERATIONS` operations (a 413), and ``copy`` operations may add at most
:data:`MAX_COPY_BYTES` of JSON in all (a 422: each ``copy`` of a subtree into itself doubles the
document, so thirty of them in a 3 KB body would build gigabytes).
"""

from __future__ import annotations

from typing import Any

import orjson

from kybernetes import errors
from kybernetes.api.patch.jsonvalues import deepcopy_json, json_equal, unprocessable

MAX_OPERATIONS = 10_000
"""kube-apiserver's ``maxJSONPatchOperations`` (endpoints/handlers/patch.go)."""
MAX_COPY_BYTES = 3 * 1024 * 1024
"""kube-apiserver's default ``JSONPatchMaxCopyBytes`` (json-patch's ``AccumulatedCopySizeLimit``): the
JSON bytes all ``copy`` operations of one patch may add."""

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
        raise unprocessable(f"json patch: '-' does not name an existing element in {pointer!r}")
    # RFC 6901 array indices are "0" or digits without a leading zero.
    if not token.isdigit() or not token.isascii() or (len(token) > 1 and token[0] == "0"):
        raise unprocessable(f"json patch: invalid array index {token!r} in {pointer!r}")
    idx = int(token)
    if idx > length or (idx == length and not allow_end):
        raise unprocessable(f"json patch: array index {idx} out of bounds in {pointer!r}")
    return idx


def _get(doc: Any, tokens: list[str], pointer: str) -> Any:
    cur = doc
    for tok in tokens:
        if isinstance(cur, dict):
            if tok not in cur:
                raise unprocessable(f"json patch: path {pointer!r} does not exist")
            cur = cur[tok]
        elif isinstance(cur, list):
            cur = cur[_array_index(tok, len(cur), allow_end=False, pointer=pointer)]
        else:
            raise unprocessable(f"json patch: path {pointer!r} does not exist")
    return cur


def _copy_to_parent(root: Any, tokens: list[str], pointer: str) -> tuple[Any, Any]:
    """Shallow-copy every container from the root to the parent of ``tokens``.

    Returns ``(new_root, parent)``; ``parent`` is a fresh copy owned by the new root, so the
    caller may mutate it without touching the input document.
    """
    if not isinstance(root, dict | list):
        raise unprocessable(f"json patch: path {pointer!r} does not exist")
    new_root: Any = dict(root) if isinstance(root, dict) else list(root)
    cur = new_root
    for tok in tokens[:-1]:
        if isinstance(cur, dict):
            if tok not in cur:
                raise unprocessable(f"json patch: path {pointer!r} does not exist")
            key: Any = tok
        else:
            key = _array_index(tok, len(cur), allow_end=False, pointer=pointer)
        child = cur[key]
        if isinstance(child, dict):
            child = dict(child)
        elif isinstance(child, list):
            child = list(child)
        else:
            raise unprocessable(f"json patch: path {pointer!r} does not exist")
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
        raise unprocessable("json patch: cannot remove the whole document")
    root, parent = _copy_to_parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise unprocessable(f"json patch: cannot remove {pointer!r}: path does not exist")
        return root, parent.pop(last)
    return root, parent.pop(_array_index(last, len(parent), allow_end=False, pointer=pointer))


def _op_replace(doc: Any, tokens: list[str], value: Any, pointer: str) -> Any:
    if not tokens:
        return value
    root, parent = _copy_to_parent(doc, tokens, pointer)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise unprocessable(f"json patch: cannot replace {pointer!r}: path does not exist")
        parent[last] = value
    else:
        parent[_array_index(last, len(parent), allow_end=False, pointer=pointer)] = value
    return root


def _validate_json_patch(ops: Any) -> list[tuple[str, list[str], str, Any]]:
    """Check the whole patch's shape before applying anything: malformed patches are 400s."""
    if not isinstance(ops, list):
        raise errors.BadRequest("json patch: the patch must be a JSON array of operations")
    if len(ops) > MAX_OPERATIONS:
        raise errors.RequestEntityTooLarge(
            f"The allowed maximum operations in a JSON patch is {MAX_OPERATIONS}, got {len(ops)}")
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
    copied = 0
    for name, tokens, path, extra in parsed:
        if name == "add":
            doc = _op_add(doc, tokens, deepcopy_json(extra), path)
        elif name == "remove":
            doc, _ = _op_remove(doc, tokens, path)
        elif name == "replace":
            doc = _op_replace(doc, tokens, deepcopy_json(extra), path)
        elif name == "test":
            if not json_equal(_get(doc, tokens, path), extra):
                raise unprocessable(f"json patch: test operation for path {path!r} failed")
        else:  # move / copy
            from_tokens, from_path = extra
            if name == "move":
                if from_tokens == tokens:
                    continue
                if tokens[: len(from_tokens)] == from_tokens:
                    raise unprocessable(
                        f"json patch: cannot move {from_path!r} into its own child {path!r}"
                    )
                doc, value = _op_remove(doc, from_tokens, from_path)
            else:
                source = _get(doc, from_tokens, from_path)
                copied += len(orjson.dumps(source))
                if copied > MAX_COPY_BYTES:
                    raise unprocessable(f"Unable to complete the copy, the accumulated size increase of copy is "
                                        f"{copied}, exceeding the limit {MAX_COPY_BYTES}")
                # A copy must not alias its source: later in-place edits would hit both.
                value = deepcopy_json(source)
            doc = _op_add(doc, tokens, value, path)
    return doc


__all__ = [
    "MAX_COPY_BYTES",
    "MAX_OPERATIONS",
    "apply_json_patch",
]
