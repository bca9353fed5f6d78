"""The garbage collector against a real API server: background, foreground, orphan, custom resources."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.client.rest import Client
from kybernetes.controllers.garbagecollector import GarbageCollector
from kybernetes.controllers.gc_graph import Graph, Identity
from kybernetes.testing import ServerProcess
from tests.controllers.harness import get_or_none, make_namespace, namespaced_crd, running, wait_for

pytestmark = pytest.mark.integration
Obj = dict[str, Any]

CRD = namespaced_crd("gadgets", "Gadget")


def ref(owner: Obj, *, block: bool = False) -> Obj:
    r = {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
         "uid": owner["metadata"]["uid"]}
    if block:
        r["blockOwnerDeletion"] = True
    return r


async def cm(client: Client, ns: str, name: str, *owners: Obj, finalizers: list[str] | None = None) -> Obj:
    meta: Obj = {"name": name}
    if owners:
        meta["ownerReferences"] = list(owners)
    if finalizers:
        meta["finalizers"] = finalizers
    obj = await client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}, ns)
    obj.setdefault("apiVersion", "v1")
    obj.setdefault("kind", "ConfigMap")
    return obj


async def get_cm(client: Client, ns: str, name: str) -> Obj | None:
    return await get_or_none(client, "v1", "configmaps", name, ns)


async def caught_up(client: Client, ns: str) -> None:
    """Wait until the collector has handled what happened so far: a new ConfigMap whose owner does
    not exist is collected only after the graph has seen every earlier event, and its queues are
    FIFO. A "nothing happened" check after this is a check, not a guess about timing."""
    name = f"sentinel-{next(_SENTINELS)}"
    await cm(client, ns, name, {"apiVersion": "v1", "kind": "ConfigMap", "name": "nobody",
                                "uid": "00000000-0000-0000-0000-00000000dead"})
    await wait_for(lambda: _absent(client, ns, name), what="the collector caught up (sentinel collected)")


_SENTINELS = itertools.count()


async def test_background_deletes_dependents(srv: ServerProcess) -> None:
    async with running(srv, GarbageCollector) as client:
        ns = await make_namespace(client, "gc-bg")
        owner = await cm(client, ns, "owner")
        other = await cm(client, ns, "other")
        await cm(client, ns, "dep", ref(owner))
        await cm(client, ns, "grandchild", ref(await client.get("v1", "configmaps", "dep", ns) | {
            "apiVersion": "v1", "kind": "ConfigMap"}))
        await cm(client, ns, "shared", ref(owner), ref(other))  # another owner remains: kept
        await caught_up(client, ns)
        assert await get_cm(client, ns, "dep") is not None  # owner alive: nothing happens

        await client.delete("v1", "configmaps", "owner", ns, propagation_policy="Background")

        async def collected() -> bool:
            return await get_cm(client, ns, "dep") is None and await get_cm(client, ns, "grandchild") is None

        await wait_for(collected, what="dependent and grandchild collected")

        async def shared_trimmed() -> bool:
            s = await get_cm(client, ns, "shared")
            return s is not None and [r["name"] for r in s["metadata"]["ownerReferences"]] == ["other"]

        await wait_for(shared_trimmed, what="dangling reference removed from 'shared'")


async def test_owner_with_another_uid_counts_as_gone(srv: ServerProcess) -> None:
    async with running(srv, GarbageCollector) as client:
        ns = await make_namespace(client, "gc-uid")
        await cm(client, ns, "owner")
        stale = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "00000000-0000-0000-0000-000000000001"}
        await cm(client, ns, "dep", stale)
        await wait_for(lambda: _absent(client, ns, "dep"), what="dependent of a stale uid collected")
        assert await get_cm(client, ns, "owner") is not None


async def _absent(client: Client, ns: str, name: str) -> bool:
    return await get_cm(client, ns, name) is None


async def test_foreground_waits_for_blocking_dependents(srv: ServerProcess) -> None:
    async with running(srv, GarbageCollector) as client:
        ns = await make_namespace(client, "gc-fg")
        owner = await cm(client, ns, "owner")
        await cm(client, ns, "blocker", ref(owner, block=True), finalizers=["example.com/hold"])
        await cm(client, ns, "plain", ref(owner))
        await client.delete("v1", "configmaps", "owner", ns, propagation_policy="Foreground")

        async def dependents_deleting() -> bool:
            b = await get_cm(client, ns, "blocker")
            return b is not None and bool(b["metadata"].get("deletionTimestamp")) \
                and await get_cm(client, ns, "plain") is None

        await wait_for(dependents_deleting, what="dependents deleted")
        await caught_up(client, ns)
        o = await get_cm(client, ns, "owner")
        assert o is not None and "foregroundDeletion" in o["metadata"]["finalizers"]

        # The blocking dependent goes: the owner follows.
        await client.patch("v1", "configmaps", "blocker", {"metadata": {"finalizers": None}}, ns)
        await wait_for(lambda: _absent(client, ns, "owner"), what="owner deleted after its dependents")


async def test_orphan_keeps_dependents(srv: ServerProcess) -> None:
    async with running(srv, GarbageCollector) as client:
        ns = await make_namespace(client, "gc-orphan")
        owner = await cm(client, ns, "owner")
        keep = await cm(client, ns, "keeper")
        await cm(client, ns, "dep", ref(owner), ref(keep))
        await cm(client, ns, "dep2", ref(owner))
        await client.delete("v1", "configmaps", "owner", ns, propagation_policy="Orphan")
        await wait_for(lambda: _absent(client, ns, "owner"), what="owner gone")
        dep = await get_cm(client, ns, "dep")
        dep2 = await get_cm(client, ns, "dep2")
        assert dep is not None and [r["name"] for r in dep["metadata"]["ownerReferences"]] == ["keeper"]
        assert dep2 is not None and not dep2["metadata"].get("ownerReferences")
        await caught_up(client, ns)
        assert await get_cm(client, ns, "dep2") is not None


async def test_dependent_of_custom_resource_is_collected(srv: ServerProcess) -> None:
    async with running(srv, GarbageCollector) as client:
        ns = await make_namespace(client, "gc-cr")
        await client.create("apiextensions.k8s.io/v1", "customresourcedefinitions", CRD)

        async def served() -> Obj | None:
            try:
                return await client.create("example.com/v1", "gadgets", {
                    "apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g1"}}, ns)
            except errors.NotFound:
                return None

        gadget = await wait_for(served, what="gadgets served")
        gadget.setdefault("apiVersion", "example.com/v1")
        gadget.setdefault("kind", "Gadget")
        await cm(client, ns, "part", ref(gadget))
        await caught_up(client, ns)
        assert await get_cm(client, ns, "part") is not None
        await client.delete("example.com/v1", "gadgets", "g1", ns)
        await wait_for(lambda: _absent(client, ns, "part"), what="dependent of a custom resource collected")

        # And the other way round: a custom resource owned by a ConfigMap.
        owner = await cm(client, ns, "cm-owner")
        await client.create("example.com/v1", "gadgets", {
            "apiVersion": "example.com/v1", "kind": "Gadget",
            "metadata": {"name": "g2", "ownerReferences": [ref(owner)]}}, ns)
        await client.delete("v1", "configmaps", "cm-owner", ns)

        async def g2_gone() -> bool:
            try:
                await client.get("example.com/v1", "gadgets", "g2", ns)
                return False
            except errors.NotFound:
                return True

        await wait_for(g2_gone, what="custom resource collected")


async def test_cluster_scoped_dependent_of_namespaced_owner_is_ignored(srv: ServerProcess) -> None:
    async with running(srv, GarbageCollector) as client:
        ns = await make_namespace(client, "gc-invalid")
        owner = await cm(client, ns, "owner")
        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "gc-invalid-child",
                                                              "ownerReferences": [ref(owner)]}})
        await client.delete("v1", "configmaps", "owner", ns)

        async def warned() -> bool:
            items, _ = await client.list_all("v1", "events", "", field_selector="reason=OwnerRefInvalidNamespace")
            return any(e.get("involvedObject", {}).get("name") == "gc-invalid-child" for e in items)

        await wait_for(warned, what="OwnerRefInvalidNamespace event")
        await caught_up(client, ns)
        child = await client.get("v1", "namespaces", "gc-invalid-child")
        assert not child["metadata"].get("deletionTimestamp")


def test_graph_links_virtual_owners_and_orders_work() -> None:
    """The graph alone: virtual owners, dependents to re-check, foreground and orphan triggers."""
    deletes: list[str] = []
    orphans: list[str] = []
    g = Graph(lambda n: deletes.append(n.identity.name), lambda n: orphans.append(n.identity.name))
    dep = {"metadata": {"name": "d", "namespace": "ns", "uid": "d1",
                        "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "o1",
                                             "blockOwnerDeletion": True}]}}
    g.observe(Identity("v1", "ConfigMap", "ns", "d", "d1"), dep)
    owner = g.get("o1")
    assert owner is not None and owner.virtual and deletes == ["o"]  # verify the unseen owner
    g.observe(Identity("v1", "ConfigMap", "ns", "o", "o1"), {"metadata": {"name": "o", "uid": "o1"}})
    assert not owner.virtual and list(owner.dependents) == ["d1"]

    deletes.clear()
    fg = {"metadata": {"name": "o", "uid": "o1", "deletionTimestamp": "now", "finalizers": ["foregroundDeletion"]}}
    g.observe(Identity("v1", "ConfigMap", "ns", "o", "o1"), fg)
    assert owner.deleting_dependents and deletes == ["d", "o"]
    assert [d.identity.name for d in owner.blocking_dependents()] == ["d"]

    deletes.clear()
    g.forget("d1")
    assert deletes == ["o"] and not owner.dependents  # the waiting owner is told

    orph = {"metadata": {"name": "x", "uid": "x1", "deletionTimestamp": "now", "finalizers": ["orphan"]}}
    g.observe(Identity("v1", "ConfigMap", "ns", "x", "x1"), orph)
    assert orphans == ["x"]
