"""Deployment controller (with the ReplicaSet controller) against a real API server.

A background "kubelet" marks every new pod Running and Ready, so rollouts progress; the tests
watch ReplicaSet sizes and pod readiness while a rollout runs and check the strategy's bounds at
every observation, and drive ``kubectl rollout status|undo|history|restart`` against the server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.controllers import deployment_util as du
from kybernetes.controllers.deployment import DeploymentController
from kybernetes.controllers.history import template_hash
from kybernetes.controllers.replicaset import ReplicaSetController
from kybernetes.testing import ServerProcess
from tests.controllers.harness import (
    container_template,
    is_ready,
    list_pods,
    make_namespace,
    mark_ready,
    patch,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration


def deploy_obj(name: str, replicas: int, image: str, strategy: dict[str, Any] | None = None) -> dict[str, Any]:
    labels = {"app": name}
    spec: dict[str, Any] = {"replicas": replicas, "selector": {"matchLabels": labels},
                            "template": container_template(labels, image)}
    if strategy:
        spec["strategy"] = strategy
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


@contextlib.asynccontextmanager
async def kubelet(client: Client, ns: str) -> AsyncIterator[None]:
    """Mark every pod of the namespace ready shortly after it appears."""
    async def loop() -> None:
        while True:
            for p in await list_pods(client, ns):
                if not is_ready(p):
                    await mark_ready(client, p)
            await asyncio.sleep(0.05)

    task = asyncio.create_task(loop())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def rses(client: Client, ns: str, app: str) -> list[dict[str, Any]]:
    items, _ = await client.list_all("apps/v1", "replicasets", ns, label_selector=f"app={app}")
    return items


async def watch_replica_totals(client: Client, ns: str, app: str, rv: str, replicas: dict[str, int],
                               totals: list[int]) -> None:
    """Append the sum of the sets' spec.replicas (``replicas``: as listed at ``rv``) after every change."""
    async for ev in client.watch("apps/v1", "replicasets", ns, resource_version=rv,
                                 label_selector=f"app={app}", timeout_seconds=120):
        if ev.type in ("ADDED", "MODIFIED"):
            replicas[ev.object["metadata"]["name"]] = ev.object["spec"]["replicas"]
        elif ev.type == "DELETED":
            replicas.pop(ev.object["metadata"]["name"], None)
        else:
            continue
        totals.append(sum(replicas.values()))


async def rollout_status(srv: ServerProcess, ns: str, name: str) -> str:
    res = await asyncio.to_thread(srv.kubectl, "rollout", "status", f"deploy/{name}", "-n", ns, "--timeout=60s")
    return res.stdout


async def complete(client: Client, ns: str, name: str, replicas: int) -> Any:
    async def check() -> Any:
        d = await client.get("apps/v1", "deployments", name, ns)
        st = d.get("status", {})
        ok = (st.get("observedGeneration", 0) >= d["metadata"]["generation"] and st.get("updatedReplicas") == replicas
              and st.get("replicas") == replicas and st.get("availableReplicas") == replicas)
        return d if ok else None
    return await wait_for(check, timeout=30, what=f"deployment {name} complete")


async def test_creates_replicaset_and_rollout_status(srv: ServerProcess) -> None:
    async with running(srv, DeploymentController, ReplicaSetController) as client:
        ns = await make_namespace(client, "dep-basic")
        async with kubelet(client, ns):
            d = await client.create("apps/v1", "deployments", deploy_obj("web", 3, "nginx:1"), ns)
            out = await rollout_status(srv, ns, "web")
            assert 'deployment "web" successfully rolled out' in out
        (rs,) = await rses(client, ns, "web")
        h = template_hash(d["spec"]["template"])
        assert rs["metadata"]["name"] == f"web-{h}"
        assert rs["metadata"]["labels"]["pod-template-hash"] == h
        assert rs["spec"]["selector"]["matchLabels"] == {"app": "web", "pod-template-hash": h}
        ann = rs["metadata"]["annotations"]
        assert ann[du.REVISION] == "1" and ann[du.DESIRED_REPLICAS] == "3" and ann[du.MAX_REPLICAS] == "4"
        assert rs["metadata"]["ownerReferences"][0]["uid"] == d["metadata"]["uid"]
        d = await complete(client, ns, "web", 3)
        assert d["metadata"]["annotations"][du.REVISION] == "1"
        conds = {c["type"]: c for c in d["status"]["conditions"]}
        assert conds["Available"]["status"] == "True" and conds["Available"]["reason"] == "MinimumReplicasAvailable"
        assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
        pods = await list_pods(client, ns, "app=web")
        assert len(pods) == 3 and all(p["metadata"]["labels"]["pod-template-hash"] == h for p in pods)


