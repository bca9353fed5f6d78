"""The scheduling cycle end to end against a fake API client: binds, failures, preemption."""

from __future__ import annotations

import random
from typing import Any

from kybernetes import errors
from kybernetes.client.workqueue import FakeClock
from kybernetes.scheduler.config import SchedulerConfig
from kybernetes.scheduler.queue import UNSCHEDULABLE
from kybernetes.scheduler.scheduler import Scheduler, num_feasible_nodes_to_find

from .util import node, pod

UNREACHABLE = [{"key": "node.kubernetes.io/unreachable", "effect": "NoExecute"}]


class FakeClient:
    def __init__(self) -> None:
        self.bindings: dict[str, str] = {}
        self.patches: list[tuple[str, Any]] = []
        self.deleted: list[str] = []
        self.reject: set[str] = set()

    async def create(self, api: str, plural: str, obj: dict, namespace: str = "", *, subresource: str = "",
                     name: str = "", **_: Any) -> dict:
        assert subresource == "binding"
        if name in self.reject:
            raise errors.Conflict(f"pod {name} is being deleted")
        self.bindings[name] = obj["target"]["name"]
        return {}

    async def patch(self, api: str, plural: str, name: str, patch: Any, namespace: str = "", **_: Any) -> dict:
        self.patches.append((name, patch))
        return {}

    async def delete(self, api: str, plural: str, name: str, namespace: str = "", **_: Any) -> dict:
        self.deleted.append(name)
        return {}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str]] = []

    def event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        self.events.append((obj["metadata"]["name"], type_, reason, message))


def make(nodes: list[dict], pods: list[dict] = (), **cfg: Any) -> tuple[Scheduler, FakeClient, Recorder]:  # type: ignore[assignment]
    client, rec = FakeClient(), Recorder()
    s = Scheduler(client, SchedulerConfig(**cfg), clock=FakeClock(), recorder=rec, rng=random.Random(1))
    for n in nodes:
        s.on_node_add(n)
    for p in pods:
        s.on_pod_add(p)
    return s, client, rec


def test_num_feasible_nodes_to_find() -> None:
    assert num_feasible_nodes_to_find(50) == 50
    assert num_feasible_nodes_to_find(150) == 100
    assert num_feasible_nodes_to_find(500) == 230  # 46%
    assert num_feasible_nodes_to_find(5000) == 500  # 10%
    assert num_feasible_nodes_to_find(10000) == 500  # floor of 5%
    assert num_feasible_nodes_to_find(1000, 20) == 200


async def test_binds_and_spreads_and_assumes() -> None:
    s, client, rec = make([node("n1", "1"), node("n2", "1")])
    for i in range(4):
        s.on_pod_add(pod(f"p{i}", "500m"))
    await s.drain()
    assert sorted(client.bindings.values()) == ["n1", "n1", "n2", "n2"]  # assumed pods count at once
    assert ("p0", "Normal", "Scheduled", f"Successfully assigned default/p0 to {client.bindings['p0']}") in rec.events
    s.on_pod_add(pod("p4", "500m"))
    await s.drain()
    assert "p4" not in client.bindings


async def test_fit_error_message_and_condition() -> None:
    nodes = [node("n1", "1"), node("n2", "1")] + [node(f"t{i}", taints=UNREACHABLE) for i in range(3)]
    s, client, rec = make(nodes)
    s.on_pod_add(pod("big", "2"))
    await s.drain()
    msg = ("0/5 nodes are available: 2 Insufficient cpu, 3 node(s) had untolerated taint "
           "{node.kubernetes.io/unreachable: }. preemption: 0/5 nodes are available: "
           "2 No preemption victims found for incoming pod, 3 Preemption is not helpful for scheduling.")
    assert rec.events == [("big", "Warning", "FailedScheduling", msg)]
    [(name, patch)] = client.patches
    cond = patch["status"]["conditions"][0]
    assert (name, cond["type"], cond["status"], cond["reason"], cond["message"]) == \
        ("big", "PodScheduled", "False", "Unschedulable", msg)
    assert s.queue.pods["default/big"].where == UNSCHEDULABLE
    # A new big node is a cluster event: the pod is retried (after its backoff) and bound.
    s.on_node_add(node("n3", "4"))
    s.queue.clock.advance(1)  # type: ignore[attr-defined]
    s.queue.flush_backoff()
    await s.drain()
    assert client.bindings == {"big": "n3"}


async def test_bind_failure_forgets_assumption() -> None:
    s, client, rec = make([node("n1", "1")])
    client.reject.add("p")
    s.on_pod_add(pod("p", "800m"))
    await s.drain()
    assert not s.cache.pods and s.cache.snapshot.nodes["n1"].requested.get("cpu", 0) == 0
    assert rec.events[-1][2] == "FailedScheduling" and rec.events[-1][3].startswith("Binding rejected")
    assert s.stats["bind_errors"] == 1


async def test_ignores_other_schedulers_and_bound_pods() -> None:
    s, client, _ = make([node("n1")])
    other = pod("x")
    other["spec"]["schedulerName"] = "someone-else"
    s.on_pod_add(other)
    s.on_pod_add(pod("bound", "1", node_name="n1"))
    await s.drain()
    assert client.bindings == {}
    assert s.cache.snapshot.nodes["n1"].requested["cpu"] == 1000


async def test_preemption_picks_lowest_priority_victims() -> None:
    nodes = [node("n1", "2"), node("n2", "2")]
    pods = [pod("low", "2", node_name="n1", priority=10), pod("mid", "2", node_name="n2", priority=50)]
    s, client, rec = make(nodes, pods)
    s.on_pod_add(pod("vip", "1", priority=100))
    await s.drain()
    assert client.deleted == ["low"]
    assert ("vip", {"status": {"nominatedNodeName": "n1"}}) in client.patches
    assert ("low", "Normal", "Preempted", "Preempted by pod uid-default-vip on node n1") in rec.events
    assert s.nominator.node_of["default/vip"] == "n1"
    # A lower-priority pod may not take the space nominated for vip once the victim is gone.
    s.on_pod_delete(pods[0])
    s.on_pod_add(pod("small", "1500m", priority=0))
    s.queue.clock.advance(1)  # type: ignore[attr-defined]
    s.queue.flush_backoff()
    await s.drain()
    assert client.bindings.get("vip") == "n1"
    assert "small" not in client.bindings


async def test_preemption_respects_pdb_and_policy() -> None:
    nodes = [node("n1", "2"), node("n2", "2")]
    pods = [pod("guarded", "2", node_name="n1", priority=10, labels={"app": "db"}),
            pod("free", "2", node_name="n2", priority=10)]
    s, client, _ = make(nodes, pods)
    s._set_pdb({"metadata": {"name": "db", "namespace": "default"},
                "spec": {"selector": {"matchLabels": {"app": "db"}}}, "status": {"disruptionsAllowed": 0}})
    s.on_pod_add(pod("vip", "1", priority=100))
    await s.drain()
    assert client.deleted == ["free"]
    never = pod("polite", "1", priority=100, preemptionPolicy="Never")
    s2, client2, rec2 = make(nodes, pods)
    s2.on_pod_add(never)
    await s2.drain()
    assert client2.deleted == []
    assert rec2.events[-1][3].endswith("preemption: not eligible due to preemptionPolicy=Never.")
