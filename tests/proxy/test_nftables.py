"""The proxy's rendering: Services + EndpointSlices -> ServicePorts -> table text that nft accepts.

The ``nft -c`` tests only validate (nothing is committed), so they touch no ruleset; they need root.
The in-place sync test commits to a table of its own (``kyb-proxy-unit-PID``) and deletes it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest

from kybernetes.proxy.nftables import (
    Existing,
    RenderOptions,
    apply,
    check_table_name,
    delete_table_script,
    list_existing,
    render_table,
    replace_script,
    run_nft,
    sync_script,
)
from kybernetes.proxy.serviceports import (
    Endpoint,
    ServicePort,
    build_service_ports,
    health_check_node_ports,
    local_ready_endpoints,
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


def test_traffic_policies_external_ips_and_health_check_port() -> None:
    """Local endpoints are the ones on this node (ready first, else serving-terminating); the
    policies, externalIPs (IPv4) and the health-check node port come from the Service."""
    ports = [{"name": "http", "port": 80, "nodePort": 30080}]
    svcs = [
        service("lb", "10.43.0.20", ports, type_="LoadBalancer", externalTrafficPolicy="Local",
                healthCheckNodePort=30999, externalIPs=["192.0.2.10", "2001:db8::1"]),
        service("itp", "10.43.0.21", [{"name": "http", "port": 80}], internalTrafficPolicy="Local"),
        service("eip", "10.43.0.22", [{"name": "http", "port": 80}], externalIPs=["192.0.2.11"],
                externalTrafficPolicy="Local"),
        service("np", "10.43.0.23", ports, type_="NodePort", externalTrafficPolicy="Local", healthCheckNodePort=1),
    ]
    here, there = {"nodeName": "node-a"}, {"nodeName": "node-b"}
    slices = [slice_(n, f"{n}-1", [{"name": "http", "port": 8080}],
                     [{**e, **here} for e in eps("10.42.0.5")] + [{**e, **there} for e in eps("10.42.1.6")]
                     + [{**e, **here} for e in eps("10.42.0.9", ready=False, serving=True, terminating=True)])
              for n in ("lb", "itp", "eip")]
    slices.append(slice_("np", "np-1", [{"name": "http", "port": 8080}],
                         [{**e, **here} for e in eps("10.42.0.9", ready=False, serving=True, terminating=True)]))
    got = {p.name: p for p in build_service_ports(svcs, slices, CIDR, node_name="node-a")}
    lb = got["lb"]
    assert lb.endpoints == [Endpoint("10.42.0.5", 8080), Endpoint("10.42.1.6", 8080)]
    assert lb.local_endpoints == [Endpoint("10.42.0.5", 8080)]
    assert (lb.external_local, lb.internal_local, lb.external_ips, lb.health_check_node_port) == \
        (True, False, ["192.0.2.10"], 30999)
    assert (got["itp"].internal_local, got["itp"].external_local) == (True, False)
    assert (got["eip"].external_local, got["eip"].external_ips) == (True, ["192.0.2.11"])
    np_ = got["np"]  # no ready local endpoint: the serving-terminating local one; no health port (NodePort)
    assert np_.local_endpoints == [Endpoint("10.42.0.9", 8080)] and np_.health_check_node_port == 0
    assert health_check_node_ports(got.values()) == {("default", "lb"): 30999}
    assert local_ready_endpoints(got.values()) == {("default", "lb"): 1}
    # without a node name nothing is local
    assert build_service_ports(svcs, slices, CIDR)[0].local_endpoints == []


SAMPLE = [
    ServicePort("default", "web", "http", "tcp", 80, ["10.43.0.10"], 30080,
                [Endpoint("10.42.0.5", 8080), Endpoint("10.42.0.6", 8080)]),
    ServicePort("default", "dns", "dns", "udp", 53, ["10.43.0.11"], 0, [Endpoint("10.42.0.7", 53)], 10800),
    ServicePort("default", "empty", "", "tcp", 81, ["10.43.0.12"], 30081, []),
]
OPTS = RenderOptions(table="kyb-proxy-unit", localnet_guard_iface="kyb0")


def _chain_body(text: str, prefix: str) -> str:
    m = re.search(r"\tchain (" + re.escape(prefix) + r"[^ ]*) \{\n(.*?)\n\t\}", text, re.S)
    assert m, f"no chain {prefix}"
    return m.group(2)


def _no_chain(text: str, prefix: str) -> bool:
    return f"\tchain {prefix}" not in text


def test_render_layout() -> None:
    text = render_table(SAMPLE, OPTS).text
    assert text.startswith("table ip kyb-proxy-unit {")
    # ClusterIP and NodePort of the service with endpoints ...
    assert '10.43.0.10 . tcp . 80 comment "default/web/tcp/http" : goto svc-' in text
    assert 'tcp . 30080 comment "default/web/tcp/http" : goto ext-' in text
    # ... but none for the one without: both are rejected by the endpoints check
    assert "10.43.0.12 . tcp . 81 comment \"default/empty/tcp/81\" : goto reject-chain" in text
    assert 'tcp . 30081 comment "default/empty/tcp/81" : goto reject-chain' in text
    assert "ct state new jump endpoints-check" in _chain_body(text, "filter-input")
    assert "ip daddr @cluster-ips jump reject-chain" in _chain_body(text, "filter-forward")
    assert "meta l4proto tcp reject with tcp reset" in _chain_body(text, "reject-chain")
    # random choice among the two endpoints, each with its hairpin masquerade and its DNAT
    web = _chain_body(text, "svc-SUSTUHLJ")
    assert "ip saddr != 10.42.0.0/16 jump mark-for-masquerade" in web
    assert re.search(r"numgen random mod 2 vmap \{ 0 : goto ep-\S+__10\.42\.0\.5/8080, 1 : goto ep-\S+__10\.42\.0\.6/8080 \}",
                     web)
    ep = _chain_body(text, "ep-WKF2J3BI")
    assert ep.splitlines()[1:] == ["\t\tip saddr 10.42.0.5 jump mark-for-masquerade",
                                   "\t\tmeta l4proto tcp dnat to 10.42.0.5:8080"]
    # externalTrafficPolicy: Cluster: NodePort clients are masqueraded, every endpoint is used
    assert _chain_body(text, "ext-").splitlines()[1:] == ["\t\tjump mark-for-masquerade",
                                                          "\t\tgoto svc-SUSTUHLJ-default/web/tcp/http"]
    # session affinity: a dynamic set per endpoint, consulted before the random choice
    assert re.search(r"set aff-\w+ \{\n\t\ttype ipv4_addr\n\t\tflags dynamic,timeout\n\t\ttimeout 10800s", text)
    assert re.search(r"update @aff-\w+ \{ ip saddr \}\n\t\tmeta l4proto udp dnat to 10.42.0.7:53", text)
    # the localhost guard that comes with route_localnet on the bridge
    assert 'iifname "kyb0" ip daddr 127.0.0.0/8 ct status & dnat == 0 drop' in text
    # masquerade_all: pod clients are masqueraded too
    assert "\t\tjump mark-for-masquerade\n\t\tnumgen" in render_table(SAMPLE, RenderOptions(masquerade_all=True)).text


def test_nodeport_addresses() -> None:
    """Every local address by default (fib), loopback included unless turned off; or a fixed set."""
    services = _chain_body(render_table(SAMPLE, OPTS).text, "services")
    assert "fib daddr type local meta l4proto . th dport vmap @service-nodeports" in services
    no_lo = render_table(SAMPLE, RenderOptions(localhost_nodeports=False)).text
    assert "fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @service-nodeports" in no_lo
    assert "ip daddr != 127.0.0.0/8 meta l4proto . th dport vmap @no-endpoint-nodeports" in no_lo
    fixed = render_table(SAMPLE, RenderOptions(nodeport_ips=["192.0.2.7", "10.42.0.1"])).text
    assert "ip daddr @nodeport-ips meta l4proto . th dport vmap @service-nodeports" in fixed
    assert "ip daddr @nodeport-ips meta l4proto . th dport vmap @no-endpoint-nodeports" in fixed
    assert re.search(r"set nodeport-ips \{\n\t\ttype ipv4_addr\n\t\telements = \{\n\t\t\t10.42.0.1,\n\t\t\t192.0.2.7,", fixed)
    assert "fib daddr type local" not in fixed


REMOTE, LOCAL = Endpoint("10.42.1.6", 8080), Endpoint("10.42.0.5", 8080)


def test_external_traffic_policy_local() -> None:
    """Only local endpoints for NodePort/externalIP clients, their source kept; pods and the host
    short-circuit to every endpoint; no local endpoint: dropped (not rejected)."""
    sp = ServicePort("default", "web", "http", "tcp", 80, ["10.43.0.10"], 30080, [LOCAL, REMOTE],
                     external_ips=["192.0.2.10"], local_endpoints=[LOCAL], external_local=True)
    text = render_table([sp], OPTS).text
    ext = _chain_body(text, "ext-").splitlines()[1:]
    assert ext == ["\t\tip saddr 10.42.0.0/16 goto svc-SUSTUHLJ-default/web/tcp/http",
                   "\t\tfib saddr type local jump mark-for-masquerade",
                   "\t\tfib saddr type local goto svc-SUSTUHLJ-default/web/tcp/http",
                   "\t\tgoto local-SUSTUHLJ-default/web/tcp/http"]
    local = _chain_body(text, "local-")
    assert "mark-for-masquerade" not in local  # the client's address reaches the pod
    assert local.splitlines()[1:] == ["\t\tgoto ep-WKF2J3BI-default/web/tcp/http__10.42.0.5/8080"]
    assert '192.0.2.10 . tcp . 80 comment "default/web/tcp/http" : goto ext-' in text
    assert "map no-endpoint-services {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t}" in text
    # the ClusterIP still uses every endpoint
    assert '10.43.0.10 . tcp . 80 comment "default/web/tcp/http" : goto svc-' in text
    # no local endpoint: NodePort and externalIP traffic from outside is dropped (the ext chain
    # still short-circuits pods and the host)
    sp.local_endpoints = []
    text = render_table([sp], OPTS).text
    assert 'tcp . 30080 comment "default/web/tcp/http" : drop' in text
    assert '192.0.2.10 . tcp . 80 comment "default/web/tcp/http" : drop' in text
    assert 'tcp . 30080 comment "default/web/tcp/http" : goto ext-' in text
    assert "goto local-" not in text and _no_chain(text, "local-")


def test_internal_traffic_policy_local() -> None:
    sp = ServicePort("default", "web", "http", "tcp", 80, ["10.43.0.10"], 0, [LOCAL, REMOTE],
                     local_endpoints=[LOCAL], internal_local=True)
    text = render_table([sp], OPTS).text
    assert '10.43.0.10 . tcp . 80 comment "default/web/tcp/http" : goto local-' in text
    assert _no_chain(text, "svc-") and "10.42.1.6" not in text  # the remote endpoint is never used
    local = _chain_body(text, "local-")
    assert "ip daddr 10.43.0.10 tcp dport 80 ip saddr != 10.42.0.0/16 jump mark-for-masquerade" in local
    sp.local_endpoints = []
    text = render_table([sp], OPTS).text
    assert '10.43.0.10 . tcp . 80 comment "default/web/tcp/http" : drop' in text  # dropped, not rejected
    assert "service-ips {\n\t\ttype ipv4_addr . inet_proto . inet_service : verdict\n\t}" in text


def test_external_ips() -> None:
    sp = ServicePort("default", "web", "http", "tcp", 80, ["10.43.0.10"], 0, [LOCAL],
                     external_ips=["192.0.2.10", "192.0.2.11"])
    text = render_table([sp], OPTS).text
    for ip in ("192.0.2.10", "192.0.2.11"):
        assert f'{ip} . tcp . 80 comment "default/web/tcp/http" : goto ext-SUSTUHLJ' in text
    assert _chain_body(text, "ext-").splitlines()[1] == "\t\tjump mark-for-masquerade"
    sp.endpoints = []
    assert '192.0.2.10 . tcp . 80 comment "default/web/tcp/http" : goto reject-chain' in render_table([sp], OPTS).text


def _lb_service(**spec: Any) -> Obj:
    svc = service("lb", "10.43.0.20", [{"name": "http", "port": 80, "nodePort": 30090}], type_="LoadBalancer", **spec)
    svc["status"] = {"loadBalancer": {"ingress": [
        {"ip": "192.0.2.20"}, {"ip": "192.0.2.21", "ipMode": "VIP"}, {"ip": "192.0.2.22", "ipMode": "Proxy"},
        {"hostname": "lb.example"}, {"ip": "2001:db8::1"}]}}
    return svc


def test_load_balancer_ips_from_status() -> None:
    """status.loadBalancer.ingress IPs are captured, except ipMode Proxy ones (and hostnames, IPv6)."""
    ports = build_service_ports([_lb_service(loadBalancerSourceRanges=[" 10.1.0.0/16", "bogus", "2001:db8::/32"])],
                                [], CIDR)
    assert ports[0].load_balancer_ips == ["192.0.2.20", "192.0.2.21"]
    assert ports[0].source_ranges == ["10.1.0.0/16"]
    # externally accessible through its LoadBalancer IPs alone: externalTrafficPolicy applies
    svc = _lb_service(externalTrafficPolicy="Local")
    svc["spec"]["type"] = "ClusterIP"
    del svc["spec"]["ports"][0]["nodePort"]
    assert build_service_ports([svc], [], CIDR)[0].external_local


def test_load_balancer_ips_like_external_ips_with_source_ranges() -> None:
    sp = ServicePort("default", "web", "http", "tcp", 80, ["10.43.0.10"], 30080, [LOCAL, REMOTE],
                     load_balancer_ips=["192.0.2.20", "192.0.2.21"], source_ranges=["198.51.100.0/24"])
    text = render_table([sp], OPTS).text
    for ip in ("192.0.2.20", "192.0.2.21"):
        assert f'{ip} . tcp . 80 comment "default/web/tcp/http" : goto ext-SUSTUHLJ' in text
        assert f'{ip} . tcp . 80 comment "default/web/tcp/http" : goto fw-SUSTUHLJ' in text
    assert _chain_body(text, "fw-").splitlines()[1:] == ["\t\tip saddr != { 198.51.100.0/24 } drop"]
    assert "ct state new jump firewall-check" in _chain_body(text, "filter-prerouting")
    assert "ct state new jump firewall-check" in _chain_body(text, "filter-output")
    # a range holding the node's IP lets the node's own VIP-sourced requests in too
    text = render_table([sp], RenderOptions(table="kyb-proxy-unit", node_ip="198.51.100.7")).text
    assert "ip saddr != { 198.51.100.0/24, 192.0.2.20, 192.0.2.21 } drop" in _chain_body(text, "fw-")
    # Local policy with no local endpoint: the LoadBalancer IPs drop what is not short-circuited
    sp.external_local, sp.local_endpoints = True, []
    assert '192.0.2.20 . tcp . 80 comment "default/web/tcp/http" : drop' in render_table([sp], OPTS).text
    # no source ranges: no firewall chain; no endpoints: rejected
    sp.source_ranges, sp.endpoints = [], []
    text = render_table([sp], OPTS).text
    assert _no_chain(text, "fw-") and '192.0.2.20 . tcp . 80 comment "default/web/tcp/http" : goto reject-chain' in text


def test_session_affinity_on_every_policy_chain() -> None:
    sp = ServicePort("default", "web", "http", "tcp", 80, ["10.43.0.10"], 30080, [LOCAL, REMOTE], 600,
                     local_endpoints=[LOCAL], external_local=True)
    rs = render_table([sp], OPTS)
    assert len([s for s in rs.sets if s.startswith("aff-")]) == 2
    assert "ip saddr @aff-WKF2J3BI goto ep-WKF2J3BI" in _chain_body(rs.text, "local-")
    assert "ip saddr @aff-CRCKH6HE goto ep-CRCKH6HE" in _chain_body(rs.text, "svc-")
    assert "timeout 600s" in rs.text


def test_sync_script_keeps_affinity_and_deletes_stale() -> None:
    rs = render_table(SAMPLE, OPTS)
    script = sync_script(rs, Existing(chains={"svc-OLD-x/y/tcp/1", "nat-prerouting"},
                                      sets={"aff-OLD", "service-ips", *[s for s in rs.sets if s.startswith("aff-")]}))
    head = script.split("table ip kyb-proxy-unit {")[0]
    assert head.startswith("add table ip kyb-proxy-unit\nflush table ip kyb-proxy-unit\n")
    assert "flush map ip kyb-proxy-unit service-ips\n" in head
    assert "delete chain ip kyb-proxy-unit svc-OLD-x/y/tcp/1\n" in head
    assert "delete set ip kyb-proxy-unit aff-OLD\n" in head
    assert "flush set ip kyb-proxy-unit aff-" not in head  # affinity is kept
    assert "nat-prerouting" not in head


def test_render_is_deterministic_and_empty_is_valid_text() -> None:
    assert render_table(SAMPLE, OPTS) == render_table(list(SAMPLE), OPTS)
    empty = render_table([], RenderOptions(table="t")).text
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
    for opts in (OPTS, RenderOptions(table="kyb-proxy-unit", nodeport_ips=["10.1.2.3"], localhost_nodeports=False,
                                     masquerade_all=True)):
        rs = render_table([*SAMPLE, *_policy_ports()], opts)
        run_nft(replace_script(rs), check_only=True)
        run_nft(sync_script(rs, Existing()), check_only=True)
    run_nft(replace_script(render_table([], RenderOptions(table="kyb-proxy-unit"))), check_only=True)
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
    run_nft(replace_script(render_table(ports, RenderOptions(table="kyb-proxy-unit"))), check_only=True)


def _policy_ports() -> list[ServicePort]:
    return [
        ServicePort("p", "etp", "", "tcp", 80, ["10.43.1.1"], 30100, [LOCAL, REMOTE], 60, ["192.0.2.10"],
                    [LOCAL], external_local=True, health_check_node_port=30101, local_ready=1),
        ServicePort("p", "etp-none", "", "tcp", 80, ["10.43.1.2"], 30102, [REMOTE], 0, ["192.0.2.11"],
                    [], external_local=True),
        ServicePort("p", "itp", "", "udp", 53, ["10.43.1.3"], 0, [LOCAL, REMOTE], 0, [], [LOCAL], internal_local=True),
        ServicePort("p", "lb", "", "tcp", 80, ["10.43.1.4"], 30103, [LOCAL, REMOTE], load_balancer_ips=["192.0.2.20"],
                    source_ranges=["192.0.2.0/28", "198.51.100.0/24"]),
        ServicePort("p", "itp-none", "", "udp", 53, ["10.43.1.4"], 0, [REMOTE], 0, [], [], internal_local=True),
    ]


@needs_nft
def test_in_place_sync_keeps_affinity_entries() -> None:
    """A sync that changes the Services keeps the clients' affinity entries, drops what went away."""
    table = f"kyb-proxy-unit-{os.getpid()}"
    first = [ServicePort("default", "web", "", "tcp", 80, ["10.43.0.10"], 0, [LOCAL, REMOTE], 600),
             ServicePort("default", "gone", "", "tcp", 80, ["10.43.0.11"], 0, [LOCAL], 600)]
    try:
        rs = render_table(first, RenderOptions(table=table))
        assert apply(rs) is True
        aff = next(s for s in sorted(rs.sets) if s.startswith("aff-") and s in render_table(first[:1], RenderOptions(table=table)).sets)
        run_nft(f"add element ip {table} {aff} {{ 192.0.2.99 }}\n")
        second = render_table([first[0], ServicePort("default", "new", "", "tcp", 81, ["10.43.0.12"], 0, [LOCAL])],
                              RenderOptions(table=table))
        assert apply(second) is True  # in place, not replaced
        now = list_existing(table)
        assert aff in now.sets and not any("default/gone" in c for c in now.chains)
        assert any("default/new" in c for c in now.chains)
        assert len([s for s in now.sets if s.startswith("aff-")]) == 2  # gone's set deleted
        listed = subprocess.run(["nft", "list", "set", "ip", table, aff], capture_output=True, text=True,
                                check=True).stdout
        assert "192.0.2.99" in listed
    finally:
        run_nft(delete_table_script(table))
