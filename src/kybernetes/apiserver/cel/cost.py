"""Cost limits: an upper bound on what one evaluation may cost, checked before it runs.

cel-go counts the actual cost of an evaluation as it goes and cancels it at the limit;
cel-expr-python has no cost tracker and its evaluation (in C++) cannot be interrupted. So the
bound is computed before evaluating: an expression's *base cost* (its operators, calls and
selections: each costs one in cel-go) times, for each level of nested comprehension macros
(``all``, ``exists``, ``exists_one``, ``map``, ``filter``), the *width* of the data (the length of
the longest list, map or string in it), since a comprehension runs its body once per element.
An expression that would exceed the per-call limit on this data is not run; the bounds of the
expressions run for one request add up against the per-request budget. The bound is never below
cel-go's actual cost for the same data (up to constant factors), so a rule Kubernetes accepts
within its limits may here be refused only when the data is near the limit's size. cel-cpp adds a
limit of its own, counted as it runs: 10,000 comprehension iterations per evaluation; reaching it
is reported as the per-call limit.
"""

from __future__ import annotations

import re
from typing import Any

PER_CALL_LIMIT = 1_000_000
"""celconfig.PerCallLimit: the most one expression may cost in one evaluation."""
RUNTIME_COST_BUDGET = 10_000_000
"""celconfig.RuntimeCELCostBudget: the most all expressions of one request may cost together."""

STATIC_ESTIMATED_COST_LIMIT = 10_000_000
"""apiextensions' StaticEstimatedCostLimit: the most one rule's estimated cost may be, times how
many times it may run for one object (:mod:`.estimate`), when its CRD is written."""
STATIC_ESTIMATED_CRD_COST_LIMIT = 100_000_000
"""apiextensions' StaticEstimatedCRDCostLimit: the most all rules of one schema may be estimated at together."""

PER_CALL_EXCEEDED = "operation cancelled: actual cost limit exceeded"
BUDGET_EXCEEDED = "validation failed due to running out of cost budget, no further validation rules will be run"

_MACRO = re.compile(r"\.\s*(all|exists|exists_one|map|filter)\s*\(")
_TOKEN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[-+*/%<>=!&|?.\[(]")
STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def base_cost(source: str) -> int:
    """The operators, identifiers, selections and calls of an expression (string literals count one)."""
    return max(1, len(_TOKEN.findall(STRING_LITERAL.sub("s", source))))


def macro_depth(source: str) -> int:
    """How deeply comprehension macros nest in the expression (0: none)."""
    text = STRING_LITERAL.sub("s", source)
    depth = best = 0
    stack: list[bool] = []
    i = 0
    while i < len(text):
        m = _MACRO.match(text, i)
        if m:
            stack.append(True)
            depth += 1
            best = max(best, depth)
            i = m.end()
            continue
        c = text[i]
        if c == "(":
            stack.append(False)
        elif c == ")" and stack and stack.pop():
            depth -= 1
        i += 1
    return best


def width(value: Any) -> int:
    """The length of the longest list, map or string anywhere in a JSON value (at least 1)."""
    best = 1
    todo = [value]
    while todo:
        x = todo.pop()
        if isinstance(x, dict):
            best = max(best, len(x))
            todo.extend(x.values())
        elif isinstance(x, list):
            best = max(best, len(x))
            todo.extend(x)
        elif isinstance(x, str):
            best = max(best, len(x))
    return best


def bound(base: int, depth: int, data_width: int) -> int:
    """The most an expression of ``base`` cost and ``depth`` nested macros may cost on data this wide."""
    return base * max(1, data_width) ** depth if depth else base


__all__ = [
    "BUDGET_EXCEEDED",
    "PER_CALL_EXCEEDED",
    "PER_CALL_LIMIT",
    "RUNTIME_COST_BUDGET",
    "STATIC_ESTIMATED_COST_LIMIT",
    "STATIC_ESTIMATED_CRD_COST_LIMIT",
    "STRING_LITERAL",
    "base_cost",
    "bound",
    "macro_depth",
    "width",
]
