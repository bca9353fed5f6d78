"""The authz CEL library's server side: ``check`` asks the API server's authorizer chain.

The library's types and pure functions are :mod:`kybernetes.cel.library_authz`; here are the
values of the ``authorizer`` and ``authorizer.requestResource`` variables for one request
(:func:`variables`) and the ``check`` that asks the chain they name. ``authorizer.requestResource``
is the request's own resource check (group, resource, subresource, namespace, name). The chain
asked is named by a handle in the value (cel-expr-python cannot carry a Python object). The chain
never errs (:mod:`kybernetes.apiserver.authz.authorizer`), so ``errored()`` is false and
``error()`` empty; the label selector is carried but no authorizer here reads one (RBAC and Node
ignore both).
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import cel_expr_python.cel as ce

from kybernetes.apiserver.authz.authorizer import Attributes, Chain, Decision
from kybernetes.apiserver.registry.request import User
from kybernetes.cel.library_authz import (
    KIND,
    TYPE_NAMES,
    authz_functions,
    group_check,
    resource_check,
    user_map,
)

_chains: weakref.WeakValueDictionary[int, Chain] = weakref.WeakValueDictionary()
_handles: dict[int, int] = {}
_counter = itertools.count(1)


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
    return user_map(user.name, list(user.groups), user.uid, {k: list(v) for k, v in user.extra.items()})


def authorizer_value(chain: Chain | None, user: User) -> dict[str, Any]:
    """The ``authorizer`` variable for ``user`` asking ``chain`` (None: AlwaysAllow)."""
    return {KIND: "Authorizer", "chain": _handle(chain), "user": _user_map(user)}


def request_resource_value(chain: Chain | None, user: User, group: str, resource: str, subresource: str,
                           namespace: str, name: str) -> dict[str, Any]:
    """The ``authorizer.requestResource`` variable: the request's own resource, ready to check."""
    check = resource_check(group_check(authorizer_value(chain, user), group), resource)
    return {**check, "subresource": subresource, "namespace": namespace, "name": name}


def variables(chain: Chain | None, user: User, group: str, resource: str, subresource: str, namespace: str,
              name: str) -> dict[str, Any]:
    """Both variables, ``authorizer`` and ``authorizer.requestResource``, for one request."""
    return {"authorizer": authorizer_value(chain, user),
            "authorizer.requestResource": request_resource_value(chain, user, group, resource, subresource,
                                                                 namespace, name)}


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


def runtime_functions() -> list[ce.FunctionDecl]:
    """The library typed for evaluation (values are maps), its ``check`` asking the chains."""
    return authz_functions(True, _check)


__all__ = ["TYPE_NAMES", "authorizer_value", "request_resource_value", "runtime_functions", "variables"]
