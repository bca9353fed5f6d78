"""Namespace deletion against a real API server: content (custom resources too) goes, then the namespace."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.client.rest import Client
from kybernetes.controllers.namespace import NamespaceController
from kybernetes.testing import ServerProcess
from tests.controllers.harness import get_or_none, namespaced_crd, running, wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]

CRD = namespaced_crd("widgets", "Widget")


async def get_ns(client: Client, name: str) -> Obj | None:
    return await get_or_none(client, "v1", "namespaces", name)


async def populate(client: Client, ns: str) -> None:
    await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    for i in range(3):
        await client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": f"cm{i}"}, "data": {"k": "v"}}, ns)
    await client.create("apps/v1", "deployments", {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}, ns)
    await client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "loose"},
                                       "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
    await client.create("example.com/v1", "widgets", {"apiVersion": "example.com/v1", "kind": "Widget",
                                                      "metadata": {"name": "w1"}, "spec": {"size": 3}}, ns)


async def ensure_crd(client: Client) -> None:
    try:
        await client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", CRD)
    except errors.AlreadyExists:
        return

    async def served() -> bool:
        try:
            await client.list("example.com/v1", "widgets")
            return True
        except errors.NotFound:
            return False

    await wait_for(served, what="widgets served")


async def test_deleting_namespace_removes_content_then_namespace(srv: ServerProcess) -> None:
    async with running(srv, NamespaceController, options={"namespace-sync-period": 0.3}) as client:
        await ensure_crd(client)
        await populate(client, "doomed")
        # One object holds the namespace up with a finalizer of its own.
        await client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "held", "finalizers": ["example.com/hold"]}},
                            "doomed")
        await client.delete("v1", "namespaces", "doomed")

        async def only_held_left() -> Obj | None:
            ns = await get_ns(client, "doomed")
            conds = {c["type"]: c for c in (ns or {}).get("status", {}).get("conditions") or []}
            c = conds.get("NamespaceFinalizersRemaining")
            return ns if c is not None and c["status"] == "True" else None

        ns = await wait_for(only_held_left, what="finalizers-remaining condition")
        assert ns["status"]["phase"] == "Terminating"
        conds = {c["type"]: c for c in ns["status"]["conditions"]}
        assert conds["NamespaceFinalizersRemaining"]["reason"] == "SomeFinalizersRemain"
        assert "example.com/hold in 1 resource instances" in conds["NamespaceFinalizersRemaining"]["message"]
        assert conds["NamespaceContentRemaining"]["status"] == "True"
        assert conds["NamespaceContentRemaining"]["message"] == \
            "Some resources are remaining: configmaps. has 1 resource instances"
        assert conds["NamespaceDeletionDiscoveryFailure"]["status"] == "False"
        assert conds["NamespaceDeletionContentFailure"]["reason"] == "ContentDeleted"

        # Everything else is gone already.
        for api_version, plural in (("apps/v1", "deployments"), ("v1", "pods"), ("example.com/v1", "widgets")):
            items, _ = await client.list_all(api_version, plural, "doomed")
            assert items == [], plural
        (cm,) = (await client.list_all("v1", "configmaps", "doomed"))[0]
        assert cm["metadata"]["name"] == "held" and cm["metadata"].get("deletionTimestamp")

        # The finalizer is released: the namespace goes.
        await client.patch("v1", "configmaps", "held", {"metadata": {"finalizers": None}}, "doomed")
        await wait_for(lambda: _gone(client, "doomed"), what="namespace gone")


async def _gone(client: Client, name: str) -> bool:
    return await get_ns(client, name) is None


async def test_kubectl_delete_namespace_returns(srv: ServerProcess) -> None:
    async with running(srv, NamespaceController, options={"namespace-sync-period": 0.3}) as client:
        await ensure_crd(client)
        await populate(client, "scratch")
        res = await asyncio.to_thread(srv.kubectl, "delete", "namespace", "scratch", "--timeout=60s")
        assert 'namespace "scratch" deleted' in res.stdout
        assert await get_ns(client, "scratch") is None
        # The name is free again at once.
        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "scratch"}})
