"""DaemonSet controller against a real API server: one pod per eligible node, taints, rolling update."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.controllers.daemonset import DaemonSetController, target_node
from kybernetes.testing import ServerProcess
from tests.controllers.harness import (
    container_template,
    is_ready,
    list_pods,
    make_namespace,
    make_node,
    mark_ready,
    patch,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration


def ds_obj(name: str, pool: str, image: str = "nginx:1", tolerations: list[Any] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    template = container_template(labels, image)
    template["spec"]["nodeSelector"] = {"pool": pool}
    if tolerations:
        template["spec"]["tolerations"] = tolerations
    return {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": name},
            "spec": {"selector": {"matchLabels": labels}, "template": template}}


async def pods_by_node(client: Client, ns: str, app: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for p in await list_pods(client, ns, f"app={app}"):
        out.setdefault(target_node(p), []).append(p)
    return out


async def test_one_pod_per_node_and_taints(srv: ServerProcess) -> None:
    async with running(srv, DaemonSetController) as client:
        ns = await make_namespace(client, "ds-basic")
        for name in ("a-1", "a-2"):
            await make_node(client, name, {"pool": "a"})
        await make_node(client, "a-3", {"pool": "a"}, [{"key": "dedicated", "value": "x", "effect": "NoSchedule"}])
        await make_node(client, "other", {"pool": "z"})
        await client.create("apps/v1", "daemonsets", ds_obj("agent", "a"), ns)

        async def two() -> Any:
            by_node = await pods_by_node(client, ns, "agent")
            return by_node if sorted(by_node) == ["a-1", "a-2"] else None

        by_node = await wait_for(two, what="pods on a-1, a-2")
        for node, pods in by_node.items():
            (pod,) = pods
            assert not pod["spec"].get("nodeName")  # the scheduler binds it
            terms = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            assert terms == {"nodeSelectorTerms": [
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
            keys = {(t["key"], t["effect"]) for t in pod["spec"]["tolerations"]}
            assert ("node.kubernetes.io/not-ready", "NoExecute") in keys
            assert ("node.kubernetes.io/unschedulable", "NoSchedule") in keys
            assert pod["metadata"]["labels"]["controller-revision-hash"]
            assert pod["metadata"]["ownerReferences"][0]["kind"] == "DaemonSet"
            await mark_ready(client, pod)

        async def status() -> Any:
            st = (await client.get("apps/v1", "daemonsets", "agent", ns)).get("status", {})
            return st if st.get("numberReady") == 2 and st.get("numberAvailable") == 2 else None

        st = await wait_for(status, what="status")
        assert st["desiredNumberScheduled"] == 2 and st["currentNumberScheduled"] == 2
        assert st["updatedNumberScheduled"] == 2 and st["numberMisscheduled"] == 0 and st["observedGeneration"] == 1

        # Tolerate the taint: the tainted node gets a pod too (and the others move to the new revision).
        await patch(client, "apps/v1", "daemonsets", "agent", {"spec": {"template": {"spec": {"tolerations": [
            {"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]}}}}, ns)

        async def three() -> Any:
            for p in await list_pods(client, ns, "app=agent"):
                if not is_ready(p):
                    await mark_ready(client, p)
            by_node = await pods_by_node(client, ns, "agent")
            st = (await client.get("apps/v1", "daemonsets", "agent", ns)).get("status", {})
            ok = (sorted(by_node) == ["a-1", "a-2", "a-3"] and all(len(v) == 1 for v in by_node.values())
                  and st.get("updatedNumberScheduled") == 3 and st.get("numberAvailable") == 3)
            return by_node if ok else None

        await wait_for(three, timeout=30, what="pods on all three nodes")
        res = await asyncio.to_thread(srv.kubectl, "rollout", "status", "ds/agent", "-n", ns, "--timeout=30s")
        assert "successfully rolled out" in res.stdout


async def test_rolling_update_max_unavailable(srv: ServerProcess) -> None:
    async with running(srv, DaemonSetController) as client:
        ns = await make_namespace(client, "ds-rolling")
        nodes = [f"b-{i}" for i in range(4)]
        for name in nodes:
            await make_node(client, name, {"pool": "b"})
        await client.create("apps/v1", "daemonsets", ds_obj("logs", "b"), ns)

        async def kubelet_pass() -> None:
            for p in await list_pods(client, ns, "app=logs"):
                if not is_ready(p):
                    await mark_ready(client, p)

        async def settled(image: str) -> Any:
            await kubelet_pass()
            by_node = await pods_by_node(client, ns, "logs")
            ok = (sorted(by_node) == nodes and all(len(v) == 1 and is_ready(v[0]) for v in by_node.values())
                  and all(v[0]["spec"]["containers"][0]["image"] == image for v in by_node.values()))
            return by_node if ok else None

        await wait_for(lambda: settled("nginx:1"), what="initial pods")
        await patch(client, "apps/v1", "daemonsets", "logs",
                    {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}},
                    ns, patch_type="strategic")
        for _ in range(400):
            by_node = await pods_by_node(client, ns, "logs")
            without = [n for n in nodes if not any(is_ready(p) for p in by_node.get(n, []))]
            assert len(without) <= 1, f"more than maxUnavailable nodes without a ready pod: {without}"
            if await settled("nginx:2"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("rolling update did not finish")
