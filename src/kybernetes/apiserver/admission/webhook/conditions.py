"""matchConditions: CEL expressions over the request, compiled once per configuration version.

An adapter over ``common-expression-language`` (the ``cel`` module), with Kubernetes' semantics
(``k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions``): the variables are ``object``,
``oldObject`` (null where the operation has none) and ``request`` (the AdmissionReview request as
JSON); the conditions match when every one evaluates to ``true``; the first ``false`` skips the
webhook (errors of other conditions notwithstanding); an error or a non-boolean result, with no
``false``, is an evaluation error (``expression '<e>' resulted in error: ...``; several as
``[a, b]``), which the caller turns into a refusal under ``failurePolicy: Fail`` and a skip under
``Ignore``.

Differences from Kubernetes, stated: the library checks syntax at compile time but not types, so
an expression naming an undeclared variable compiles and fails when evaluated; ``authorizer`` and
Kubernetes' CEL extension libraries are not offered (an expression using them fails when
evaluated, which the failure policy then decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cel

_PARSE_PREFIX = "Failed to parse expression"


def compile_error(expression: str) -> str:
    """Why ``expression`` does not compile, in Kubernetes' words (empty if it compiles)."""
    try:
        cel.compile(expression)
    except ValueError as e:
        text = str(e)
        if text.startswith(_PARSE_PREFIX) and ": " in text:
            text = text.split(": ", 1)[1]
        return "compilation failed: " + text
    return ""


@dataclass(frozen=True)
class Condition:
    name: str
    expression: str
    program: Any


@dataclass(frozen=True)
class Outcome:
    matches: bool
    error: str = ""
    """Set when no condition was false and some could not be evaluated to a boolean."""


class Conditions:
    """A webhook's compiled matchConditions."""

    def __init__(self, conditions: list[dict[str, Any]]) -> None:
        self.conditions = [Condition(str(c.get("name") or ""), str(c.get("expression") or ""),
                                     _compile(str(c.get("expression") or ""))) for c in conditions]

    def __bool__(self) -> bool:
        return bool(self.conditions)

    def evaluate(self, request: dict[str, Any]) -> Outcome:
        variables = {"object": request.get("object"), "oldObject": request.get("oldObject"), "request": request}
        problems: list[str] = []
        for c in self.conditions:
            if c.program is None:
                problems.append(f"expression '{c.expression}' resulted in error: compilation failed")
                continue
            try:
                value = c.program.execute(variables)
            except Exception as e:  # the library raises KeyError, TypeError, ValueError, RuntimeError...
                problems.append(f"expression '{c.expression}' resulted in error: {_describe(e)}")
                continue
            if value is False:
                return Outcome(False)
            if value is not True:
                problems.append(f"expression '{c.expression}' resulted in error: cel expression must evaluate "
                                "to bool")
        if problems:
            return Outcome(False, "; ".join(problems) if len(problems) == 1 else "[" + ", ".join(problems) + "]")
        return Outcome(True)


def _compile(expression: str) -> Any:
    try:
        return cel.compile(expression)
    except ValueError:
        return None


def _describe(e: Exception) -> str:
    if isinstance(e, KeyError):
        return f"no such key: {e.args[0] if e.args else ''}"
    return str(e)
