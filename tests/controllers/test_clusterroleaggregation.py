"""The clusterrole-aggregation controller against a real API server: aggregated roles follow
the roles their selectors match (added, changed, relabelled, deleted)."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.controllers.clusterroleaggregation import ClusterRoleAggregationController, aggregated_rules
from kybernetes.testing import ServerProcess
from tests.controllers.harness import run_controllers, wait_for

pytestmark = pytest.mark.integration
API, PLURAL = "rbac.authorization.k8s.io/v1", "clusterroles"
Obj = dict[str, Any]


def rule(verb: str, resource: str) -> Obj:
    return {"apiGroups": [""], "resources": [resource], "verbs": [verb]}


def cr(name: str, rules: list[Obj], labels: dict[str, str] | None = None, selectors: list[Obj] | None = None) -> Obj:
    obj: Obj = {"apiVersion": API, "kind": "ClusterRole", "metadata": {"name": name, "labels": labels or {}},
                "rules": rules}
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return obj


def test_union_in_name_order_without_duplicates_or_itself() -> None:
    agg = cr("agg", [], {"x": "1"}, [{"matchLabels": {"x": "1"}}, {"matchLabels": {"y": "1"}}])
    roles = [agg, cr("b", [rule("get", "pods"), rule("list", "pods")], {"x": "1"}),
             cr("a", [rule("get", "pods")], {"x": "1", "y": "1"}),
             cr("c", [rule("get", "nodes"), {"apiGroups": [""], "resources": ["pods"], "verbs": ["list"],
                                             "resourceNames": []}], {"y": "1"}),
             cr("d", [rule("delete", "pods")])]
    assert aggregated_rules(agg, roles) == [rule("get", "pods"), rule("list", "pods"), rule("get", "nodes")]


async def rules_of(c: Client, name: str) -> list[Obj]:
    return (await c.get(API, PLURAL, name)).get("rules") or []


async def test_aggregated_role_follows_its_sources(srv: ServerProcess) -> None:
    async with run_controllers(srv, ClusterRoleAggregationController) as env:
        c = env.client
        await c.create(API, PLURAL, cr("src-a", [rule("get", "pods")], {"agg-test": "true"}))
        await c.create(API, PLURAL, cr("agg-test", [], selectors=[{"matchLabels": {"agg-test": "true"}}]))
        await wait_for(lambda: _eq(c, "agg-test", [rule("get", "pods")]), 20, "the first source's rules")
        await c.create(API, PLURAL, cr("src-b", [rule("list", "secrets")], {"agg-test": "true"}))
        await wait_for(lambda: _eq(c, "agg-test", [rule("get", "pods"), rule("list", "secrets")]), 20, "a new source")
        a = await c.get(API, PLURAL, "src-a")
        a["rules"] = [rule("watch", "pods")]
        await c.update(API, PLURAL, a)
        await wait_for(lambda: _eq(c, "agg-test", [rule("watch", "pods"), rule("list", "secrets")]), 20, "a change")
        b = await c.get(API, PLURAL, "src-b")
        b["metadata"]["labels"] = {}
        await c.update(API, PLURAL, b)
        await wait_for(lambda: _eq(c, "agg-test", [rule("watch", "pods")]), 20, "a relabelled source dropped")
        await c.delete(API, PLURAL, "src-a")
        await wait_for(lambda: _eq(c, "agg-test", []), 20, "a deleted source dropped")
        managers = {m["manager"] for m in (await c.get(API, PLURAL, "agg-test"))["metadata"]["managedFields"]}
        assert "clusterrole-aggregation-controller" in managers


async def _eq(c: Client, name: str, want: list[Obj]) -> bool:
    return await rules_of(c, name) == want
