"""The local cloud provider and the provider registry, without a cluster.

Instances are judged by real TCP connects on loopback (a listening socket, a closed port) and, as
root, to an address the test makes unreachable with a route of its own (no packet leaves).
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from kybernetes.cloud import registry
from kybernetes.cloud.controllers.node import initialized_node
from kybernetes.cloud.controllers.route import condition_differs, desired_routes, wanted_conditions
from kybernetes.cloud.local import LocalCloud
from kybernetes.cloud.manager import controller_options, select
from kybernetes.cloud.provider import UNINITIALIZED_TAINT, Interface
from kybernetes.cloud.registry import ProviderConfig, get_provider, register_provider

Obj = dict[str, Any]
UNREACHABLE = "198.51.100.77"  # TEST-NET-2; the test routes it nowhere ("unreachable"), as root


def node(name: str, ip: str = "", port: int = 10250, ready: str = "False", labels: dict[str, str] | None = None,
         provider_id: str | None = None) -> Obj:
    status: Obj = {"conditions": [{"type": "Ready", "status": ready}],
                   "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
                   "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}] if ip
                   else []}
    return {"metadata": {"name": name, "uid": f"uid-{name}", "labels": labels or {}},
            "spec": {"taints": [{"key": UNINITIALIZED_TAINT, "value": "true", "effect": "NoSchedule"}],
                     **({"providerID": provider_id} if provider_id else {})},
            "status": status}


def ours(name: str, ip: str = "", port: int = 10250) -> Obj:
    """A node the local provider initialised (providerID kyb://NAME)."""
    return node(name, ip, port, provider_id=f"kyb://{name}")


def service(name: str, uid: str, ingress: list[str] | None = None, lb_ip: str = "") -> Obj:
    spec: Obj = {"type": "LoadBalancer"}
    if lb_ip:
        spec["loadBalancerIP"] = lb_ip
    return {"metadata": {"name": name, "namespace": "default", "uid": uid}, "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": ip} for ip in ingress or []]}}}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_registry_finds_local_and_names_the_known_ones_for_an_unknown_provider() -> None:
    assert isinstance(get_provider("local", ProviderConfig()), LocalCloud)
    with pytest.raises(ValueError, match=r"unknown cloud provider 'nope'; known: .*local"):
        get_provider("nope", ProviderConfig())


def test_another_provider_plugs_in_by_name() -> None:
    made: list[ProviderConfig] = []

    def factory(cfg: ProviderConfig) -> Interface:
        made.append(cfg)
        return LocalCloud()

    register_provider("test-plugged", factory)
    cfg = ProviderConfig({"zone": "z"})
    assert get_provider("test-plugged", cfg).provider_name() == "local" and made == [cfg]
    with pytest.raises(ValueError, match="registered twice"):
        register_provider("test-plugged", lambda c: LocalCloud())
    assert "test-plugged" in registry.providers()


async def test_instance_answers_exists_refused_is_shut_down_no_address_is_kept() -> None:
    instances = LocalCloud().instances_v2()
    assert instances is not None
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        up = ours("up", "127.0.0.1", port)
        assert await instances.instance_exists(up) and not await instances.instance_shutdown(up)
    finally:
        server.close()
        await server.wait_closed()
    stopped = ours("stopped", "127.0.0.1", closed_port())
    assert await instances.instance_exists(stopped) and await instances.instance_shutdown(stopped)
    unknown = ours("unknown")
    assert await instances.instance_exists(unknown) and not await instances.instance_shutdown(unknown)
    # A node without a providerID (a kubelet without --cloud-provider) is asked by its address too.
    plain = node("plain", "127.0.0.1", closed_port())
    assert await instances.instance_exists(plain) and await instances.instance_shutdown(plain)
    # Another provider's node (a hollow node's made-up address): never dialled.
    foreign = node("foreign", "127.0.0.1", closed_port(), provider_id="hollow://foreign")
    assert await instances.instance_exists(foreign) and not await instances.instance_shutdown(foreign)


