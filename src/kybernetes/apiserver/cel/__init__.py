"""CEL in the API server: compilation cached per expression, evaluation with cost limits, CRD
validation rules and the admission environments, on the environments and libraries of
:mod:`kybernetes.cel` (why cel-expr-python, and which of Kubernetes' libraries are built, is
written there).

Cost is bounded before evaluation (:mod:`.cost`), not counted during it, and estimated from the
schema when a CRD or policy is written (:mod:`.estimate`). The package: :mod:`.env` (compilation
cached per expression, evaluation), :mod:`.cost`, :mod:`.admission` (the policy environment),
:mod:`.crdrules` (``x-kubernetes-validations``) with :mod:`.schematypes` (values), and
:mod:`.library_authz` (the authz library's ``check``, asking the server's authorizer chain).

Loaded when first needed (issue 18): importing this package, :mod:`.cost` or :mod:`.admission`
loads no CEL implementation. cel-expr-python's C extensions (~14 MB resident, and protobuf) load
with the first expression compiled (:func:`compile_expression`: a webhook's matchConditions, a
ValidatingAdmissionPolicy) or the first CRD schema with rules (:func:`has_rules` tells before
:mod:`.crdrules` is imported), so an API server whose objects have no CEL never pays for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kybernetes.apiserver.cel.cost import (
    BUDGET_EXCEEDED,
    PER_CALL_EXCEEDED,
    PER_CALL_LIMIT,
    RUNTIME_COST_BUDGET,
)
from kybernetes.cel import CompileError

if TYPE_CHECKING:
    from kybernetes.apiserver.cel.env import Program


class EvalError(Exception):
    """The evaluation failed (no such key, no such overload, division by zero, cost limit...)."""


def compile_expression(source: str, variables: tuple[str, ...]) -> Program:
    """:func:`.env.compile_expression` (the first call loads cel-expr-python)."""
    from kybernetes.apiserver.cel import env

    return env.compile_expression(source, variables)


def has_rules(schema: Any) -> bool:
    """Whether any node of a CRD schema has ``x-kubernetes-validations`` (else :mod:`.crdrules`
    has nothing to compile or check, and need not be imported)."""
    if not isinstance(schema, dict):
        return False
    props = schema.get("properties")
    subs = list(props.values()) if isinstance(props, dict) else []
    return bool(schema_rules(schema)) or any(has_rules(x) for x in [*subs, schema.get("items"),
                                                                     schema.get("additionalProperties")])


def schema_rules(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """One schema node's ``x-kubernetes-validations`` entries (those that are objects)."""
    rules = schema.get("x-kubernetes-validations")
    return [r for r in rules if isinstance(r, dict)] if isinstance(rules, list) else []


__all__ = [
    "BUDGET_EXCEEDED",
    "PER_CALL_EXCEEDED",
    "PER_CALL_LIMIT",
    "RUNTIME_COST_BUDGET",
    "CompileError",
    "EvalError",
    "compile_expression",
    "has_rules",
    "schema_rules",
]
