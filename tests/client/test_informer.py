"""Informers against a real API server: list+watch, handlers, indexes, relist on 410, server restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.client.informer import Indexer, Informer, SharedInformerFactory, key_of
from kybernetes.client.rest import Client
from kybernetes.testing import ServerProcess
from tests.client.conftest import eventually, until_compacted

pytestmark = pytest.mark.integration
# Aggressive compaction so that an old resourceVersion is soon gone (410).
SERVER_ARGS = ("--compact-interval", "0.5", "--compact-keep", "5")

Obj = dict[str, Any]


async def make_ns(client: Client, name: str) -> str:
    await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def cm(name: str, **data: str) -> Obj:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.objects: list[tuple[str, Obj | None, Obj]] = []

    def add(self, obj: Obj) -> None:
        self.events.append(("add", key_of(obj)))
        self.objects.append(("add", None, obj))

    def update(self, old: Obj, new: Obj) -> None:
        self.events.append(("update", key_of(new)))
        self.objects.append(("update", old, new))

    def delete(self, obj: Obj) -> None:
        self.events.append(("delete", key_of(obj)))
        self.objects.append(("delete", None, obj))

    def attach(self, inf: Informer) -> Recorder:
        inf.add_handler(self.add, self.update, self.delete)
        return self


def test_key_of_and_indexer() -> None:
    assert key_of({"metadata": {"namespace": "a", "name": "b"}}) == "a/b"
    assert key_of({"metadata": {"name": "node1"}}) == "node1"
    idx = Indexer()
    pod = {"metadata": {"namespace": "ns", "name": "p", "ownerReferences": [{"uid": "u1"}, {"uid": "u2"}]},
           "spec": {"nodeName": "n1"}}
    idx.put("ns/p", pod)
    idx.put("ns/q", {"metadata": {"namespace": "ns", "name": "q"}, "spec": {}})
    idx.put("other", {"metadata": {"name": "other"}})
    assert {o["metadata"]["name"] for o in idx.by_index("namespace", "ns")} == {"p", "q"}
    assert [o["metadata"]["name"] for o in idx.by_index("namespace", "")] == ["other"]
    assert [o["metadata"]["name"] for o in idx.by_index("owner", "u2")] == ["p"]
    assert [o["metadata"]["name"] for o in idx.by_index("nodeName", "n1")] == ["p"]
    # Re-filing on update: the pod moves to another node, loses an owner.
    idx.put("ns/p", {"metadata": {"namespace": "ns", "name": "p", "ownerReferences": [{"uid": "u1"}]},
                     "spec": {"nodeName": "n2"}})
    assert idx.by_index("nodeName", "n1") == [] and len(idx.by_index("nodeName", "n2")) == 1
    assert idx.by_index("owner", "u2") == []
    idx.add_indexers({"label": lambda o: list((o["metadata"].get("labels") or {}).values())})
    idx.put("ns/l", {"metadata": {"namespace": "ns", "name": "l", "labels": {"app": "web"}}})
    assert [o["metadata"]["name"] for o in idx.by_index("label", "web")] == ["l"]
    idx.remove("ns/l")
    assert idx.by_index("label", "web") == [] and idx.get("ns/l") is None
    assert sorted(idx.keys()) == ["ns/p", "ns/q", "other"] and len(idx) == 3


async def test_informer_lists_watches_and_indexes(client: Client) -> None:
    ns = await make_ns(client, "inf-basic")
    await client.create("v1", "configmaps", cm("before"), ns)
    factory = SharedInformerFactory(client)
    inf = factory.informer("v1", "configmaps", ns)
    assert factory.informer("v1", "configmaps", ns) is inf
    rec = Recorder().attach(inf)
    await factory.start()
    try:
        assert await factory.wait_for_sync(10)
        assert inf.has_synced
        assert ("add", f"{ns}/before") in rec.events
        assert inf.store.get(f"{ns}/before") is not None

        await client.create("v1", "configmaps", cm("a", v="1"), ns)
        await eventually(lambda: ("add", f"{ns}/a") in rec.events)
        await client.patch("v1", "configmaps", "a", {"data": {"v": "2"}}, ns)
        await eventually(lambda: ("update", f"{ns}/a") in rec.events)
        _, old, new = next(o for o in rec.objects if o[0] == "update" and key_of(o[2]) == f"{ns}/a")
        assert old is not None and old["data"] == {"v": "1"} and new["data"] == {"v": "2"}
        await client.delete("v1", "configmaps", "a", ns)
        await eventually(lambda: ("delete", f"{ns}/a") in rec.events)
        assert inf.store.get(f"{ns}/a") is None
        a_events = [e for e, k in rec.events if k == f"{ns}/a"]
        assert a_events == ["add", "update", "delete"]
        assert [o["metadata"]["name"] for o in inf.store.by_index("namespace", ns)] == ["before"]

        # A handler added late gets what is there, then live events.
        late = Recorder().attach(inf)
        assert late.events == [("add", f"{ns}/before")]
        await client.create("v1", "configmaps", cm("b"), ns)
        await eventually(lambda: ("add", f"{ns}/b") in late.events)
    finally:
        await factory.stop()


async def test_owner_and_node_indexes_on_pods(client: Client) -> None:
    ns = await make_ns(client, "inf-pods")
    factory = SharedInformerFactory(client)
    pods = factory.informer("v1", "pods", ns)
    await factory.start()
    try:
        assert await factory.wait_for_sync(10)
        owner = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-uid-1", "controller": True}
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "p1", "ownerReferences": [owner]},
               "spec": {"nodeName": "node-x", "containers": [{"name": "c", "image": "i"}]}}
        await client.create("v1", "pods", pod, ns)
        await eventually(lambda: len(pods.store.by_index("owner", "rs-uid-1")) == 1)
        assert [p["metadata"]["name"] for p in pods.store.by_index("nodeName", "node-x")] == ["p1"]
        assert pods.store.by_index("nodeName", "other") == []
    finally:
        await factory.stop()


async def test_label_selector_and_late_informer(client: Client) -> None:
    ns = await make_ns(client, "inf-sel")
    await client.create("v1", "configmaps", {**cm("yes"), "metadata": {"name": "yes", "labels": {"k": "v"}}}, ns)
    await client.create("v1", "configmaps", cm("no"), ns)
    factory = SharedInformerFactory(client)
    await factory.start()
    try:
        # Requested after start(): starts at once.
        inf = factory.informer("v1", "configmaps", ns, label_selector="k=v")
        assert await inf.wait_for_sync(10)
        assert inf.store.keys() == [f"{ns}/yes"]
        assert await factory.wait_for_sync(1)
    finally:
        await factory.stop()


async def test_resync_redelivers_updates(client: Client) -> None:
    ns = await make_ns(client, "inf-resync")
    await client.create("v1", "configmaps", cm("r"), ns)
    factory = SharedInformerFactory(client, resync_period=0.2)
    inf = factory.informer("v1", "configmaps", ns)
    updates: list[tuple[Obj, Obj]] = []
    inf.add_handler(on_update=lambda old, new: updates.append((old, new)))
    await factory.start()
    try:
        await eventually(lambda: len(updates) >= 2)
        assert all(old is new for old, new in updates)
    finally:
        await factory.stop()


async def test_watch_of_compacted_version_is_410(client: Client) -> None:
    # PodTemplates: a resource nothing has read yet (Secrets no longer qualify: the API server
    # caches them for token authentication), so the API server's watch cache has no history of it
    # and must go to the (compacted) store.
    ns = await make_ns(client, "inf-410")
    template = {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t0"},
                "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}
    first = await client.create("v1", "podtemplates", template, ns)
    for i in range(1, 15):
        await client.create("v1", "podtemplates", {**template, "metadata": {"name": f"t{i}"}}, ns)
    await until_compacted(client, first["metadata"]["resourceVersion"])  # compactions keep the last 5 revisions
    with pytest.raises(errors.Expired) as gone:
        async for _ in client.watch("v1", "podtemplates", ns, resource_version=first["metadata"]["resourceVersion"],
                                    timeout_seconds=5):
            pass
    assert gone.value.code == 410


async def test_relist_after_injected_410(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A watch that fails with 410 makes the informer list again; handlers see the difference."""
    ns = await make_ns(client, "inf-inject")
    await client.create("v1", "configmaps", cm("stays"), ns)
    await client.create("v1", "configmaps", cm("goes"), ns)
    inf = Informer(client, "v1", "configmaps", ns)
    rec = Recorder().attach(inf)
    real_watch, real_list_all = client.watch, client.list_all
    gate = asyncio.Event()
    calls = {"watch": 0, "list": 0}

    async def watch(*args: Any, **kw: Any) -> AsyncIterator[Any]:
        calls["watch"] += 1
        if calls["watch"] == 1:
            await gate.wait()
            raise errors.Expired("too old resource version")
        async for ev in real_watch(*args, **kw):
            yield ev

    async def list_all(*args: Any, **kw: Any) -> Any:
        calls["list"] += 1
        return await real_list_all(*args, **kw)

    monkeypatch.setattr(client, "watch", watch)
    monkeypatch.setattr(client, "list_all", list_all)
    inf.start()
    try:
        assert await inf.wait_for_sync(10)
        await client.delete("v1", "configmaps", "goes", ns)
        await client.create("v1", "configmaps", cm("new"), ns)
        await client.patch("v1", "configmaps", "stays", {"data": {"k": "v"}}, ns)
        gate.set()
        await eventually(lambda: ("delete", f"{ns}/goes") in rec.events and ("add", f"{ns}/new") in rec.events
                         and ("update", f"{ns}/stays") in rec.events)
        assert calls["list"] == 2
        assert sorted(inf.store.keys()) == [f"{ns}/new", f"{ns}/stays"]
        deleted = next(o for kind, _, o in rec.objects if kind == "delete")
        assert deleted["metadata"]["name"] == "goes"  # the last state the store knew
        # And the informer is live again afterwards.
        await client.create("v1", "configmaps", cm("later"), ns)
        await eventually(lambda: ("add", f"{ns}/later") in rec.events)
    finally:
        await inf.stop()


