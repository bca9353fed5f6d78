"""matchConditions: CEL expressions over the request, compiled once per configuration version.

On the project's CEL layer (:mod:`kybernetes.apiserver.cel`, the one home of CEL), with
Kubernetes' semantics (``k8s.io/apiserver/pkg/admission/plugin/webhook/matchconditions``): the
variables are ``object``, ``oldObject`` (null where the operation has none), ``request`` (the
AdmissionReview request as JSON), ``authorizer`` and ``authorizer.requestResource`` (the request's
user asking the server's authorizer chain, :mod:`kybernetes.apiserver.cel.library_authz`); the conditions match when every one evaluates
to ``true``; the first ``false`` skips the webhook (errors of other conditions notwithstanding); an
error or a non-boolean result, with no ``false``, is an evaluation error (``expression '<e>'
resulted in error: ...``; several as ``[a, b]``), which the caller turns into a refusal under
``failurePolicy: Fail`` and a skip under ``Ignore``. An expression that does not compile (syntax,
or a variable that is not declared) is refused when the configuration is written.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kybernetes.apiserver.cel import CompileError, EvalError, compile_expression

if TYPE_CHECKING:
    from kybernetes.apiserver.cel.env import Program

VARIABLES = ("authorizer:Authorizer", "authorizer.requestResource:ResourceCheck", "object", "oldObject", "request")


def compile_error(expression: str) -> str:
    """Why ``expression`` does not compile, in Kubernetes' words (empty if it compiles)."""
    try:
        compile_expression(expression, VARIABLES)
    except CompileError as e:
        return f"compilation failed: {e}"
    return ""


@dataclass(frozen=True)
class Condition:
    name: str
    expression: str
    program: Program | None


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

    def evaluate(self, request: dict[str, Any], authz: dict[str, Any] | None = None) -> Outcome:
        """``authz``: the ``authorizer`` variables
        (:func:`kybernetes.apiserver.cel.library_authz.variables`); without them an expression
        that uses them fails when evaluated."""
        variables = {"object": request.get("object"), "oldObject": request.get("oldObject"), "request": request,
                     **(authz or {"authorizer": None, "authorizer.requestResource": None})}
        problems: list[str] = []
        for c in self.conditions:
            if c.program is None:
                problems.append(f"expression '{c.expression}' resulted in error: compilation failed")
                continue
            try:
                value = c.program.evaluate(variables)
            except EvalError as e:
                problems.append(f"expression '{c.expression}' resulted in error: {e}")
                continue
            if value is False:
                return Outcome(False)
            if value is not True:
                problems.append(f"expression '{c.expression}' resulted in error: cel expression must evaluate "
                                "to bool")
        if problems:
            return Outcome(False, "; ".join(problems) if len(problems) == 1 else "[" + ", ".join(problems) + "]")
        return Outcome(True)


def _compile(expression: str) -> Program | None:
    try:
        return compile_expression(expression, VARIABLES)
    except CompileError:
        return None
