"""Micro-benchmark of one authorization decision, as ``APIServer._serve`` makes it.

Run from the repository root::

    .venv/bin/python -m bench.rbac_authorize                  # wall clock: ns per decision
    .venv/bin/python -m bench.rbac_authorize --instructions   # instructions per decision (callgrind)

A policy the size of Kubernetes' bootstrap policy (about 70 ClusterRoles and 60 ClusterRoleBindings,
mostly to ``system:`` users and groups) plus the bench user's ClusterRole of two rules; the user is
outside ``system:masters``, so every decision goes through the modes. Each case is the server's
whole authorization step for one request, from the authenticated user and the request's
RequestInfo to the decision (:func:`server_path`), with the chain of ``--authorization-mode RBAC``
(what ``bench.apiserver --authorization-mode AlwaysAllow RBAC`` compares) or of the default
``Node,RBAC`` (the Node authorizer over an empty graph): an allowed GET, an allowed create, a
refused request, a node's GET of its own Node (the Node authorizer decides; never remembered), and
a GET right after an RBAC change (the user's rules recompiled); and the harness alone, included
in every other figure.

Wall clock: the best of 7 timeit runs (the machine is shared: the least disturbed run).
``--instructions`` runs each case twice under ``valgrind --tool=callgrind`` (N and N + 20,000
decisions, in fresh processes) and prints the difference per decision: repeatable to a few
instructions on a noisy machine, where wall-clock figures are not.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import timeit
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bench.callgrind import instructions_per_call, run_case
from kybernetes.apiserver.authz.authorizer import Chain, Decision, new_chain
from kybernetes.apiserver.authz.node import NodeDecisions
from kybernetes.apiserver.authz.node_graph import NodeGraph
from kybernetes.apiserver.authz.rbac import RBACAuthorizer
from kybernetes.apiserver.authz.rbac_policy import PolicyIndex
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import RequestInfo

G = "rbac.authorization.k8s.io"
USER = User("bench-user", ("bench-users", "system:authenticated"))
NODE = User("system:node:n1", ("system:nodes", "system:authenticated"))
GET = RequestInfo(True, "/api/v1/namespaces/bench/configmaps/cm-1", "get", "", "v1", "bench", "configmaps", "", "cm-1")
CREATE = RequestInfo(True, "/api/v1/namespaces/bench/pods", "create", "", "v1", "bench", "pods")
REFUSED = RequestInfo(True, "/api/v1/namespaces/bench/secrets/s", "delete", "", "v1", "bench", "secrets", "", "s")
NODE_GET = RequestInfo(True, "/api/v1/nodes/n1", "get", "", "v1", "", "nodes", "", "n1")


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


def server_path(chain: Chain, user: User, info: RequestInfo) -> Decision:
    """The server's authorization step (``APIServer._serve``): user and RequestInfo in, decision out."""
    decision, _ = chain.decide(user, info)
    return decision


def no_decision(chain: Chain, user: User, info: RequestInfo) -> Decision:
    """The harness alone (calls and the loop), to subtract from the cases."""
    return Decision.ALLOW


def cases() -> dict[str, Callable[[], object]]:
    """Each case: one decision, the policy already warm (remembered) unless the case says otherwise."""
    rbac = RBACAuthorizer.over(policy())
    only_rbac = new_chain(["RBAC"], {"RBAC": lambda: rbac})
    default = new_chain(["Node", "RBAC"], {"RBAC": lambda: rbac, "Node": lambda: NodeDecisions(NodeGraph())})

    def after_change() -> None:
        rbac.forget()
        server_path(only_rbac, USER, GET)

    return {
        "RBAC: allowed get": lambda: server_path(only_rbac, USER, GET),
        "RBAC: allowed create": lambda: server_path(only_rbac, USER, CREATE),
        "RBAC: refused": lambda: server_path(only_rbac, USER, REFUSED),
        "Node,RBAC: allowed get": lambda: server_path(default, USER, GET),
        "Node,RBAC: node gets its Node": lambda: server_path(default, NODE, NODE_GET),
        "RBAC: get after an RBAC change": after_change,
        "harness only (no decision)": lambda: no_decision(only_rbac, USER, GET),
    }


def ns_per_call(fn: Callable[[], object], number: int) -> float:
    times = timeit.repeat(fn, number=number, repeat=7)
    return min(times) / number * 1e9


def instructions(case: str, tmp: str) -> float:
    """Instructions per decision of ``case`` (bench.callgrind)."""
    return instructions_per_call("bench.rbac_authorize", case, tmp)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instructions", action="store_true", help="instructions per decision (valgrind callgrind)")
    ap.add_argument("--case", default="", help="only the cases whose name contains this")
    ap.add_argument("--run", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.run:
        run_case(cases(), args.run[0], int(args.run[1]))
        return 0
    if args.instructions and shutil.which("valgrind") is None:
        print("valgrind is not installed", file=sys.stderr)
        return 1
    chosen = {case: fn for case, fn in cases().items() if args.case in case}
    if args.instructions:
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as pool:  # 2 valgrinds at a time
            counts = pool.map(lambda case: instructions(case, tmp), chosen)
            for case, count in zip(chosen, counts, strict=True):
                print(f"{case:<36}{count:10.0f} instructions", flush=True)
        return 0
    for case, fn in chosen.items():
        number = 20_000 if "change" in case else 100_000
        print(f"{case:<36}{ns_per_call(fn, number):10.0f} ns", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
