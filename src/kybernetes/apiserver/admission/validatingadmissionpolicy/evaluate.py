"""One ValidatingAdmissionPolicy, compiled once per version, evaluated for one request and param.

``k8s.io/apiserver/pkg/admission/plugin/policy/validating/validator.go``: matchConditions first
(all must be true; a false one skips the policy; an error is a failure), then each validation:
false gives a violation with its message (``messageExpression`` if it yields a non-empty
one-line string, else ``message``, else ``failed expression: <expression>``) and reason (default
Invalid); an evaluation error gives a failure (``expression '<e>' resulted in error: <err>``),
which the policy's ``failurePolicy`` turns into a denial (Fail) or nothing (Ignore). Then the
audit annotations (a null value adds none). Variables are evaluated only when an expression that
runs refers to them (``variables.<name>``), each at most once per evaluation, as cel-go's lazy
variables do. Every expression of one evaluation shares the per-request cost budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from kybernetes.apiserver.cel import BUDGET_EXCEEDED, RUNTIME_COST_BUDGET, CompileError, EvalError
from kybernetes.apiserver.cel import cost as celcost
from kybernetes.apiserver.cel.admission import VARIABLES, compile_policy_expression

if TYPE_CHECKING:
    from kybernetes.apiserver.cel.env import Program

_VARIABLE_REF = re.compile(r"\bvariables\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Decision:
    """The outcome of one validation: ``deny`` (a violation or a failure under Fail)."""

    message: str
    reason: str = "Invalid"
    index: int = 0
    failure: bool = False
    """True if from an evaluation error (failurePolicy decides), False for a violation."""


@dataclass
class Outcome:
    decisions: list[Decision] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)
    skipped: bool = False
    """A matchCondition was false: the policy does not apply."""


@dataclass(frozen=True, eq=False)
class Expr:
    source: str
    program: Program
    refs: tuple[str, ...]


def _expr(source: Any) -> Expr | None:
    if not isinstance(source, str) or not source.strip():
        return None
    try:
        program = compile_policy_expression(source)
    except CompileError:
        return None  # refused when the policy was written; a stored one is skipped
    return Expr(source, program, tuple(_VARIABLE_REF.findall(source)))


@dataclass(eq=False)
class CompiledPolicy:
    """A policy's expressions, compiled once (for one resourceVersion of the policy)."""

    name: str
    spec: dict[str, Any]
    failure_policy: str
    match_conditions: list[tuple[str, Expr]]
    variables: dict[str, Expr]
    validations: list[tuple[Expr, Expr | None, dict[str, Any]]]
    audits: list[tuple[str, Expr]]
    uses: frozenset[str] = frozenset()
    """The CEL variables any expression of the policy reads (only those are converted)."""
    referenced: tuple[str, ...] = ()
    """The policy variables some expression refers to."""

    def __post_init__(self) -> None:
        exprs = [e for _n, e in self.match_conditions] + list(self.variables.values()) + \
            [e for v, m, _r in self.validations for e in (v, m) if e is not None] + [e for _k, e in self.audits]
        self.uses = frozenset(name for e in exprs for name in e.program.uses)
        refs = {r for e in exprs for r in e.refs}
        self.referenced = tuple(name for name in self.variables if name in refs)

    @classmethod
    def of(cls, policy: dict[str, Any]) -> CompiledPolicy:
        spec = policy.get("spec") or {}
        conditions = [(str(c.get("name")), e) for c in spec.get("matchConditions") or ()
                      if isinstance(c, dict) and (e := _expr(c.get("expression")))]
        variables = {str(x.get("name")): e for x in spec.get("variables") or ()
                     if isinstance(x, dict) and (e := _expr(x.get("expression")))}
        validations = [(e, _expr(x.get("messageExpression")), x) for x in spec.get("validations") or ()
                       if isinstance(x, dict) and (e := _expr(x.get("expression")))]
        audits = [(str(x.get("key")), e) for x in spec.get("auditAnnotations") or ()
                  if isinstance(x, dict) and (e := _expr(x.get("valueExpression")))]
        return cls(policy["metadata"]["name"], spec, spec.get("failurePolicy") or "Fail", conditions, variables,
                   validations, audits)

    def evaluate(self, data: dict[str, Any]) -> Outcome:
        """Run the policy on one request's CEL variables (without ``variables``, added here)."""
        run = _Run(self, data)
        for name, cond in self.match_conditions:
            try:
                if run.value(cond) is not True:
                    return Outcome(skipped=True)
            except EvalError as e:
                return Outcome([Decision(f"failed to evaluate matchCondition '{name}': {e}", failure=True)])
        out = Outcome()
        for i, (expr, message, raw) in enumerate(self.validations):
            try:
                ok = run.value(expr)
            except EvalError as e:
                out.decisions.append(Decision(f"expression '{expr.source}' resulted in error: {e}", index=i,
                                              failure=True))
                continue
            if ok is not True:
                out.decisions.append(Decision(run.message(raw, message), str(raw.get("reason") or "Invalid"), i))
        for key, expr in self.audits:
            try:
                value = run.value(expr)
            except EvalError:
                continue
            if isinstance(value, str):
                out.audit_annotations[f"{self.name}/{key}"] = value
        return out


