"""CEL in the API server: compilation cached per expression, evaluation with cost limits, CRD
validation rules and the admission environments, on the environments and libraries of
:mod:`kybernetes.cel` (why cel-expr-python, and which of Kubernetes' libraries are built, is
written there).

Cost is bounded before evaluation (:mod:`.cost`), not counted during it, and estimated from the
schema when a CRD or policy is written (:mod:`.estimate`). The package: :mod:`.env` (compilation
cached per expression, evaluation), :mod:`.cost`, :mod:`.admission` (the policy environment),
:mod:`.crdrules` (``x-kubernetes-validations``) with :mod:`.schematypes` (values), and
:mod:`.library_authz` (the authz library's ``check``, asking the server's authorizer chain).
"""

from __future__ import annotations

from kybernetes.apiserver.cel.cost import (
    BUDGET_EXCEEDED,
    PER_CALL_EXCEEDED,
    PER_CALL_LIMIT,
    RUNTIME_COST_BUDGET,
)
from kybernetes.apiserver.cel.env import CompileError, EvalError, Program, compile_expression

__all__ = [
    "BUDGET_EXCEEDED",
    "PER_CALL_EXCEEDED",
    "PER_CALL_LIMIT",
    "RUNTIME_COST_BUDGET",
    "CompileError",
    "EvalError",
    "Program",
    "compile_expression",
]
