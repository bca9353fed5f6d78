"""Reconciliation of the bootstrap policy (Kubernetes' ``pkg/registry/rbac/reconciliation``, union
mode) and RBAC's ``Covers`` it is built on."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.authz import bootstrappolicy
from kybernetes.apiserver.authz.bootstrappolicy.builders import (
    AUTOUPDATE_ANNOTATION,
    cluster_role,
    cluster_role_binding,
    groups,
    rule,
    users,
)
from kybernetes.apiserver.authz.bootstrappolicy.reconcile import (
    CREATE,
    NONE,
    RECREATE,
    UPDATE,
    ensure_rbac_policy,
    reconcile_binding,
    reconcile_role,
)
from kybernetes.apiserver.authz.covers import breakdown_rule, covers, uncovered
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.request import DeleteOptions, ListOptions, RequestContext
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

CTX = RequestContext()

EXPECTED = cluster_role("system:test", rule("get", "list").groups("").resources("pods"),
                        rule("get").urls("/healthz"))


def _stored(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out["metadata"]["resourceVersion"] = "7"
    return out


def test_missing_object_is_created() -> None:
    res = reconcile_role(None, EXPECTED)
    assert res.operation == CREATE and res.obj == EXPECTED


def test_identical_object_needs_nothing() -> None:
    assert reconcile_role(_stored(EXPECTED), EXPECTED).operation == NONE


def test_removed_rule_comes_back_as_its_breakdown_and_extra_rules_stay() -> None:
    existing = _stored(EXPECTED)
    extra = {"verbs": ["delete"], "apiGroups": ["apps"], "resources": ["deployments"]}
    existing["rules"] = [existing["rules"][1], extra]
    res = reconcile_role(existing, EXPECTED)
    assert res.operation == UPDATE
    assert res.obj["rules"] == [EXPECTED["rules"][1], extra,
                                {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
                                {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"]}]
    assert res.obj["metadata"]["resourceVersion"] == "7"


def test_labels_and_annotations_are_added_but_existing_values_win() -> None:
    existing = _stored(EXPECTED)
    existing["metadata"]["labels"] = {"kubernetes.io/bootstrapping": "mine", "team": "a"}
    existing["metadata"]["annotations"] = {}
    res = reconcile_role(existing, EXPECTED)
    assert res.operation == UPDATE
    assert res.obj["metadata"]["labels"] == {"kubernetes.io/bootstrapping": "mine", "team": "a"}
    assert res.obj["metadata"]["annotations"] == {AUTOUPDATE_ANNOTATION: "true"}


def test_autoupdate_false_protects_the_object() -> None:
    existing = _stored(EXPECTED)
    existing["metadata"]["annotations"][AUTOUPDATE_ANNOTATION] = "false"
    existing["rules"] = []
    res = reconcile_role(existing, EXPECTED)
    assert res.protected and res.operation == UPDATE and len(res.missing) == 3


def test_aggregated_role_keeps_aggregated_rules_and_gains_missing_selectors() -> None:
    expected = cluster_role("admin", aggregate_from="admin")
    existing = _stored(expected)
    existing["rules"] = [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
    assert reconcile_role(existing, expected).operation == NONE
    existing["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    res = reconcile_role(existing, expected)
    assert res.operation == UPDATE
    assert res.obj["aggregationRule"]["clusterRoleSelectors"] == [
        {"matchLabels": {"x": "y"}}, {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-admin": "true"}}]
    plain = _stored(EXPECTED)
    plain["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"x": "y"}}]}
    dropped = reconcile_role(plain, EXPECTED)
    assert dropped.operation == UPDATE and "aggregationRule" not in dropped.obj


def test_binding_gains_missing_subjects_and_keeps_its_own() -> None:
    expected = cluster_role_binding("system:test", groups("system:authenticated") + users("bob"))
    existing = _stored(expected)
    existing["subjects"] = users("alice") + users("bob")
    res = reconcile_binding(existing, expected)
    assert res.operation == UPDATE
    assert res.obj["subjects"] == users("alice") + users("bob") + groups("system:authenticated")
    assert reconcile_binding(_stored(expected), expected).operation == NONE


def test_binding_with_another_role_ref_is_recreated() -> None:
    expected = cluster_role_binding("system:test", users("bob"))
    existing = _stored(expected)
    existing["roleRef"]["name"] = "other"
    res = reconcile_binding(existing, expected)
    assert res.operation == RECREATE and res.obj == expected


def test_breakdown_rule() -> None:
    r = rule("get", "update").groups("", "apps").resources("configmaps").names("a").build()
    assert len(breakdown_rule(r)) == 4
    assert breakdown_rule(rule("get", "head").urls("/a", "/b").build()) == [
        {"verbs": ["get"], "nonResourceURLs": ["/a"]}, {"verbs": ["head"], "nonResourceURLs": ["/a"]},
        {"verbs": ["get"], "nonResourceURLs": ["/b"]}, {"verbs": ["head"], "nonResourceURLs": ["/b"]}]


def test_covers_follows_kubernetes_rules() -> None:
    star_scale = [rule("get").groups("*").resources("*/scale").build()]
    assert covers(star_scale, [rule("get").groups("apps").resources("deployments/scale").build()])
    assert not covers(star_scale, [rule("get").groups("apps").resources("deployments").build()])
    named = [rule("get").groups("").resources("configmaps").names("a").build()]
    assert covers(named, [rule("get").groups("").resources("configmaps").names("a").build()])
    assert not covers(named, [rule("get").groups("").resources("configmaps").build()])
    assert covers([rule("get").urls("/healthz/*").build()], [rule("get").urls("/healthz/etcd").build()])
    assert not covers([rule("get").urls("/healthz").build()], [rule("get").urls("/healthz/etcd").build()])
    assert not covers([rule("*").groups("*").resources("*").build()], [rule("get").urls("/x").build()])
    assert uncovered([rule("*").groups("*").resources("*").build()],
                     [rule("get", "list").groups("").resources("pods").build()]) == []


# --- the hook on a real registry ---------------------------------------------------------------


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    await reg.start()
    ns = reg.catalogue.get("", "v1", "namespaces")
    assert ns is not None
    for name in ("kube-system", "kube-public"):
        await reg.create(ns, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, CTX)
    try:
        yield reg
    finally:
        await reg.stop()
        await store.close()


def _rbac(reg: Registry, plural: str) -> Resource:
    r = reg.catalogue.get("rbac.authorization.k8s.io", "v1", plural)
    assert r is not None
    return r


async def test_concurrent_servers_reconcile_without_duplicates(registry: Registry) -> None:
    """Three API servers starting at once on one store: every race (AlreadyExists, Conflict) is
    recomputed, so each object exists once and a removed rule comes back once, not thrice."""
    await ensure_rbac_policy(registry, CTX)
    roles = _rbac(registry, "clusterroles")
    scheduler = await registry.get(roles, "", "system:kube-scheduler")
    nodes_read = {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["nodes"]}
    scheduler["rules"] = [r for r in scheduler["rules"] if r != nodes_read]
    await registry.update(roles, "", "system:kube-scheduler", scheduler, CTX)
    await registry.delete(_rbac(registry, "rolebindings"), "kube-system", "system::leader-locking-kube-scheduler",
                          DeleteOptions(), CTX)

    await asyncio.gather(*(ensure_rbac_policy(registry, CTX) for _ in range(3)))

    rules = (await registry.get(roles, "", "system:kube-scheduler"))["rules"]
    added = [r for r in rules if r.get("resources") == ["nodes"] and r.get("apiGroups") == [""]]
    assert added == [{"verbs": [v], "apiGroups": [""], "resources": ["nodes"]} for v in ("get", "list", "watch")]
    assert await registry.get(_rbac(registry, "rolebindings"), "kube-system", "system::leader-locking-kube-scheduler")
    listed = await registry.list(roles, "", ListOptions())
    names = [o["metadata"]["name"] for o in listed.items]
    assert len(names) == len(set(names)) == len(bootstrappolicy.all_cluster_roles())


def test_restart_compares_no_rule_already_stored_as_expected(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a restart every bootstrap role is stored as expected: none of its rules goes through
    RBAC's Covers (breakdown and comparison, most of a restart's CPU otherwise), and nothing is
    written; a changed rule still is compared (and added back)."""
    from kybernetes.apiserver.authz.bootstrappolicy import reconcile

    compared: list[Any] = []

    def counting(owner: Any, servant: Any) -> Any:
        servant = list(servant)
        compared.extend(servant)
        return uncovered(owner, servant)

    monkeypatch.setattr(reconcile, "uncovered", counting)
    for role in [*bootstrappolicy.all_cluster_roles(), *bootstrappolicy.namespace_roles()]:
        res = reconcile_role(_stored(role), role)
        assert res.operation == NONE, role["metadata"]["name"]
    assert compared == []
    existing = _stored(EXPECTED)
    existing["rules"] = [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}]
    res = reconcile_role(existing, EXPECTED)
    assert res.operation == UPDATE and len(compared) == 2
    assert res.obj["rules"][0] is not existing["rules"][0]  # the object to write owns its parts