async def test_relist_after_restart_with_compacted_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The server restarts (its watch cache is empty again) and the history behind the informer's
    resourceVersion was compacted meanwhile: the re-watch gets 410 and the informer relists."""
    data = tmp_path / "data"
    args = ("--compact-interval", "0.5", "--compact-keep", "5")
    srv = ServerProcess.start(data, *args)
    try:
        async with Client.from_kubeconfig(srv.kubeconfig) as client:
            ns = await make_ns(client, "relist")
            await client.create("v1", "configmaps", cm("stays"), ns)
            await client.create("v1", "configmaps", cm("goes"), ns)
            inf = Informer(client, "v1", "configmaps", ns)
            rec = Recorder().attach(inf)
            real_watch = client.watch
            gate = asyncio.Event()
            watches = 0

            async def gated_watch(*a: Any, **kw: Any) -> AsyncIterator[Any]:
                nonlocal watches
                watches += 1
                if watches >= 2:
                    await gate.wait()
                async for ev in real_watch(*a, **kw):
                    yield ev

            monkeypatch.setattr(client, "watch", gated_watch)
            inf.start()
            try:
                assert await inf.wait_for_sync(10)
                await eventually(lambda: watches == 1)
                old_rv = inf.last_resource_version
                port = srv.port
                await asyncio.to_thread(srv.stop)
                await eventually(lambda: watches >= 2)  # the broken watch is being retried
                srv = await asyncio.to_thread(ServerProcess.start, data, *args, port=port)
                await client.delete("v1", "configmaps", "goes", ns)
                for i in range(12):
                    await client.create("v1", "configmaps", cm(f"new{i}"), ns)
                await until_compacted(client, old_rv)  # the informer's next watch gets 410
                gate.set()
                await eventually(lambda: ("delete", f"{ns}/goes") in rec.events
                                 and ("add", f"{ns}/new11") in rec.events, timeout=30)
                assert int(inf.last_resource_version) > int(old_rv)
                assert sorted(inf.store.keys()) == sorted([f"{ns}/stays"] + [f"{ns}/new{i}" for i in range(12)])
                assert rec.events.count(("add", f"{ns}/stays")) == 1
            finally:
                await inf.stop()
    finally:
        srv.stop()


async def test_informer_survives_server_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    srv = ServerProcess.start(data)
    try:
        async with Client.from_kubeconfig(srv.kubeconfig) as client:
            ns = await make_ns(client, "restart")
            await client.create("v1", "configmaps", cm("one"), ns)
            factory = SharedInformerFactory(client)
            inf = factory.informer("v1", "configmaps", ns)
            rec = Recorder().attach(inf)
            await factory.start()
            try:
                assert await factory.wait_for_sync(10)
                port = srv.port
                await asyncio.to_thread(srv.stop)
                srv = await asyncio.to_thread(ServerProcess.start, data, port=port)
                await client.create("v1", "configmaps", cm("two"), ns)
                await eventually(lambda: ("add", f"{ns}/two") in rec.events, timeout=30)
                await client.delete("v1", "configmaps", "one", ns)
                await eventually(lambda: ("delete", f"{ns}/one") in rec.events, timeout=30)
                assert inf.store.keys() == [f"{ns}/two"]
            finally:
                await factory.stop()
    finally:
        srv.stop()
