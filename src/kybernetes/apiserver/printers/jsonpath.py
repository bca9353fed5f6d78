"""A small JSONPath evaluator: the subset CRD ``additionalPrinterColumns`` use.

Kubernetes evaluates a column's ``jsonPath`` with its own JSONPath template engine, missing keys
allowed, and prints the first value found. The paths people write are simple, so this module
supports exactly those shapes and nothing more:

* fields: ``.spec.replicas``, with ``\\.`` escaping a dot inside a key
  (``.metadata.labels.app\\.kubernetes\\.io/name``) and bracket keys ``['a.b']`` / ``["a.b"]``;
* list steps: ``[0]``, ``[-1]``, ``[*]``, slices ``[1:3]``, and ``.*`` for every value;
* filters: ``[?(@.type=="Ready")]`` with ``==``, ``!=``, ``<``, ``<=``, ``>``, ``>=`` against a
  string, number or boolean literal, or ``[?(@.field)]`` for "the field exists";
* recursive descent ``..name``, and an optional ``$`` root and ``{...}`` template braces.

A path is parsed once (:func:`parse`, cached) into a list of steps, then applied to a list of
current values, each step mapping that list to a new one; :func:`jsonpath_get` returns the first
result, or None when nothing matched.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any


class JSONPathError(ValueError):
    """The path is not in the supported subset."""


@dataclass(frozen=True)
class _Field:
    name: str  # "*" means every value of a map or list


@dataclass(frozen=True)
class _Recursive:
    name: str


@dataclass(frozen=True)
class _Index:
    index: int


@dataclass(frozen=True)
class _Slice:
    start: int | None
    stop: int | None


@dataclass(frozen=True)
class _Filter:
    path: tuple[Any, ...]
    op: str  # "" means "exists"
    literal: Any


_Step = _Field | _Recursive | _Index | _Slice | _Filter

_FILTER = re.compile(
    r"""^\s*@(?P<path>(?:\.(?:\\.|[^.\s=!<>\\])+)*)\s*
        (?:(?P<op>==|!=|<=|>=|<|>)\s*(?P<lit>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s)]+))?\s*$""",
    re.VERBOSE,
)


def _literal(text: str) -> Any:
    if text[0] in "\"'":
        return re.sub(r"\\(.)", r"\1", text[1:-1])
    if text in ("true", "false"):
        return text == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise JSONPathError(f"unsupported literal {text!r}") from None


def _read_name(path: str, i: int) -> tuple[str, int]:
    """A dotted field name starting at i, honouring ``\\.`` escapes; stops at ``.`` or ``[``."""
    out: list[str] = []
    while i < len(path) and path[i] not in ".[":
        if path[i] == "\\" and i + 1 < len(path):
            out.append(path[i + 1])
            i += 2
        else:
            out.append(path[i])
            i += 1
    return "".join(out), i


def _bracket_end(path: str, i: int) -> int:
    """The index of the ``]`` closing the bracket opened at i, skipping quoted text and parens."""
    depth, quote = 0, ""
    j = i + 1
    while j < len(path):
        c = path[j]
        if quote:
            if c == "\\":
                j += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
        elif c == "]" and depth == 0:
            return j
        j += 1
    raise JSONPathError(f"unclosed '[' in {path!r}")


def _bracket(inner: str, path: str) -> _Step:
    inner = inner.strip()
    if inner == "*":
        return _Field("*")
    if inner[:1] in "\"'" and inner[-1:] == inner[:1] and len(inner) >= 2:
        return _Field(re.sub(r"\\(.)", r"\1", inner[1:-1]))
    if inner.startswith("?(") and inner.endswith(")"):
        m = _FILTER.match(inner[2:-1])
        if not m:
            raise JSONPathError(f"unsupported filter in {path!r}")
        sub = parse(m.group("path") or "")
        lit = _literal(m.group("lit")) if m.group("op") else None
        return _Filter(sub, m.group("op") or "", lit)
    if ":" in inner:
        parts = inner.split(":")
        if len(parts) != 2:
            raise JSONPathError(f"unsupported slice in {path!r}")
        try:
            start = int(parts[0]) if parts[0].strip() else None
            stop = int(parts[1]) if parts[1].strip() else None
        except ValueError:
            raise JSONPathError(f"bad slice in {path!r}") from None
        return _Slice(start, stop)
    try:
        return _Index(int(inner))
    except ValueError:
        raise JSONPathError(f"unsupported bracket expression in {path!r}") from None


@functools.lru_cache(maxsize=512)
def parse(path: str) -> tuple[_Step, ...]:
    """Parse a path into steps; raises :class:`JSONPathError` outside the supported subset."""
    p = path.strip()
    if p.startswith("{") and p.endswith("}"):
        p = p[1:-1].strip()
    if p.startswith("$"):
        p = p[1:]
    steps: list[_Step] = []
    i = 0
    while i < len(p):
        c = p[i]
        if p.startswith("..", i):
            name, i = _read_name(p, i + 2)
            if not name:
                raise JSONPathError(f"empty name after '..' in {path!r}")
            steps.append(_Recursive(name))
        elif c == ".":
            name, i = _read_name(p, i + 1)
            if name:
                steps.append(_Field(name))
        elif c == "[":
            end = _bracket_end(p, i)
            steps.append(_bracket(p[i + 1 : end], path))
            i = end + 1
        elif i == 0:
            # A bare leading name ("spec.replicas") reads like ".spec.replicas".
            name, i = _read_name(p, i)
            steps.append(_Field(name))
        else:
            raise JSONPathError(f"unexpected {c!r} in {path!r}")
    return tuple(steps)


def _compare(value: Any, op: str, lit: Any) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    if number(value) and number(lit):
        a, b = float(value), float(lit)
    elif isinstance(value, str) and isinstance(lit, str):
        a, b = value, lit  # type: ignore[assignment]
    elif isinstance(value, bool) and isinstance(lit, bool):
        return (value == lit) if op == "==" else (value != lit) if op == "!=" else False
    else:
        # Values of different types never compare equal (and have no order).
        return op == "!="
    return {
        "==": a == b,
        "!=": a != b,
        "<": a < b,
        "<=": a <= b,
        ">": a > b,
        ">=": a >= b,
    }[op]


def _children(v: Any) -> list[Any]:
    if isinstance(v, dict):
        return list(v.values())
    if isinstance(v, list):
        return list(v)
    return []


def _recurse(v: Any, name: str, out: list[Any]) -> None:
    if isinstance(v, dict):
        if name in v:
            out.append(v[name])
        for child in v.values():
            _recurse(child, name, out)
    elif isinstance(v, list):
        for child in v:
            _recurse(child, name, out)


def _apply(step: _Step, values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if isinstance(step, _Field):
            if step.name == "*":
                out.extend(_children(v))
            elif isinstance(v, dict) and step.name in v:
                out.append(v[step.name])
        elif isinstance(step, _Recursive):
            _recurse(v, step.name, out)
        elif isinstance(step, _Index):
            if isinstance(v, list) and -len(v) <= step.index < len(v):
                out.append(v[step.index])
        elif isinstance(step, _Slice):
            if isinstance(v, list):
                out.extend(v[step.start : step.stop])
        elif isinstance(step, _Filter) and isinstance(v, list):
            for item in v:
                found = evaluate(item, step.path)
                if not step.op:
                    if found and found[0] is not None:
                        out.append(item)
                elif any(_compare(f, step.op, step.literal) for f in found):
                    out.append(item)
    return out


def evaluate(obj: Any, steps: tuple[_Step, ...] | str) -> list[Any]:
    """Every value the path reaches in obj (an empty list when none)."""
    if isinstance(steps, str):
        steps = parse(steps)
    values = [obj]
    for step in steps:
        values = _apply(step, values)
        if not values:
            break
    return values


def jsonpath_get(obj: Any, path: str) -> Any:
    """The first value the path reaches in obj, or None when it reaches nothing (or is invalid)."""
    try:
        found = evaluate(obj, path)
    except JSONPathError:
        return None
    return found[0] if found else None
