"""Sets of field paths, and their ``FieldsV1`` JSON form (what ``managedFields`` stores).

A field path is a tuple of *path elements*. Each element is kept as the exact string that
Kubernetes uses as a key in ``fieldsV1``, so converting to and from the wire form is a
rename-free walk:

* ``f:<name>``   a field of a struct, or a key of a map (``f:spec``, ``f:app.kubernetes.io/name``);
* ``k:<json>``   an item of a map-type list, named by its key fields as a JSON object with the
  keys sorted and no spaces (``k:{"containerPort":80,"protocol":"TCP"}``);
* ``v:<json>``   an item of a set-type list, named by its JSON value (``v:"kubernetes.io/pvc"``);
* ``i:<n>``      an item of a list by position (rare; only for lists that have neither).

Because ``k:`` and ``v:`` carry JSON, two spellings of the same key would be two different
strings; everything entering a :class:`FieldSet` from outside goes through
:func:`canonical_element`, and everything built from objects uses :func:`key_element` and
:func:`value_element`, which produce the canonical spelling.

The set is a trie: a node holds ``members`` (elements whose path, ending here, is in the set)
and ``children`` (elements with paths below them in the set). A path can be a member and have
children at the same time: ``fieldsV1`` writes that as ``{".": {}, ...children}``, and a member
without children as ``{}``. Invariant: no child node is empty, so "is this set empty" is O(1).

Set operations return new sets that may share untouched sub-tries with their operands. Sets are
therefore treated as immutable once built; :meth:`FieldSet.insert` is for sets being built.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

PathElement = str
Path = tuple[PathElement, ...]

# Order of element kinds when a set is listed (the order structured-merge-diff sorts in):
# field names, then keys, then values, then indices.
_KIND_RANK = {"f": 0, "k": 1, "v": 2, "i": 3}


def canonical_json(value: Any) -> str:
    """Compact JSON with object keys sorted: the canonical spelling inside ``k:``/``v:``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        # orjson refuses integers beyond 64 bits; the standard library does not.
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def field_element(name: str) -> PathElement:
    return "f:" + name


def key_element(keys: dict[str, Any]) -> PathElement:
    """The element of a map-list item whose key fields have these values."""
    return "k:" + canonical_json(keys)


def value_element(value: Any) -> PathElement:
    """The element of a set-list item with this value."""
    return "v:" + canonical_json(value)


def index_element(index: int) -> PathElement:
    return f"i:{index}"


def canonical_element(pe: str) -> PathElement:
    """Validate a ``fieldsV1`` key and respell it canonically; ``ValueError`` if malformed."""
    kind, sep, rest = pe.partition(":")
    if not sep or kind not in _KIND_RANK:
        raise ValueError(f"invalid path element {pe!r}: must start with f:, k:, v: or i:")
    if kind == "f":
        return pe
    if kind == "i":
        try:
            n = int(rest)
        except ValueError:
            raise ValueError(f"invalid path element {pe!r}: index is not an integer")
        if n < 0:
            raise ValueError(f"invalid path element {pe!r}: negative index")
        return index_element(n)
    try:
        value = json.loads(rest)
    except ValueError:
        raise ValueError(f"invalid path element {pe!r}: not valid JSON")
    if kind == "k":
        if not isinstance(value, dict) or not value:
            raise ValueError(f"invalid path element {pe!r}: key must be a non-empty JSON object")
        return key_element(value)
    return value_element(value)


def _sort_key(pe: PathElement) -> tuple[int, int, str]:
    kind = pe[:1]
    if pe == ".":
        return (-1, 0, "")
    if kind == "i":
        return (3, int(pe[2:]), "")
    return (_KIND_RANK.get(kind, 4), 0, pe[2:])


def ordered(elements: Iterable[PathElement]) -> list[PathElement]:
    """Elements in structured-merge-diff's order: fields, keys, values, then indices by number."""
    out = sorted(elements)
    # Plain string order already puts f: < k: < v: and sorts within a kind; only the rare
    # i: elements (which sort before k: as strings, and "i:10" before "i:2") need the key.
    at = bisect.bisect_left(out, "i:")
    if at < len(out) and out[at][:2] == "i:":
        out.sort(key=_sort_key)
    return out