async def test_rolling_update_respects_surge_and_unavailable(srv: ServerProcess) -> None:
    n, surge, unavailable = 4, 1, 1
    strategy = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    async with running(srv, DeploymentController, ReplicaSetController) as client:
        ns = await make_namespace(client, "dep-rolling")
        async with kubelet(client, ns):
            await client.create("apps/v1", "deployments", deploy_obj("api", n, "nginx:1", strategy), ns)
            await complete(client, ns, "api", n)
            # Every replica count the controller writes is seen by a watch; polling could miss the
            # short moment at which both sets together hold n + surge.
            totals: list[int] = []
            before, rv = await client.list_all("apps/v1", "replicasets", ns, label_selector="app=api")
            replicas = {r["metadata"]["name"]: r["spec"]["replicas"] for r in before}
            watcher = asyncio.create_task(watch_replica_totals(client, ns, "api", rv, replicas, totals))
            await patch(client, "apps/v1", "deployments", "api",
                               {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}},
                               ns, patch_type="strategic")
            min_ready = n
            saw_two_sets = False
            for _ in range(600):
                sets = await rses(client, ns, "api")
                total = sum(r["spec"]["replicas"] for r in sets)
                pods = await list_pods(client, ns, "app=api")
                ready = sum(1 for p in pods if is_ready(p))
                min_ready = min(min_ready, ready)
                saw_two_sets = saw_two_sets or sum(1 for r in sets if r["spec"]["replicas"] > 0) == 2
                assert total <= n + surge, f"surge exceeded: {[(r['metadata']['name'], r['spec']['replicas']) for r in sets]}"
                assert ready >= n - unavailable, f"too few ready pods: {ready}"
                d = await client.get("apps/v1", "deployments", "api", ns)
                st = d.get("status", {})
                if (st.get("updatedReplicas") == n and st.get("replicas") == n and st.get("availableReplicas") == n
                        and st.get("observedGeneration") == d["metadata"]["generation"]
                        and len([r for r in sets if r["spec"]["replicas"] > 0]) == 1):
                    break
                await asyncio.sleep(0.03)
            else:
                raise AssertionError("rolling update did not finish")
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            assert saw_two_sets and max(totals) == n + surge, totals
            out = await rollout_status(srv, ns, "api")
            assert "successfully rolled out" in out
        sets = sorted(await rses(client, ns, "api"), key=lambda r: int(r["metadata"]["annotations"][du.REVISION]))
        assert [r["spec"]["replicas"] for r in sets] == [0, n]
        assert sets[1]["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:2"
        pods = await list_pods(client, ns, "app=api")
        assert all(p["spec"]["containers"][0]["image"] == "nginx:2" for p in pods)


async def test_rollback_reuses_old_replicaset_and_history(srv: ServerProcess) -> None:
    async with running(srv, DeploymentController, ReplicaSetController) as client:
        ns = await make_namespace(client, "dep-undo")
        async with kubelet(client, ns):
            await client.create("apps/v1", "deployments", deploy_obj("app", 2, "nginx:1"), ns)
            await rollout_status(srv, ns, "app")
            first = await rses(client, ns, "app")
            (rs1,) = first
            await asyncio.to_thread(srv.kubectl, "set", "image", "deploy/app", "c=nginx:2", "-n", ns)
            await rollout_status(srv, ns, "app")
            await complete(client, ns, "app", 2)
            await asyncio.to_thread(srv.kubectl, "rollout", "undo", "deploy/app", "-n", ns)
            await rollout_status(srv, ns, "app")
            d = await complete(client, ns, "app", 2)
        sets = {r["metadata"]["name"]: r for r in await rses(client, ns, "app")}
        assert len(sets) == 2
        back = sets[rs1["metadata"]["name"]]
        assert back["metadata"]["uid"] == rs1["metadata"]["uid"]
        assert back["spec"]["replicas"] == 2
        assert back["metadata"]["annotations"][du.REVISION] == "3"
        assert back["metadata"]["annotations"][du.REVISION_HISTORY] == "1"
        assert d["metadata"]["annotations"][du.REVISION] == "3"
        hist = (await asyncio.to_thread(srv.kubectl, "rollout", "history", "deploy/app", "-n", ns)).stdout
        revs = [line.split()[0] for line in hist.splitlines()[2:] if line.strip()]
        assert revs == ["2", "3"], hist

        # restart: a new template annotation makes a third ReplicaSet, revision 4.
        async with kubelet(client, ns):
            await asyncio.to_thread(srv.kubectl, "rollout", "restart", "deploy/app", "-n", ns)
            await rollout_status(srv, ns, "app")
        sets2 = await rses(client, ns, "app")
        assert len(sets2) == 3
        assert max(int(r["metadata"]["annotations"][du.REVISION]) for r in sets2) == 4


async def test_recreate_scales_old_to_zero_first(srv: ServerProcess) -> None:
    async with running(srv, DeploymentController, ReplicaSetController) as client:
        ns = await make_namespace(client, "dep-recreate")
        async with kubelet(client, ns):
            await client.create("apps/v1", "deployments", deploy_obj("db", 3, "nginx:1", {"type": "Recreate"}), ns)
            await complete(client, ns, "db", 3)
            await patch(client, "apps/v1", "deployments", "db",
                               {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}},
                               ns, patch_type="strategic")
            for _ in range(600):
                pods = await list_pods(client, ns, "app=db", include_terminating=True)
                images = {p["spec"]["containers"][0]["image"] for p in pods}
                assert images != {"nginx:1", "nginx:2"}, "old and new pods overlap under Recreate"
                sets = await rses(client, ns, "db")
                active = [r for r in sets if r["spec"]["replicas"] > 0]
                assert len(active) <= 1
                if images == {"nginx:2"} and len(pods) == 3 and all(is_ready(p) for p in pods):
                    break
                await asyncio.sleep(0.03)
            else:
                raise AssertionError("recreate did not finish")
            out = await rollout_status(srv, ns, "db")
            assert "successfully rolled out" in out