@pytest.fixture
def unreachable_route() -> Iterator[str]:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("needs root on CI (a route of the test's own)")
        pytest.skip("needs root to add an unreachable route (CI runs as root)")
    subprocess.run(["ip", "route", "add", "unreachable", f"{UNREACHABLE}/32"], check=True)
    try:
        yield UNREACHABLE
    finally:
        subprocess.run(["ip", "route", "del", "unreachable", f"{UNREACHABLE}/32"], check=False)


async def test_a_machine_that_does_not_answer_is_gone(unreachable_route: str) -> None:
    instances = LocalCloud(probe_timeout=2).instances_v2()
    assert instances is not None
    gone = ours("gone", unreachable_route)
    assert not await instances.instance_exists(gone)
    assert not await instances.instance_shutdown(gone)


async def test_metadata_prefers_the_nodes_labels_over_the_flags() -> None:
    cloud = LocalCloud(zone="flag-zone", region="flag-region")
    instances = cloud.instances_v2()
    assert instances is not None
    md = await instances.instance_metadata(node("n1", "10.0.0.5", labels={"topology.kubernetes.io/zone": "own"}))
    assert (md.provider_id, md.zone, md.region, md.instance_type) == ("kyb://n1", "own", "flag-region", "kyb")
    assert [a.address for a in md.node_addresses] == ["10.0.0.5", "n1"]
    out = initialized_node(node("n1", "10.0.0.5"), md)
    assert out["spec"] == {"providerID": "kyb://n1", "taints": []}
    assert out["metadata"]["labels"] == {"topology.kubernetes.io/zone": "own", "topology.kubernetes.io/region":
                                         "flag-region", "node.kubernetes.io/instance-type": "kyb"}


async def test_pool_addresses_are_stable_distinct_recovered_and_freed() -> None:
    cloud = LocalCloud(lb_pool="127.0.100.0/30")  # two usable addresses: .1 and .2
    lb = cloud.load_balancer()
    assert lb is not None
    a, b, c = service("a", "1111"), service("b", "2222"), service("c", "3333")
    assert await lb.ensure_load_balancer("k", a, []) == {"ingress": [{"ip": "127.0.100.1"}]}
    assert await lb.ensure_load_balancer("k", a, []) == {"ingress": [{"ip": "127.0.100.1"}]}  # again: same
    assert await lb.ensure_load_balancer("k", b, []) == {"ingress": [{"ip": "127.0.100.2"}]}
    with pytest.raises(RuntimeError, match="no free address"):
        await lb.ensure_load_balancer("k", c, [])
    await lb.ensure_load_balancer_deleted("k", a)
    assert await lb.ensure_load_balancer("k", c, []) == {"ingress": [{"ip": "127.0.100.1"}]}

    # A new process: the addresses the Services hold are taken back, none is handed out twice.
    restarted = LocalCloud(lb_pool="127.0.100.0/30").load_balancer()
    assert restarted is not None
    restarted.recover([service("b", "2222", ["127.0.100.2"]), service("x", "9999", ["10.1.1.1"])])  # type: ignore[attr-defined]
    assert await restarted.get_load_balancer("k", service("b", "2222")) == ({"ingress": [{"ip": "127.0.100.2"}]}, True)
    assert await restarted.ensure_load_balancer("k", c, []) == {"ingress": [{"ip": "127.0.100.1"}]}
    with pytest.raises(RuntimeError, match="no free address"):  # .2 is b's: asked for, still not given
        await restarted.ensure_load_balancer("k", service("d", "4444", lb_ip="127.0.100.2"), [])