def _value_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def element_string(pe: PathElement) -> str:
    """Human form of one element, as Kubernetes prints paths in conflict messages."""
    kind, rest = pe[:1], pe[2:]
    if kind == "f":
        return "." + rest
    if kind == "i":
        return f"[{rest}]"
    try:
        value = json.loads(rest)
    except ValueError:
        return f"[{rest}]"
    if kind == "k" and isinstance(value, dict):
        return "[" + ",".join(f"{k}={_value_text(value[k])}" for k in sorted(value)) + "]"
    return f"[={_value_text(value)}]"


def path_string(path: Path) -> str:
    """``.spec.template.spec.containers[name="nginx"].image``."""
    return "".join(element_string(pe) for pe in path)


class FieldSet:
    """A set of field paths, stored as a trie (see the module docstring)."""

    __slots__ = ("children", "members")

    def __init__(self) -> None:
        self.members: set[PathElement] = set()
        self.children: dict[PathElement, FieldSet] = {}

    # --- building -------------------------------------------------------------------------

    @classmethod
    def from_paths(cls, paths: Iterable[Iterable[PathElement]]) -> FieldSet:
        out = cls()
        for p in paths:
            out.insert(tuple(p))
        return out

    def insert(self, path: Path) -> None:
        """Add ``path`` (only on a set that is still being built: sub-tries may be shared)."""
        if not path:
            raise ValueError("cannot insert the empty path")
        node = self
        for pe in path[:-1]:
            nxt = node.children.get(pe)
            if nxt is None:
                nxt = node.children[pe] = FieldSet()
            node = nxt
        node.members.add(path[-1])

    def copy(self) -> FieldSet:
        out = FieldSet()
        out.members = set(self.members)
        out.children = {pe: c.copy() for pe, c in self.children.items()}
        return out

    # --- queries ----------------------------------------------------------------------------

    def empty(self) -> bool:
        return not self.members and not self.children

    def __bool__(self) -> bool:
        return not self.empty()

    def has(self, path: Path) -> bool:
        if not path:
            return False
        node: FieldSet | None = self
        for pe in path[:-1]:
            node = node.children.get(pe) if node is not None else None
            if node is None:
                return False
        return node is not None and path[-1] in node.members

    def __contains__(self, path: object) -> bool:
        return isinstance(path, tuple) and self.has(path)

    def child(self, pe: PathElement) -> FieldSet | None:
        """The paths below element ``pe``, relative to it (``None`` if there are none)."""
        return self.children.get(pe)

    def __iter__(self) -> Iterator[Path]:
        """Every member path, in structured-merge-diff's order (a node before its children)."""
        yield from self._iter(())

    def _iter(self, prefix: Path) -> Iterator[Path]:
        for pe in ordered(self.members | self.children.keys()):
            if pe in self.members:
                yield (*prefix, pe)
            sub = self.children.get(pe)
            if sub is not None:
                yield from sub._iter((*prefix, pe))

    def __len__(self) -> int:
        return len(self.members) + sum(len(c) for c in self.children.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSet):
            return NotImplemented
        return self.members == other.members and self.children == other.children

    __hash__ = None  # type: ignore[assignment]  # mutable while being built

    def __repr__(self) -> str:
        return "FieldSet(" + ", ".join(path_string(p) for p in self) + ")"

    def intersects(self, other: FieldSet) -> bool:
        """Whether some path is in both sets (walks only the smaller shared structure)."""
        if not self.members.isdisjoint(other.members):
            return True
        small, big = (self, other) if len(self.children) <= len(other.children) else (other, self)
        for pe, c in small.children.items():
            d = big.children.get(pe)
            if d is not None and c.intersects(d):
                return True
        return False

    # --- algebra --------------------------------------------------------------------------

    def union(self, other: FieldSet) -> FieldSet:
        if other.empty():
            return self
        if self.empty():
            return other
        out = FieldSet()
        out.members = self.members | other.members
        out.children = dict(self.children)
        for pe, c in other.children.items():
            mine = out.children.get(pe)
            out.children[pe] = c if mine is None else mine.union(c)
        return out

    def intersection(self, other: FieldSet) -> FieldSet:
        out = FieldSet()
        out.members = self.members & other.members
        for pe, c in self.children.items():
            d = other.children.get(pe)
            if d is not None:
                sub = c.intersection(d)
                if sub:
                    out.children[pe] = sub
        return out

    def difference(self, other: FieldSet) -> FieldSet:
        """Paths in ``self`` but not in ``other`` (a removed member keeps its children)."""
        if other.empty() or self.empty():
            return self
        out = FieldSet()
        out.members = self.members - other.members
        for pe, c in self.children.items():
            d = other.children.get(pe)
            if d is None:
                out.children[pe] = c
            else:
                sub = c.difference(d)
                if sub:
                    out.children[pe] = sub
        return out

    def recursive_difference(self, other: FieldSet) -> FieldSet:
        """Like :meth:`difference`, but a member of ``other`` also removes everything below it."""
        if other.empty() or self.empty():
            return self
        out = FieldSet()
        out.members = self.members - other.members
        for pe, c in self.children.items():
            if pe in other.members:
                continue
            d = other.children.get(pe)
            if d is None:
                out.children[pe] = c
            else:
                sub = c.recursive_difference(d)
                if sub:
                    out.children[pe] = sub
        return out

    __or__ = union
    __and__ = intersection
    __sub__ = difference

    # --- FieldsV1 -------------------------------------------------------------------------

    def to_fields_v1(self) -> dict[str, Any]:
        """The ``fieldsV1`` JSON object, keys in Kubernetes' order."""
        out: dict[str, Any] = {}
        for pe in ordered(self.members | self.children.keys()):
            sub = self.children.get(pe)
            if sub is None:
                out[pe] = {}
            else:
                d = sub.to_fields_v1()
                if pe in self.members:
                    d = {".": {}, **d}
                out[pe] = d
        return out

    @classmethod
    def from_fields_v1(cls, raw: Any, *, trusted: bool = False) -> FieldSet:
        """Parse ``fieldsV1``.

        Untrusted input (from a client) is checked and its ``k:``/``v:`` keys respelled
        canonically; malformed input raises ``ValueError`` naming the bad path. ``trusted``
        input (written by :meth:`to_fields_v1`) is read as is, several times faster.
        """
        if not isinstance(raw, dict):
            raise ValueError("fieldsV1 must be a JSON object")
        return _decode_trusted(raw) if trusted else _decode_checked(raw, ())


