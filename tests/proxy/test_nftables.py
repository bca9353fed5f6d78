"""The proxy's rendering: Services + EndpointSlices -> ServicePorts -> table text that nft accepts.

The ``nft -c`` tests only validate (nothing is committed), so they touch no ruleset; they need root.
"""

from __future__ import annotations

import os
import re
import shutil
from typing import Any

import pytest

from kybernetes.proxy.nftables import (
    Endpoint,
    RenderOptions,
    ServicePort,
    build_service_ports,
    check_table_name,
    delete_table_script,
    render_table,
    run_nft,
)

Obj = dict[str, Any]
CIDR = "10.43.0.0/16"

needs_nft = pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None, reason="nft -c needs root")


def service(name: str, ip: str | None, ports: list[Obj], *, ns: str = "default", type_: str = "ClusterIP",
            **spec: Any) -> Obj:
    s: Obj = {"type": type_, "ports": ports, **spec}
    if ip is not None:
        s["clusterIP"] = ip
        s["clusterIPs"] = [ip]
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns}, "spec": s}


def eps(*addrs: str, ready: bool | None = True, serving: bool | None = None,
        terminating: bool | None = None) -> list[Obj]:
    conds: Obj = {}
    if ready is not None:
        conds["ready"] = ready
    if serving is not None:
        conds["serving"] = serving
    if terminating is not None:
        conds["terminating"] = terminating
    return [{"addresses": [a], "conditions": conds} for a in addrs]


def slice_(svc: str, name: str, ports: list[Obj], endpoints: list[Obj], *, ns: str = "default",
           family: str = "IPv4") -> Obj:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": family,
            "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
            "ports": ports, "endpoints": endpoints}


def test_join_services_and_slices() -> None:
    svcs = [
        service("web", "10.43.0.10", [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"},
                                      {"name": "dns", "port": 53, "protocol": "UDP"}]),
        service("other", "10.43.0.11", [{"port": 81}], ns="ns2"),
    ]
    slices = [
        slice_("web", "web-a", [{"name": "http", "port": 8080, "protocol": "TCP"},
                                {"name": "dns", "port": 5353, "protocol": "UDP"}],
               eps("10.42.0.6", "10.42.0.5") + eps("10.42.0.9", ready=False)),
        # A second slice with a different target port (a named port resolved differently per pod).
        slice_("web", "web-b", [{"name": "http", "port": 9090, "protocol": "TCP"}], eps("10.42.0.7")),
        # Same service name in another namespace must not leak in; IPv6 slices are ignored.
        slice_("web", "web-x", [{"name": "http", "port": 1, "protocol": "TCP"}], eps("10.42.0.99"), ns="ns2"),
        slice_("web", "web-v6", [{"name": "http", "port": 1, "protocol": "TCP"}], eps("fd00::1"), family="IPv6"),
        slice_("other", "other-a", [{"port": 8081}], eps("10.42.1.2")),  # default ns: not ns2/other's
    ]
    ports = {p.id: p for p in build_service_ports(svcs, slices, CIDR)}
    assert list(ports) == ["default/web/tcp/http", "default/web/udp/dns", "ns2/other/tcp/81"]
    http = ports["default/web/tcp/http"]
    assert (http.port, http.cluster_ips, http.node_port) == (80, ["10.43.0.10"], 0)
    assert http.endpoints == [Endpoint("10.42.0.5", 8080), Endpoint("10.42.0.6", 8080), Endpoint("10.42.0.7", 9090)]
    assert ports["default/web/udp/dns"].endpoints == [Endpoint("10.42.0.5", 5353), Endpoint("10.42.0.6", 5353)]
    assert ports["ns2/other/tcp/81"].endpoints == []


