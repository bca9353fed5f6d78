"""Node lifecycle against a real API server: dead kubelets, taints, taint-based eviction, healing.

The test plays the kubelet: it creates the Node and its Lease, posts the Ready condition, and then
simply stops renewing. Periods are short (grace 2 s, monitor period 0.3 s), on a FakeClock the test
moves on only once the controller has done what the clock's last step asked of it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.client.workqueue import FakeClock
from kybernetes.controllers.nodelifecycle import (
    UNREACHABLE,
    NodeLifecycleController,
    desired_taints,
    toleration_window,
)
from kybernetes.testing import ServerProcess
from tests.controllers import harness
from tests.controllers.harness import Env, run_controllers, seen, settled

pytestmark = pytest.mark.integration
wait_for = partial(harness.wait_for, timeout=15.0)
Obj = dict[str, Any]


def stamp(micro: bool = False) -> str:
    now = dt.datetime.now(dt.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ") if micro else now.strftime("%Y-%m-%dT%H:%M:%SZ")


async def heartbeat(client: Client, node: str) -> Obj:
    """Play kubelet: renew the Lease and post Ready=True."""
    lease: Obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                  "metadata": {"name": node, "namespace": "kube-node-lease"},
                  "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": stamp(True)}}
    try:
        cur = await client.get("coordination.k8s.io/v1", "leases", node, "kube-node-lease")
        lease["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        await client.update("coordination.k8s.io/v1", "leases", lease, "kube-node-lease")
    except Exception:
        await client.create("coordination.k8s.io/v1", "leases", lease, "kube-node-lease")
    obj = await client.get("v1", "nodes", node)
    obj["status"] = {"conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                     "message": "kubelet is posting ready status",
                                     "lastHeartbeatTime": stamp(), "lastTransitionTime": stamp()}]}
    return await client.update("v1", "nodes", obj, subresource="status")


async def make_pod(client: Client, ns: str, name: str, node: str, tolerations: list[Obj] | None = None) -> None:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox"}]}
    if tolerations:
        spec["tolerations"] = tolerations
    await client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                                       "spec": spec}, ns)
    await client.create("v1", "pods", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                       "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
                        ns, subresource="binding", name=name)


async def terminating(client: Client, ns: str, name: str) -> bool:
    try:
        pod = await client.get("v1", "pods", name, ns)
    except Exception:
        return True
    return bool(pod["metadata"].get("deletionTimestamp"))


def test_pure_rules() -> None:
    unreachable = {"key": UNREACHABLE, "effect": "NoExecute", "timeAdded": stamp()}
    pod: Obj = {"spec": {"tolerations": [{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
                                          "tolerationSeconds": 300},
                                         {"operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 5}]}}
    assert toleration_window(pod, [unreachable]) == 5
    assert toleration_window({"spec": {}}, [unreachable]) == 0
    assert toleration_window({"spec": {"tolerations": [{"operator": "Exists"}]}}, [unreachable]) is None
    eq = {"spec": {"tolerations": [{"key": "k", "value": "v", "effect": "NoExecute"}]}}
    assert toleration_window(eq, [{"key": "k", "value": "v", "effect": "NoExecute"}]) is None
    assert toleration_window(eq, [{"key": "k", "value": "w", "effect": "NoExecute"}]) == 0
    node = {"spec": {"unschedulable": True}, "status": {"conditions": [{"type": "Ready", "status": "False"}]}}
    assert {(t["key"], t["effect"]) for t in desired_taints(node)} == {
        ("node.kubernetes.io/not-ready", "NoExecute"), ("node.kubernetes.io/not-ready", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule")}


async def advance_until(env: Env, clock: FakeClock, pred: Callable[[], Awaitable[Any]], what: str,
                        step: float = 0.1, limit: float = 10.0) -> Any:
    """Move the controller's clock on in steps, letting it finish each step's work, until ``pred``."""
    deadline = clock.now() + limit
    while clock.now() < deadline:
        await clock.advance(step)
        await settled(env, within=0, what=f"the controller's work at t={clock.now():.1f}")
        got = await pred()
        if got:
            return got
    raise AssertionError(f"no {what} within {limit} s of the controller's clock")


async def test_dead_kubelet_taints_evicts_and_heals(srv: ServerProcess) -> None:
    clock = FakeClock()
    opts = {"node-monitor-grace-period": 2.0, "node-monitor-period": 0.3}
    async with run_controllers(srv, NodeLifecycleController, clock=clock, options=opts) as env:
        client = env.client
        await client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        await heartbeat(client, "n1")
        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                 "metadata": {"name": "nl"}})
        # "plain" gets the default 300 s tolerations; "brief" tolerates unreachable for 2 s only.
        await make_pod(client, "nl", "plain", "n1")
        await make_pod(client, "nl", "brief", "n1", [{"key": UNREACHABLE, "operator": "Exists",
                                                      "effect": "NoExecute", "tolerationSeconds": 2}])
        # The kubelet keeps posting for a while (3 s, longer than the grace period): the node stays
        # healthy and untainted. Each heartbeat is seen by the controller before its clock moves on.
        for _ in range(3):
            await settled(env, seen(env, "v1", "nodes", await heartbeat(client, "n1")), within=0,
                          what="the controller to see the heartbeat")
            for _ in range(10):
                await clock.advance(0.1)
                await settled(env, within=0, what="a monitor pass")
        node = await client.get("v1", "nodes", "n1")
        assert not (node.get("spec") or {}).get("taints")

        # ... then stops. After the grace period: Unknown, and the unreachable taints.
        stopped = clock.now() - 1.0  # the last heartbeat

        async def unknown() -> Obj | None:
            n = await client.get("v1", "nodes", "n1")
            ready = next(c for c in n["status"]["conditions"] if c["type"] == "Ready")
            return n if ready["status"] == "Unknown" else None

        node = await advance_until(env, clock, unknown, what="Ready=Unknown")
        assert clock.now() - stopped >= 1.5 - 1e-9
        conds = {c["type"]: c for c in node["status"]["conditions"]}
        assert conds["Ready"]["reason"] == "NodeStatusUnknown"
        assert conds["Ready"]["message"] == "Kubelet stopped posting node status."
        assert conds["MemoryPressure"]["reason"] == "NodeStatusNeverUpdated"

        async def tainted() -> list[Obj] | None:
            n = await client.get("v1", "nodes", "n1")
            ts = (n.get("spec") or {}).get("taints") or []
            return ts if any(t["key"] == UNREACHABLE and t["effect"] == "NoExecute" for t in ts) else None

        taints = await advance_until(env, clock, tainted, what="unreachable taint", limit=1.0)
        noexec = next(t for t in taints if t["effect"] == "NoExecute")
        assert noexec["timeAdded"] and {t["effect"] for t in taints if t["key"] == UNREACHABLE} == {
            "NoExecute", "NoSchedule"}

        # "brief" goes once its 2 s have passed; "plain" (300 s) stays.
        tainted_at = clock.now()
        await advance_until(env, clock, lambda: terminating(client, "nl", "brief"), what="brief evicted")
        assert clock.now() - tainted_at >= 1.0 - 1e-9  # the fake clock moves in float steps of 0.1
        assert not await terminating(client, "nl", "plain")

        async def eviction_event() -> bool:
            events, _ = await client.list_all("v1", "events", "nl")
            return any(e.get("reason") == "TaintManagerEviction" and e["involvedObject"]["name"] == "brief"
                       for e in events)

        await wait_for(eviction_event, what="the TaintManagerEviction event")

        # A NoExecute taint the pod does not tolerate at all: evicted at once (the clock stands still).
        n = await client.get("v1", "nodes", "n1")
        n["spec"]["taints"].append({"key": "example.com/maintenance", "effect": "NoExecute"})
        await client.update("v1", "nodes", n)
        await wait_for(lambda: terminating(client, "nl", "plain"), timeout=5, what="plain evicted")

        # The kubelet comes back: the controller's taints go, the foreign one stays.
        await heartbeat(client, "n1")

        async def healed() -> list[Obj] | None:
            ts = ((await client.get("v1", "nodes", "n1")).get("spec") or {}).get("taints") or []
            return ts if not any(t["key"] == UNREACHABLE for t in ts) else None

        left = await wait_for(healed, what="taints removed")
        assert [t["key"] for t in left] == ["example.com/maintenance"]
        node = await client.get("v1", "nodes", "n1")
        assert next(c for c in node["status"]["conditions"] if c["type"] == "Ready")["status"] == "True"
