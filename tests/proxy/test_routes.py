"""The node network's host-gw routes and masquerade table.

The plan (Nodes -> routes) is checked as a table; applying it runs ``ip`` for real in a network
namespace of this test's own (``ip -n``), with a veth pair giving it a connected network, so the
host's routing table is never touched. The masquerade table is validated with ``nft -c`` (nothing
committed). Both need root.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.proxy import routes
from kybernetes.proxy.masquerade import render_masquerade_table
from kybernetes.proxy.network import NetworkConfig, NodeNetwork
from kybernetes.proxy.nftables import run_nft

Obj = dict[str, Any]

needs_root = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("nft") is None,
                                reason="network namespaces and nft -c need root")


def node(name: str, cidr: str | None, *addresses: tuple[str, str], cidrs: list[str] | None = None) -> Obj:
    spec: Obj = {}
    if cidr is not None:
        spec["podCIDR"] = cidr
    if cidrs is not None:
        spec["podCIDRs"] = cidrs
    return {"metadata": {"name": name}, "spec": spec,
            "status": {"addresses": [{"type": t, "address": a} for t, a in addresses]}}


def test_every_other_node_with_a_pod_cidr_and_an_address_gets_a_route() -> None:
    nodes = [
        node("self", "10.42.0.0/24", ("InternalIP", "192.168.5.1")),
        node("b", "10.42.1.0/24", ("Hostname", "b"), ("ExternalIP", "203.0.113.9"), ("InternalIP", "192.168.5.2")),
        node("c", "10.42.2.0/24", ("ExternalIP", "192.168.5.3")),  # no InternalIP: the ExternalIP
        node("d", None, ("InternalIP", "192.168.5.4")),  # no pod CIDR yet
        node("e", "10.42.4.0/24", ("Hostname", "e")),  # no address
        node("f", "10.42.5.0/24", ("InternalIP", "192.168.5.9")),  # on this machine: already connected
        node("g", "10.42.6.0/24", ("InternalIP", "127.0.0.1")),  # loopback is never a gateway
        node("h", None, ("InternalIP", "fd00::8"), ("InternalIP", "192.168.5.8"), cidrs=["fd42::/64", "10.42.7.0/24"]),
    ]
    assert routes.desired_routes(nodes, "self", ["192.168.5.1", "192.168.5.9"]) == {
        "10.42.1.0/24": "192.168.5.2",
        "10.42.2.0/24": "192.168.5.3",
        "10.42.7.0/24": "192.168.5.8",
    }


def _network(status: str, reason: str) -> Obj:
    return {"type": "NetworkUnavailable", "status": status, "reason": reason, "message": "m"}


UNINITIALIZED = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}


@pytest.mark.parametrize(("conditions", "taints", "routed"), [
    ([], [], True),  # no cloud-controller-manager manages routes (--disable-cloud-controller): as before
    ([_network("False", "RouteCreated")], [], True),  # the route controller created its route
    ([_network("True", "NoRouteCreated")], [], False),  # initialised without a route, or its route deleted
    ([_network("Unknown", "NodeStatusUnknown")], [], False),
    ([_network("False", "RouteCreated")], [UNINITIALIZED], True),
    ([], [UNINITIALIZED], False),  # not initialised yet: the CCM will say whether routes are its
    ([{"type": "Ready", "status": "True"}], [{"key": "other", "effect": "NoSchedule"}], True),
])
def test_a_node_is_routed_only_when_its_network_condition_allows(conditions: list[Obj], taints: list[Obj],
                                                                 routed: bool) -> None:
    n = node("b", "10.42.1.0/24", ("InternalIP", "192.168.5.2"))
    n["status"]["conditions"] = conditions
    n["spec"]["taints"] = taints
    want = routes.desired_routes([n, node("c", "10.42.2.0/24", ("InternalIP", "192.168.5.3"))], "self", [])
    assert want == ({"10.42.1.0/24": "192.168.5.2"} if routed else {}) | {"10.42.2.0/24": "192.168.5.3"}


def test_bad_addresses_and_cidrs_are_skipped() -> None:
    nodes = [node("a", "not-a-cidr", ("InternalIP", "192.168.5.2")),
             node("b", "10.42.1.0/24", ("InternalIP", "nonsense")),
             node("c", "fd42::/64", ("InternalIP", "192.168.5.3"))]
    assert routes.desired_routes(nodes, "self", []) == {}


@pytest.fixture
def netns(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A network namespace of this test with 10.250.0.1/24 on a veth (a connected network)."""
    name = f"kybrt{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        for cmd in (["link", "add", "v0", "type", "veth", "peer", "name", "v1"], ["link", "set", "v0", "up"],
                    ["link", "set", "v1", "up"], ["addr", "add", "10.250.0.1/24", "dev", "v0"],
                    ["route", "add", "10.251.9.0/24", "via", "10.250.0.99", "proto", "static"]):
            subprocess.run(["ip", "-n", name, *cmd], check=True)
        monkeypatch.setattr(routes, "IP", ["ip", "-n", name])
        yield name
    finally:
        subprocess.run(["ip", "netns", "delete", name], check=True)