def test_endpoint_conditions() -> None:
    svcs = [service("s", "10.43.0.10", [{"port": 80}])]

    def endpoints(endpoints: list[Obj]) -> list[str]:
        (p,) = build_service_ports(svcs, [slice_("s", "s-1", [{"port": 80}], endpoints)], CIDR)
        return [e.ip for e in p.endpoints]

    # ready unset means ready (API semantics)
    assert endpoints(eps("10.42.0.1", ready=None)) == ["10.42.0.1"]
    # not ready and not terminating: never used
    assert endpoints(eps("10.42.0.1", ready=False)) == []
    # ready ones win over serving+terminating ones ...
    mixed = eps("10.42.0.1") + eps("10.42.0.2", ready=False, serving=True, terminating=True)
    assert endpoints(mixed) == ["10.42.0.1"]
    # ... which are the fallback when nothing is ready (kube-proxy's terminating endpoints)
    assert endpoints(eps("10.42.0.2", ready=False, serving=True, terminating=True)) == ["10.42.0.2"]
    assert endpoints(eps("10.42.0.2", ready=False, serving=False, terminating=True)) == []
    # duplicates across slices collapse
    (p,) = build_service_ports(svcs, [slice_("s", "a", [{"port": 80}], eps("10.42.0.1")),
                                      slice_("s", "b", [{"port": 80}], eps("10.42.0.1"))], CIDR)
    assert p.endpoints == [Endpoint("10.42.0.1", 80)]


def test_which_services_get_rules() -> None:
    svcs = [
        service("headless", "None", [{"port": 80}]),
        service("ext", None, [{"port": 80}], type_="ExternalName", externalName="example.com"),
        service("outside", "192.168.1.1", [{"port": 80}]),  # not in the service range: not ours
        service("np", "10.43.0.20", [{"port": 80, "nodePort": 30080}], type_="NodePort"),
        service("lb", "10.43.0.21", [{"port": 80, "nodePort": 30081}], type_="LoadBalancer"),
        service("cip", "10.43.0.22", [{"port": 80, "nodePort": 30082}]),  # stale nodePort on ClusterIP
        service("sctp", "10.43.0.23", [{"port": 80, "protocol": "SCTP"}]),
        service("aff", "10.43.0.24", [{"port": 80}], sessionAffinity="ClientIP",
                sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}}),
    ]
    ports = {p.name: p for p in build_service_ports(svcs, [], CIDR)}
    assert sorted(ports) == ["aff", "cip", "lb", "np", "sctp"]
    assert (ports["np"].node_port, ports["lb"].node_port, ports["cip"].node_port) == (30080, 30081, 0)
    assert ports["sctp"].protocol == "sctp"
    assert (ports["aff"].affinity_timeout, ports["np"].affinity_timeout) == (60, 0)


SAMPLE = [
    ServicePort("default", "web", "http", "tcp", 80, ["10.43.0.10"], 30080,
                [Endpoint("10.42.0.5", 8080), Endpoint("10.42.0.6", 8080)]),
    ServicePort("default", "dns", "dns", "udp", 53, ["10.43.0.11"], 0, [Endpoint("10.42.0.7", 53)], 10800),
    ServicePort("default", "empty", "", "tcp", 81, ["10.43.0.12"], 30081, []),
]
OPTS = RenderOptions(table="kyb-proxy-unit", node_addresses=["127.0.0.1", "10.42.0.1"],
                     localnet_guard_iface="kyb0")


def _chain_body(text: str, prefix: str) -> str:
    m = re.search(r"\tchain (" + re.escape(prefix) + r"[^ ]*) \{\n(.*?)\n\t\}", text, re.S)
    assert m, f"no chain {prefix}"
    return m.group(2)


