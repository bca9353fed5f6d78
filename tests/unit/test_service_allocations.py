"""Service ClusterIPs and NodePorts held in the store (``serviceallocations``): what a write
claims, what a refused write, an update and a deletion release, and the repair loop's two jobs
(release a leak after LEAK_ROUNDS rounds, give a Service without keys its keys), on SQLite."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.core import serviceallocations as held
from kybernetes.apiserver.registry.core.serviceallocator import ServiceAllocator
from kybernetes.apiserver.registry.request import DeleteOptions, RequestContext
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

CTX = RequestContext()


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, Catalogue.builtin(), builtin_strategies())
    ServiceAllocator("10.43.0.0/28", (30000, 30010)).install(reg)
    await reg.start()
    await reg.create(_r(reg, "namespaces"), "", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "default"}}, CTX)
    try:
        yield reg
    finally:
        await reg.stop()
        await store.close()


def _r(reg: Registry, plural: str) -> Any:
    r = reg.catalogue.get("", "v1", plural)
    assert r is not None
    return r


def service(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"ports": [{"port": 80}], **spec}}


async def keys(reg: Registry) -> dict[str, held.Owner | None]:
    out = {}
    for prefix in (held.IP_PREFIX, held.PORT_PREFIX):
        for kv in (await reg.store.list(prefix)).items:
            out[kv.key] = held.owner_of(kv.value)
    return out


async def test_a_service_holds_its_values_until_it_is_deleted(registry: Registry) -> None:
    svcs = _r(registry, "services")
    made = await registry.create(svcs, "default", service("a", type="NodePort"), CTX)
    ip, port = made["spec"]["clusterIP"], made["spec"]["ports"][0]["nodePort"]
    owner = held.Owner("default", "a")
    assert await keys(registry) == {held.key_of(ip): owner, held.key_of(port): owner}
    body = json.loads((await registry.store.get(held.key_of(ip))).value)  # type: ignore[union-attr]
    assert (body["kind"], body["metadata"]["name"], body["spec"]["parentRef"]["resource"]) == ("IPAddress", ip, "services")

    # NodePort -> ClusterIP: the node port is released once the update is stored
    updated, _ = await registry.update(svcs, "default", "a", {**made, "spec": {**made["spec"], "type": "ClusterIP"}}, CTX)
    assert "nodePort" not in updated["spec"]["ports"][0]
    assert await keys(registry) == {held.key_of(ip): owner}
    await registry.delete(svcs, "default", "a", DeleteOptions(), CTX)
    assert await keys(registry) == {}


async def test_a_refused_write_releases_what_it_claimed(registry: Registry) -> None:
    svcs = _r(registry, "services")
    await registry.create(svcs, "default", service("a"), CTX)
    before = await keys(registry)
    with pytest.raises(errors.AlreadyExists):
        await registry.create(svcs, "default", service("a", type="NodePort"), CTX)
    with pytest.raises(errors.Invalid):  # allocated, then refused by validation
        await registry.create(svcs, "default", service("b", type="NodePort", sessionAffinity="Sometimes"), CTX)
    await registry.create(svcs, "default", service("dry", type="NodePort"), RequestContext(dry_run=True))
    assert await keys(registry) == before


async def test_a_value_held_in_the_store_is_not_handed_out_again(registry: Registry) -> None:
    """What another API server holds (a key this server's cache knows nothing of) is skipped when
    picked, and refused when asked for, in Kubernetes' words."""
    svcs = _r(registry, "services")
    other = held.Owner("default", "elsewhere")
    free = [f"10.43.0.{i}" for i in range(2, 15)]
    for ip in free[1:]:
        await held.claim(registry.store, ip, other)
    made = await registry.create(svcs, "default", service("a"), CTX)
    assert made["spec"]["clusterIP"] == free[0]
    with pytest.raises(errors.Invalid) as e:
        await registry.create(svcs, "default", service("b", clusterIP=free[1]), CTX)
    assert f"failed to allocate IP {free[1]}: provided IP is already allocated" in str(e.value)
    with pytest.raises(errors.Invalid, match="range is full"):
        await registry.create(svcs, "default", service("c"), CTX)


async def test_repair_releases_a_leak_after_some_rounds_and_adds_missing_keys(registry: Registry) -> None:
    svcs = _r(registry, "services")
    made = await registry.create(svcs, "default", service("a", type="NodePort"), CTX)
    ip, port = made["spec"]["clusterIP"], made["spec"]["ports"][0]["nodePort"]
    leaked = "10.43.0.9" if ip != "10.43.0.9" else "10.43.0.8"  # not the IP "a" was given
    await held.claim(registry.store, leaked, held.Owner("default", "crashed"))  # its Service never written
    await registry.store.delete(held.key_of(port))  # a Service stored before keys existed
    repair = held.Repair(registry.store, svcs.key_prefix)
    for _ in range(held.LEAK_ROUNDS - 1):
        await repair.round()
        assert held.key_of(leaked) in await keys(registry)
    assert await keys(registry) == {held.key_of(ip): held.Owner("default", "a"), held.key_of(port): held.Owner("default", "a"),
                                    held.key_of(leaked): held.Owner("default", "crashed")}
    await repair.round()
    assert await keys(registry) == {held.key_of(ip): held.Owner("default", "a"), held.key_of(port): held.Owner("default", "a")}


async def test_a_key_reclaimed_between_rounds_is_not_released(registry: Registry) -> None:
    svcs = _r(registry, "services")
    await held.claim(registry.store, "10.43.0.9", held.Owner("default", "x"))
    repair = held.Repair(registry.store, svcs.key_prefix)
    for _ in range(held.LEAK_ROUNDS - 1):
        await repair.round()
    await held.release(registry.store, "10.43.0.9", None)
    await held.claim(registry.store, "10.43.0.9", held.Owner("default", "y"))  # a new allocation
    await repair.round()
    assert held.key_of("10.43.0.9") in await keys(registry)


async def test_deleted_services_free_their_values_at_once_whichever_server_deletes_them(
        registry: Registry, tmp_path: Path) -> None:
    """A server's reservations of the values it handed out end once its cache shows them, so a
    full range, emptied by deletions made through another API server, serves this one again."""
    other = Registry(registry.store, Catalogue.builtin(), builtin_strategies())
    ServiceAllocator("10.43.0.0/28", (30000, 30010)).install(other)
    await other.start()
    try:
        svcs = _r(registry, "services")
        pickable = 16 - 3  # network, kubernetes Service (.1) and broadcast addresses excluded
        for round_ in range(2):
            made = [await registry.create(svcs, "default", service(f"s{i}"), CTX) for i in range(pickable)]
            assert len({m["spec"]["clusterIP"] for m in made}) == pickable, round_
            with pytest.raises(errors.StatusError) as full:
                await registry.create(svcs, "default", service("one-too-many"), CTX)
            assert full.value.code == 422 and "range is full" in str(full.value)
            await other.cacher.wait_fresh()
            for i in range(pickable):
                await other.delete(svcs, "default", f"s{i}", DeleteOptions(), CTX)
            await registry.cacher.wait_fresh()
        # and through the server that handed them out
        for i in range(pickable):
            await registry.create(svcs, "default", service(f"t{i}"), CTX)
        for i in range(pickable):
            await registry.delete(svcs, "default", f"t{i}", DeleteOptions(), CTX)
        assert (await registry.create(svcs, "default", service("again"), CTX))["spec"]["clusterIP"]
    finally:
        await other.stop()
