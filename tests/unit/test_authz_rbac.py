"""The RBAC authorizer and rule resolver (authz/rbac.py, authz/rbac_policy.py), table-driven:
who may do what where, Kubernetes' reasons, rule coverage and the escalation message, and the
watch-fed cache seeing grants and revocations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.authz.authorizer import Attributes, Decision, new_chain
from kybernetes.apiserver.authz.covers import covers
from kybernetes.apiserver.authz.rbac import RBACAuthorizer
from kybernetes.apiserver.authz.rbac_policy import (
    FULL_AUTHORITY,
    PolicyIndex,
    Resolved,
    compact,
    compact_string,
    escalation_message,
)
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.apiserver.transport.requestinfo import RequestInfo
from kybernetes.storage.sqlite import SQLiteStore

G = "rbac.authorization.k8s.io"


def rule(verbs: list[str], resources: list[str] | None = None, groups: list[str] | None = None,
         names: list[str] | None = None, urls: list[str] | None = None) -> dict[str, Any]:
    r: dict[str, Any] = {"verbs": verbs}
    if urls:
        r["nonResourceURLs"] = urls
    else:
        r["apiGroups"] = [""] if groups is None else groups
        r["resources"] = resources or []
    if names:
        r["resourceNames"] = names
    return r


def role(name: str, rules: list[dict[str, Any]], namespace: str = "") -> dict[str, Any]:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "rules": rules}


def binding(name: str, kind: str, role_name: str, subjects: list[tuple[str, str]], namespace: str = "",
            sa_namespace: str = "") -> dict[str, Any]:
    subs = []
    for skind, sname in subjects:
        s = {"kind": skind, "name": sname}
        if skind == "ServiceAccount" and sa_namespace:
            s["namespace"] = sa_namespace
        subs.append(s)
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"metadata": meta, "roleRef": {"apiGroup": G, "kind": kind, "name": role_name}, "subjects": subs}


POLICY = PolicyIndex.of(
    roles=[role("pod-reader", [rule(["get", "list"], ["pods"]), rule(["get"], ["pods/log"])], "dev"),
           role("one-secret", [rule(["get"], ["secrets"], names=["s1"])], "dev")],
    cluster_roles=[role("node-viewer", [rule(["get", "list", "watch"], ["nodes"])]),
                   role("deployer", [rule(["*"], ["deployments", "deployments/scale"], ["apps"])]),
                   role("health", [rule(["get"], urls=["/healthz", "/metrics/*"])]),
                   role("status-all", [rule(["update"], ["*/status"], ["*"])])],
    role_bindings=[binding("jane-pods", "Role", "pod-reader", [("User", "jane")], "dev"),
                   binding("jane-secret", "Role", "one-secret", [("User", "jane")], "dev"),
                   binding("ops-deploy", "ClusterRole", "deployer", [("Group", "ops")], "dev"),
                   binding("sa-pods", "Role", "pod-reader", [("ServiceAccount", "builder")], "dev"),
                   binding("dangling", "Role", "gone", [("User", "carl")], "dev")],
    cluster_role_bindings=[binding("nodes", "ClusterRole", "node-viewer", [("Group", "viewers")]),
                           binding("health", "ClusterRole", "health", [("User", "bob")]),
                           binding("status", "ClusterRole", "status-all",
                                   [("ServiceAccount", "ctl")], sa_namespace="kube-system"),
                           binding("sa-no-ns", "ClusterRole", "node-viewer", [("ServiceAccount", "x")]),
                           binding("dangling", "ClusterRole", "missing", [("User", "carl")])],
)

JANE = User("jane", ("system:authenticated",))
BOB = User("bob", ("viewers", "ops", "system:authenticated"))
BUILDER = User("system:serviceaccount:dev:builder", ("system:serviceaccounts", "system:serviceaccounts:dev"))
CTL = User("system:serviceaccount:kube-system:ctl", ("system:serviceaccounts",))
X = User("system:serviceaccount:dev:x", ("system:serviceaccounts",))
CARL = User("carl", ())


def req(user: User, verb: str, resource: str, namespace: str = "", name: str = "", group: str = "",
        sub: str = "") -> Attributes:
    return Attributes(user, verb, True, group, "v1", namespace, resource, sub, name)


def path(user: User, verb: str, p: str) -> Attributes:
    return Attributes(user, verb, False, path=p)


CASES: list[tuple[str, Attributes, bool]] = [
    ("role binding in its namespace", req(JANE, "list", "pods", "dev"), True),
    ("role binding not elsewhere", req(JANE, "list", "pods", "default"), False),
    ("role binding not cluster-wide", req(JANE, "list", "pods"), False),
    ("verb not granted", req(JANE, "delete", "pods", "dev", "p"), False),
    ("pods does not cover pods/log... granted separately", req(JANE, "get", "pods", "dev", "p", sub="log"), True),
    ("pods does not cover pods/exec", req(JANE, "get", "pods", "dev", "p", sub="exec"), False),
    ("resourceNames: the named one", req(JANE, "get", "secrets", "dev", "s1"), True),
    ("resourceNames: another name", req(JANE, "get", "secrets", "dev", "s2"), False),
    ("resourceNames: never a list", req(JANE, "list", "secrets", "dev"), False),
    ("group through ClusterRoleBinding, any namespace", req(BOB, "watch", "nodes"), True),
    ("group through RoleBinding to a ClusterRole", req(BOB, "delete", "deployments", "dev", "d", "apps"), True),
    ("... only in that namespace", req(BOB, "delete", "deployments", "prod", "d", "apps"), False),
    ("... in that group only", req(BOB, "delete", "deployments", "dev", "d", "extensions"), False),
    ("subresource listed", req(BOB, "patch", "deployments", "dev", "d", "apps", "scale"), True),
    ("non-resource exact", path(BOB, "get", "/healthz"), True),
    ("non-resource prefix", path(BOB, "get", "/metrics/cadvisor"), True),
    ("non-resource other verb", path(BOB, "post", "/healthz"), False),
    ("non-resource other path", path(BOB, "get", "/version"), False),
    ("service account defaults to the binding's namespace", req(BUILDER, "get", "pods", "dev", "p"), True),
    ("service account elsewhere", req(BUILDER, "get", "pods", "prod", "p"), False),
    ("service account with namespace, */status", req(CTL, "update", "pods", "a", "p", sub="status"), True),
    ("*/status is not the resource", req(CTL, "update", "pods", "a", "p"), False),
    ("SA subject of a ClusterRoleBinding needs a namespace", req(X, "get", "nodes"), False),
    ("user name is not a group", req(User("viewers"), "get", "nodes"), False),
]


@pytest.mark.parametrize(("what", "attrs", "allowed"), CASES, ids=[c[0] for c in CASES])
def test_decisions(what: str, attrs: Attributes, allowed: bool) -> None:
    authz = RBACAuthorizer.over(POLICY)
    decision, _ = authz.authorize(attrs)
    assert (decision is Decision.ALLOW) is allowed
    assert decision is not Decision.DENY  # RBAC never denies


def _authz(index: PolicyIndex) -> RBACAuthorizer:
    authz = RBACAuthorizer.over(index)
    return authz


def test_reasons_are_kubernetes() -> None:
    authz = _authz(POLICY)
    d, reason = authz.authorize(req(CARL, "get", "pods", "dev", "p"))
    assert d is Decision.NO_OPINION
    assert reason == ('RBAC: [clusterrole.rbac.authorization.k8s.io "missing" not found, '
                      'role.rbac.authorization.k8s.io "gone" not found]')
    d, reason = authz.authorize(req(CARL, "get", "pods", "other", "p"))
    assert reason == 'RBAC: clusterrole.rbac.authorization.k8s.io "missing" not found'
    assert authz.authorize(req(JANE, "get", "secrets", "dev", "s2")) == (Decision.NO_OPINION, "")
    assert authz.authorize(req(JANE, "list", "pods", "dev")) == (
        Decision.ALLOW, 'RBAC: allowed by RoleBinding "jane-pods/dev" of Role "pod-reader" to User "jane"')
    assert authz.authorize(req(BUILDER, "get", "pods", "dev", "p"))[1] == (
        'RBAC: allowed by RoleBinding "sa-pods/dev" of Role "pod-reader" to ServiceAccount "builder/dev"')
    assert authz.authorize(req(BOB, "get", "nodes"))[1] == (
        'RBAC: allowed by ClusterRoleBinding "nodes" of ClusterRole "node-viewer" to Group "viewers"')


def test_a_request_touches_only_bindings_naming_it() -> None:
    assert POLICY.bindings_for("jane", ("system:authenticated",), "dev") == [("dev", "jane-pods"), ("dev", "jane-secret")]
    assert POLICY.bindings_for("nobody", ("system:authenticated",), "dev") == []


def test_rules_for_lists_resource_and_non_resource_rules() -> None:
    info = _authz(POLICY).rules_for(BOB, "dev")
    assert {"verbs": ["get"], "nonResourceURLs": ["/healthz", "/metrics/*"]} in info.non_resource_rules
    assert {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"]} \
        in info.resource_rules
    assert _authz(POLICY).rules_for(CARL, "x").evaluation_error == (
        'clusterrole.rbac.authorization.k8s.io "missing" not found')


def test_index_follows_changes_and_removals() -> None:
    index = PolicyIndex.of(cluster_roles=[role("r", [rule(["get"], ["pods"])])])
    b = binding("b", "ClusterRole", "r", [("User", "a")])
    index.put("ClusterRoleBinding", b)
    assert index.rules_for("a", (), "").rules
    index.put("ClusterRoleBinding", binding("b", "ClusterRole", "r", [("User", "z")]))
    assert not index.rules_for("a", (), "").rules and index.rules_for("z", (), "").rules
    index.remove("ClusterRoleBinding", b)
    assert index.by_subject == {} and not index.rules_for("z", (), "").rules


COVERS: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], bool]] = [
    ("same rule", [rule(["get"], ["pods"])], [rule(["get"], ["pods"])], True),
    ("star verb", [rule(["*"], ["pods"])], [rule(["get", "delete"], ["pods"])], True),
    ("split across owner rules", [rule(["get"], ["pods"]), rule(["list"], ["pods"])],
     [rule(["get", "list"], ["pods"])], True),
    ("missing verb", [rule(["get"], ["pods"])], [rule(["get", "list"], ["pods"])], False),
    ("star group and resource", list(FULL_AUTHORITY), [rule(["x"], ["y"], ["z"], ["n"])], True),
    ("names within names", [rule(["get"], ["secrets"], names=["a", "b"])],
     [rule(["get"], ["secrets"], names=["a"])], True),
    ("named owner does not cover all names", [rule(["get"], ["secrets"], names=["a"])],
     [rule(["get"], ["secrets"])], False),
    ("url prefix", [rule(["get"], urls=["/logs/*"])], [rule(["get"], urls=["/logs/x"])], True),
    ("resource rule does not cover urls", [rule(["*"], ["*"], ["*"])], [rule(["get"], urls=["/x"])], False),
    ("pods does not cover pods/log", [rule(["get"], ["pods"])], [rule(["get"], ["pods/log"])], False),
    ("*/log covers pods/log", [rule(["get"], ["*/log"])], [rule(["get"], ["pods/log"])], True),
]


@pytest.mark.parametrize(("what", "owner", "servant", "ok"), COVERS, ids=[c[0] for c in COVERS])
def test_covers(what: str, owner: list[dict[str, Any]], servant: list[dict[str, Any]], ok: bool) -> None:
    assert covers(owner, servant) is ok


def test_escalation_message_lists_compacted_missing_rules_sorted() -> None:
    owner = Resolved((rule(["get"], ["pods"]),), ())
    servant = [rule(["get", "list", "delete"], ["pods", "secrets"]), rule(["get"], urls=["/metrics"])]
    msg = escalation_message("jane", ["dev", "system:authenticated"], owner, servant)
    assert msg == (
        'user "jane" (groups=["dev" "system:authenticated"]) is attempting to grant RBAC permissions not '
        'currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["list" "delete"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list" "delete"]}\n'
        '{NonResourceURLs:["/metrics"], Verbs:["get"]}')
    assert escalation_message("jane", [], owner, [rule(["get"], ["pods"])]) == ""
    with_errors = Resolved((), ('role.rbac.authorization.k8s.io "x" not found',))
    assert escalation_message("a", [], with_errors, [rule(["get"], ["pods"])]).endswith(
        '; resolution errors: [role.rbac.authorization.k8s.io "x" not found]')


def test_compact_merges_only_simple_rules() -> None:
    rules = [rule(["get"], ["pods"]), rule(["list"], ["pods"]), rule(["get"], ["secrets"], names=["a"])]
    assert [compact_string(r) for r in compact(rules)] == [
        '{APIGroups:[""], Resources:["secrets"], ResourceNames:["a"], Verbs:["get"]}',
        '{APIGroups:[""], Resources:["pods"], Verbs:["get" "list"]}']


# --- the watch-fed cache ------------------------------------------------------------------------

CTX = RequestContext()


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    await reg.start()
    try:
        yield reg
    finally:
        await reg.stop()
        await store.close()


async def until(cond: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_grants_and_revocations_reach_the_next_decision(registry: Registry) -> None:
    cat = registry.catalogue
    crs, crbs = cat.get(G, "v1", "clusterroles"), cat.get(G, "v1", "clusterrolebindings")
    assert crs is not None and crbs is not None
    # Present before start: found by the list.
    await registry.create(crs, "", {"apiVersion": f"{G}/v1", "kind": "ClusterRole",
                                    **role("reader", [rule(["get"], ["pods"])])}, CTX)
    authz = RBACAuthorizer(registry, cat)
    await authz.start()
    try:
        attrs = req(JANE, "get", "pods", "dev", "p")
        assert authz.authorize(attrs)[0] is Decision.NO_OPINION
        await registry.create(crbs, "", {"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding",
                                         **binding("jr", "ClusterRole", "reader", [("User", "jane")])}, CTX)
        await until(lambda: authz.authorize(attrs)[0] is Decision.ALLOW)
        await registry.delete(crs, "", "reader", DeleteOptions(), CTX)
        await until(lambda: authz.authorize(attrs) == (
            Decision.NO_OPINION, 'RBAC: clusterrole.rbac.authorization.k8s.io "reader" not found'))
        await registry.delete(crbs, "", "jr", DeleteOptions(), CTX)
        await until(lambda: authz.authorize(attrs) == (Decision.NO_OPINION, ""))
    finally:
        await authz.stop()


async def test_the_servers_remembered_decisions_follow_grants_and_revocations(registry: Registry) -> None:
    """``Chain.decide`` (the server's step) remembers RBAC's decisions: every change seen by the
    watch reaches the next request all the same."""
    cat = registry.catalogue
    crs, crbs = cat.get(G, "v1", "clusterroles"), cat.get(G, "v1", "clusterrolebindings")
    assert crs is not None and crbs is not None
    authz = RBACAuthorizer(registry, cat)
    await authz.start()
    chain = new_chain(["RBAC"], {"RBAC": lambda: authz})
    get = RequestInfo(True, "/api/v1/namespaces/dev/pods/p", "get", "", "v1", "dev", "pods", "", "p")
    try:
        assert chain.decide(JANE, get) == (Decision.NO_OPINION, "")
        await registry.create(crbs, "", {"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding",
                                         **binding("jr", "ClusterRole", "reader", [("User", "jane")])}, CTX)
        await until(lambda: chain.decide(JANE, get) == (
            Decision.NO_OPINION, 'RBAC: clusterrole.rbac.authorization.k8s.io "reader" not found'))
        await registry.create(crs, "", {"apiVersion": f"{G}/v1", "kind": "ClusterRole",
                                        **role("reader", [rule(["get"], ["pods"])])}, CTX)
        await until(lambda: chain.decide(JANE, get)[0] is Decision.ALLOW)
        await registry.update(crs, "", "reader", {"apiVersion": f"{G}/v1", "kind": "ClusterRole",
                                                  **role("reader", [rule(["list"], ["pods"])])}, CTX)
        await until(lambda: chain.decide(JANE, get) == (Decision.NO_OPINION, ""))
    finally:
        await authz.stop()


def test_compiled_rules_answer_as_rule_allows() -> None:
    from kybernetes.apiserver.authz.rules import CompiledRule, rule_allows

    rules = [r for role_rules in (POLICY.roles | {("", k): v for k, v in POLICY.cluster_roles.items()}).values()
             for r in role_rules]
    for _what, attrs, _allowed in CASES:
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        for r in rules:
            assert CompiledRule(r).allows(attrs, combined) is rule_allows(attrs, r), (r, attrs)


async def test_a_failed_watch_is_listed_again(registry: Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch that fails (here: the first one of each kind, as after compaction) is followed by a
    fresh list and a new watch: a binding written meanwhile is not missed."""
    from kybernetes import errors

    cat = registry.catalogue
    crs, crbs = cat.get(G, "v1", "clusterroles"), cat.get(G, "v1", "clusterrolebindings")
    assert crs is not None and crbs is not None
    real_watch = registry.watch
    failed: set[str] = set()
    gate = asyncio.Event()

    async def flaky_watch(r: Any, *args: Any, **kw: Any) -> AsyncIterator[Any]:
        if r.plural not in failed:
            failed.add(r.plural)
            await gate.wait()
            raise errors.Expired("too old resource version: 1 (2)")
        async for ev in real_watch(r, *args, **kw):
            yield ev

    monkeypatch.setattr(registry, "watch", flaky_watch)
    authz = RBACAuthorizer(registry, cat)
    await authz.start()
    try:
        await registry.create(crs, "", {"apiVersion": f"{G}/v1", "kind": "ClusterRole",
                                        **role("reader", [rule(["get"], ["pods"])])}, CTX)
        await registry.create(crbs, "", {"apiVersion": f"{G}/v1", "kind": "ClusterRoleBinding",
                                         **binding("jr", "ClusterRole", "reader", [("User", "jane")])}, CTX)
        gate.set()
        attrs = req(JANE, "get", "pods", "dev", "p")
        await until(lambda: authz.authorize(attrs)[0] is Decision.ALLOW)
        await registry.delete(crbs, "", "jr", DeleteOptions(), CTX)
        await until(lambda: authz.authorize(attrs)[0] is Decision.NO_OPINION)
    finally:
        await authz.stop()