def _decode_trusted(raw: dict[str, Any]) -> FieldSet:
    out = FieldSet()
    for pe, sub in raw.items():
        if pe == ".":
            continue
        if not sub:
            out.members.add(pe)
            continue
        if "." in sub:
            out.members.add(pe)
            if len(sub) == 1:
                continue
        out.children[pe] = _decode_trusted(sub)
    return out


def _decode_checked(raw: dict[str, Any], path: Path) -> FieldSet:
    out = FieldSet()
    for key, sub in raw.items():
        if key == ".":
            # Read (and checked) one level up, by the element it marks as a member.
            continue
        if not isinstance(key, str):
            raise ValueError(f"{path_string(path) or 'fieldsV1'}: keys must be strings")
        try:
            pe = canonical_element(key)
        except ValueError as exc:
            raise ValueError(f"{path_string(path) or 'fieldsV1'}: {exc}")
        if not isinstance(sub, dict):
            raise ValueError(f"{path_string((*path, pe))}: must be a JSON object")
        if not sub or "." in sub:
            if sub.get(".", {}) != {}:
                raise ValueError(f"{path_string((*path, pe))}: '.' must map to an empty object")
            out.members.add(pe)
        if sub and set(sub) != {"."}:
            child = _decode_checked(sub, (*path, pe))
            if child:
                out.children[pe] = child
    return out


