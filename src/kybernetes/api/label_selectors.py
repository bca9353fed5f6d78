"""Label selectors, parsed and matched as the Kubernetes API server does.

Label selectors come in two shapes:

* the query-string syntax of ``?labelSelector=`` and ``kubectl -l`` (apimachinery's
  ``labels.Parse``): ``app=web,tier!=db,env in (prod,staging),!canary,release,replicas>2``.
  :func:`parse_label_selector` ports its lexer and recursive-descent parser rule for rule, with
  the same error texts, because clients show those texts to users. Quirks kept on purpose:
  ``x in ()`` and ``x=`` mean the value ``""`` (valid), ``in``/``notin`` are ordinary words when
  they stand where a key or value is expected, and requirements print sorted by key.
* the API object form ``{"matchLabels": ..., "matchExpressions": [...]}`` used by workloads,
  services and policies: :func:`from_label_selector_object` converts it (``LabelSelectorAsSelector``)
  and :func:`validate_label_selector_object` produces the 422 field errors
  (``ValidateLabelSelector``).

Field selectors live in :mod:`kybernetes.api.field_selectors`.

Matching speed matters - a watch cache runs a selector against every object of a list - so a
parsed selector precompiles its requirements into flat tuples grouped by operator and matching is
a few dict lookups with no per-call allocation or dispatch on operator names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kybernetes import errors
from kybernetes.api.validation import (
    FieldError,
    Path,
    forbidden,
    invalid,
    is_label_value,
    is_qualified_name,
    required,
    validate_labels,
)

# Operator names as apimachinery's ``selection`` package spells them; they show in error texts.
IN = "in"
NOT_IN = "notin"
EQUALS = "="
DOUBLE_EQUALS = "=="
NOT_EQUALS = "!="
EXISTS = "exists"
DOES_NOT_EXIST = "!"
GREATER_THAN = "gt"
LESS_THAN = "lt"

_BINARY_OPERATORS = (IN, NOT_IN, EQUALS, DOUBLE_EQUALS, NOT_EQUALS, GREATER_THAN, LESS_THAN)
_ALL_OPERATORS = _BINARY_OPERATORS + (EXISTS, DOES_NOT_EXIST)
_INT64 = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def parse_int64(s: str) -> int | None:
    """Go's strconv.ParseInt(s, 10, 64): strict digits, optional sign, int64 range."""
    if not _INT64.fullmatch(s):
        return None
    v = int(s)
    return v if _INT64_MIN <= v <= _INT64_MAX else None


def _aggregate(errs: list[str]) -> str:
    """utilerrors.Aggregate's text: one message alone, several in brackets."""
    unique = list(dict.fromkeys(errs))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


# --- requirements ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    """One ``key <operator> values`` term of a label selector."""

    key: str
    operator: str
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        op = self.operator
        if op == EXISTS:
            return self.key
        if op == DOES_NOT_EXIST:
            return "!" + self.key
        vals = ",".join(sorted(self.values))
        if op in (IN, NOT_IN):
            return f"{self.key} {op} ({vals})"
        symbol = {GREATER_THAN: ">", LESS_THAN: "<"}.get(op, op)
        return f"{self.key}{symbol}{vals}"


def new_requirement(key: str, operator: str, values: Iterable[str] = ()) -> Requirement:
    """Build a checked requirement (``labels.NewRequirement``); BadRequest lists every problem."""
    vals = tuple(values)
    errs = [str(invalid("key", key, m)) for m in _key_errors(key)]
    _check_values(key, operator, vals, errs)
    if errs:
        raise errors.BadRequest(_aggregate(errs))
    return Requirement(key, operator, vals)


def _key_errors(key: str) -> list[str]:
    msgs = is_qualified_name(key)
    return ["; ".join(msgs)] if msgs else []


def _bad_value_set(vals: tuple[str, ...], detail: str) -> str:
    # field.Invalid prints a []string value with Go's %#v: []string{"a", "b"}.
    rendered = ", ".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in vals)
    return f"values: Invalid value: []string{{{rendered}}}: {detail}"


