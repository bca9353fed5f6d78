"""Kubernetes' authz CEL library (``k8s.io/apiserver/pkg/cel/library/authz.go``): the
``authorizer`` and ``authorizer.requestResource`` variables of admission policies and webhook
matchConditions, asking the API server's authorizer chain about the request's user.

``authorizer.group(g).resource(r)`` with ``.subresource(s)``, ``.namespace(ns)``, ``.name(n)``,
``.fieldSelector(sel)``, ``.labelSelector(sel)``, then ``.check(verb)``; ``authorizer.path(p)
.check(httpVerb)``; ``authorizer.serviceAccount(ns, name)`` (an authorizer for that service
account instead of the user); a decision's ``allowed()``, ``reason()``, ``errored()``,
``error()``. ``authorizer.requestResource`` is the request's own resource check (group,
resource, subresource, namespace, name). Errors in cel-go's words: ``path must not be empty``,
``resource must not be empty``, ``Invalid service account name``/``namespace``.

How: cel-expr-python type-checks against abstract types (``kubernetes.authorization.Authorizer``
and the others, as cel-go names them, so ``authorizer.check('get')`` is refused when a policy is
written), but its runtime cannot carry an opaque Python value. So an expression that uses these
variables is compiled a second time for evaluation in an environment where every one of these
types is a ``map(string, dyn)`` naming its kind (``{"__kyb_authz__": "Decision", ...}``), and the
chain asked is named by a handle (:func:`authorizer_value`). The chain never errs
(:mod:`kybernetes.apiserver.authz.authorizer`), so ``errored()`` is false and ``error()`` empty;
the label selector is carried but no authorizer here reads one (RBAC and Node ignore both).
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable
from typing import Any

import cel_expr_python.cel as ce

from kybernetes.api.validation import is_dns1123_label, is_dns1123_subdomain
from kybernetes.apiserver.authz.authorizer import Attributes, Chain, Decision
from kybernetes.apiserver.registry.request import User

KIND = "__kyb_authz__"
_PREFIX = "kubernetes.authorization."
TYPE_NAMES = ("Authorizer", "PathCheck", "GroupCheck", "ResourceCheck", "Decision")
_S, _B = ce.Type.STRING, ce.Type.BOOL
_RUNTIME = ce.Type.Map(ce.Type.STRING, ce.Type.DYN)
_chains: weakref.WeakValueDictionary[int, Chain] = weakref.WeakValueDictionary()
_handles: dict[int, int] = {}
_counter = itertools.count(1)


def cel_type(name: str, runtime: bool) -> Any:
    """The checking type (abstract, cel-go's name) or the runtime type (a map) of ``name``."""
    return _RUNTIME if runtime else ce.Type.AbstractType(_PREFIX + name)


def _handle(chain: Chain | None) -> int:
    """A number naming ``chain`` in the values (0: no chain, every check allowed)."""
    if chain is None:
        return 0
    handle = _handles.get(id(chain))
    if handle is None or _chains.get(handle) is not chain:
        handle = next(_counter)
        _chains[handle] = chain
        _handles[id(chain)] = handle
    return handle


def _user_map(user: User) -> dict[str, Any]:
    return {"name": user.name, "uid": user.uid, "groups": list(user.groups),
            "extra": {k: list(v) for k, v in user.extra.items()}}


def authorizer_value(chain: Chain | None, user: User) -> dict[str, Any]:
    """The ``authorizer`` variable for ``user`` asking ``chain`` (None: AlwaysAllow)."""
    return {KIND: "Authorizer", "chain": _handle(chain), "user": _user_map(user)}


def request_resource_value(chain: Chain | None, user: User, group: str, resource: str, subresource: str,
                           namespace: str, name: str) -> dict[str, Any]:
    """The ``authorizer.requestResource`` variable: the request's own resource, ready to check."""
    check = _resource(_group(authorizer_value(chain, user), group), resource)
    return {**check, "subresource": subresource, "namespace": namespace, "name": name}


def variables(chain: Chain | None, user: User, group: str, resource: str, subresource: str, namespace: str,
              name: str) -> dict[str, Any]:
    """Both variables, ``authorizer`` and ``authorizer.requestResource``, for one request."""
    return {"authorizer": authorizer_value(chain, user),
            "authorizer.requestResource": request_resource_value(chain, user, group, resource, subresource,
                                                                 namespace, name)}


def _of(value: Any, kind: str) -> dict[str, Any]:
    if isinstance(value, dict) and value.get(KIND) == kind:
        return value
    raise ValueError("no such overload")


def _path(a: Any, path: str) -> dict[str, Any]:
    base = _of(a, "Authorizer")
    if not path.strip():
        raise ValueError("path must not be empty")
    return {**base, KIND: "PathCheck", "path": path}


def _group(a: Any, group: str) -> dict[str, Any]:
    return {**_of(a, "Authorizer"), KIND: "GroupCheck", "group": group}


def _service_account(a: Any, namespace: str, name: str) -> dict[str, Any]:
    base = _of(a, "Authorizer")
    if is_dns1123_subdomain(name):
        raise ValueError("Invalid service account name")
    if is_dns1123_label(namespace):
        raise ValueError("Invalid service account namespace")
    user = User(f"system:serviceaccount:{namespace}:{name}",
                ("system:serviceaccounts", f"system:serviceaccounts:{namespace}"))
    return {**base, "user": _user_map(user)}


def _resource(g: Any, resource: str) -> dict[str, Any]:
    base = _of(g, "GroupCheck")
    if not resource.strip():
        raise ValueError("resource must not be empty")
    return {**base, KIND: "ResourceCheck", "resource": resource, "subresource": "", "namespace": "", "name": "",
            "fieldSelector": "", "labelSelector": ""}


def _setter(field: str) -> Callable[[Any, str], dict[str, Any]]:
    def set_field(r: Any, value: str) -> dict[str, Any]:
        return {**_of(r, "ResourceCheck"), field: value}
    return set_field


def _check(target: Any, verb: str) -> dict[str, Any]:
    """Ask the chain: a PathCheck for an HTTP verb on a path, a ResourceCheck for an API verb
    (``APIVersion: "*"``, as Kubernetes asks)."""
    kind = target.get(KIND) if isinstance(target, dict) else None
    if kind not in ("PathCheck", "ResourceCheck"):
        raise ValueError("no such overload")
    u = target["user"]
    user = User(u["name"], tuple(u["groups"]), u["uid"], {k: list(v) for k, v in u["extra"].items()})
    if kind == "PathCheck":
        attrs = Attributes(user, verb, resource_request=False, path=target["path"])
    else:
        attrs = Attributes(user, verb, True, target["group"], "*", target["namespace"], target["resource"],
                           target["subresource"], target["name"], field_selector=target["fieldSelector"])
    if not target["chain"]:
        return {KIND: "Decision", "decision": Decision.ALLOW.value, "reason": "", "error": ""}
    chain = _chains.get(target["chain"])
    if chain is None:  # a value that outlived its server's chain: never fail open
        raise ValueError("authorizer is no longer available")
    decision, reason = chain.authorize(attrs)
    return {KIND: "Decision", "decision": decision.value, "reason": reason, "error": ""}


def _decision(field: str) -> Callable[[Any], Any]:
    def get(d: Any) -> Any:
        value = _of(d, "Decision")
        if field == "allowed":
            return value["decision"] == Decision.ALLOW.value
        if field == "errored":
            return bool(value["error"])
        return value[field]
    return get


def authz_functions(runtime: bool) -> list[ce.FunctionDecl]:
    """The library's functions, typed for checking or (``runtime``) on maps, where the two
    ``check`` overloads are one."""
    az, pc, gc, rc, dec = (cel_type(n, runtime) for n in TYPE_NAMES)

    def m(oid: str, ret: Any, params: list[Any], impl: Callable[..., Any]) -> ce.Overload:
        return ce.Overload(oid, ret, params, is_member=True, impl=impl)

    checks = [m("resourcecheck_check", dec, [rc, _S], _check)]
    if not runtime:
        checks.insert(0, m("pathcheck_check", dec, [pc, _S], _check))
    setters = ("subresource", "namespace", "name", "fieldSelector", "labelSelector")
    return [
        ce.FunctionDecl("path", [m("authorizer_path", pc, [az, _S], _path)]),
        ce.FunctionDecl("group", [m("authorizer_group", gc, [az, _S], _group)]),
        ce.FunctionDecl("serviceAccount", [m("authorizer_serviceaccount", az, [az, _S, _S], _service_account)]),
        ce.FunctionDecl("resource", [m("groupcheck_resource", rc, [gc, _S], _resource)]),
        *(ce.FunctionDecl(f, [m(f"resourcecheck_{f.lower()}", rc, [rc, _S], _setter(f))]) for f in setters),
        ce.FunctionDecl("check", checks),
        ce.FunctionDecl("allowed", [m("decision_allowed", _B, [dec], _decision("allowed"))]),
        ce.FunctionDecl("reason", [m("decision_reason", _S, [dec], _decision("reason"))]),
        ce.FunctionDecl("errored", [m("decision_errored", _B, [dec], _decision("errored"))]),
        ce.FunctionDecl("error", [m("decision_error", _S, [dec], _decision("error"))]),
    ]


__all__ = ["KIND", "TYPE_NAMES", "authorizer_value", "authz_functions", "cel_type", "request_resource_value",
           "variables"]