# --- operations on encoded fieldsV1 -----------------------------------------------------------
#
# The update path must take a few changed fields away from each manager. Decoding a manager's
# whole set to do that costs time proportional to everything it owns; these functions walk the
# (small) FieldSet of changes alongside the encoded dict instead, copying only the dicts on the
# way (the rest is shared with the input, which is never modified). They require canonical
# keys, i.e. fieldsV1 produced by to_fields_v1 or these functions.


def _is_member(sub: dict[str, Any]) -> bool:
    return not sub or "." in sub


def _normalised(sub: dict[str, Any]) -> dict[str, Any] | None:
    """``None`` for a node with nothing left; ``{}`` for a member with no children left."""
    if not sub:
        return None
    if len(sub) == 1 and "." in sub:
        return {}
    return sub


def fields_v1_intersects(raw: dict[str, Any], fs: FieldSet) -> bool:
    for pe in fs.members:
        sub = raw.get(pe)
        if isinstance(sub, dict) and _is_member(sub):
            return True
    for pe, child in fs.children.items():
        sub = raw.get(pe)
        if isinstance(sub, dict) and sub and fields_v1_intersects(sub, child):
            return True
    return False


def fields_v1_intersection(raw: dict[str, Any], fs: FieldSet) -> FieldSet:
    out = FieldSet()
    for pe in fs.members:
        sub = raw.get(pe)
        if isinstance(sub, dict) and _is_member(sub):
            out.members.add(pe)
    for pe, child in fs.children.items():
        sub = raw.get(pe)
        if isinstance(sub, dict) and sub:
            inner = fields_v1_intersection(sub, child)
            if inner:
                out.children[pe] = inner
    return out


def fields_v1_difference(raw: dict[str, Any], fs: FieldSet) -> dict[str, Any]:
    """``raw`` without the paths of ``fs``; returns ``raw`` itself when nothing was removed."""
    out: dict[str, Any] | None = None
    for pe in fs.members:
        sub = raw.get(pe)
        if sub is None or not _is_member(sub):
            continue
        if out is None:
            out = dict(raw)
        rest = {k: v for k, v in sub.items() if k != "."}
        if rest:
            out[pe] = rest
        else:
            del out[pe]
    for pe, child in fs.children.items():
        cur = (out if out is not None else raw).get(pe)
        if not cur:
            continue
        new = fields_v1_difference(cur, child)
        if new is cur:
            continue
        if out is None:
            out = dict(raw)
        norm = _normalised(new)
        if norm is None:
            del out[pe]
        else:
            out[pe] = norm
    return raw if out is None else out


def fields_v1_union(raw: dict[str, Any], fs: FieldSet) -> dict[str, Any]:
    """``raw`` plus the paths of ``fs`` (a new dict along ``fs``'s paths, shared elsewhere)."""
    if fs.empty():
        return raw
    out = dict(raw)
    added = False
    for pe in fs.members:
        sub = out.get(pe)
        if sub is None:
            out[pe] = {}
            added = True
        elif not _is_member(sub):
            out[pe] = {".": {}, **sub}
    for pe, child in fs.children.items():
        sub = out.get(pe)
        if sub is None:
            out[pe] = child.to_fields_v1()
            added = True
            continue
        member = _is_member(sub)
        inner = fields_v1_union({k: v for k, v in sub.items() if k != "."}, child)
        out[pe] = {".": {}, **inner} if member else inner
    if added:
        out = {pe: out[pe] for pe in ordered(out)}
    return out


def fields_v1_empty(raw: dict[str, Any]) -> bool:
    return not raw


__all__ = [
    "FieldSet",
    "Path",
    "PathElement",
    "canonical_element",
    "canonical_json",
    "element_string",
    "field_element",
    "fields_v1_difference",
    "fields_v1_empty",
    "fields_v1_intersection",
    "fields_v1_intersects",
    "fields_v1_union",
    "index_element",
    "key_element",
    "ordered",
    "path_string",
    "value_element",
]
