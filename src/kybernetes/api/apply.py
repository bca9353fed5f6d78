"""Server-side apply and ``metadata.managedFields``: kybernetes' structured-merge-diff.

Every field of an object may be *owned* by one or more field managers. Ownership is recorded
in ``metadata.managedFields``, one entry per (manager, operation, subresource), plus the
apiVersion for ``Update`` entries, each holding a :class:`~kybernetes.api.fieldset.FieldSet`
in ``fieldsV1`` form. Two write paths change it:

* :func:`apply` (PATCH ``application/apply-patch+yaml``). The applied configuration is merged
  into the live object following the schema's merge semantics (granular maps merge per key,
  map-type lists merge per item key, set-type lists union, atomic values are replaced). The
  applier then owns exactly the fields of its configuration. Fields it owned last time but no
  longer mentions are removed from the object, unless somebody else (or the new
  configuration) still owns them. Changing a field owned by another manager is a conflict
  (409) unless ``force``, which moves ownership to the applier. Setting a field to the value
  it already has is not a change: the field becomes shared.
* :func:`update_managed_fields` (create, update, every other patch). The fields that were
  added or changed become the writer's, and are taken away from everybody else; removed
  fields are taken away from everybody.

Both work on a pre-compiled view of :class:`~kybernetes.api.schema.Schema` (:class:`~kybernetes.api.merge_schema.MergeNode`),
because ``Schema.child`` resolves ``$ref`` and builds a new wrapper on every call; the compiled
tree is built lazily and cached per schema root, so a write touches each schema node once in
the life of the process. The walks are linear in the size of the parts of the objects that
differ: equal subtrees are skipped with one C-level ``==``, map-list items are matched through
dicts, and in the update path a manager's ``fieldsV1`` is only decoded when the change
touches it.

Where the schema says nothing (``schema=None``, free-form fields, preserve-unknown-fields),
structured-merge-diff's "deduced" rules apply: objects merge per key, lists are atomic.

Fields never owned (as in Kubernetes): ``apiVersion``, ``kind``, the ``metadata`` node itself
and ``metadata.{name, namespace, uid, resourceVersion, generation, creationTimestamp,
selfLink, managedFields}``; plus the caller's ``ignore_top_level`` fields (``status`` for the
main resource; the status subresource passes the fields *it* may not change).

This module holds the two write paths. What they build on: the compiled schema view in
:mod:`kybernetes.api.merge_schema`, the walks over objects (field sets, comparison, merge,
removal) in :mod:`kybernetes.api.structured_merge`, and the ``managedFields`` entries (their
decoding, validation and encoding) in :mod:`kybernetes.api.managed_fields`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kybernetes import errors
from kybernetes.api.fieldset import (
    FieldSet,
    Path,
    path_string,
)
from kybernetes.api.managed_fields import (
    BEFORE_FIRST_APPLY,
    METADATA_PE,
    UNOWNED_META,
    UNOWNED_TOP,
    ManagedFieldsEntry,
    Now,
    decode_strict,
    decode_trusted,
    encode_entries,
    is_reset,
    store_managed_fields,
)
from kybernetes.api.merge_schema import STRUCT, MergeNode, compile_schema
from kybernetes.api.schema import Schema
from kybernetes.api.structured_merge import (
    FieldDiff,
    added_v1,
    collect_fields,
    compare_into,
    deep_copy,
    ensure_named,
    merge_config,
    remove_fields,
)
from kybernetes.api.timeutil import now_rfc3339


def _strip(obj: dict[str, Any] | None, ignore: Iterable[str]) -> dict[str, Any]:
    """A shallow view of ``obj`` without the fields nobody owns (see the module docstring)."""
    if not obj:
        return {}
    skip = UNOWNED_TOP.union(ignore)
    out = {k: v for k, v in obj.items() if k not in skip}
    md = out.get("metadata")
    if isinstance(md, dict):
        out["metadata"] = {k: v for k, v in md.items() if k not in UNOWNED_META}
    return out


def _without_metadata_node(fs: FieldSet) -> FieldSet:
    if METADATA_PE in fs.members:
        fs = fs.copy()
        fs.members.discard(METADATA_PE)
    return fs


def _create_baseline(new: dict[str, Any], root: MergeNode) -> dict[str, Any]:
    """What a create is compared against.

    Kubernetes compares a create of a built-in kind with the Go zero value of the type, in
    which non-pointer structs (``spec``, ``status``) already exist as ``{}``; so ``f:spec``
    gets no ``"."`` there. Custom resources start from nothing, and their ``f:spec`` does.
    """
    if root.schema is None or not root.schema.raw.get("x-kubernetes-group-version-kind"):
        return {}
    out: dict[str, Any] = {}
    for k, v in new.items():
        if isinstance(v, dict):
            c = root.child(k)
            if c.kind == STRUCT and c.prop_names:
                out[k] = {}
    return out


def _changes(old: dict[str, Any] | None, new: dict[str, Any], root: MergeNode,
             ignore: Iterable[str]) -> FieldDiff:
    a = _strip(old, ignore) if old is not None else _create_baseline(new, root)
    b = _strip(new, ignore)
    out = FieldDiff()
    if a != b:
        compare_into(out, a, b, root)
        out.added = _without_metadata_node(out.added)
        out.removed = _without_metadata_node(out.removed)
    return out


def _created_fields_v1(new: dict[str, Any], root: MergeNode, ignore: Iterable[str]) -> dict[str, Any]:
    """``(added | modified)`` of :func:`_changes` for a create, without the metadata node, in
    ``fieldsV1`` form (what the FieldSet route encodes to, built directly)."""
    fields = added_v1(_create_baseline(new, root), _strip(new, ignore), root)
    md = fields.get(METADATA_PE)
    if md is not None:
        inner = {k: v for k, v in md.items() if k != "."}
        if inner:
            fields[METADATA_PE] = inner
        else:
            del fields[METADATA_PE]
    return fields


def update_managed_fields(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    schema: Schema | None,
    *,
    operation: str = "Update",
    api_version: str,
    subresource: str = "",
    ignore_top_level: tuple[str, ...] = ("status",),
    now: Now | None = None,
    known: FieldDiff | None = None,
) -> None:
    """Record a non-apply write (create: ``old`` is None; update; patch) in ``new``'s managedFields.

    Fields that were added or changed go to ``manager`` (one entry per manager, operation,
    apiVersion and subresource) and are taken from everybody else; removed fields are taken
    from everybody. A client may send managedFields: ``[]`` or ``[{}]`` clears them, a valid
    list replaces them (malformed: :class:`errors.BadRequest`), absence keeps the stored ones.
    Subresource writes always keep the stored ones. Mutates ``new``.

    ``known``: what the write changed, when the caller made the change itself and knows it
    exactly (a pod's binding sets spec.nodeName and nothing else it owns); the comparison of
    ``old`` and ``new`` is skipped. It must be what that comparison would find.
    """
    md = new.get("metadata")
    sent = md.get("managedFields") if isinstance(md, dict) else None
    stored = (old.get("metadata") or {}).get("managedFields") if old is not None else None
    if subresource or sent is None or (stored is not None and sent == stored):
        entries = decode_trusted(stored)
    elif is_reset(sent):
        entries = []
    else:
        entries = decode_strict(sent)
        if not entries:
            entries = decode_trusted(stored)

    if old is None and known is None and not entries:
        # A create with no managedFields of its own: one entry, the writer's, holding every
        # field compare would find added; built in encoded form in one walk.
        fields = _created_fields_v1(new, compile_schema(schema), ignore_top_level)
        if fields:
            created = ManagedFieldsEntry(manager, operation, api_version, subresource, (now or now_rfc3339)())
            created.set_fields_v1(fields)
            entries.append(created)
        store_managed_fields(new, encode_entries(entries))
        return
    diff = known if known is not None else _changes(old, new, compile_schema(schema), ignore_top_level)
    changed = diff.added.union(diff.modified)
    gone = changed.union(diff.removed)
    if gone:
        for e in entries:
            e.subtract(gone)
    if changed:
        ident = (manager, operation, "" if operation == "Apply" else api_version, subresource)
        mine = next((e for e in entries if e.ident == ident), None)
        if mine is None:
            mine = ManagedFieldsEntry(manager, operation, api_version, subresource)
            entries.append(mine)
        mine.add(changed)
        mine.time = (now or now_rfc3339)()
    store_managed_fields(new, encode_entries(entries))


def _conflict_error(conflicts: list[tuple[ManagedFieldsEntry, FieldSet]]) -> errors.Conflict:
    found: list[tuple[str, Path]] = []
    for entry, fs in sorted(conflicts, key=lambda c: c[0].describe()):
        found.extend((entry.describe(), p) for p in fs)
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {who}", "field": path_string(p)}
              for who, p in found]
    if len(found) == 1:
        who, p = found[0]
        message = f"Apply failed with 1 conflict: conflict with {who}: {path_string(p)}"
    else:
        lines: list[str] = []
        last = None
        for who, p in found:
            if who != last:
                lines.append(f"conflicts with {who}:")
                last = who
            lines.append(f"- {path_string(p)}")
        message = f"Apply failed with {len(found)} conflicts: " + "\n".join(lines)
    return errors.Conflict(message, details={"causes": causes})


def apply(
    live: dict[str, Any] | None,
    applied: dict[str, Any],
    manager: str,
    schema: Schema | None,
    *,
    force: bool,
    api_version: str,
    ignore_top_level: tuple[str, ...] = ("status",),
    subresource: str = "",
    now: Now | None = None,
) -> dict[str, Any]:
    """Server-side apply of ``applied`` by ``manager`` onto ``live`` (None: create).

    Returns a new object (inputs are not modified) with managedFields updated. Raises
    :class:`errors.Conflict` (409, causes per field) when the configuration changes fields
    other managers own and ``force`` is false; :class:`errors.BadRequest` for a configuration
    that cannot be applied (managedFields set, duplicate or keyless map-list items).
    Fields in ``ignore_top_level`` are neither taken from the configuration nor owned.
    """
    _check_applied(applied, manager)
    clock = now or now_rfc3339
    root = compile_schema(schema)
    cfg, config_v1 = _configuration(applied, ignore_top_level, root)
    merged, entries = _live_copy(live, root, ignore_top_level, api_version, clock)
    merged = merge_config(merged, cfg, root)

    ident = (manager, "Apply", "", subresource)
    mine = next((e for e in entries if e.ident == ident), None)
    others = [e for e in entries if e is not mine]
    # Comparing encoded forms is cheaper than decoding the stored set.
    set_changed = mine is None or mine.fields_v1() != config_v1
    if mine is not None and set_changed:
        _remove_dropped_fields(merged, mine, others, config_v1, root)

    # Conflicts and lost ownership come from what actually changed in the object.
    diff = _changes(live, merged, root, ignore_top_level) if live is not None else FieldDiff()
    _take_changed_fields(diff, others, force)

    if mine is None:
        mine = ManagedFieldsEntry(manager, "Apply", api_version, subresource)
        entries.append(mine)
    object_changed = bool(diff.added or diff.modified or diff.removed) or live is None
    if object_changed or set_changed or mine.api_version != api_version:
        mine.set_fields_v1(config_v1)
        mine.api_version = api_version
        mine.time = clock()
    store_managed_fields(merged, encode_entries(entries))
    return merged


def _check_applied(applied: Any, manager: str) -> None:
    """The 400s of a configuration that cannot be applied at all."""
    if not manager:
        raise errors.BadRequest("PATCH, application/apply-patch+yaml requires fieldManager to be set")
    if not isinstance(applied, dict):
        raise errors.BadRequest("the applied configuration must be an object")
    amd = applied.get("metadata")
    if isinstance(amd, dict) and amd.get("managedFields"):
        raise errors.BadRequest("metadata.managedFields must be nil")


def _configuration(applied: dict[str, Any], ignore_top_level: tuple[str, ...],
                   root: MergeNode) -> tuple[dict[str, Any], dict[str, Any]]:
    """The configuration to merge (a shallow view of ``applied``) and the fields it sets (fieldsV1)."""
    # Shallow views only: merge_config never writes into cfg.
    amd = applied.get("metadata")
    cfg = {k: v for k, v in applied.items() if k not in ignore_top_level}
    if isinstance(amd, dict) and "managedFields" in amd:
        cfg["metadata"] = {k: v for k, v in amd.items() if k != "managedFields"}
    config_v1 = collect_fields(_strip(cfg, ignore_top_level), root, True, ())
    if config_v1.get(METADATA_PE) == {}:
        # A non-object metadata would make the node itself a leaf; it is never owned.
        del config_v1[METADATA_PE]
    return cfg, config_v1


def _live_copy(live: dict[str, Any] | None, root: MergeNode, ignore_top_level: tuple[str, ...],
               api_version: str, clock: Now) -> tuple[dict[str, Any], list[ManagedFieldsEntry]]:
    """A copy of ``live`` without its managedFields (``{}`` on create), and its managedFields entries."""
    stored: Any = None
    merged: dict[str, Any] = {}
    if live is not None:
        # Copy live without its managedFields: they are often as large as the rest.
        view = dict(live)
        lmd = live.get("metadata")
        if isinstance(lmd, dict):
            stored = lmd.get("managedFields")
            view["metadata"] = {k: v for k, v in lmd.items() if k != "managedFields"}
        merged = deep_copy(view)
    entries = decode_trusted(stored)
    if live is not None and not entries:
        # An object nobody owns anything in yet: its current fields belong to a placeholder
        # updater, so the first apply conflicts on them like on any other manager's fields.
        seed = _changes(None, live, root, ignore_top_level).added
        if seed:
            entries.append(ManagedFieldsEntry(BEFORE_FIRST_APPLY, "Update", api_version, fields=seed, time=clock()))
    return merged, entries


def _remove_dropped_fields(merged: dict[str, Any], mine: ManagedFieldsEntry, others: list[ManagedFieldsEntry],
                           config_v1: dict[str, Any], root: MergeNode) -> None:
    """Remove from ``merged`` the fields this manager applied before and dropped now.

    Except where the new configuration or another manager still owns them.
    """
    last = mine.fields
    config_set = FieldSet.from_fields_v1(config_v1, trusted=True)
    if not last.difference(config_set):
        return
    managed = config_set
    for e in others:
        managed = managed.union(e.fields)
    to_remove = ensure_named(last, root).difference(ensure_named(managed, root))
    # metadata is a named field too, but never ours to delete (the name lives there).
    to_remove = _without_metadata_node(to_remove)
    if to_remove:
        remove_fields(merged, to_remove, root)


def _take_changed_fields(diff: FieldDiff, others: list[ManagedFieldsEntry], force: bool) -> None:
    """Take the changed and removed fields away from the other managers.

    Changing a field another manager owns is a conflict (409) unless ``force``.
    """
    changed = diff.added.union(diff.modified)
    conflicts: list[tuple[ManagedFieldsEntry, FieldSet]] = []
    if changed:
        for e in others:
            if e.touches(changed):
                conflicts.append((e, e.intersection(changed)))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    gone = changed.union(diff.removed)
    if gone:
        for e in others:
            e.subtract(gone)


__all__ = [
    "apply",
    "update_managed_fields",
]