class _Run:
    """One evaluation: the policy's variables, the converted activation, the shared cost budget.

    Every variable some expression refers to is computed first (so that the activation, whose
    conversion is most of the cost, is built once with them); an error is kept and raised only
    by the expressions that use that variable, so an unused failing variable fails nothing."""

    def __init__(self, policy: CompiledPolicy, data: dict[str, Any]) -> None:
        from kybernetes.apiserver.cel.env import (
            Activation,  # loaded already: the policy's expressions compiled
        )

        self.policy = policy
        self.values: dict[str, Any] = {}
        self.errors: dict[str, EvalError] = {}
        self.data = {k: v for k, v in data.items() if k in policy.uses}
        self.budget = RUNTIME_COST_BUDGET
        for name in policy.referenced:
            self._compute(name, ())
        self.activation = Activation(VARIABLES, {**self.data, "variables": self.values})

    @cached_property
    def _width(self) -> int:
        return celcost.width([self.data.get("object"), self.data.get("oldObject"), self.data.get("params")])

    def _charge(self, expr: Expr) -> int:
        # Only comprehensions cost more on wider data: measure it only for them.
        width = self._width if expr.program.macro_depth else 1
        bound = expr.program.cost_bound(width)
        if celcost.PER_CALL_LIMIT >= bound > self.budget:
            raise EvalError(BUDGET_EXCEEDED)
        self.budget -= bound
        return width

    def _compute(self, name: str, chain: tuple[str, ...]) -> None:
        expr = self.policy.variables.get(name)
        if expr is None or name in self.values or name in self.errors or name in chain:
            return
        try:
            for ref in expr.refs:
                self._compute(ref, (*chain, name))
                if ref in self.errors:
                    raise self.errors[ref]
            width = self._charge(expr)
            self.values[name] = expr.program.evaluate({**self.data, "variables": self.values}, width)
        except EvalError as e:
            self.errors[name] = e

    def value(self, expr: Expr) -> Any:
        for name in expr.refs:
            if name in self.errors:
                raise self.errors[name]
        return expr.program.evaluate(self.activation, self._charge(expr))

    def message(self, raw: dict[str, Any], message: Expr | None) -> str:
        if message is not None:
            try:
                text = self.value(message)
            except EvalError:
                text = None
            if isinstance(text, str) and text.strip() and "\n" not in text.strip():
                return text.strip()
        static = raw.get("message")
        if isinstance(static, str) and static.strip():
            return static.strip()
        return f"failed expression: {str(raw.get('expression') or '').strip()}"


__all__ = ["CompiledPolicy", "Decision", "Outcome"]
