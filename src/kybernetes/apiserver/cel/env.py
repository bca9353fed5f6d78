"""CEL environments, compilation (once per expression and variable set) and evaluation.

:func:`compile_expression` parses and type-checks an expression against an environment with the
given variables (all typed ``dyn``), CEL's standard library, the strings, optional, math and
bindings extensions, and Kubernetes' libraries (:mod:`.library`). Results are cached by
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
from cel_expr_python.ext.ext_bindings import ExtBindings
from cel_expr_python.ext.ext_math import ExtMath
from cel_expr_python.ext.ext_optional import ExtOptional
from cel_expr_python.ext.ext_strings import ExtStrings

from kybernetes.apiserver.cel import cost
from kybernetes.apiserver.cel.library import kubernetes_extensions, kubernetes_functions
from kybernetes.apiserver.cel.library_authz import TYPE_NAMES, authz_functions, cel_type
from kybernetes.apiserver.cel.library_net import network_functions


class CompileError(Exception):
    """The expression does not compile; ``str()`` is cel-go's issue text (``ERROR: <input>:1:6: ...``)."""


class EvalError(Exception):
    """The evaluation failed (no such key, no such overload, division by zero, cost limit...)."""


_TYPES = {"int": ce.Type.INT, "double": ce.Type.DOUBLE, "bool": ce.Type.BOOL, "string": ce.Type.STRING,
          "timestamp": ce.Type.TIMESTAMP, "duration": ce.Type.DURATION, "bytes": ce.Type.BYTES}


def _type(spec: str, runtime: bool = False) -> Any:
    """``int``, ``list(string)``, ``map(list(int))`` (string keys), an authz type
    (``Authorizer``, ``ResourceCheck``...) -> the CEL type; else ``dyn``."""
    if spec.startswith("list(") and spec.endswith(")"):
        return ce.Type.List(_type(spec[5:-1], runtime))
    if spec.startswith("map(") and spec.endswith(")"):
        return ce.Type.Map(ce.Type.STRING, _type(spec[4:-1], runtime))
    if spec in TYPE_NAMES:
        return cel_type(spec, runtime)
    return _TYPES.get(spec, ce.Type.DYN)


def _declared(variable: str, runtime: bool = False) -> tuple[str, Any]:
    """``"self:int"`` -> ("self", int); a bare name is ``dyn``."""
    name, _, type_name = variable.partition(":")
    return name, _type(type_name, runtime)


def new_environment(variables: dict[str, Any], descriptor_pool: Any = None, authz: bool | None = None) -> Any:
    """A CEL environment with Kubernetes' extensions and libraries and these typed variables;
    with ``authz`` the authz library too (:mod:`.library_authz`), typed for checking (False: an
    environment that can only check) or for evaluation (True)."""
    functions = kubernetes_functions() + network_functions()
    return ce.NewEnv(
        descriptor_pool=descriptor_pool,
        variables=variables,
        extensions=[ExtStrings(), ExtOptional(), ExtMath(), ExtBindings(), *kubernetes_extensions()],
        functions=functions if authz is None else functions + authz_functions(authz),
    )


def _has_authz(variables: tuple[str, ...]) -> bool:
    return any(v.partition(":")[2] in TYPE_NAMES for v in variables)


@lru_cache(maxsize=64)
def _environment(variables: tuple[str, ...], runtime: bool = False) -> Any:
    authz = runtime if _has_authz(variables) else None
    return new_environment(dict(_declared(v, runtime) for v in variables), authz=authz)


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
            raise EvalError(_cel_go_wording(str(result.value())))
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
    try:
        expression = _environment(variables).compile(source)
    except RuntimeError as e:
        raise CompileError(issue_text(str(e)))
    named = set(_IDENTIFIER.findall(cost.STRING_LITERAL.sub("", source)))
    uses = frozenset(name for name, _t in map(_declared, variables) if set(name.split(".")) <= named)
    if _has_authz(variables):
        # Checked above with the authz library's abstract types, which cel-cpp cannot evaluate.
        expression = _environment(variables, True).compile(source)
    return Program(source, expression, cost.base_cost(source), cost.macro_depth(source), uses)


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CROSS_NUMERIC = re.compile(r"found no matching overload for '_(<|<=|>|>=|==|!=)_' applied to "
                            r"'\((int|uint|double), (int|uint|double)\)'")


def cross_numeric_only(issues: str) -> bool:
    """Whether every issue is a comparison of two numbers of different types (``1 < 1.5``):
    Kubernetes' environment allows those (cel-go's CrossTypeNumericComparisons) and so does
    cel-cpp's runtime, but its checker cannot be told to."""
    errors = [line for line in issues.splitlines() if line.startswith("ERROR:")]
    return bool(errors) and all(_CROSS_NUMERIC.search(line) for line in errors)


def issue_text(message: str) -> str:
    """cel-cpp's ``INVALID_ARGUMENT: ERROR: <input>:...`` without the status code cel-go does not print."""
    text = re.sub(r"^[A-Z_]+: ", "", message.strip())
    return re.sub(r" \[[A-Z_]+\]$", "", text)


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
           "issue_text", "new_environment"]