def _route_table(ns: str) -> str:
    return subprocess.run(["ip", "-n", ns, "-4", "route"], capture_output=True, text=True, check=True).stdout


@needs_root
def test_reconcile_changes_only_our_routes(netns: str) -> None:
    assert routes.local_addresses() == ["10.250.0.1"]
    changes = routes.reconcile({"10.42.1.0/24": "10.250.0.2", "10.42.2.0/24": "10.250.0.3"})
    assert changes.replaced == ["10.42.1.0/24 via 10.250.0.2", "10.42.2.0/24 via 10.250.0.3"]
    assert routes.current_routes() == {"10.42.1.0/24": "10.250.0.2", "10.42.2.0/24": "10.250.0.3"}
    assert "10.42.1.0/24 via 10.250.0.2 dev v0 proto 107 metric 107" in _route_table(netns)

    # Nothing to do: nothing is run but the read.
    assert routes.reconcile({"10.42.1.0/24": "10.250.0.2", "10.42.2.0/24": "10.250.0.3"}) == routes.RouteChanges()
    # A node moved, one left, one came whose address is not on any connected network.
    changes = routes.reconcile({"10.42.1.0/24": "10.250.0.7", "10.42.3.0/24": "192.0.2.1"})
    assert changes.replaced == ["10.42.1.0/24 via 10.250.0.7"]
    assert changes.deleted == ["10.42.2.0/24"]
    assert "invalid gateway" in changes.failed["10.42.3.0/24"]
    assert routes.current_routes() == {"10.42.1.0/24": "10.250.0.7"}

    # Flushed by hand: the next reconcile puts it back.
    subprocess.run(["ip", "-n", netns, "route", "flush", "proto", "107"], check=True)
    assert routes.reconcile({"10.42.1.0/24": "10.250.0.7"}).replaced == ["10.42.1.0/24 via 10.250.0.7"]

    # A node whose new address is unreachable loses its old route rather than keep a wrong one.
    changes = routes.reconcile({"10.42.1.0/24": "192.0.2.1"})
    assert "invalid gateway" in changes.failed["10.42.1.0/24"] and changes.deleted == ["10.42.1.0/24"]
    assert routes.current_routes() == {}

    routes.reconcile({"10.42.2.0/24": "10.250.0.3"})
    routes.remove_all()
    table = _route_table(netns)
    assert "proto 107" not in table
    # Routes of others (here a static one) and the connected route are never touched.
    assert "10.251.9.0/24 via 10.250.0.99 dev v0 proto static" in table
    assert "10.250.0.0/24 dev v0 proto kernel" in table


