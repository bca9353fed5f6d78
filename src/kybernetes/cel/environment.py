"""CEL environments as Kubernetes builds them, and type checking in cel-go's words.

:func:`new_environment` declares typed variables over CEL's standard library, the strings,
optional, math and bindings extensions and Kubernetes' libraries (:mod:`.library`,
:mod:`.library_net`, :mod:`.library_format`; the authz library's functions when given).
:func:`check` type-checks (and compiles) an expression in one, after :func:`~.library_format.rewrite`,
raising :class:`CompileError` with cel-go's issue text. Pure: no server state; the API server
evaluates on these environments (:mod:`kybernetes.apiserver.cel.env`) and the policy status
controller type-checks with them (:mod:`.typecheck`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import cel_expr_python.cel as ce
from cel_expr_python.ext.ext_bindings import ExtBindings
from cel_expr_python.ext.ext_math import ExtMath
from cel_expr_python.ext.ext_optional import ExtOptional
from cel_expr_python.ext.ext_strings import ExtStrings

from kybernetes.cel import CompileError
from kybernetes.cel.library import kubernetes_extensions, kubernetes_functions
from kybernetes.cel.library_authz import TYPE_NAMES, authz_functions, cel_type
from kybernetes.cel.library_format import (
    format_functions,
    remap_issues,
    rewrite,
    semver_comparisons,
    semver_functions,
)
from kybernetes.cel.library_net import network_functions

_TYPES = {"int": ce.Type.INT, "double": ce.Type.DOUBLE, "bool": ce.Type.BOOL, "string": ce.Type.STRING,
          "timestamp": ce.Type.TIMESTAMP, "duration": ce.Type.DURATION, "bytes": ce.Type.BYTES}


def type_of(spec: str, runtime: bool = False) -> Any:
    """``int``, ``list(string)``, ``map(list(int))`` (string keys), an authz type
    (``Authorizer``, ``ResourceCheck``...) -> the CEL type; else ``dyn``."""
    if spec.startswith("list(") and spec.endswith(")"):
        return ce.Type.List(type_of(spec[5:-1], runtime))
    if spec.startswith("map(") and spec.endswith(")"):
        return ce.Type.Map(ce.Type.STRING, type_of(spec[4:-1], runtime))
    if spec in TYPE_NAMES:
        return cel_type(spec, runtime)
    return _TYPES.get(spec, ce.Type.DYN)


def declared(variable: str, runtime: bool = False) -> tuple[str, Any]:
    """``"self:int"`` -> ("self", int); a bare name is ``dyn``."""
    name, _, type_name = variable.partition(":")
    return name, type_of(type_name, runtime)


def has_authz(variables: Sequence[str]) -> bool:
    """Whether some variable has an authz library type (then the library is declared)."""
    return any(v.partition(":")[2] in TYPE_NAMES for v in variables)


def new_environment(variables: dict[str, Any], descriptor_pool: Any = None,
                    authz: list[ce.FunctionDecl] | None = None) -> Any:
    """A CEL environment with Kubernetes' extensions and libraries and these typed variables;
    ``authz``: the authz library's functions (:func:`~.library_authz.authz_functions`)."""
    functions = kubernetes_functions(semver_comparisons()) + network_functions() + format_functions() + \
        semver_functions()
    return ce.NewEnv(
        descriptor_pool=descriptor_pool,
        variables=variables,
        extensions=[ExtStrings(), ExtOptional(), ExtMath(), ExtBindings(), *kubernetes_extensions()],
        functions=functions + (authz or []),
    )


@lru_cache(maxsize=64)
def checking_environment(variables: tuple[str, ...]) -> Any:
    """The environment that type-checks expressions over ``variables`` (``name`` or
    ``name:type``, see :func:`type_of`); with an authz-typed variable, the library typed for checking."""
    authz = authz_functions(False) if has_authz(variables) else None
    return new_environment(dict(declared(v) for v in variables), authz=authz)


def check(env: Any, source: str) -> Any:
    """``source`` compiled (parsed and type-checked) in ``env``; :class:`CompileError` with
    cel-go's issue text, positions as written, if it does not compile."""
    rewritten, inserted = rewrite(source)
    try:
        return env.compile(rewritten)
    except RuntimeError as e:
        raise CompileError(remap_issues(issue_text(str(e)), source, inserted))


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


__all__ = ["CompileError", "check", "checking_environment", "cross_numeric_only", "declared", "has_authz",
           "issue_text", "new_environment", "type_of"]