async def test_without_a_pool_the_ingress_is_the_nodes_addresses() -> None:
    lb = LocalCloud().load_balancer()
    assert lb is not None
    status = await lb.ensure_load_balancer("k", service("a", "1"), [node("n2", "10.0.0.2"), node("n1", "10.0.0.1")])
    assert status == {"ingress": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}
    with pytest.raises(RuntimeError):
        await lb.ensure_load_balancer("k", service("a", "1"), [])


def test_routes_are_wanted_for_every_pod_cidr_of_every_node() -> None:
    n = node("n1", "10.0.0.1")
    n["spec"] = {"podCIDR": "10.42.1.0/24", "podCIDRs": ["10.42.1.0/24", "fd00::/64"]}
    want = desired_routes([n, node("n2")])
    assert set(want) == {("n1", "10.42.1.0/24"), ("n1", "fd00::/64")}


def _with_cidr(name: str, cidr: str | None, network: tuple[str, str] | None = None) -> Obj:
    n = node(name, "10.0.0.1")
    n["spec"] = {"podCIDR": cidr, "podCIDRs": [cidr]} if cidr else {}
    if network:
        n["status"]["conditions"].append({"type": "NetworkUnavailable", "status": network[0], "reason": network[1]})
    return n


CREATED = ("False", "RouteCreated", "RouteController created a route")
NOT_CREATED = ("True", "NoRouteCreated", "RouteController failed to create a route")


@pytest.mark.parametrize(("cidr", "had_route", "failed", "want"), [
    ("10.42.1.0/24", False, False, CREATED),  # created this round
    ("10.42.1.0/24", True, False, CREATED),  # already there
    ("10.42.1.0/24", False, True, NOT_CREATED),  # the provider refused it
    (None, True, False, NOT_CREATED),  # its pod CIDR went: its route was deleted
    (None, False, False, None),  # no pod CIDR, no route: left as it is
])
def test_the_route_controller_says_whether_each_nodes_routes_exist(cidr: str | None, had_route: bool, failed: bool,
                                                                  want: tuple[str, str, str] | None) -> None:
    got = wanted_conditions([_with_cidr("n1", cidr)], {"n1"} if had_route else set(), {"n1"} if failed else set())
    assert got.get("n1") == want


@pytest.mark.parametrize(("network", "want", "differs"), [
    (None, CREATED, True),
    (("True", "NoRouteCreated"), CREATED, True),
    (("False", "RouteCreated"), CREATED, False),
    (("False", "CalicoIsUp"), CREATED, False),  # Kubernetes compares the status only
    (("False", "RouteCreated"), NOT_CREATED, True),
    (("True", "NoRouteCreated"), NOT_CREATED, False),
])
def test_the_condition_is_written_only_when_its_status_changes(network: tuple[str, str] | None,
                                                              want: tuple[str, str, str], differs: bool) -> None:
    assert condition_differs(_with_cidr("n1", "10.42.1.0/24", network), want) is differs


@pytest.mark.parametrize(("names", "routes"), [(["*"], True), (["*", "-route"], False), (["cloud-node"], False)])
def test_new_nodes_wait_for_routes_only_when_the_route_controller_runs(names: list[str], routes: bool) -> None:
    assert controller_options({"zone": "z"}, select(names)) == {"zone": "z", "configure-cloud-routes": routes}


@pytest.mark.parametrize(("args", "message"), [
    (["--lb-pool", "nope"], "Invalid value for '--lb-pool': 'nope' is not a CIDR"),
    (["--cloud-provider", "acme"], "unknown cloud provider 'acme'; known: "),
    (["--controllers", "*,foo"], "unknown controller 'foo'; known: cloud-node, cloud-node-lifecycle, service, route"),
])
def test_the_command_refuses_bad_flags_before_it_starts(args: list[str], message: str) -> None:
    from click.testing import CliRunner

    from kybernetes.cloud.cmd import command

    result = CliRunner().invoke(command, ["--kubeconfig", "/nonexistent", *args])
    assert result.exit_code == 2 if "Invalid value" in message else result.exit_code == 1
    assert message in result.output
