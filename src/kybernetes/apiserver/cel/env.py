"""CEL environments, compilation (once per expression and variable set) and evaluation.

:func:`compile_expression` parses and type-checks an expression against an environment with the
given variables, in the environments of :mod:`kybernetes.cel.environment` (CEL's standard
library, its extensions and Kubernetes' libraries). Results are cached by
``(expression, variables)``, so a policy or schema compiled again (a new version of an unchanged
rule) reuses the program: nothing is compiled per request.

:meth:`Program.evaluate` runs a program on JSON data after checking its cost bound
(:mod:`.cost`); a CEL error value becomes an :class:`EvalError` worded as cel-go words it
(``no such key: x``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cel_expr_python.cel as ce

from kybernetes.apiserver.cel import EvalError, cost
from kybernetes.apiserver.cel.library_authz import runtime_functions
from kybernetes.cel.environment import (
    CompileError,
    check,
    checking_environment,
    cross_numeric_only,
    declared,
    has_authz,
    issue_text,
    new_environment,
)


@lru_cache(maxsize=64)
def _environment(variables: tuple[str, ...], runtime: bool = False) -> Any:
    """The environment to check (and, without authz-typed variables, to run) expressions over
    ``variables``; ``runtime``: the one that runs expressions using the authz library."""
    if runtime and has_authz(variables):
        return new_environment(dict(declared(v, True) for v in variables), authz=runtime_functions())
    return checking_environment(variables)


@dataclass(frozen=True, eq=False)
class Program:
    """One compiled expression."""

    source: str
    expression: Any
    base_cost: int
    macro_depth: int
    uses: frozenset[str]
    """The declared variables the expression names: only those are converted for an evaluation."""

    def cost_bound(self, data_width: int) -> int:
        return cost.bound(self.base_cost, self.macro_depth, data_width)

    def evaluate(self, data: dict[str, Any] | Activation, data_width: int = 1) -> Any:
        """The result as a plain Python value; :class:`EvalError` if it is a CEL error or the
        expression's cost bound on data this wide exceeds the per-call limit. ``data`` is the
        variables' values, or an :class:`Activation` of this program's variables."""
        if self.cost_bound(data_width) > cost.PER_CALL_LIMIT:
            raise EvalError(cost.PER_CALL_EXCEEDED)
        try:
            if isinstance(data, Activation):
                result = self.expression.eval(data.converted())
            else:
                result = self.expression.eval(data={k: v for k, v in data.items() if k in self.uses})
        except RuntimeError as e:  # data CEL cannot hold (an integer beyond int64)
            raise EvalError(_cel_go_wording(str(e)))
        if result.type() == ce.Type.ERROR:
            try:
                error = result.value()
            except TypeError:  # an optional: cel-expr-python reports it as an error it cannot convert
                raise EvalError("an optional value is not a result (use hasValue(), value() or orValue())")
            raise EvalError(_cel_go_wording(str(error)))
        return result.plain_value()


class Activation:
    """Values of an environment's variables, converted to CEL once for all the expressions of one
    evaluation that read them (converting an object is most of what evaluating costs)."""

    def __init__(self, variables: tuple[str, ...], data: dict[str, Any]) -> None:
        self._env = _environment(tuple(sorted(variables)), True)
        self.data = data
        self._converted: Any = None

    def set(self, name: str, value: Any) -> None:
        self.data[name] = value
        self._converted = None

    def converted(self) -> Any:
        if self._converted is None:
            self._converted = self._env.Activation(self.data)
        return self._converted


def compile_expression(source: str, variables: tuple[str, ...]) -> Program:
    """Compile (or reuse the compiled) ``source`` for an environment declaring ``variables``:
    names, ``dyn``, or ``name:type`` with a type of int, double, bool, string, timestamp,
    duration, bytes, ``list(<type>)``, ``map(<type>)`` (string keys) or an authz library type
    (``authorizer:Authorizer``, ``authorizer.requestResource:ResourceCheck``)."""
    return _compile(source, tuple(sorted(variables)))


@lru_cache(maxsize=4096)
def _compile(source: str, variables: tuple[str, ...]) -> Program:
    expression = check(_environment(variables), source)
    named = set(_IDENTIFIER.findall(cost.STRING_LITERAL.sub("", source)))
    uses = frozenset(name for name, _t in map(declared, variables) if set(name.split(".")) <= named)
    if has_authz(variables):
        # Checked above with the authz library's abstract types, which cel-cpp cannot evaluate.
        expression = check(_environment(variables, True), source)
    return Program(source, expression, cost.base_cost(source), cost.macro_depth(source), uses)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


_WORDING = (
    # cel-cpp's own runtime limit (10,000 comprehension iterations per evaluation) is a cost limit.
    (re.compile(r"Iteration budget exceeded.*"), "operation cancelled: actual cost limit exceeded"),
    (re.compile(r'Key not found in map : "?(.*?)"?$'), r"no such key: \1"),
    (re.compile(r"No matching overloads found.*"), "no such overload"),
    (re.compile(r"Index error: index=(-?\d+) size=\d+"), r"index out of bounds: \1"),
    (re.compile(r"divide by zero"), "division by zero"),
    (re.compile(r"modulus by zero"), "modulus by zero"),
)


def _cel_go_wording(message: str) -> str:
    text = re.sub(r"^[A-Z_]+: ", "", message.strip())
    text = re.sub(r" \[[A-Z_]+\]$", "", text)
    for pattern, replacement in _WORDING:
        if pattern.search(text):
            return pattern.sub(replacement, text) if "\\" in replacement else replacement
    return text


__all__ = ["Activation", "CompileError", "EvalError", "Program", "compile_expression", "cross_numeric_only",
           "issue_text"]
