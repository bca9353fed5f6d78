"""Kubernetes' authz CEL library (``k8s.io/apiserver/pkg/cel/library/authz.go``), its types and
functions: the ``authorizer`` and ``authorizer.requestResource`` variables of admission policies
and webhook matchConditions.

``authorizer.group(g).resource(r)`` with ``.subresource(s)``, ``.namespace(ns)``, ``.name(n)``,
``.fieldSelector(sel)``, ``.labelSelector(sel)``, then ``.check(verb)``; ``authorizer.path(p)
.check(httpVerb)``; ``authorizer.serviceAccount(ns, name)`` (an authorizer for that service
account instead of the user); a decision's ``allowed()``, ``reason()``, ``errored()``,
``error()``. Errors in cel-go's words: ``path must not be empty``, ``resource must not be empty``,
``Invalid service account name``/``namespace``.

How: cel-expr-python type-checks against abstract types (``kubernetes.authorization.Authorizer``
and the others, as cel-go names them, so ``authorizer.check('get')`` is refused when a policy is
written), but its runtime cannot carry an opaque Python value. So an expression that uses these
variables is compiled a second time for evaluation in an environment where every one of these
types is a ``map(string, dyn)`` naming its kind (``{"__kyb_authz__": "Decision", ...}``).

Everything here is pure (values in, values out) except ``check``, which asks an authorizer: the
API server supplies it (:mod:`kybernetes.apiserver.cel.library_authz`, which owns the chains);
without one (type checking, as the policy status controller does), ``check`` fails when run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cel_expr_python.cel as ce

from kybernetes.api.validation import is_dns1123_label, is_dns1123_subdomain

KIND = "__kyb_authz__"
_PREFIX = "kubernetes.authorization."
TYPE_NAMES = ("Authorizer", "PathCheck", "GroupCheck", "ResourceCheck", "Decision")
_S, _B = ce.Type.STRING, ce.Type.BOOL
_RUNTIME = ce.Type.Map(ce.Type.STRING, ce.Type.DYN)

Check = Callable[[Any, str], dict[str, Any]]
"""``check(target, verb)``: a PathCheck or ResourceCheck value and a verb -> a Decision value."""


def cel_type(name: str, runtime: bool) -> Any:
    """The checking type (abstract, cel-go's name) or the runtime type (a map) of ``name``."""
    return _RUNTIME if runtime else ce.Type.AbstractType(_PREFIX + name)


def of_kind(value: Any, kind: str) -> dict[str, Any]:
    """``value`` if it is a value of this kind, else CEL's ``no such overload``."""
    if isinstance(value, dict) and value.get(KIND) == kind:
        return value
    raise ValueError("no such overload")


def user_map(name: str, groups: list[str], uid: str = "", extra: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"name": name, "uid": uid, "groups": list(groups), "extra": dict(extra or {})}


def _path(a: Any, path: str) -> dict[str, Any]:
    base = of_kind(a, "Authorizer")
    if not path.strip():
        raise ValueError("path must not be empty")
    return {**base, KIND: "PathCheck", "path": path}


def group_check(a: Any, group: str) -> dict[str, Any]:
    return {**of_kind(a, "Authorizer"), KIND: "GroupCheck", "group": group}


def _service_account(a: Any, namespace: str, name: str) -> dict[str, Any]:
    base = of_kind(a, "Authorizer")
    if is_dns1123_subdomain(name):
        raise ValueError("Invalid service account name")
    if is_dns1123_label(namespace):
        raise ValueError("Invalid service account namespace")
    user = user_map(f"system:serviceaccount:{namespace}:{name}",
                    ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"])
    return {**base, "user": user}


def resource_check(g: Any, resource: str) -> dict[str, Any]:
    base = of_kind(g, "GroupCheck")
    if not resource.strip():
        raise ValueError("resource must not be empty")
    return {**base, KIND: "ResourceCheck", "resource": resource, "subresource": "", "namespace": "", "name": "",
            "fieldSelector": "", "labelSelector": ""}


def _setter(field: str) -> Callable[[Any, str], dict[str, Any]]:
    def set_field(r: Any, value: str) -> dict[str, Any]:
        return {**of_kind(r, "ResourceCheck"), field: value}
    return set_field


def _decision(field: str) -> Callable[[Any], Any]:
    def get(d: Any) -> Any:
        value = of_kind(d, "Decision")
        if field == "allowed":
            return value["decision"] == "allow"
        if field == "errored":
            return bool(value["error"])
        return value[field]
    return get


def _no_authorizer(target: Any, verb: str) -> dict[str, Any]:
    raise ValueError("no authorizer available")


def authz_functions(runtime: bool, check: Check = _no_authorizer) -> list[ce.FunctionDecl]:
    """The library's functions, typed for checking or (``runtime``) on maps, where the two
    ``check`` overloads are one; ``check`` asks the authorizer (decision ``allow`` or another)."""
    az, pc, gc, rc, dec = (cel_type(n, runtime) for n in TYPE_NAMES)

    def m(oid: str, ret: Any, params: list[Any], impl: Callable[..., Any]) -> ce.Overload:
        return ce.Overload(oid, ret, params, is_member=True, impl=impl)

    checks = [m("resourcecheck_check", dec, [rc, _S], check)]
    if not runtime:
        checks.insert(0, m("pathcheck_check", dec, [pc, _S], check))
    setters = ("subresource", "namespace", "name", "fieldSelector", "labelSelector")
    return [
        ce.FunctionDecl("path", [m("authorizer_path", pc, [az, _S], _path)]),
        ce.FunctionDecl("group", [m("authorizer_group", gc, [az, _S], group_check)]),
        ce.FunctionDecl("serviceAccount", [m("authorizer_serviceaccount", az, [az, _S, _S], _service_account)]),
        ce.FunctionDecl("resource", [m("groupcheck_resource", rc, [gc, _S], resource_check)]),
        *(ce.FunctionDecl(f, [m(f"resourcecheck_{f.lower()}", rc, [rc, _S], _setter(f))]) for f in setters),
        ce.FunctionDecl("check", checks),
        ce.FunctionDecl("allowed", [m("decision_allowed", _B, [dec], _decision("allowed"))]),
        ce.FunctionDecl("reason", [m("decision_reason", _S, [dec], _decision("reason"))]),
        ce.FunctionDecl("errored", [m("decision_errored", _B, [dec], _decision("errored"))]),
        ce.FunctionDecl("error", [m("decision_error", _S, [dec], _decision("error"))]),
    ]


__all__ = ["KIND", "TYPE_NAMES", "Check", "authz_functions", "cel_type", "group_check", "of_kind",
           "resource_check", "user_map"]
