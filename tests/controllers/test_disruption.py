"""PodDisruptionBudgets against a real API server: the controller's status, the eviction subresource,
and ``kubectl drain``.

There is no kubelet: the test binds pods to Nodes it creates, marks them Running/Ready, and finishes
graceful deletions (DELETE with grace 0 once a pod has a deletionTimestamp) in a helper task.
"""

from __future__ import annotations

import asyncio
import contextlib
from functools import partial
from typing import Any

import aiohttp
import orjson
import pytest

from kybernetes import errors
from kybernetes.client.rest import Client
from kybernetes.controllers.disruption import DisruptionController, scaled_value
from kybernetes.testing import ServerProcess
from tests.controllers import harness
from tests.controllers.harness import rfc3339, running

pytestmark = pytest.mark.integration
wait_for = partial(harness.wait_for, timeout=15.0)
Obj = dict[str, Any]


async def setup(client: Client, ns: str, node: str, app: str, n: int) -> None:
    with contextlib.suppress(errors.AlreadyExists):
        await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    await client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}})
    for i in range(n):
        name = f"{app}-{i}"
        await client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                                           "metadata": {"name": name, "labels": {"app": app}},
                                           "spec": {"containers": [{"name": "c", "image": "busybox"}]}}, ns)
        await client.create("v1", "pods", {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name},
                                           "target": {"apiVersion": "v1", "kind": "Node", "name": node}},
                            ns, subresource="binding", name=name)
        pod = await client.get("v1", "pods", name, ns)
        pod["status"]["phase"] = "Running"
        pod["status"]["conditions"] = [{"type": "Ready", "status": "True", "lastTransitionTime": rfc3339()}]
        await client.update("v1", "pods", pod, ns, subresource="status")


async def pdb_status(client: Client, ns: str, name: str) -> Obj:
    return (await client.get("policy/v1", "poddisruptionbudgets", name, ns)).get("status") or {}


async def raw_evict(client: Client, ns: str, name: str) -> tuple[int, Obj]:
    """POST an Eviction without the client's 429 retries."""
    body = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": ns}}
    cfg = client.config
    async with aiohttp.ClientSession() as s, s.post(
            f"{cfg.server}/api/v1/namespaces/{ns}/pods/{name}/eviction", data=orjson.dumps(body),
            headers={"Content-Type": "application/json"}, ssl=cfg.ssl_context()) as resp:
        return resp.status, orjson.loads(await resp.read())


async def kubelet(client: Client, node: str, stop_takes: float = 0.0) -> None:
    """Finish graceful deletions of the node's pods, as a kubelet would: ``stop_takes`` seconds
    after it first sees a pod terminating (a real kubelet takes a while to stop containers)."""
    loop = asyncio.get_running_loop()
    seen: dict[str, float] = {}
    while True:
        items, _ = await client.list_all("v1", "pods", field_selector=f"spec.nodeName={node}")
        for p in items:
            if p["metadata"].get("deletionTimestamp"):
                first = seen.setdefault(p["metadata"]["uid"], loop.time())
                if loop.time() - first < stop_takes:
                    continue
                with contextlib.suppress(errors.NotFound, errors.Conflict):
                    await client.delete("v1", "pods", p["metadata"]["name"], p["metadata"]["namespace"],
                                        grace_period_seconds=0)
        await asyncio.sleep(0.2)


def test_scaled_value() -> None:
    assert scaled_value("50%", 3, True) == 2 and scaled_value("50%", 3, False) == 1
    assert scaled_value(2, 10, True) == 2 and scaled_value("10", 3, True) == 10


