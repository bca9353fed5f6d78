"""Defaulting of a custom object: :func:`default_custom_object` fills ``default`` values where a
field is absent (or null but not nullable), top down, so defaults inside defaulted objects apply
too.
"""

from __future__ import annotations

import copy
from typing import Any

from kybernetes.api.structural.values import as_dict


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
        props = as_dict(schema.get("properties"))
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


__all__ = [
    "default_custom_object",
]