async def test_scaling_and_paused(srv: ServerProcess) -> None:
    async with running(srv, DeploymentController, ReplicaSetController) as client:
        ns = await make_namespace(client, "dep-pause")
        async with kubelet(client, ns):
            await client.create("apps/v1", "deployments", deploy_obj("p", 2, "nginx:1"), ns)
            await complete(client, ns, "p", 2)
            await patch(client, "apps/v1", "deployments", "p", {"spec": {"paused": True}}, ns)
            await patch(client, "apps/v1", "deployments", "p",
                               {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}},
                               ns, patch_type="strategic")
            await patch(client, "apps/v1", "deployments", "p", {"spec": {"replicas": 4}}, ns)

            async def scaled() -> Any:
                pods = await list_pods(client, ns, "app=p")
                return pods if len(pods) == 4 else None

            pods = await wait_for(scaled, what="scale while paused")
            assert {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:1"}
            assert len(await rses(client, ns, "p")) == 1  # no rollout while paused
            d = await client.get("apps/v1", "deployments", "p", ns)
            prog = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
            assert prog["reason"] == "DeploymentPaused"
            await patch(client, "apps/v1", "deployments", "p", {"spec": {"paused": False}}, ns)
            await rollout_status(srv, ns, "p")
            pods = await list_pods(client, ns, "app=p")
            assert len(pods) == 4 and {p["spec"]["containers"][0]["image"] for p in pods} == {"nginx:2"}


def test_fenceposts_unit() -> None:
    def d(n: int, surge: Any, unavail: Any) -> dict[str, Any]:
        return {"spec": {"replicas": n, "strategy": {"type": "RollingUpdate",
                                                     "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavail}}}}
    assert du.resolve_fenceposts(d(10, "25%", "25%")) == (3, 2)
    assert du.resolve_fenceposts(d(1, "25%", "25%")) == (1, 0)
    assert du.resolve_fenceposts(d(3, 0, "10%")) == (0, 1)
    assert du.resolve_fenceposts(d(5, 2, 1)) == (2, 1)


async def test_progress_deadline_exceeded(srv: ServerProcess) -> None:
    async with running(srv, DeploymentController, ReplicaSetController) as client:
        ns = await make_namespace(client, "dep-deadline")
        obj = deploy_obj("stuck", 2, "nginx:1")
        obj["spec"]["progressDeadlineSeconds"] = 2
        await client.create("apps/v1", "deployments", obj, ns)  # no kubelet: pods never get ready

        async def timed_out() -> Any:
            d = await client.get("apps/v1", "deployments", "stuck", ns)
            conds = {c["type"]: c for c in d.get("status", {}).get("conditions", [])}
            prog = conds.get("Progressing")
            return conds if prog and prog["reason"] == "ProgressDeadlineExceeded" else None

        conds = await wait_for(timed_out, timeout=15, what="ProgressDeadlineExceeded")
        assert conds["Progressing"]["status"] == "False"
        assert conds["Available"]["reason"] == "MinimumReplicasUnavailable"
        res = await asyncio.to_thread(srv.kubectl, "rollout", "status", "deploy/stuck", "-n", ns, "--timeout=20s",
                                      check=False)
        assert res.returncode != 0 and "exceeded its progress deadline" in res.stderr


def test_proportional_scaling_unit() -> None:
    d = {"spec": {"replicas": 15, "strategy": {"type": "RollingUpdate",
                                               "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}},
         "status": {"replicas": 13}}

    def rs(n: int) -> dict[str, Any]:
        return {"metadata": {"annotations": {du.MAX_REPLICAS: "13"}}, "spec": {"replicas": n}}

    to_add = 15 + 4 - 13  # maxSurge 25% of 15 rounds up to 4
    old, new = rs(8), rs(5)
    p_old = du.proportion(old, d, to_add, 0)
    p_new = du.proportion(new, d, to_add, p_old)
    assert (p_old, p_new) == (4, 2)
    assert du.proportion(rs(0), d, to_add, 0) == 0
