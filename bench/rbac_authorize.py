"""Micro-benchmark of one RBAC decision: ``Chain.authorize`` as ``APIServer._serve`` calls it.

Run from the repository root::

    .venv/bin/python -m bench.rbac_authorize

A policy the size of Kubernetes' bootstrap policy (about 70 ClusterRoles and 60 ClusterRoleBindings,
mostly to ``system:`` users and groups) plus the bench user's ClusterRole of two rules; the user is
outside ``system:masters``, so every decision goes through the RBAC authorizer. Prints the best of
7 timeit runs in nanoseconds per decision: building the attributes, an allowed GET, an allowed
create (rule further down the list), a refused request, and a decision right after an RBAC change
(the per-user rules recompiled).
"""

from __future__ import annotations

import timeit

from kybernetes.apiserver.authz.authorizer import Attributes, new_chain
from kybernetes.apiserver.authz.rbac import RBACAuthorizer
from kybernetes.apiserver.authz.rbac_policy import PolicyIndex
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo

G = "rbac.authorization.k8s.io"


def policy() -> PolicyIndex:
    index = PolicyIndex()
    for i in range(70):
        index.put("ClusterRole", {"metadata": {"name": f"system:role-{i}"}, "rules": [
            {"apiGroups": [""], "resources": ["pods", "services"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get"]}]})
    for i in range(60):
        index.put("ClusterRoleBinding", {"metadata": {"name": f"system:binding-{i}"},
                                         "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": f"system:role-{i}"},
                                         "subjects": [{"kind": "User", "name": f"system:component-{i}"},
                                                      {"kind": "Group", "name": f"system:group-{i}"}]})
    index.put("ClusterRole", {"metadata": {"name": "kyb-bench"}, "rules": [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create", "get"]},
        {"apiGroups": [""], "resources": ["configmaps", "pods"], "verbs": ["create", "get", "update", "list", "watch"]}]})
    index.put("ClusterRoleBinding", {"metadata": {"name": "kyb-bench"},
                                     "roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": "kyb-bench"},
                                     "subjects": [{"kind": "User", "name": "bench-user"}]})
    return index


def ns_per_call(fn: object, number: int = 100_000) -> float:
    times = timeit.repeat(fn, number=number, repeat=7)  # type: ignore[arg-type]
    return min(times) / number * 1e9  # the least disturbed run: the machine is shared


def main() -> None:
    rbac = RBACAuthorizer.over(policy())
    chain = new_chain(["RBAC"], {"RBAC": lambda: rbac})
    user = User("bench-user", ("bench-users", "system:authenticated"))
    info = RequestInfo(True, "/api/v1/namespaces/bench/configmaps/cm-1", "get", "", "v1", "bench", "configmaps",
                       "", "cm-1")
    get = Attributes.of(user, info)
    create = Attributes(user, "create", True, "", "v1", "bench", "pods")
    refused = Attributes(user, "delete", True, "", "v1", "bench", "secrets", "", "s")

    def after_change() -> None:
        rbac.forget()
        chain.authorize(get)

    print(f"Attributes.of                    {ns_per_call(lambda: Attributes.of(user, info)):8.0f} ns")
    print(f"authorize: allowed get           {ns_per_call(lambda: chain.authorize(get)):8.0f} ns")
    print(f"authorize: allowed create        {ns_per_call(lambda: chain.authorize(create)):8.0f} ns")
    print(f"authorize: refused               {ns_per_call(lambda: chain.authorize(refused)):8.0f} ns")
    print(f"authorize after an RBAC change   {ns_per_call(after_change, 20_000):8.0f} ns")


if __name__ == "__main__":
    main()
