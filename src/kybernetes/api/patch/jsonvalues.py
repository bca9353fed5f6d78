"""JSON value helpers shared by the patch formats: copy, JSON equality, hashable identity, kind.

JSON semantics, not Python's: ``1 == 1.0`` but ``true != 1``, as Go decodes numbers to float64.
"""

from __future__ import annotations

from typing import Any

import orjson

from kybernetes import errors


def unprocessable(message: str) -> errors.StatusError:
    """The 422 ``Invalid`` error of a well-formed patch that cannot be applied."""
    return errors.StatusError(message, code=422, reason="Invalid")


def deepcopy_json(value: Any) -> Any:
    """Copy a JSON value (dicts, lists, scalars); far cheaper than ``copy.deepcopy``."""
    if isinstance(value, dict):
        return {k: deepcopy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [deepcopy_json(v) for v in value]
    return value


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: ``1 == 1.0`` but, unlike Python, ``true != 1``."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(json_equal(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(json_equal, a, b))
    return type(a) is type(b) and a == b


def hashable_key(value: Any) -> Any:
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


def json_kind(value: Any) -> str:
    """``object``, ``array`` or ``scalar``: the kind of a JSON value, as the error texts name it."""
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return "scalar"
