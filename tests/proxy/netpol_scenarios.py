"""The upstream NetworkPolicy e2e "probe matrix", shared by the planner's unit tests and the node test.

Kubernetes' test/e2e/network/netpol runs namespaces x, y, z with pods a, b, c each (labels
``pod=a``...; namespaces labelled ``ns=x``...), every pod serving on every probed port, and for
each scenario compares what every pod reaches on every pod against an expected truth table
(``Reachability``: everything allowed, then the scenario's denials and re-allowances; a pod always
reaches itself, since that traffic never leaves its network namespace). The scenarios here are
upstream's, rewritten from their descriptions (each names the upstream test it follows).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

NAMESPACES = ("x", "y", "z")
PODS = ("a", "b", "c")
SERVED_PORTS = (53, 80, 81)
ALL = [f"{ns}/{p}" for ns in NAMESPACES for p in PODS]


def port_name(port: int) -> str:
    return f"serve-{port}-tcp"  # upstream's container port names


class Reachability:
    """Expected allow/deny for every (client, server) pod pair on one port."""

    def __init__(self, default: bool = True) -> None:
        self.table = {(s, d): default for s in ALL for d in ALL}

    def expect(self, src: str, dst: str, allowed: bool) -> Reachability:
        """``src``/``dst`` are "ns/pod", "ns/*" or "*" (every pod)."""
        for s, d in self.table:
            if _matches(src, s) and _matches(dst, d):
                self.table[s, d] = allowed
        return self

    def result(self) -> dict[tuple[str, str], bool]:
        return {k: (True if k[0] == k[1] else v) for k, v in self.table.items()}  # loopback


def _matches(pattern: str, pod: str) -> bool:
    if pattern == "*":
        return True
    ns, name = pattern.split("/")
    return pod.split("/")[0] == ns and name in ("*", pod.split("/")[1])


def policy(ns: str, name: str, spec: Obj) -> Obj:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"namespace": ns, "name": name}, "spec": spec}


@dataclass
class Scenario:
    name: str
    upstream: str  # the upstream test (test/e2e/network/netpol/network_policy.go) it follows
    # pod IPs ("ns/pod" -> IP) -> the policies to create
    policies: Callable[[dict[str, str]], list[Obj]]
    # port -> expected reachability
    expected: dict[int, Reachability]


def _default_deny_ingress(_ips: dict[str, str]) -> list[Obj]:
    return [policy("x", "deny-ingress", {"podSelector": {}, "policyTypes": ["Ingress"]})]


def _allow_from_namespace(_ips: dict[str, str]) -> list[Obj]:
    return [policy("x", "allow-from-y", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "In", "values": ["y"]}]}}]}]})]


def _allow_from_pod_in_namespace(_ips: dict[str, str]) -> list[Obj]:
    return [policy("x", "allow-from-y-b", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [
        {"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}, "podSelector": {"matchLabels": {"pod": "b"}}}]}]})]


def _egress_dns_only(_ips: dict[str, str]) -> list[Obj]:
    return [policy("x", "allow-dns", {"podSelector": {}, "policyTypes": ["Egress"], "egress": [
        {"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]})]


def _egress_ip_block_except(ips: dict[str, str]) -> list[Obj]:
    # Every pod address of the cluster (a /16 around x/a's) but y/b's.
    a = ips["x/a"].split(".")
    return [policy("x", "egress-except", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                                          "egress": [{"to": [{"ipBlock": {"cidr": f"{a[0]}.{a[1]}.0.0/16",
                                                                          "except": [ips["y/b"] + "/32"]}}]}]})]


def _ingress_named_port(_ips: dict[str, str]) -> list[Obj]:
    return [policy("x", "allow-81-by-name", {"podSelector": {}, "ingress": [{"ports": [{"port": port_name(81)}]}]})]


SCENARIOS = [
    Scenario("default-deny-ingress", "should support a 'default-deny-ingress' policy", _default_deny_ingress,
             {p: Reachability().expect("*", "x/*", False) for p in (80, 81)}),
    Scenario("allow-from-namespace",
             "should enforce policy to allow traffic only from a different namespace, based on NamespaceSelector",
             _allow_from_namespace,
             {p: Reachability().expect("*", "x/a", False).expect("y/*", "x/a", True) for p in (80, 81)}),
    Scenario("allow-from-pod-in-namespace", "should enforce policy based on PodSelector and NamespaceSelector",
             _allow_from_pod_in_namespace,
             {p: Reachability().expect("*", "x/a", False).expect("y/b", "x/a", True) for p in (80, 81)}),
    Scenario("egress-dns-only", "should allow egress access on port 53 (and deny the rest)", _egress_dns_only,
             {53: Reachability(), 80: Reachability().expect("x/*", "*", False)}),
    Scenario("egress-ipblock-except", "should enforce except clause while egress access to server in CIDR block",
             _egress_ip_block_except, {80: Reachability().expect("x/a", "y/b", False)}),
    Scenario("ingress-named-port", "should allow ingress access on one named port", _ingress_named_port,
             {80: Reachability().expect("*", "x/*", False), 81: Reachability()}),
]
