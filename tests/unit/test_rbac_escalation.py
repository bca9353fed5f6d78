"""RBAC escalation prevention (registry/rbac_escalation.py) on a real registry with the RBAC
authorizer: roles and bindings only within what the user holds, unless it may escalate / bind."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.authz.authorizer import Attributes, Chain, Decision, new_chain
from kybernetes.apiserver.authz.rbac import RBACAuthorizer
from kybernetes.apiserver.registry import builtin_strategies, rbac_escalation
from kybernetes.apiserver.registry.request import RequestContext, User
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

G = "rbac.authorization.k8s.io"
ADMIN = RequestContext()
JANE = User("jane", ("dev", "system:authenticated"))
AS_JANE = RequestContext(user=JANE)
PODS_GET = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
SECRETS_ALL = {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}


class Env:
    def __init__(self, registry: Registry, authz: RBACAuthorizer) -> None:
        self.registry, self.authz = registry, authz
        self.chain: Chain | None = new_chain(["RBAC"], {"RBAC": lambda: authz})

    def r(self, plural: str) -> Resource:
        res = self.registry.catalogue.get(G, "v1", plural)
        assert res is not None
        return res

    async def create(self, plural: str, name: str, ctx: RequestContext, ns: str = "", **body: Any) -> dict[str, Any]:
        kind = self.r(plural).kind
        obj = {"apiVersion": f"{G}/v1", "kind": kind, "metadata": {"name": name}, **body}
        return await self.registry.create(self.r(plural), ns, obj, ctx)

    async def grant(self, plural: str, name: str, role_kind: str, role: str, ns: str = "") -> None:
        """Bind ``role`` to jane as the admin, and wait until the authorizer has seen it."""
        await self.create(plural, name, ADMIN, ns, roleRef={"apiGroup": G, "kind": role_kind, "name": role},
                          subjects=[{"kind": "User", "name": "jane", "apiGroup": G}])
        deadline = asyncio.get_running_loop().time() + 5
        while (ns, name) not in self.authz.index.bindings:
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    await reg.start()
    authz = RBACAuthorizer(reg, reg.catalogue)
    await authz.start()
    e = Env(reg, authz)
    rbac_escalation.install(reg, lambda: e.chain)
    try:
        yield e
    finally:
        await authz.stop()
        await reg.stop()
        await store.close()


async def test_a_role_within_what_the_user_holds(env: Env) -> None:
    await env.create("roles", "base", ADMIN, "dev", rules=[PODS_GET])
    await env.grant("rolebindings", "jane-base", "Role", "base", "dev")
    await env.create("roles", "same", AS_JANE, "dev", rules=[PODS_GET])
    with pytest.raises(errors.Forbidden) as e:
        await env.create("roles", "more", AS_JANE, "dev", rules=[PODS_GET, SECRETS_ALL])
    assert e.value.message == (
        'roles.rbac.authorization.k8s.io "more" is forbidden: user "jane" (groups=["dev" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}')
    # Held in "dev" only: the same role elsewhere escalates.
    with pytest.raises(errors.Forbidden):
        await env.create("roles", "same", AS_JANE, "prod", rules=[PODS_GET])


async def test_escalate_allows_any_rules(env: Env) -> None:
    await env.create("clusterroles", "escalator", ADMIN, rules=[
        {"apiGroups": [G], "resources": ["clusterroles"], "verbs": ["escalate"]}])
    await env.grant("clusterrolebindings", "jane-esc", "ClusterRole", "escalator")
    await env.create("clusterroles", "big", AS_JANE, rules=[SECRETS_ALL])


async def test_aggregation_rule_needs_full_authority(env: Env) -> None:
    await env.create("clusterroles", "cr-writer", ADMIN, rules=[
        {"apiGroups": [G], "resources": ["clusterroles"], "verbs": ["create", "update"]}])
    await env.grant("clusterrolebindings", "jane-cr", "ClusterRole", "cr-writer")
    with pytest.raises(errors.Forbidden) as e:
        await env.create("clusterroles", "agg", AS_JANE, rules=[],
                         aggregationRule={"clusterRoleSelectors": [{"matchLabels": {"a": "b"}}]})
    assert e.value.message == ('clusterroles.rbac.authorization.k8s.io "agg" is forbidden: '
                               "must have cluster-admin privileges to use the aggregationRule")


async def test_bindings_need_the_role_or_bind(env: Env) -> None:
    await env.create("clusterroles", "secrets", ADMIN, rules=[SECRETS_ALL])
    await env.create("clusterroles", "pods", ADMIN, rules=[PODS_GET])
    await env.create("clusterroles", "rb-writer", ADMIN, rules=[
        {"apiGroups": [G], "resources": ["rolebindings"], "verbs": ["create", "update"]}, PODS_GET])
    await env.grant("clusterrolebindings", "jane-rb", "ClusterRole", "rb-writer")

    def rb(role: str) -> dict[str, Any]:
        return {"roleRef": {"apiGroup": G, "kind": "ClusterRole", "name": role},
                "subjects": [{"kind": "User", "name": "bob", "apiGroup": G}]}

    await env.create("rolebindings", "bob-pods", AS_JANE, "dev", **rb("pods"))
    with pytest.raises(errors.Forbidden) as e:
        await env.create("rolebindings", "bob-secrets", AS_JANE, "dev", **rb("secrets"))
    assert e.value.message.startswith(
        'rolebindings.rbac.authorization.k8s.io "bob-secrets" is forbidden: user "jane" (groups=["dev" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}')
    with pytest.raises(errors.NotFound) as nf:
        await env.create("rolebindings", "bob-none", AS_JANE, "dev", **rb("none"))
    assert nf.value.message == 'clusterroles.rbac.authorization.k8s.io "none" not found'
    # bind on that one role, in that namespace
    await env.create("roles", "binder", ADMIN, "dev", rules=[
        {"apiGroups": [G], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": ["secrets"]}])
    await env.grant("rolebindings", "jane-bind", "Role", "binder", "dev")
    await env.create("rolebindings", "bob-secrets", AS_JANE, "dev", **rb("secrets"))
    with pytest.raises(errors.Forbidden):
        await env.create("rolebindings", "bob-secrets", AS_JANE, "prod", **rb("secrets"))


async def test_masters_and_always_allow_are_not_checked(env: Env) -> None:
    await env.create("clusterroles", "x", RequestContext(user=User("root", ("system:masters",))), rules=[SECRETS_ALL])
    env.chain = None
    await env.create("clusterroles", "y", AS_JANE, rules=[SECRETS_ALL])


async def test_gc_only_updates_are_not_checked(env: Env) -> None:
    role = await env.create("roles", "r", ADMIN, "dev", rules=[SECRETS_ALL])
    await env.create("roles", "updater", ADMIN, "dev", rules=[
        {"apiGroups": [G], "resources": ["roles"], "verbs": ["update"]}])
    await env.grant("rolebindings", "jane-upd", "Role", "updater", "dev")
    assert env.chain is not None
    attrs = Attributes(JANE, "update", True, G, "v1", "dev", "roles", "", "r")
    assert env.chain.authorize(attrs)[0] is Decision.ALLOW
    role = {**role, "metadata": {**role["metadata"], "finalizers": ["x/y"]}}
    role = (await env.registry.update(env.r("roles"), "dev", "r", role, AS_JANE))[0]
    role = {**role, "metadata": {**role["metadata"], "labels": {"a": "b"}}}
    with pytest.raises(errors.Forbidden):
        await env.registry.update(env.r("roles"), "dev", "r", role, AS_JANE)
