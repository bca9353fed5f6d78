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

Errors: a malformed patch is :class:`~kybernetes.errors.BadRequest` (400); a well-formed patch
that cannot be applied (missing path, failed ``test``, retainKeys contradicted by the patch)
is a 422 ``Invalid`` :class:`~kybernetes.errors.StatusError`, as the API server answers.

The package: :mod:`.json_patch`, :mod:`.merge_patch` and :mod:`.strategic`, one module per format,
over the JSON value helpers of :mod:`.jsonvalues`. This module is the public surface callers use
(``from kybernetes.api import patch``).
"""

from __future__ import annotations

from kybernetes.api.patch.json_patch import apply_json_patch
from kybernetes.api.patch.merge_patch import apply_merge_patch
from kybernetes.api.patch.strategic import (
    apply_strategic_merge_patch,
    create_two_way_merge_patch,
    strategic_merge_patch_for_kind,
)

__all__ = [
    "apply_json_patch",
    "apply_merge_patch",
    "apply_strategic_merge_patch",
    "create_two_way_merge_patch",
    "strategic_merge_patch_for_kind",
]