def _check_values(key: str, op: str, vals: tuple[str, ...], errs: list[str]) -> None:
    path = Path("values")
    if op in (IN, NOT_IN):
        if not vals:
            errs.append(_bad_value_set(vals, "for 'in', 'notin' operators, values set can't be empty"))
    elif op in (EQUALS, DOUBLE_EQUALS, NOT_EQUALS):
        if len(vals) != 1:
            errs.append(_bad_value_set(vals, "exact-match compatibility requires one single value"))
    elif op in (EXISTS, DOES_NOT_EXIST):
        if vals:
            errs.append(_bad_value_set(vals, "values set must be empty for exists and does not exist"))
    elif op in (GREATER_THAN, LESS_THAN):
        if len(vals) != 1:
            errs.append(_bad_value_set(vals, "for 'Gt', 'Lt' operators, exactly one value is required"))
        for i, v in enumerate(vals):
            if parse_int64(v) is None:
                errs.append(str(invalid(path.index(i), v, "for 'Gt', 'Lt' operators, the value must be an integer")))
    else:
        supported = ", ".join(f'"{o}"' for o in _ALL_OPERATORS)
        errs.append(f'operator: Unsupported value: "{op}": supported values: {supported}')
    for i, v in enumerate(vals):
        msgs = is_label_value(v)
        if msgs:
            errs.append(str(invalid(path.index(i).key(key), v, "; ".join(msgs))))


# --- the compiled selector -------------------------------------------------------------------


class LabelSelector:
    """A parsed, precompiled label selector: an AND of :class:`Requirement`.

    ``LabelSelector()`` matches everything; ``LabelSelector.nothing()`` matches nothing (what
    Kubernetes makes of a *missing* workload selector).
    """

    __slots__ = ("_absent", "_cmp", "_eq", "_exists", "_in", "_nothing", "_notin", "requirements")

    def __init__(self, requirements: Iterable[Requirement] = (), *, nothing: bool = False) -> None:
        # Sorted by key (stable), as labels.Parse and Selector.Add sort, so str() is canonical.
        self.requirements: tuple[Requirement, ...] = tuple(sorted(requirements, key=lambda r: r.key))
        self._nothing = nothing
        eq: list[tuple[str, str]] = []
        in_: list[tuple[str, frozenset[str]]] = []
        notin: list[tuple[str, frozenset[str]]] = []
        exists: list[str] = []
        absent: list[str] = []
        cmp: list[tuple[str, int, bool]] = []
        for r in self.requirements:
            op = r.operator
            if op in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                eq.append((r.key, r.values[0]))
            elif op == IN:
                in_.append((r.key, frozenset(r.values)))
            elif op in (NOT_IN, NOT_EQUALS):
                notin.append((r.key, frozenset(r.values)))
            elif op == EXISTS:
                exists.append(r.key)
            elif op == DOES_NOT_EXIST:
                absent.append(r.key)
            elif op in (GREATER_THAN, LESS_THAN):
                bound = parse_int64(r.values[0]) if len(r.values) == 1 else None
                if bound is None:
                    self._nothing = True  # Kubernetes' matcher answers false for a broken bound
                else:
                    cmp.append((r.key, bound, op == GREATER_THAN))
            else:
                self._nothing = True
        self._eq = tuple(eq)
        self._in = tuple(in_)
        self._notin = tuple(notin)
        self._exists = tuple(exists)
        self._absent = tuple(absent)
        self._cmp = tuple(cmp)

    @classmethod
    def everything(cls) -> LabelSelector:
        return _EVERYTHING

    @classmethod
    def nothing(cls) -> LabelSelector:
        return _NOTHING

    @property
    def empty(self) -> bool:
        """True when the selector does not restrict anything (it matches every object)."""
        return not self.requirements and not self._nothing

    @property
    def matches_nothing(self) -> bool:
        return self._nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self._nothing:
            return False
        if labels is None:
            labels = {}
        get = labels.get
        for key, value in self._eq:
            if get(key) != value:
                return False
        for key, values in self._in:
            if get(key) not in values:
                return False
        for key, values in self._notin:
            v = get(key)
            if v is not None and v in values:
                return False
        for key in self._exists:
            if key not in labels:
                return False
        for key in self._absent:
            if key in labels:
                return False
        for key, bound, greater in self._cmp:
            raw = get(key)
            if raw is None:
                return False
            n = parse_int64(raw)
            if n is None or not (n > bound if greater else n < bound):
                return False
        return True

    __call__ = matches

    def requires_exact_match(self, key: str) -> str | None:
        """The single value ``key`` must have for a match, if the selector pins one."""
        for r in self.requirements:
            if r.key == key:
                if r.operator in (EQUALS, DOUBLE_EQUALS, IN) and len(r.values) == 1:
                    return r.values[0]
                return None
        return None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)

    def __repr__(self) -> str:
        return "LabelSelector(<nothing>)" if self._nothing else f"LabelSelector({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LabelSelector):
            return NotImplemented
        return self.requirements == other.requirements and self._nothing == other._nothing

    def __hash__(self) -> int:
        return hash((self.requirements, self._nothing))


