"""``metadata.managedFields`` entries: decoding (trusted from storage, strict from a client), validation, encoding.

One entry per (manager, operation, subresource), plus the apiVersion for ``Update`` entries,
each holding a :class:`~kybernetes.api.fieldset.FieldSet` in ``fieldsV1`` form. An entry keeps
its field set encoded as stored until a caller needs the whole set, so in the update path a
manager's ``fieldsV1`` is only decoded when the change touches it. Kubernetes caps the number
of ``Update`` entries at :data:`MAX_UPDATE_MANAGERS`; the oldest are folded into
:data:`ANCIENT_CHANGES`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import orjson

from kybernetes import errors
from kybernetes.api.fieldset import (
    FieldSet,
    field_element,
    fields_v1_difference,
    fields_v1_intersection,
    fields_v1_intersects,
    fields_v1_union,
)
from kybernetes.api.timeutil import parse_rfc3339

Now = Callable[[], str]

# Kubernetes caps the number of Update entries; the oldest are folded into this one.
MAX_UPDATE_MANAGERS = 10
ANCIENT_CHANGES = "ancient-changes"
# Owner of everything an object already had when it is first applied without managedFields.
BEFORE_FIRST_APPLY = "before-first-apply"

UNOWNED_META = frozenset(
    {"name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "selfLink",
     "managedFields", "clusterName"}
)
UNOWNED_TOP = frozenset({"apiVersion", "kind"})
METADATA_PE = field_element("metadata")


class ManagedFieldsEntry:
    """One managedFields entry.

    Its field set lives either encoded (``_raw``: canonical fieldsV1, as stored) or decoded
    (``_fs``); whichever is not None is authoritative. Stored entries stay encoded unless a
    caller needs the whole set, so taking a few fields away costs only as much as those fields.
    """

    __slots__ = ("_fs", "_raw", "api_version", "changed", "manager", "operation", "source",
                 "subresource", "time")

    def __init__(
        self,
        manager: str,
        operation: str,
        api_version: str,
        subresource: str = "",
        time: str | None = None,
        fields: FieldSet | None = None,
        source: dict[str, Any] | None = None,
    ) -> None:
        self.manager = manager
        self.operation = operation
        self.api_version = api_version
        self.subresource = subresource
        self.time = time
        self.source = source  # the entry as stored: re-emitted untouched unless changed
        self.changed = source is None
        self._fs = fields
        self._raw: dict[str, Any] | None = None
        if fields is None:
            raw = source.get("fieldsV1") if source is not None else None
            self._raw = raw if isinstance(raw, dict) else {}

    @property
    def ident(self) -> tuple[str, str, str, str]:
        # Apply entries are one per manager whatever the apiVersion (Kubernetes does the same).
        av = "" if self.operation == "Apply" else self.api_version
        return (self.manager, self.operation, av, self.subresource)

    @property
    def fields(self) -> FieldSet:
        if self._fs is None:
            self._fs = FieldSet.from_fields_v1(self._raw or {}, trusted=True)
            self._raw = None
        return self._fs

    def fields_v1(self) -> dict[str, Any]:
        return self._raw if self._raw is not None else self.fields.to_fields_v1()

    def set_fields_v1(self, raw: dict[str, Any]) -> None:
        self._raw, self._fs = raw, None
        self.changed = True

    def empty(self) -> bool:
        return not self._raw if self._raw is not None else self.fields.empty()

    def touches(self, fs: FieldSet) -> bool:
        if self._raw is not None:
            return fields_v1_intersects(self._raw, fs)
        return self.fields.intersects(fs)

    def intersection(self, fs: FieldSet) -> FieldSet:
        if self._raw is not None:
            return fields_v1_intersection(self._raw, fs)
        return self.fields.intersection(fs)

    def subtract(self, fs: FieldSet) -> None:
        if not self.touches(fs):
            return
        if self._raw is not None:
            self._raw = fields_v1_difference(self._raw, fs)
        else:
            self._fs = self.fields.difference(fs)
        self.changed = True

    def add(self, fs: FieldSet) -> None:
        if self._raw is not None:
            self._raw = fields_v1_union(self._raw, fs)
        else:
            self._fs = self.fields.union(fs)
        self.changed = True

    def encode(self) -> dict[str, Any]:
        if not self.changed and self.source is not None:
            return self.source
        out: dict[str, Any] = {"manager": self.manager, "operation": self.operation,
                               "apiVersion": self.api_version}
        if self.time is not None:
            out["time"] = self.time
        out["fieldsType"] = "FieldsV1"
        out["fieldsV1"] = self.fields_v1()
        if self.subresource:
            out["subresource"] = self.subresource
        return out

    def describe(self) -> str:
        """The manager as Kubernetes names it in conflict messages."""
        text = _go_quote(self.manager)
        if self.subresource:
            text += f" with subresource {_go_quote(self.subresource)}"
        if self.operation == "Update":
            text += f" using {self.api_version}"
        return text


def _go_quote(s: str) -> str:
    return orjson.dumps(s).decode()


def decode_trusted(raw: Any) -> list[ManagedFieldsEntry]:
    """Entries of a stored object (written by us); anything unreadable is dropped, not fatal."""
    out: list[ManagedFieldsEntry] = []
    if not isinstance(raw, list):
        return out
    for e in raw:
        if not isinstance(e, dict) or not isinstance(e.get("manager", ""), str):
            continue
        out.append(ManagedFieldsEntry(e.get("manager") or "", str(e.get("operation") or "Update"),
                          str(e.get("apiVersion") or ""), str(e.get("subresource") or ""),
                          e.get("time"), source=e))
    return out


def validate_managed_fields(raw: Any) -> list[dict[str, Any]]:
    """Check client-sent ``metadata.managedFields`` and return it in canonical form.

    Raises :class:`errors.BadRequest` naming the first malformed entry.
    """
    return [e.encode() for e in decode_strict(raw)]


def decode_strict(raw: Any) -> list[ManagedFieldsEntry]:
    """Decode managedFields a client sent; a malformed entry is a 400 in Kubernetes' words."""
    if not isinstance(raw, list):
        raise errors.BadRequest("metadata.managedFields: must be a list")
    out: list[ManagedFieldsEntry] = []
    seen: set[tuple[str, str, str, str]] = set()
    for i, e in enumerate(raw):
        where = f"metadata.managedFields[{i}]"
        if not isinstance(e, dict):
            raise errors.BadRequest(f"{where}: must be an object")
        for key in ("manager", "apiVersion", "time", "subresource"):
            if e.get(key) is not None and not isinstance(e[key], str):
                raise errors.BadRequest(f"{where}.{key}: must be a string")
        op = e.get("operation")
        if op not in ("Apply", "Update"):
            raise errors.BadRequest(f'{where}.operation: Unsupported value: {_go_quote(str(op))}: '
                                    'supported values: "Apply", "Update"')
        if e.get("fieldsType") != "FieldsV1":
            raise errors.BadRequest(f'{where}.fieldsType: Unsupported value: '
                                    f'{_go_quote(str(e.get("fieldsType")))}: supported values: "FieldsV1"')
        time = e.get("time")
        if time is not None and parse_rfc3339(time) is None:
            raise errors.BadRequest(f"{where}.time: not an RFC 3339 time: {time!r}")
        try:
            fs = FieldSet.from_fields_v1(e.get("fieldsV1") if e.get("fieldsV1") is not None else {})
        except ValueError as exc:
            raise errors.BadRequest(f"{where}.fieldsV1: {exc}")
        entry = ManagedFieldsEntry(e.get("manager") or "", op, e.get("apiVersion") or "", e.get("subresource") or "",
                       time, fields=fs)
        if entry.ident in seen:
            raise errors.BadRequest(f"{where}: duplicate entry for manager {_go_quote(entry.manager)}")
        seen.add(entry.ident)
        out.append(entry)
    return out