def test_masquerade_table_text() -> None:
    text = render_masquerade_table("kyb-net-kyb0", "10.42.0.0/16", "10.43.0.0/16")
    assert text.startswith("add table ip kyb-net-kyb0\ndelete table ip kyb-net-kyb0\n")
    assert "type nat hook postrouting priority srcnat + 10; policy accept;" in text
    rules = [line.strip() for line in text.splitlines() if line.startswith("\t\tip ")]
    assert rules == [
        "ip saddr 10.42.0.0/16 ip daddr 10.42.0.0/16 return",
        "ip saddr 10.42.0.0/16 ip daddr 10.43.0.0/16 return",
        "ip saddr 10.42.0.0/16 ip daddr 224.0.0.0/4 return",
        "ip saddr 10.42.0.0/16 masquerade fully-random",
    ]
    with pytest.raises(ValueError):
        render_masquerade_table("bad name", "10.42.0.0/16", "10.43.0.0/16")


@needs_root
def test_masquerade_table_is_accepted_by_nft() -> None:
    run_nft(render_masquerade_table("kyb-net-kyb0", "10.42.0.0/16", "10.43.0.0/16"), check_only=True)


@needs_root
def test_node_network_sync_programs_and_repairs_routes_and_table(netns: str, tmp_path: Path) -> None:
    nft = tmp_path / "nft"  # nft has no -n NETNS: run it in the test's namespace
    nft.write_text(f'#!/bin/sh\nexec ip netns exec {netns} nft "$@"\n')
    nft.chmod(0o755)
    cfg = NetworkConfig(node_name="self", bridge="kyb0", nft=str(nft))
    net = NodeNetwork(cfg, client=None)
    nodes = [node("self", "10.42.0.0/24", ("InternalIP", "10.250.0.1")),
             node("b", "10.42.1.0/24", ("InternalIP", "10.250.0.2"))]

    def table() -> str:
        return subprocess.run([str(nft), "list", "table", "ip", "kyb-net-kyb0"], capture_output=True,
                              text=True).stdout

    assert net._sync_host(nodes)  # the table applied
    net.probe.remember(net.last_applied)  # as the sync loop does after an apply
    assert routes.current_routes() == {"10.42.1.0/24": "10.250.0.2"}
    assert "ip saddr 10.42.0.0/16 masquerade" in table()
    assert not net._sync_host(nodes)  # intact: read, not rewritten

    # Removed by hand: the next sync puts both back.
    subprocess.run(["ip", "-n", netns, "route", "flush", "proto", "107"], check=True)
    subprocess.run([str(nft), "delete", "table", "ip", "kyb-net-kyb0"], check=True)
    assert net._sync_host(nodes)
    net.probe.remember(net.last_applied)
    assert routes.current_routes() == {"10.42.1.0/24": "10.250.0.2"}
    assert "masquerade" in table()
    subprocess.run([str(nft), "flush", "table", "ip", "kyb-net-kyb0"], check=True)  # the chain stays, empty
    assert "masquerade" not in table()
    assert net._sync_host(nodes)
    assert "masquerade" in table()

    # The route controller took b's route away (NoRouteCreated): the kernel route goes; back once created.
    nodes[1]["status"]["conditions"] = [_network("True", "NoRouteCreated")]
    net._sync_host(nodes)
    assert routes.current_routes() == {}
    nodes[1]["status"]["conditions"] = [_network("False", "RouteCreated")]
    net._sync_host(nodes)
    assert routes.current_routes() == {"10.42.1.0/24": "10.250.0.2"}

    # Masquerading turned off: a new daemon removes the table an earlier one left.
    off = NodeNetwork(NetworkConfig(node_name="self", bridge="kyb0", nft=str(nft), ip_masq=False))
    off._sync_host(nodes)
    assert table() == ""
    assert routes.current_routes() == {"10.42.1.0/24": "10.250.0.2"}

    # A clean stop takes the routes and the table away.
    net._sync_host(nodes)
    assert "masquerade" in table()
    asyncio.run(net.stop())
    assert routes.current_routes() == {} and table() == ""
