"""RFC 7386 JSON merge patch (``application/merge-patch+json``): objects merge, ``null`` deletes,
everything else replaces. Copies along the patched paths only (see :mod:`kybernetes.api.patch`).
"""

from __future__ import annotations

from typing import Any

from kybernetes.api.patch.jsonvalues import deepcopy_json


def apply_merge_patch(doc: Any, patch: Any) -> Any:
    """Apply an RFC 7386 merge patch: objects merge recursively, ``null`` deletes, all else replaces."""
    if not isinstance(patch, dict):
        return deepcopy_json(patch)
    out: dict[str, Any] = dict(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


__all__ = [
    "apply_merge_patch",
]
