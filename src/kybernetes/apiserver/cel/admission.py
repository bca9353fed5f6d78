"""The CEL environment of admission policies (ValidatingAdmissionPolicy): its variables and the
check that an expression of a policy compiles, in kube-apiserver's words.

``object``, ``oldObject`` (null on CREATE and DELETE respectively), ``request`` (the
AdmissionRequest's fields), ``params`` (the binding's parameter object, or null),
``namespaceObject`` (the request's Namespace, or null), ``variables`` (the policy's variables by
name), ``authorizer`` and ``authorizer.requestResource`` (:mod:`.library_authz`: null when the
caller gives no authorizer, which then fails with ``no such overload`` when used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kybernetes.apiserver.cel import CompileError, compile_expression

if TYPE_CHECKING:
    from kybernetes.apiserver.cel.env import Program

VARIABLES = ("authorizer:Authorizer", "authorizer.requestResource:ResourceCheck", "namespaceObject", "object",
             "oldObject", "params", "request", "variables")


def compile_policy_expression(source: str) -> Program:
    """The compiled expression (cached); :class:`CompileError` if it does not compile."""
    return compile_expression(source, VARIABLES)


def compile_error(source: str) -> str | None:
    """``compilation failed: ERROR: <input>:...`` if ``source`` does not compile, else None."""
    try:
        compile_policy_expression(source)
    except CompileError as e:
        return f"compilation failed: {e}"
    return None


__all__ = ["VARIABLES", "compile_error", "compile_policy_expression"]
