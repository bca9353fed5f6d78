"""The lease endpoint reconciler (``apiserver/endpointreconciler.py``) on a real registry and
SQLite store, with a fake clock: several API servers' identity leases, the ``kubernetes``
Endpoints and EndpointSlice listing exactly the live ones, written only on change, a clean stop
leaving at once, a dead server leaving when its lease expires, expired leases collected."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.resources import Catalogue, Resource
from kybernetes.apiserver.endpointreconciler import (
    ADDRESS_ANNOTATION,
    IDENTITY_LABEL,
    EndpointReconciler,
    lease_name,
)
from kybernetes.apiserver.registry import builtin_strategies
from kybernetes.apiserver.registry.request import ListOptions, RequestContext
from kybernetes.apiserver.registry.store import Registry
from kybernetes.storage.sqlite import SQLiteStore

CATALOGUE = Catalogue.builtin()
PORT = 6443
DURATION = 15


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def resource(group: str, plural: str) -> Resource:
    r = CATALOGUE.get(group, "v1", plural)
    assert r is not None
    return r


@pytest.fixture
async def registry(tmp_path: Path) -> AsyncIterator[Registry]:
    store = await SQLiteStore.open(str(tmp_path / "state.db"), compact_interval=0)
    reg = Registry(store, CATALOGUE, builtin_strategies())
    await reg.start()
    for ns in ("default", "kube-system"):
        await reg.create(resource("", "namespaces"), "", {"apiVersion": "v1", "kind": "Namespace",
                                                          "metadata": {"name": ns}}, RequestContext())
    try:
        yield reg
    finally:
        await reg.stop()
        await store.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def server(registry: Registry, clock: FakeClock, address: str) -> EndpointReconciler:
    return EndpointReconciler(registry, CATALOGUE, address=address, port=PORT, lease_duration=DURATION,
                              renew_interval=5, clock=clock, hostname="host")


async def endpoints(registry: Registry) -> tuple[list[str], list[str], str]:
    """The Endpoints' addresses, the EndpointSlice's, and both resourceVersions."""
    ep = await registry.get(resource("", "endpoints"), "default", "kubernetes")
    eps = await registry.get(resource("discovery.k8s.io", "endpointslices"), "default", "kubernetes")
    assert [s["ports"] for s in ep["subsets"]] == [[{"name": "https", "port": PORT, "protocol": "TCP"}]]
    assert eps["ports"] == [{"name": "https", "port": PORT, "protocol": "TCP"}]
    return ([a["ip"] for a in ep["subsets"][0]["addresses"]],
            [a for e in eps["endpoints"] for a in e["addresses"]],
            ep["metadata"]["resourceVersion"] + "/" + eps["metadata"]["resourceVersion"])


async def leases(registry: Registry) -> dict[str, dict[str, Any]]:
    found = await registry.list(resource("coordination.k8s.io", "leases"), "kube-system", ListOptions())
    return {lease["metadata"]["name"]: lease for lease in found.items}


async def test_every_live_server_is_listed_sorted(registry: Registry, clock: FakeClock) -> None:
    b, a = server(registry, clock, "10.0.0.2"), server(registry, clock, "10.0.0.10")
    await b.reconcile()
    assert (await endpoints(registry))[:2] == (["10.0.0.2"], ["10.0.0.2"])
    await a.reconcile()
    await b.reconcile()
    assert (await endpoints(registry))[:2] == (["10.0.0.10", "10.0.0.2"], ["10.0.0.10", "10.0.0.2"])
    held = await leases(registry)
    assert set(held) == {lease_name("host", "10.0.0.2", PORT), lease_name("host", "10.0.0.10", PORT)}
    lease = held[a.name]
    assert a.name.startswith("kube-apiserver-")
    assert lease["metadata"]["labels"][IDENTITY_LABEL] == "kube-apiserver"
    assert lease["metadata"]["annotations"][ADDRESS_ANNOTATION] == "10.0.0.10"
    assert lease["spec"]["leaseDurationSeconds"] == DURATION
    assert lease["spec"]["holderIdentity"].startswith(a.name + "_")
    ep = await registry.get(resource("", "endpoints"), "default", "kubernetes")
    assert ep["metadata"]["labels"] == {"endpointslice.kubernetes.io/skip-mirror": "true"}


async def test_endpoints_are_written_only_on_change(registry: Registry, clock: FakeClock) -> None:
    a, b = server(registry, clock, "10.0.0.1"), server(registry, clock, "10.0.0.2")
    await a.reconcile()
    await b.reconcile()
    *_, before = await endpoints(registry)
    for _ in range(3):
        clock.now += 5
        await a.reconcile()
        await b.reconcile()
    *_, after = await endpoints(registry)
    assert after == before
    renewed = (await leases(registry))[a.name]["spec"]["renewTime"]
    assert renewed.startswith("2027-01-15T08:00:15.")  # 1.8e9 s + 15 s, MicroTime


async def test_a_server_that_stops_renewing_leaves_after_its_lease_expired(
        registry: Registry, clock: FakeClock) -> None:
    a, b = server(registry, clock, "10.0.0.1"), server(registry, clock, "10.0.0.2")
    await a.reconcile()
    await b.reconcile()
    clock.now += DURATION  # b's lease is live up to and including its expiry
    await a.reconcile()
    assert (await endpoints(registry))[:2] == (["10.0.0.1", "10.0.0.2"],) * 2
    clock.now += 1
    await a.reconcile()
    assert (await endpoints(registry))[:2] == (["10.0.0.1"],) * 2
    assert b.name in await leases(registry)  # expired, not yet collected
    clock.now += DURATION
    await a.reconcile()
    assert set(await leases(registry)) == {a.name}
    await b.reconcile()  # b comes back: its lease and address return
    assert (await endpoints(registry))[:2] == (["10.0.0.1", "10.0.0.2"],) * 2


async def test_a_clean_stop_removes_the_server_at_once(registry: Registry, clock: FakeClock) -> None:
    a, b = server(registry, clock, "10.0.0.1"), server(registry, clock, "10.0.0.2")
    await a.start()
    await b.start()
    await a.reconcile()
    assert (await endpoints(registry))[:2] == (["10.0.0.1", "10.0.0.2"],) * 2
    await b.stop()
    assert (await endpoints(registry))[:2] == (["10.0.0.1"],) * 2
    assert set(await leases(registry)) == {a.name}
    await a.stop()  # the last one: never an empty endpoints list
    assert (await endpoints(registry))[:2] == (["10.0.0.1"],) * 2
    assert await leases(registry) == {}


async def test_a_loopback_server_holds_a_lease_but_publishes_nothing(registry: Registry, clock: FakeClock) -> None:
    lo = server(registry, clock, "127.0.0.1")
    await lo.reconcile()
    lease = (await leases(registry))[lo.name]
    assert ADDRESS_ANNOTATION not in (lease["metadata"].get("annotations") or {})
    with pytest.raises(errors.NotFound):
        await registry.get(resource("", "endpoints"), "default", "kubernetes")
    a = server(registry, clock, "10.0.0.1")
    await a.reconcile()
    assert (await endpoints(registry))[:2] == (["10.0.0.1"],) * 2


async def test_foreign_endpoints_are_corrected(registry: Registry, clock: FakeClock) -> None:
    """Endpoints someone else wrote (two subsets, a stale address) are replaced by the live set."""
    await registry.create(resource("", "endpoints"), "default", {
        "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "kubernetes"},
        "subsets": [{"addresses": [{"ip": "10.9.9.9"}], "ports": [{"name": "https", "port": 1, "protocol": "TCP"}]},
                    {"addresses": [{"ip": "10.0.0.1"}], "ports": [{"name": "https", "port": PORT, "protocol": "TCP"}]}],
    }, RequestContext())
    await server(registry, clock, "10.0.0.1").reconcile()
    assert (await endpoints(registry))[:2] == (["10.0.0.1"],) * 2


def test_durations_must_be_positive(registry: Registry, clock: FakeClock) -> None:
    with pytest.raises(ValueError):
        EndpointReconciler(registry, CATALOGUE, address="10.0.0.1", port=PORT, lease_duration=0)
