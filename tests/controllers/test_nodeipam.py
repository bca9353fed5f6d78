"""Node IPAM against a real API server: distinct pod CIDRs, rebuilt at start, released on delete."""

from __future__ import annotations

import asyncio
import ipaddress
import time
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.controllers.nodeipam import CIDRSet, NodeIPAMController
from kybernetes.testing import ServerProcess
from tests.controllers.harness import running, wait_for

pytestmark = pytest.mark.integration


async def cidr_of(client: Client, name: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        node = await client.get("v1", "nodes", name)
        spec = node.get("spec") or {}
        if spec.get("podCIDR"):
            assert spec["podCIDRs"] == [spec["podCIDR"]]
            return str(spec["podCIDR"])
        await asyncio.sleep(0.05)
    raise AssertionError(f"node {name} got no pod CIDR")


async def make_node(client: Client, name: str, cidr: str = "") -> None:
    node: dict[str, Any] = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}}
    if cidr:
        node["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]}
    await client.create("v1", "nodes", node)


def test_cidr_set_blocks() -> None:
    s = CIDRSet("10.42.0.0/16", 24)
    assert s.size == 256 and s.cidr(3) == "10.42.3.0/24"
    assert s.index_of("10.42.7.0/24") == 7 and s.index_of("10.43.0.0/24") is None
    assert s.index_of("10.42.0.0/25") is None
    small = CIDRSet("10.0.0.0/30", 31)
    assert [small.allocate(), small.allocate(), small.allocate()] == ["10.0.0.0/31", "10.0.0.2/31", None]
    with pytest.raises(ValueError):
        CIDRSet("10.0.0.0/16", 8)


async def test_distinct_cidrs_rebuild_and_release(srv: ServerProcess) -> None:
    async with running(srv, NodeIPAMController, options={"cluster-cidr": "10.99.0.0/22"}) as client:
        # A node that already has a range keeps it, and nobody else gets it.
        await make_node(client, "pre", "10.99.0.0/24")
        await make_node(client, "a")
        await make_node(client, "b")
        got = {await cidr_of(client, "a"), await cidr_of(client, "b")}
        assert len(got) == 2 and "10.99.0.0/24" not in got
        assert all(ipaddress.ip_network(c).subnet_of(ipaddress.ip_network("10.99.0.0/22")) for c in got)
    # A restarted controller rebuilds what is taken from the nodes: the last free block only.
    async with running(srv, NodeIPAMController, options={"cluster-cidr": "10.99.0.0/22"}) as client:
        await make_node(client, "c")
        c = await cidr_of(client, "c")
        assert c not in got | {"10.99.0.0/24"}
        # The range is full now; deleting a node gives its block back to the next node.
        await make_node(client, "d")

        async def reported() -> bool:
            items, _ = await client.list_all("v1", "events", "default", field_selector="reason=CIDRNotAvailable")
            return any(e.get("involvedObject", {}).get("name") == "d" for e in items)

        await wait_for(reported, what="CIDRNotAvailable event for d")
        assert not ((await client.get("v1", "nodes", "d")).get("spec") or {}).get("podCIDR")
        await client.delete("v1", "nodes", "a")
        d = await cidr_of(client, "d")
        assert d in got
        for n in ("pre", "b", "c", "d"):
            await client.delete("v1", "nodes", n)