async def test_status_and_eviction(srv: ServerProcess) -> None:
    async with running(srv, DisruptionController) as client:
        ns = "pdb"
        await setup(client, ns, "dn1", "web", 3)
        await client.create("policy/v1", "poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web"},
            "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "web"}}}}, ns)

        async def allowed(n: int) -> Obj | None:
            st = await pdb_status(client, ns, "web")
            return st if st.get("observedGeneration") == 1 and st.get("disruptionsAllowed") == n else None

        st = await wait_for(lambda: allowed(1), what="disruptionsAllowed=1")
        assert (st["expectedPods"], st["currentHealthy"], st["desiredHealthy"]) == (3, 3, 2)
        cond = st["conditions"][0]
        assert (cond["type"], cond["status"], cond["reason"]) == ("DisruptionAllowed", "True", "SufficientPods")

        # The first eviction spends the budget; the pod goes gracefully, marked as disrupted.
        out = await client.create("v1", "pods", {"apiVersion": "policy/v1", "kind": "Eviction",
                                                 "metadata": {"name": "web-0", "namespace": ns}},
                                  ns, subresource="eviction", name="web-0")
        assert out["status"] == "Success"
        pod = await client.get("v1", "pods", "web-0", ns)
        assert pod["metadata"]["deletionTimestamp"]
        assert any(c["type"] == "DisruptionTarget" and c["reason"] == "EvictionByEvictionAPI"
                   for c in pod["status"]["conditions"])

        # Once the controller has seen the pod go: 2 healthy, none may go.
        async def spent() -> Obj | None:
            st = await pdb_status(client, ns, "web")
            # The pod is terminating now, so its disruptedPods entry is done with too.
            done = "web-0" not in (st.get("disruptedPods") or {})
            return st if st.get("disruptionsAllowed") == 0 and st.get("currentHealthy") == 2 and done else None

        st = await wait_for(spent, what="budget spent")
        assert st["conditions"][0]["reason"] == "InsufficientPods"

        # The second would break the budget: 429 with the DisruptionBudget cause.
        code, body = await raw_evict(client, ns, "web-1")
        assert code == 429, body
        assert body["reason"] == "TooManyRequests"
        assert body["message"] == "Cannot evict pod as it would violate the pod's disruption budget."
        assert body["details"]["causes"] == [{"reason": "DisruptionBudget",
                                              "message": "The disruption budget web needs 2 healthy pods and "
                                                         "has 2 currently"}]
        assert not (await client.get("v1", "pods", "web-1", ns))["metadata"].get("deletionTimestamp")

        # A pod in two budgets cannot be evicted (Kubernetes' 500).
        await client.create("policy/v1", "poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "web-too"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "web"}}}}, ns)
        code, body = await raw_evict(client, ns, "web-2")
        assert code == 500 and "more than one PodDisruptionBudget" in body["message"]
        code, body = await raw_evict(client, ns, "nope")
        assert code == 404


async def test_kubectl_drain_honours_the_budget(srv: ServerProcess) -> None:
    async with running(srv, DisruptionController) as client:
        ns = "drain"
        await setup(client, ns, "dn2", "db", 2)
        await client.create("policy/v1", "poddisruptionbudgets", {
            "apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": {"name": "db"},
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "db"}}}}, ns)
        await wait_for(lambda: _allowed(client, ns, "db", 1), what="db budget")
        # kubectl evicts both pods at once; the second is refused while the first is still
        # terminating. (A first pod gone within milliseconds would let the recount allow the
        # second: with these pods' owner-less count, one pod left may go too.)
        helper = asyncio.create_task(kubelet(client, "dn2", stop_takes=2.0))
        try:
            res = await asyncio.to_thread(srv.kubectl, "drain", "dn2", "--ignore-daemonsets",
                                          "--delete-emptydir-data", "--force", "--timeout=60s", timeout=90)
        finally:
            helper.cancel()
            await asyncio.gather(helper, return_exceptions=True)
        out = res.stdout + res.stderr
        assert "evicting pod drain/db-0" in out and "evicting pod drain/db-1" in out, out
        # Only one could go at first: the other eviction was refused and retried.
        assert "Cannot evict pod as it would violate the pod's disruption budget." in out, out
        assert "node/dn2 drained" in out, out
        node = await client.get("v1", "nodes", "dn2")
        assert node["spec"]["unschedulable"] is True
        left, _ = await client.list_all("v1", "pods", ns)
        assert left == []


async def _allowed(client: Client, ns: str, name: str, n: int) -> bool:
    return (await pdb_status(client, ns, name)).get("disruptionsAllowed") == n