_EVERYTHING = LabelSelector()
_NOTHING = LabelSelector(nothing=True)


# --- the query-string syntax: lexer ----------------------------------------------------------

# Token kinds. IDENT carries keys and values; IN/NOTIN are keywords only where an operator goes.
_IDENT, _IN, _NOTIN, _NOT, _EQ, _DEQ, _NEQ, _GT, _LT, _OPEN, _CLOSE, _COMMA, _END = range(13)
_KEYWORDS = {"in": _IN, "notin": _NOTIN}
_SYMBOLS = {"!": _NOT, "=": _EQ, "==": _DEQ, "!=": _NEQ, ">": _GT, "<": _LT, "(": _OPEN, ")": _CLOSE, ",": _COMMA}
_SPECIAL = frozenset("=!(),><")
_SPACE = frozenset(" \t\r\n")


def _lex(s: str) -> list[tuple[int, str]]:
    # Go's lexer treats a NUL byte as the end of input; so do we.
    nul = s.find("\x00")
    if nul >= 0:
        s = s[:nul]
    tokens: list[tuple[int, str]] = []
    i, n = 0, len(s)
    while True:
        while i < n and s[i] in _SPACE:
            i += 1
        if i >= n:
            tokens.append((_END, ""))
            return tokens
        c = s[i]
        if c in _SPECIAL:
            # Longest known symbol, at most two characters ("!=", "==").
            two = s[i : i + 2]
            sym = two if two in ("!=", "==") else c
            tokens.append((_SYMBOLS[sym], sym))
            i += len(sym)
            continue
        start = i
        while i < n and s[i] not in _SPECIAL and s[i] not in _SPACE:
            i += 1
        word = s[start:i]
        tokens.append((_KEYWORDS.get(word, _IDENT), word))


# --- the query-string syntax: parser ---------------------------------------------------------


class _SelectorSyntaxError(Exception):
    pass