def is_reset(raw: Any) -> bool:
    """``[]`` or ``[{}]``: the client asks to forget all ownership (Kubernetes' rule)."""
    return isinstance(raw, list) and (len(raw) == 0 or (len(raw) == 1 and raw[0] == {}))


def encode_entries(entries: Iterable[ManagedFieldsEntry]) -> list[dict[str, Any]]:
    """Drop empty entries, cap Update entries, encode in Kubernetes' order."""
    kept = [e for e in entries if not (e.changed and e.empty())]
    updaters = sorted((e for e in kept if e.operation == "Update"), key=lambda e: e.time or "")
    if len(updaters) > MAX_UPDATE_MANAGERS:
        # Fold the oldest updaters into one "ancient-changes" entry, as Kubernetes does.
        excess = len(updaters) - MAX_UPDATE_MANAGERS + 1
        folded = [e for e in updaters[:excess] if e.manager != ANCIENT_CHANGES]
        ancient = next((e for e in kept if e.manager == ANCIENT_CHANGES and e.operation == "Update"), None)
        fs = ancient.fields if ancient is not None else FieldSet()
        for e in folded:
            fs = fs.union(e.fields)
        drop = {id(e) for e in folded}
        kept = [e for e in kept if id(e) not in drop]
        if ancient is None:
            ancient = ManagedFieldsEntry(ANCIENT_CHANGES, "Update", folded[0].api_version, time=folded[-1].time)
            kept.append(ancient)
        ancient.set_fields_v1(fs.to_fields_v1())
    kept.sort(key=lambda e: (e.operation, e.time or "", e.manager, e.api_version, e.subresource))
    return [e.encode() for e in kept]


def store_managed_fields(obj: dict[str, Any], encoded: list[dict[str, Any]]) -> None:
    """Set ``metadata.managedFields`` to the encoded entries (dropping the key when there are none)."""
    md = obj.get("metadata")
    if not isinstance(md, dict):
        md = obj["metadata"] = {}
    if encoded:
        md["managedFields"] = encoded
    else:
        md.pop("managedFields", None)


__all__ = [
    "ANCIENT_CHANGES",
    "BEFORE_FIRST_APPLY",
    "MAX_UPDATE_MANAGERS",
    "validate_managed_fields",
]