def test_render_layout() -> None:
    text = render_table(SAMPLE, OPTS)
    # atomic replace: the table is (re)created and deleted in the same file as the new definition
    assert text.startswith("add table ip kyb-proxy-unit\ndelete table ip kyb-proxy-unit\ntable ip kyb-proxy-unit {")
    # ClusterIP and NodePort (on every node address) of the service with endpoints ...
    assert '10.43.0.10 . tcp . 80 comment "default/web/tcp/http" : goto svc-' in text
    assert '127.0.0.1 . tcp . 30080 comment "default/web/tcp/http" : goto ext-' in text
    assert '10.42.0.1 . tcp . 30080 comment "default/web/tcp/http" : goto ext-' in text
    # ... but none for the one without: its ClusterIP is rejected and its NodePorts listed for rejection
    assert "10.43.0.12 . tcp" not in text
    assert '127.0.0.1 . tcp . 30081 comment "default/empty/tcp/81",' in text
    assert '10.42.0.1 . tcp . 30081 comment "default/empty/tcp/81",' in text
    assert "ip daddr @cluster-ips jump reject-chain" in _chain_body(text, "filter-forward")
    assert "meta l4proto tcp reject with tcp reset" in _chain_body(text, "reject-chain")
    # random choice among the two endpoints, each with its hairpin masquerade and its DNAT
    web = _chain_body(text, "svc-")
    assert "ip saddr != 10.42.0.0/16 jump mark-for-masquerade" in web
    assert re.search(r"numgen random mod 2 vmap \{ 0 : goto ep-\S+__10\.42\.0\.5/8080, 1 : goto ep-\S+__10\.42\.0\.6/8080 \}",
                     web)
    ep = _chain_body(text, "ep-WKF2J3BI")
    assert ep.splitlines()[1:] == ["\t\tip saddr 10.42.0.5 jump mark-for-masquerade",
                                   "\t\tmeta l4proto tcp dnat to 10.42.0.5:8080"]
    assert "jump mark-for-masquerade" in _chain_body(text, "ext-")
    # session affinity: a dynamic set per endpoint, consulted before the random choice
    assert re.search(r"set aff-\w+ \{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 10800s", text)
    assert re.search(r"update @aff-\w+ \{ ip saddr \}\n\t\tmeta l4proto udp dnat to 10.42.0.7:53", text)
    # the localhost guard that comes with route_localnet on the bridge
    assert 'iifname "kyb0" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop' in text
    # masquerade_all: pod clients are masqueraded too
    assert "\t\tjump mark-for-masquerade\n\t\tnumgen" in render_table(SAMPLE, RenderOptions(masquerade_all=True))


def test_render_is_deterministic_and_empty_is_valid_text() -> None:
    assert render_table(SAMPLE, OPTS) == render_table(list(SAMPLE), OPTS)
    empty = render_table([], RenderOptions(table="t"))
    assert "elements" not in empty  # an empty set has no elements clause (that would not parse)


def test_table_names() -> None:
    assert check_table_name("kybernetes-proxy") == "kybernetes-proxy"
    for bad in ("", "1abc", "a b", "x;flush ruleset", "a" * 70):
        with pytest.raises(ValueError):
            check_table_name(bad)
    with pytest.raises(ValueError):
        render_table([], RenderOptions(table="bad name"))


@needs_nft
def test_nft_accepts_the_rendering() -> None:
    run_nft(render_table(SAMPLE, OPTS), check_only=True)
    run_nft(render_table([], RenderOptions(table="kyb-proxy-unit")), check_only=True)
    run_nft(delete_table_script("kyb-proxy-unit"), check_only=True)


@needs_nft
def test_nft_accepts_a_large_rendering() -> None:
    svcs, slices = [], []
    for i in range(200):
        name = f"svc-{i}"
        svcs.append(service(name, f"10.43.{i // 250}.{i % 250 + 1}",
                            [{"name": "http", "port": 80, "nodePort": 30000 + i},
                             {"name": "dns", "port": 53, "protocol": "UDP"}],
                            type_="NodePort", sessionAffinity="ClientIP" if i % 7 == 0 else "None"))
        slices.append(slice_(name, f"{name}-1", [{"name": "http", "port": 8080},
                                                 {"name": "dns", "port": 53, "protocol": "UDP"}],
                             eps(*(f"10.42.{i % 4}.{j + 2}" for j in range(i % 5)))))
    ports = build_service_ports(svcs, slices, CIDR)
    assert len(ports) == 400
    run_nft(render_table(ports, RenderOptions(table="kyb-proxy-unit")), check_only=True)
