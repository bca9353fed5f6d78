"""The NetworkPolicy planner: policies + pods + namespaces -> per-pod checks -> nftables text.

The upstream probe-matrix scenarios (tests/proxy/netpol_scenarios.py) run against the plan here,
on a model cluster; the node test (test_netpol_e2e.py) runs the same scenarios with real pods and
packets. The semantic corner cases follow networking.k8s.io/v1's field documentation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kybernetes.proxy.netpol import Plan, build_plan, render_table

from .netpol_scenarios import ALL, SCENARIOS, SERVED_PORTS, Scenario, policy, port_name

Obj = dict[str, Any]
NODE = "n1"


def model_pod(ns: str, name: str, ip: str, *, node: str = NODE, **spec: Any) -> Obj:
    ports = [{"name": port_name(p), "containerPort": p, "protocol": "TCP"} for p in SERVED_PORTS]
    return {"metadata": {"namespace": ns, "name": name, "labels": {"pod": name}},
            "spec": {"nodeName": node, "containers": [{"name": "c", "ports": ports}], **spec},
            "status": {"phase": "Running", "podIP": ip}}


NAMESPACE_OBJS = [{"metadata": {"name": ns, "labels": {"ns": ns, "kubernetes.io/metadata.name": ns}}}
                  for ns in ("x", "y", "z")]
IPS = {f"{ns}/{p}": f"10.9.{i}.{j + 2}" for i, ns in enumerate(("x", "y", "z")) for j, p in enumerate("abc")}
PODS = [model_pod(*k.split("/"), ip) for k, ip in IPS.items()]


def plan_for(policies: list[Obj], pods: list[Obj] | None = None) -> Plan:
    return build_plan(policies, PODS if pods is None else pods, NAMESPACE_OBJS, NODE)


def verdicts(plan: Plan, port: int, proto: str = "tcp") -> dict[tuple[str, str], bool]:
    return {(s, d): s == d or plan.allows(IPS[s], IPS[d], proto, port) for s in ALL for d in ALL}


def diff(got: dict[tuple[str, str], bool], want: dict[tuple[str, str], bool]) -> list[str]:
    return [f"{s} -> {d}: got {'allow' if got[s, d] else 'deny'}" for s, d in want if got[s, d] != want[s, d]]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_probe_matrix_scenarios(scenario: Scenario) -> None:
    plan = plan_for(scenario.policies(IPS))
    for port, expected in scenario.expected.items():
        assert diff(verdicts(plan, port), expected.result()) == [], f"port {port}"


def test_without_policies_nothing_is_isolated() -> None:
    plan = plan_for([])
    assert plan.pods == [] and all(verdicts(plan, 80).values())


def test_empty_rule_lists_deny_that_direction_and_rules_add_up() -> None:
    deny = policy("x", "deny", {"podSelector": {}, "policyTypes": ["Ingress", "Egress"], "ingress": [], "egress": []})
    plan = plan_for([deny])
    v = verdicts(plan, 80)
    assert not v["x/a", "x/b"] and not v["x/a", "y/a"] and not v["y/a", "x/a"] and v["y/a", "z/a"]
    allow = policy("x", "allow-b", {"podSelector": {"matchLabels": {"pod": "b"}}, "ingress": [{}]})
    v = verdicts(plan_for([deny, allow]), 80)
    assert v["y/a", "x/b"] and not v["y/a", "x/a"]  # the union of policies: b gains, a stays denied
    assert not v["x/a", "x/b"]  # x/a's own egress is still denied


def test_policy_types_default_from_the_rules() -> None:
    # No policyTypes: Ingress always (and none of its rules: deny), Egress because egress rules exist.
    pol = policy("x", "p", {"podSelector": {"matchLabels": {"pod": "a"}},
                            "egress": [{"to": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    plan = plan_for([pol])
    (pr,) = plan.pods
    assert pr.ingress == [] and pr.egress is not None
    v = verdicts(plan, 80)
    assert v["x/a", "x/b"] and not v["x/a", "x/c"] and not v["x/a", "y/b"] and not v["y/a", "x/a"]
    # Egress-only type: ingress stays open.
    pol["spec"]["policyTypes"] = ["Egress"]
    assert verdicts(plan_for([pol]), 80)["y/a", "x/a"]


def test_peers_or_versus_selectors_and() -> None:
    two_peers = policy("x", "p", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {"matchLabels": {"ns": "y"}}}, {"podSelector": {"matchLabels": {"pod": "b"}}}]}]})
    v = verdicts(plan_for([two_peers]), 80)
    allowed = {s for s in ALL if s != "x/a" and v[s, "x/a"]}
    assert allowed == {"y/a", "y/b", "y/c", "x/b"}  # y's pods, or b of the policy's own namespace
    every_ns = policy("x", "q", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"namespaceSelector": {}}]}]})
    v = verdicts(plan_for([every_ns]), 80)
    assert all(v[s, "x/a"] for s in ALL)
    assert not plan_for([every_ns]).allows("192.0.2.1", IPS["x/a"], "tcp", 80)  # pods only, not the world


def test_ports_protocols_ranges_and_named_ports() -> None:
    pol = policy("x", "p", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [
        {"port": 8000, "endPort": 8010}, {"protocol": "UDP"}, {"port": port_name(53)}, {"port": "no-such-port"}]}]})
    plan = plan_for([pol])
    a = IPS["x/a"]
    assert plan.allows("192.0.2.1", a, "tcp", 8000) and plan.allows("192.0.2.1", a, "tcp", 8010)
    assert not plan.allows("192.0.2.1", a, "tcp", 8011) and not plan.allows("192.0.2.1", a, "tcp", 80)
    assert plan.allows("192.0.2.1", a, "udp", 9999) and not plan.allows("192.0.2.1", a, "sctp", 9999)
    assert plan.allows("192.0.2.1", a, "tcp", 53)  # named: resolved against x/a's container ports
    only_unknown = policy("x", "q", {"podSelector": {"matchLabels": {"pod": "a"}},
                                     "ingress": [{"ports": [{"port": "no-such-port"}]}]})
    assert not plan_for([only_unknown]).allows("192.0.2.1", a, "tcp", 80)  # matches nothing, not everything


def test_egress_named_port_resolves_on_the_destination_pods() -> None:
    pods = [*PODS[:-1], model_pod("z", "c", IPS["z/c"])]
    pods[-1]["spec"]["containers"][0]["ports"] = [{"name": port_name(80), "containerPort": 8080}]
    pol = policy("x", "p", {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                            "egress": [{"ports": [{"port": port_name(80)}]}]})
    plan = plan_for([pol], pods)
    a = IPS["x/a"]
    assert plan.allows(a, IPS["y/b"], "tcp", 80) and not plan.allows(a, IPS["y/b"], "tcp", 8080)
    assert plan.allows(a, IPS["z/c"], "tcp", 8080) and not plan.allows(a, IPS["z/c"], "tcp", 80)
    assert not plan.allows(a, "192.0.2.1", "tcp", 80)  # a named port only ever names pod ports


def test_ip_block_except_and_ingress() -> None:
    pol = policy("x", "p", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.9.0.0/16", "except": ["10.9.1.0/24", "10.9.2.3/32"]}}]}]})
    plan = plan_for([pol])
    v = verdicts(plan, 80)
    assert {s for s in ALL if v[s, "x/a"]} == {"x/a", "x/b", "x/c", "z/a", "z/c"}
    assert not plan.allows("10.8.0.1", IPS["x/a"], "tcp", 80)


def test_only_this_nodes_running_pod_network_pods_are_isolated_or_peers() -> None:
    pods = [model_pod("x", "a", "10.9.0.2"), model_pod("x", "b", "10.9.0.3", node="other"),
            model_pod("x", "h", "10.9.0.4", hostNetwork=True)]
    done = model_pod("x", "d", "10.9.0.5")
    done["status"]["phase"] = "Succeeded"
    pods.append(done)
    allow = policy("x", "p", {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}]}]})
    plan = build_plan([allow], pods, NAMESPACE_OBJS, NODE)
    assert [p.id for p in plan.pods] == ["x/a"]
    assert plan.allows("10.9.0.3", "10.9.0.2") and not plan.allows("10.9.0.4", "10.9.0.2")
    assert not plan.allows("10.9.0.5", "10.9.0.2")


def test_malformed_addresses_never_widen_access_nor_break_the_plan() -> None:
    # Validation refuses these; the informer cache could still hold one from an older server.
    bad_pod = model_pod("y", "bad", "not-an-ip")
    pol = policy("x", "p", {"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"from": [
        {"ipBlock": {"cidr": "10.9.0.0/33"}}, {"ipBlock": {"cidr": "10.9.0.0/16", "except": ["nonsense"]}}]}]})
    plan = plan_for([pol], [*PODS, bad_pod])
    assert [p.id for p in plan.pods] == ["x/a"]
    assert not any(plan.allows(IPS[s], IPS["x/a"], "tcp", 80) for s in ALL if s != "x/a")


def test_rendering_is_deterministic_and_shaped_as_documented() -> None:
    pols = [p for s in SCENARIOS for p in s.policies(IPS)]
    text = render_table(plan_for(pols), "kyb-np-test")
    assert text == render_table(plan_for(list(reversed(pols))), "kyb-np-test")
    assert text.startswith("add table inet kyb-np-test\ndelete table inet kyb-np-test\n")
    assert "ct state established,related accept" in text
    assert f"{IPS['x/a']} : jump ingress-" in text and f"{IPS['x/a']} : jump egress-" in text
    assert "meta l4proto tcp th dport 81 return" in text
    with pytest.raises(ValueError):
        render_table(Plan(), "bad name")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("nft") is None or shutil.which("unshare") is None,
                    reason="nft -f needs root (and runs in a network namespace of its own)")
def test_the_kernel_takes_the_rendered_table(tmp_path: Path) -> None:
    pols = [p for s in SCENARIOS for p in s.policies(IPS)]
    script = tmp_path / "table.nft"
    script.write_text(render_table(plan_for(pols), "kyb-np-test"))
    # Twice: the second run replaces the table the first one made, as every sync does.
    res = subprocess.run(["unshare", "--net", "sh", "-c", f"nft -f {script} && nft -f {script}"],
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
