"""Template hashes and ControllerRevision history (``pkg/controller/history``, ``ComputeHash``).

Two hashes, both FNV-32a rendered with apimachinery's ``SafeEncodeString`` (the decimal digits of
the 32-bit value mapped onto the vowel-free alphabet ``bcdfghjklmnpqrstvwxz2456789``, so a hash
never spells a word and never looks like a number):

* :func:`template_hash` - a Deployment's ``pod-template-hash``: the pod template (canonical JSON,
  keys sorted, with any ``pod-template-hash`` label removed) followed by the collision count.
  Kubernetes hashes Go's ``spew`` dump of the struct instead; the values differ from a real
  cluster's, but they have the same properties (stable, 10 characters at most, changing with the
  collision count) and nothing outside the cluster compares them.
* :func:`revision_hash` - a ControllerRevision's hash over its ``data`` (StatefulSets and DaemonSets).

A revision's data is the strategic-merge patch that turns any object of the kind back into this
template: ``{"spec": {"template": {..., "$patch": "replace"}}}`` (``getPatch`` in both
controllers). Its name is ``<owner>-<hash>``, and equal data means an equal revision.
"""

from __future__ import annotations

import copy
import json
import struct
from typing import Any

from kybernetes import errors
from kybernetes.api.obj import Obj
from kybernetes.client.rest import Client
from kybernetes.controllers.podutil import controller_ref, int_field, meta, owner_reference

SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
POD_TEMPLATE_HASH = "pod-template-hash"
CONTROLLER_REVISION_HASH = "controller-revision-hash"
_FNV32_OFFSET = 0x811C9DC5
_FNV32_PRIME = 0x01000193


def fnv32a(data: bytes, h: int = _FNV32_OFFSET) -> int:
    for b in data:
        h ^= b
        h = (h * _FNV32_PRIME) & 0xFFFFFFFF
    return h


def safe_encode(s: str) -> str:
    """``rand.SafeEncodeString``: each character mapped by its byte value onto the safe alphabet."""
    return "".join(SAFE_ALPHABET[ord(c) % len(SAFE_ALPHABET)] for c in s)


def canonical_json(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _with_collision(h: int, data: bytes, collision_count: int | None) -> str:
    h = fnv32a(data, h)
    if collision_count is not None:
        # Go writes the uint32 little-endian into the hasher.
        h = fnv32a(struct.pack("<I", collision_count & 0xFFFFFFFF), h)
    return safe_encode(str(h))


def _semantic(value: Any) -> Any:
    """Drop nulls and empty maps/lists, recursively.

    Go's semantic equality treats nil and empty as equal, and a typed decode forgets
    ``creationTimestamp: null`` - which kubectl sends in every template it writes back (``rollout
    undo``). Comparing and hashing this normal form keeps such a template equal to the original.
    """
    if isinstance(value, dict):
        out = {k: _semantic(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_semantic(v) for v in value]
    return value


def strip_template_hash(template: dict[str, Any]) -> dict[str, Any]:
    """A pod template in normal form without the ``pod-template-hash`` label (``EqualIgnoreHash``)."""
    t = copy.deepcopy(template)
    labels = (t.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(POD_TEMPLATE_HASH, None)
    normal = _semantic(t)
    return normal if isinstance(normal, dict) else {}


def template_hash(template: dict[str, Any], collision_count: int | None = None) -> str:
    return _with_collision(_FNV32_OFFSET, canonical_json(strip_template_hash(template)), collision_count)


def templates_equal_ignoring_hash(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return strip_template_hash(a) == strip_template_hash(b)


def revision_hash(data: Any, collision_count: int | None = None) -> str:
    return _with_collision(_FNV32_OFFSET, canonical_json(data), collision_count)


def template_patch(template: dict[str, Any]) -> dict[str, Any]:
    """The revision data for a pod template (what ``getPatch`` keeps of a StatefulSet/DaemonSet)."""
    t = copy.deepcopy(template)
    t["$patch"] = "replace"
    return {"spec": {"template": t}}


def template_from_revision(revision: Obj) -> dict[str, Any]:
    data = revision.get("data") or {}
    t = copy.deepcopy(((data.get("spec") or {}).get("template")) or {})
    t.pop("$patch", None)
    return t


def revision_number(revision: Obj) -> int:
    return int_field(revision, "revision")


def sort_revisions(revisions: list[Obj]) -> list[Obj]:
    """Oldest first: by revision number, then creation time, then name (``history.SortControllerRevisions``)."""
    return sorted(revisions, key=lambda r: (revision_number(r), meta(r).get("creationTimestamp") or "",
                                            meta(r).get("name") or ""))


def next_revision(revisions: list[Obj]) -> int:
    return max((revision_number(r) for r in revisions), default=0) + 1


def find_equal_revisions(revisions: list[Obj], needle: Obj) -> list[Obj]:
    return [r for r in revisions if r.get("data") == needle.get("data")]


def new_revision(parent: Obj, parent_api_version: str, parent_kind: str, data: dict[str, Any],
                 labels: dict[str, str], number: int, collision_count: int | None) -> Obj:
    """An unsaved ControllerRevision owned by ``parent``; its name and hash label come from the data."""
    h = revision_hash(data, collision_count)
    m = meta(parent)
    return {
        "apiVersion": "apps/v1",
        "kind": "ControllerRevision",
        "metadata": {
            "name": f"{m.get('name')}-{h}",
            "namespace": m.get("namespace", ""),
            "labels": {**labels, CONTROLLER_REVISION_HASH: h},
            "ownerReferences": [owner_reference(parent, parent_api_version, parent_kind)],
        },
        "data": data,
        "revision": number,
    }


async def create_revision(client: Client, parent: Obj, revision: Obj, collision_count: int,
                          parent_api_version: str, parent_kind: str) -> tuple[Obj, int]:
    """Create ``revision``; on a name clash with different data, bump the collision count and retry.

    Returns the stored revision and the collision count finally used. A clash with *equal* data is
    the same revision (e.g. an informer that lagged), so the existing one is returned.
    """
    ns = meta(parent).get("namespace", "")
    labels = {k: v for k, v in (meta(revision).get("labels") or {}).items() if k != CONTROLLER_REVISION_HASH}
    while True:
        candidate = new_revision(parent, parent_api_version, parent_kind, revision["data"], labels,
                                 revision_number(revision), collision_count)
        try:
            created = await client.create("apps/v1", "controllerrevisions", candidate, ns)
            return created, collision_count
        except errors.AlreadyExists:
            existing = await client.get("apps/v1", "controllerrevisions", candidate["metadata"]["name"], ns)
            ref = controller_ref(existing)
            if existing.get("data") == candidate["data"] and ref and ref.get("uid") == meta(parent).get("uid"):
                return existing, collision_count
            collision_count += 1


async def bump_revision(client: Client, revision: Obj, number: int) -> Obj:
    """Give an existing (equal) revision a new number: the history moved back to it."""
    if revision_number(revision) == number:
        return revision
    m = meta(revision)
    return await client.patch("apps/v1", "controllerrevisions", m["name"], {"revision": number},
                              m.get("namespace", ""))


async def truncate_history(client: Client, revisions: list[Obj], live: set[str], limit: int) -> None:
    """Delete the oldest revisions not in ``live`` (names still used) beyond ``limit``."""
    dead = [r for r in sort_revisions(revisions) if meta(r).get("name") not in live]
    for r in dead[: max(0, len(dead) - limit)]:
        try:
            await client.delete("apps/v1", "controllerrevisions", meta(r)["name"], meta(r).get("namespace", ""))
        except errors.NotFound:
            pass