class _Parser:
    """labels.Parse's recursive descent. ``values=True`` reads in/notin as plain identifiers."""

    def __init__(self, text: str) -> None:
        self.tokens = _lex(text)
        self.pos = 0

    def peek(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.tokens[self.pos]
        if values and tok in (_IN, _NOTIN):
            tok = _IDENT
        return tok, lit

    def take(self, values: bool = True) -> tuple[int, str]:
        tok, lit = self.peek(values)
        self.pos += 1
        return tok, lit

    def parse(self) -> list[Requirement]:
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.peek()
            if tok == _END:
                return reqs
            if tok not in (_IDENT, _NOT):
                raise _SelectorSyntaxError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            try:
                reqs.append(self.requirement())
            except _SelectorSyntaxError as e:
                raise _SelectorSyntaxError(f"unable to parse requirement: {e}") from None
            tok, lit = self.take()
            if tok == _END:
                return reqs
            if tok != _COMMA:
                raise _SelectorSyntaxError(f"found '{lit}', expected: ',' or 'end of string'")
            tok, lit = self.peek()
            if tok not in (_IDENT, _NOT):
                raise _SelectorSyntaxError(f"found '{lit}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        operator = ""
        tok, key = self.take()
        if tok == _NOT:
            operator = DOES_NOT_EXIST
            tok, key = self.take()
        if tok != _IDENT:
            raise _SelectorSyntaxError(f"found '{key}', expected: identifier")
        key_errs = is_qualified_name(key)
        if key_errs:
            # Kubernetes validates the key with a nil field path, hence the "<nil>" prefix.
            raise _SelectorSyntaxError(str(invalid("<nil>", key, "; ".join(key_errs))))
        if self.peek()[0] in (_END, _COMMA):
            return self.checked(key, operator or EXISTS, ())
        if operator == DOES_NOT_EXIST:
            return self.checked(key, operator, ())
        operator = self.operator()
        vals = self.value_set() if operator in (IN, NOT_IN) else self.exact_value()
        return self.checked(key, operator, vals)

    def checked(self, key: str, operator: str, vals: tuple[str, ...]) -> Requirement:
        errs = [str(invalid("key", key, m)) for m in _key_errors(key)]
        _check_values(key, operator, vals, errs)
        if errs:
            raise _SelectorSyntaxError(_aggregate(errs))
        return Requirement(key, operator, vals)

    def operator(self) -> str:
        tok, lit = self.take(values=False)
        op = {_IN: IN, _NOTIN: NOT_IN, _EQ: EQUALS, _DEQ: DOUBLE_EQUALS, _NEQ: NOT_EQUALS,
              _GT: GREATER_THAN, _LT: LESS_THAN}.get(tok)
        if op is None:
            raise _SelectorSyntaxError(f"found '{lit}', expected: {', '.join(_BINARY_OPERATORS)}")
        return op

    def value_set(self) -> tuple[str, ...]:
        tok, lit = self.take()
        if tok != _OPEN:
            raise _SelectorSyntaxError(f"found '{lit}' expected: '('")
        tok, lit = self.peek()
        if tok == _CLOSE:  # "()" is the set holding just ""
            self.take()
            return ("",)
        if tok not in (_IDENT, _COMMA):
            raise _SelectorSyntaxError(f"found '{lit}', expected: ',', ')' or identifier")
        found = self.identifier_list()
        if self.take()[0] != _CLOSE:
            # Kubernetes reports the token seen before the list here, not the offending one.
            raise _SelectorSyntaxError(f"found '{lit}', expected: ')'")
        return tuple(sorted(found))

    def identifier_list(self) -> set[str]:
        # Empty entries ("(,a)", "(a,,b)", "(a,)") stand for the value "".
        found: set[str] = set()
        while True:
            tok, lit = self.take()
            if tok == _IDENT:
                found.add(lit)
                nxt, nlit = self.peek()
                if nxt == _CLOSE:
                    return found
                if nxt != _COMMA:
                    raise _SelectorSyntaxError(f"found '{nlit}', expected: ',' or ')'")
            elif tok == _COMMA:
                if not found:
                    found.add("")
                nxt = self.peek()[0]
                if nxt == _CLOSE:
                    found.add("")
                    return found
                if nxt == _COMMA:
                    self.take()
                    found.add("")
            else:
                raise _SelectorSyntaxError(f"found '{lit}', expected: ',', or identifier")

    def exact_value(self) -> tuple[str, ...]:
        if self.peek()[0] in (_END, _COMMA):
            return ("",)  # "a=" selects the empty value
        tok, lit = self.take()
        if tok != _IDENT:
            raise _SelectorSyntaxError(f"found '{lit}', expected: identifier")
        return (lit,)


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse ``?labelSelector=`` syntax; errors.BadRequest with Kubernetes' message if invalid.

    An empty or blank string selects everything.
    """
    if not text:
        return _EVERYTHING
    try:
        reqs = _Parser(text).parse()
    except _SelectorSyntaxError as e:
        raise errors.BadRequest(str(e)) from None
    return LabelSelector(reqs) if reqs else _EVERYTHING


# --- the API object form ---------------------------------------------------------------------

_OBJECT_OPERATORS = {"In": IN, "NotIn": NOT_IN, "Exists": EXISTS, "DoesNotExist": DOES_NOT_EXIST}


def from_label_selector_object(sel: Mapping[str, Any] | None, *, none_matches: bool = True) -> LabelSelector:
    """Convert a ``metav1.LabelSelector`` object (``LabelSelectorAsSelector``).

    ``{}`` selects everything. ``None`` selects everything too unless ``none_matches=False``:
    Kubernetes itself maps a missing selector to "nothing", which is what workload controllers
    want; list-style callers usually want "everything". Invalid content raises errors.BadRequest
    (validate objects with :func:`validate_label_selector_object` first to get 422s instead).
    """
    if sel is None:
        return _EVERYTHING if none_matches else _NOTHING
    if not isinstance(sel, Mapping):
        raise errors.BadRequest("label selector must be an object")
    match_labels = sel.get("matchLabels") or {}
    match_exprs = sel.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping) or not isinstance(match_exprs, list):
        raise errors.BadRequest("invalid label selector: matchLabels must be a map, matchExpressions a list")
    reqs: list[Requirement] = []
    for key, value in match_labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise errors.BadRequest("invalid label selector: matchLabels must map strings to strings")
        reqs.append(new_requirement(key, EQUALS, (value,)))
    for expr in match_exprs:
        if not isinstance(expr, Mapping):
            raise errors.BadRequest("invalid label selector: matchExpressions entries must be objects")
        op_name = expr.get("operator")
        op = _OBJECT_OPERATORS.get(op_name) if isinstance(op_name, str) else None
        if op is None:
            raise errors.BadRequest(f'"{op_name}" is not a valid label selector operator')
        values = expr.get("values") or []
        key = expr.get("key")
        if not isinstance(key, str) or not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise errors.BadRequest("invalid label selector: key must be a string and values a list of strings")
        reqs.append(new_requirement(key, op, values))
    return LabelSelector(reqs) if reqs else _EVERYTHING


def validate_label_selector_object(sel: Any, path: Path | str) -> list[FieldError]:
    """The 422 field errors for a ``metav1.LabelSelector`` at ``path`` (``ValidateLabelSelector``)."""
    p = path if isinstance(path, Path) else Path(path) if path else Path()
    if sel is None:
        return []
    if not isinstance(sel, dict):
        return [invalid(p, sel, "must be an object")]
    errs = validate_labels(sel.get("matchLabels"), p.child("matchLabels"))
    exprs = sel.get("matchExpressions")
    if exprs is None:
        return errs
    if not isinstance(exprs, list):
        return errs + [invalid(p.child("matchExpressions"), exprs, "must be a list")]
    for i, expr in enumerate(exprs):
        ep = p.child("matchExpressions").index(i)
        if not isinstance(expr, dict):
            errs.append(invalid(ep, expr, "must be an object"))
            continue
        op = expr.get("operator")
        values = expr.get("values") or []
        if not isinstance(values, list):
            errs.append(invalid(ep.child("values"), values, "must be a list of strings"))
            values = []
        if op in ("In", "NotIn"):
            if not values:
                errs.append(required(ep.child("values"), "must be specified when `operator` is 'In' or 'NotIn'"))
        elif op in ("Exists", "DoesNotExist"):
            if values:
                errs.append(forbidden(ep.child("values"), "may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(ep.child("operator"), "" if op is None else op, "not a valid selector operator"))
        key = expr.get("key")
        if not isinstance(key, str):
            errs.append(invalid(ep.child("key"), key, "must be a string"))
        else:
            errs.extend(invalid(ep.child("key"), key, m) for m in is_qualified_name(key))
        for j, v in enumerate(values):
            vp = ep.child("values").index(j)
            if not isinstance(v, str):
                errs.append(invalid(vp, v, "must be a string"))
                continue
            errs.extend(invalid(vp, v, m) for m in is_label_value(v))
    return errs


__all__ = [
    "DOES_NOT_EXIST",
    "DOUBLE_EQUALS",
    "EQUALS",
    "EXISTS",
    "GREATER_THAN",
    "IN",
    "LESS_THAN",
    "NOT_EQUALS",
    "NOT_IN",
    "LabelSelector",
    "Requirement",
    "from_label_selector_object",
    "new_requirement",
    "parse_label_selector",
    "validate_label_selector_object",
]
