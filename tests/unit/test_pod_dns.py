"""A pod's resolv.conf, composed as the kubelet's DNS configurer (pkg/kubelet/network/dns) does.

Each row: the pod's spec, the kubelet's settings, the host's resolv.conf; the expected nameservers,
search domains, options and the (reason, on_node) of the warning events.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kybernetes.kubelet.config import KubeletConfig, apply_dns_settings, load_kubelet_configuration
from kybernetes.kubelet.dns import (
    DNSSettings,
    ResolvConf,
    check_host_limits,
    compose_pod_dns,
    parse_resolv_conf,
    read_host_resolv_conf,
)

HOST = ResolvConf(("192.168.1.1", "192.168.1.2"), ("corp.example", "example"), ("timeout:2", "attempts:3"))
CLUSTER = DNSSettings(("10.43.0.10",), "cluster.local")
CLUSTER_SEARCH = ["ns1.svc.cluster.local", "svc.cluster.local", "cluster.local"]


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "p", "namespace": "ns1", "uid": "u1"}, "spec": spec}


CASES: list[tuple[str, dict[str, Any], DNSSettings, ResolvConf | None, list[str], list[str], list[str],
                  list[tuple[str, bool]]]] = [
    ("ClusterFirst is the default policy", pod(), CLUSTER, HOST,
     ["10.43.0.10"], [*CLUSTER_SEARCH, "corp.example", "example"], ["ndots:5"], []),
    ("ClusterFirst", pod(dnsPolicy="ClusterFirst"), CLUSTER, HOST,
     ["10.43.0.10"], [*CLUSTER_SEARCH, "corp.example", "example"], ["ndots:5"], []),
    ("several cluster DNS servers", pod(), DNSSettings(("10.43.0.10", "10.43.0.11"), "cluster.local"), HOST,
     ["10.43.0.10", "10.43.0.11"], [*CLUSTER_SEARCH, "corp.example", "example"], ["ndots:5"], []),
    ("a host search domain equal to a cluster one is not repeated", pod(), CLUSTER,
     ResolvConf(("1.1.1.1",), ("cluster.local", "corp.example")),
     ["10.43.0.10"], [*CLUSTER_SEARCH, "corp.example"], ["ndots:5"], []),
    ("no cluster domain: the host's search list", pod(), DNSSettings(("10.43.0.10",)), HOST,
     ["10.43.0.10"], ["corp.example", "example"], ["ndots:5"], []),
    ("hostNetwork with ClusterFirst falls back to Default", pod(hostNetwork=True), CLUSTER, HOST,
     ["192.168.1.1", "192.168.1.2"], ["corp.example", "example"], ["timeout:2", "attempts:3"], []),
    ("ClusterFirstWithHostNet", pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"), CLUSTER, HOST,
     ["10.43.0.10"], [*CLUSTER_SEARCH, "corp.example", "example"], ["ndots:5"], []),
    ("Default", pod(dnsPolicy="Default"), CLUSTER, HOST,
     ["192.168.1.1", "192.168.1.2"], ["corp.example", "example"], ["timeout:2", "attempts:3"], []),
    ("Default without a resolver file: localhost", pod(dnsPolicy="Default"),
     DNSSettings(("10.43.0.10",), "cluster.local", None, ("10.0.0.5",)), None, ["127.0.0.1"], ["."], [], []),
    ("None: dnsConfig alone", pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["8.8.8.8"], "searches": ["a.example"], "options": [{"name": "ndots", "value": "2"}]}),
     CLUSTER, HOST, ["8.8.8.8"], ["a.example"], ["ndots:2"], []),
    ("ClusterFirst without cluster DNS falls back to Default and says so", pod(), DNSSettings(), HOST,
     ["192.168.1.1", "192.168.1.2"], ["corp.example", "example"], ["timeout:2", "attempts:3"],
     [("MissingClusterDNS", True), ("MissingClusterDNS", False)]),
    ("dnsConfig merges: servers and searches appended, options by name", pod(dnsConfig={
        "nameservers": ["10.43.0.10", "1.1.1.1"], "searches": ["svc.cluster.local", "x.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]}), CLUSTER, HOST,
     ["10.43.0.10", "1.1.1.1"], [*CLUSTER_SEARCH, "corp.example", "example", "x.example"], ["ndots:2", "edns0"], []),
    ("more than 3 nameservers are cut", pod(dnsPolicy="Default", dnsConfig={"nameservers": ["1.1.1.1", "8.8.8.8"]}),
     CLUSTER, HOST, ["192.168.1.1", "192.168.1.2", "1.1.1.1"], ["corp.example", "example"],
     ["timeout:2", "attempts:3"], [("DNSConfigForming", False)]),
    ("more than 32 search domains are cut", pod(dnsConfig={"searches": [f"d{i}.example" for i in range(40)]}),
     CLUSTER, ResolvConf(("1.1.1.1",)), ["10.43.0.10"], [*CLUSTER_SEARCH, *(f"d{i}.example" for i in range(29))],
     ["ndots:5"], [("DNSConfigForming", False)]),
]


@pytest.mark.parametrize(("spec", "settings", "host", "servers", "searches", "options", "events"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pod_resolver(spec: dict[str, Any], settings: DNSSettings, host: ResolvConf | None, servers: list[str],
                      searches: list[str], options: list[str], events: list[tuple[str, bool]]) -> None:
    dns = compose_pod_dns(spec, settings, host)
    assert (dns.servers, dns.searches, dns.options) == (servers, searches, options)
    assert [(e.reason, e.on_node) for e in dns.events] == events


def test_event_wording() -> None:
    missing = compose_pod_dns(pod(), DNSSettings(), HOST).events
    assert missing[0].message == ('kubelet does not have ClusterDNS IP configured and cannot create Pod using '
                                  '"ClusterFirst" policy. Falling back to "Default" policy.')
    assert missing[1].message == f'pod: "p_ns1(u1)". {missing[0].message}'
    many = compose_pod_dns(pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4"]}),
                           CLUSTER, HOST).events
    assert many[0].message == ("Nameserver limits were exceeded, some nameservers have been omitted, the applied "
                               "nameserver line is: 1.1.1.1 2.2.2.2 3.3.3.3")


def test_search_line_limits() -> None:
    long = "x" * 254
    dns = compose_pod_dns(pod(dnsPolicy="None", dnsConfig={"searches": ["a.example", long, "b.example"]}), CLUSTER, HOST)
    assert dns.searches == ["a.example", "b.example"]
    assert dns.events[0].message == ("Search Line limits were exceeded, some search paths have been omitted, the "
                                     "applied search line is: a.example b.example")
    # 2048 characters at most: whole domains are dropped from the end.
    domains = [f"{i:02d}" + "y" * 98 for i in range(25)]  # 100 characters each
    dns = compose_pod_dns(pod(dnsPolicy="None", dnsConfig={"searches": domains}), CLUSTER, HOST)
    assert dns.searches == domains[:20] and len(" ".join(dns.searches)) == 2019


def test_parse_and_render() -> None:
    text = "# comment\nnameserver 1.1.1.1\nsearch old.example\nsearch a.example. b.example\n" \
           "options ndots:1\noptions rotate\nnameserver 8.8.8.8\nnameserver\n"
    parsed = parse_resolv_conf(text)
    assert parsed == ResolvConf(("1.1.1.1", "8.8.8.8"), ("a.example", "b.example"), ("rotate",))
    dns = compose_pod_dns(pod(), CLUSTER, parsed)
    assert dns.resolv_conf() == ("nameserver 10.43.0.10\n"
                                 "search ns1.svc.cluster.local svc.cluster.local cluster.local a.example b.example\n"
                                 "options ndots:5\n")


def test_host_file(tmp_path: Path) -> None:
    assert read_host_resolv_conf(None) is None
    assert read_host_resolv_conf(tmp_path / "missing") == ResolvConf()
    (tmp_path / "r").write_text("nameserver 9.9.9.9\n")
    assert read_host_resolv_conf(tmp_path / "r") == ResolvConf(("9.9.9.9",))


def test_flags_and_kubelet_configuration(tmp_path: Path) -> None:
    cfg_file = tmp_path / "kubelet.yaml"
    cfg_file.write_text("apiVersion: kubelet.config.k8s.io/v1beta1\nkind: KubeletConfiguration\n"
                        "clusterDNS: [10.96.0.10]\nclusterDomain: k8s.example\nresolvConf: /run/resolv.conf\n")
    config = KubeletConfig(kubeconfig=tmp_path, node_name="n", data_dir=tmp_path)
    apply_dns_settings(config, load_kubelet_configuration(cfg_file))
    assert (config.cluster_dns, config.cluster_domain, config.resolv_conf) == (
        ["10.96.0.10"], "k8s.example", Path("/run/resolv.conf"))
    apply_dns_settings(config, load_kubelet_configuration(cfg_file), cluster_dns=("10.43.0.10,10.43.0.11",),
                       cluster_domain="cluster.local", resolv_conf="")
    assert (config.cluster_dns, config.cluster_domain, config.resolv_conf) == (
        ["10.43.0.10", "10.43.0.11"], "cluster.local", None)
    with pytest.raises(ValueError):
        apply_dns_settings(config, {}, cluster_dns=("not-an-ip",))
    (tmp_path / "bad.yaml").write_text("apiVersion: v1\nkind: Pod\n")
    with pytest.raises(ValueError, match='no kind "Pod" is registered for version "v1"'):
        load_kubelet_configuration(tmp_path / "bad.yaml")


def test_host_file_limits(tmp_path: Path) -> None:
    path = tmp_path / "resolv.conf"
    settings = DNSSettings(("10.43.0.10",), "cluster.local", path)
    path.write_text("nameserver 1.1.1.1\nsearch " + " ".join(f"d{i}.example" for i in range(29)) + "\n")
    assert check_host_limits(settings) == []
    path.write_text("search " + " ".join(f"d{i}.example" for i in range(30)) + "\n")
    assert [e.message for e in check_host_limits(settings)] == [
        f"Resolv.conf file '{path}' contains search line consisting of more than 29 domains!"]
    assert check_host_limits(DNSSettings(resolv_conf=path)) == []  # no cluster domain: 32 may come from the host
    path.write_text("search " + "x" * 254 + "\n")
    assert [e.message for e in check_host_limits(settings)] == [
        f'Resolv.conf file "{path}" contains a search path which length is more than allowed 253 chars!']
    path.write_text("search " + " ".join(f"{i:02d}" + "y" * 98 for i in range(21)) + "\n")
    assert [e.message for e in check_host_limits(settings)] == [
        f"Resolv.conf file '{path}' contains search line which length is more than allowed 2048 chars!"]
    (missing,) = check_host_limits(DNSSettings(resolv_conf=tmp_path / "missing"))
    assert missing.on_node and missing.reason == "CheckLimitsForResolvConf" and "No such file" in missing.message
    assert check_host_limits(DNSSettings(resolv_conf=None)) == []
