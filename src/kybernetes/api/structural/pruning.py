"""Pruning of a custom object: :func:`prune_custom_object` drops fields the schema does not declare
(unless a node says ``x-kubernetes-preserve-unknown-fields``) and returns the dropped paths: the
API server turns them into ``unknown field "spec.foo"`` errors under ``fieldValidation=Strict`` and
into warnings under ``Warn``.
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.structural.values import ROOT_RESERVED, Obj, as_dict
from kybernetes.api.validation import Path


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
        props = as_dict(s.get("properties"))
        additional = s.get("additionalProperties")
        for k in list(value):
            if keep_type_meta and k in ROOT_RESERVED:
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


__all__ = [
    "prune_custom_object",
]
