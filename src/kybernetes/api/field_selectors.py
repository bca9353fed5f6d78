"""Field selectors, parsed and matched as the Kubernetes API server does.

Field selectors (``?fieldSelector=``, apimachinery's ``fields.ParseSelector``) are a flat AND of
``field=value`` / ``field==value`` / ``field!=value`` terms with ``\\,`` ``\\=`` ``\\\\`` escapes in
values. Which field names a kind supports is the caller's business: it inspects
:attr:`FieldSelector.requirements` and answers ``field label not supported: X`` itself; the
per-object field values come from :func:`object_fields`.

Label selectors live in :mod:`kybernetes.api.label_selectors`. Like them, a parsed field
selector is matched with a few dict lookups and no per-call allocation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kybernetes import errors
from kybernetes.api.label_selectors import EQUALS, NOT_EQUALS


def escape_field_value(value: str) -> str:
    """Escape ``\\``, ``,`` and ``=`` for use in a field selector value (``fields.EscapeValue``)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def _unescape_field_value(s: str) -> str:
    if "\\" not in s and "," not in s and "=" not in s:
        return s
    out: list[str] = []
    escaped = False
    for c in s:
        if escaped:
            if c not in "\\,=":
                raise errors.BadRequest(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            # Go prints the rune with %v, i.e. as its code point number.
            raise errors.BadRequest(f"invalid field selector: unescaped character in value: {ord(c)}")
        else:
            out.append(c)
    if escaped:
        raise errors.BadRequest("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def _split_field_terms(s: str) -> list[str]:
    """Split on commas not escaped by a backslash, keeping the escapes in the terms."""
    terms: list[str] = []
    start = 0
    escaped = False
    for i, c in enumerate(s):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(s[start:i])
            start = i + 1
    terms.append(s[start:])
    return terms


def _split_field_term(term: str) -> tuple[str, str, str] | None:
    # The first operator occurrence splits; at each position "!=" and "==" win over "=".
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


class FieldSelector:
    """A parsed field selector: an AND of ``(field, op, value)`` with op ``=`` or ``!=``."""

    __slots__ = ("_eq", "_ne", "requirements")

    def __init__(self, requirements: Iterable[tuple[str, str, str]] = ()) -> None:
        self.requirements: tuple[tuple[str, str, str], ...] = tuple(requirements)
        self._eq = tuple((f, v) for f, op, v in self.requirements if op != NOT_EQUALS)
        self._ne = tuple((f, v) for f, op, v in self.requirements if op == NOT_EQUALS)

    @property
    def empty(self) -> bool:
        return not self.requirements

    @property
    def fields(self) -> list[str]:
        """The field names used, for the caller's "field label not supported" check."""
        return list(dict.fromkeys(f for f, _, _ in self.requirements))

    def matches(self, fields: Mapping[str, str]) -> bool:
        # A missing field reads as "" - Kubernetes' fields.Set.Get does the same.
        get = fields.get
        for f, v in self._eq:
            if get(f, "") != v:
                return False
        for f, v in self._ne:  # noqa: SIM110 - a plain loop beats all() on this hot path
            if get(f, "") == v:
                return False
        return True

    __call__ = matches

    def requires_exact_match(self, field: str) -> str | None:
        for f, op, v in self.requirements:
            if f == field and op != NOT_EQUALS:
                return v
        return None

    def transform(self, fn: Callable[[str, str], tuple[str, str]]) -> FieldSelector:
        """Rewrite each (field, value) - the hook for per-kind field label conversion."""
        out = []
        for f, op, v in self.requirements:
            nf, nv = fn(f, v)
            out.append((nf, op, nv))
        return FieldSelector(out)

    def __str__(self) -> str:
        return ",".join(f"{f}{op}{escape_field_value(v)}" for f, op, v in self.requirements)

    def __repr__(self) -> str:
        return f"FieldSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FieldSelector):
            return NotImplemented
        return self.requirements == other.requirements

    def __hash__(self) -> int:
        return hash(self.requirements)


_ALL_FIELDS = FieldSelector()


def parse_field_selector(text: str | None) -> FieldSelector:
    """Parse ``?fieldSelector=`` syntax (``fields.ParseSelector``); errors.BadRequest if invalid.

    Whitespace is significant, as in Kubernetes: ``a = b`` has the field ``"a "``.
    """
    if not text:
        return _ALL_FIELDS
    reqs: list[tuple[str, str, str]] = []
    # Terms are handled in sorted order, which fixes both the printed form and which bad term
    # an error names.
    for term in sorted(_split_field_terms(text)):
        if not term:
            continue
        split = _split_field_term(term)
        if split is None:
            raise errors.BadRequest(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, raw = split
        reqs.append((field, NOT_EQUALS if op == "!=" else EQUALS, _unescape_field_value(raw)))
    return FieldSelector(reqs) if reqs else _ALL_FIELDS


def field_label_not_supported(field: str) -> errors.BadRequest:
    """The 400 the API server answers for a field name the kind does not index."""
    return errors.BadRequest(f"field label not supported: {field}")


def field_getter(dotted: str, default: str = "") -> Callable[[Mapping[str, Any]], str]:
    """A getter for ``object_fields`` extras: ``field_getter("spec.nodeName")``.

    Missing parts give ``default``; booleans print as ``true``/``false`` as Go formats them.
    """
    parts = tuple(dotted.split("."))

    def get(obj: Mapping[str, Any]) -> str:
        cur: Any = obj
        for part in parts:
            if not isinstance(cur, Mapping):
                return default
            cur = cur.get(part)
            if cur is None:
                return default
        if isinstance(cur, bool):
            return "true" if cur else "false"
        return str(cur)

    return get


def object_fields(
    obj: Mapping[str, Any],
    extra: Mapping[str, Callable[[Mapping[str, Any]], str]] | None = None,
    *,
    namespaced: bool = True,
) -> dict[str, str]:
    """The field set a field selector is matched against: ``metadata.name``,
    ``metadata.namespace`` (namespaced kinds) and the kind's ``extra`` fields."""
    meta = obj.get("metadata") or {}
    out = {"metadata.name": meta.get("name") or ""}
    if namespaced:
        out["metadata.namespace"] = meta.get("namespace") or ""
    if extra:
        for name, fn in extra.items():
            out[name] = fn(obj)
    return out


__all__ = [
    "FieldSelector",
    "escape_field_value",
    "field_getter",
    "field_label_not_supported",
    "object_fields",
    "parse_field_selector",
]
