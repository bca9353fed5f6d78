"""ResourceQuota against a real API server: admission messages, CAS charging, the controller's recount."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.apiserver.quota import object_usage, pod_constraints, quota_usage, sources_for
from kybernetes.client.rest import Client
from kybernetes.controllers.resourcequota import ResourceQuotaController
from kybernetes.testing import ServerProcess
from tests.controllers import harness
from tests.controllers.harness import make_namespace, running

pytestmark = pytest.mark.integration
wait_for = partial(harness.wait_for, timeout=15.0)
Obj = dict[str, Any]


def pod(name: str, cpu: str | None = "100m", container: str = "c") -> Obj:
    resources: Obj = {"requests": {"cpu": cpu}} if cpu else {}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": container, "image": "busybox", "resources": resources}]}}


def test_evaluators() -> None:
    p = {"spec": {"containers": [{"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi"},
                                                            "limits": {"memory": "128Mi"}}},
                                 {"name": "b", "resources": {"requests": {"cpu": "1"}}}],
                  "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}]},
         "status": {"phase": "Running"}}
    u = object_usage("", "pods", p)
    assert u["pods"] == "1" and u["count/pods"] == "1"
    assert u["requests.cpu"] == "2" and u["cpu"] == "2"  # the init container's 2 beats 1250m
    assert u["requests.memory"] == "64Mi" and u["limits.memory"] == "128Mi" and "limits.cpu" not in u
    assert object_usage("", "pods", {**p, "status": {"phase": "Succeeded"}}) == {"count/pods": "1"}
    assert pod_constraints(["limits.cpu", "requests.memory", "pods"], p) == (
        "must specify limits.cpu for: a,b,i; requests.memory for: b,i")
    svc = {"spec": {"type": "NodePort", "ports": [{"port": 80}, {"port": 443}]}}
    assert object_usage("", "services", svc) == {"services": "1", "count/services": "1", "services.nodeports": "2"}
    assert object_usage("apps", "deployments", {}) == {"count/deployments.apps": "1"}
    assert sources_for(["count/deployments.apps", "limits.cpu", "secrets"]) == {
        ("apps", "deployments"), ("", "pods"), ("", "secrets")}
    quota = {"spec": {"hard": {"pods": "5", "requests.cpu": "4"}, "scopes": ["NotBestEffort"]}}
    besteffort = {"spec": {"containers": [{"name": "x"}]}, "status": {"qosClass": "BestEffort"}}
    used = quota_usage(quota, lambda g, r: [p, besteffort] if r == "pods" else [])
    assert used == {"pods": "1", "requests.cpu": "2"}


async def test_admission_and_controller(srv: ServerProcess) -> None:
    opts = {"resource-quota-sync-period": 1.0}
    async with running(srv, ResourceQuotaController, options=opts) as client:
        ns = await make_namespace(client, "rq")
        await client.create("v1", "resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "2", "requests.cpu": "1", "count/configmaps": "10"}}}, ns)

        with pytest.raises(errors.Forbidden) as e:
            await client.create("v1", "pods", pod("nocpu", cpu=None, container="c1"), ns)
        assert e.value.message == 'pods "nocpu" is forbidden: failed quota: q: must specify requests.cpu for: c1'

        await client.create("v1", "pods", pod("p1"), ns)
        await client.create("v1", "pods", pod("p2"), ns)
        with pytest.raises(errors.Forbidden) as e:
            await client.create("v1", "pods", pod("p3"), ns)
        assert e.value.message == ('pods "p3" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, '
                                   "limited: pods=2")
        await client.create("v1", "configmaps", {"apiVersion": "v1", "kind": "ConfigMap",
                                                 "metadata": {"name": "cm"}}, ns)

        async def used(want: dict[str, str]) -> Obj | None:
            q = await client.get("v1", "resourcequotas", "q", ns)
            st = q.get("status") or {}
            return q if st.get("used") == want and st.get("hard") == q["spec"]["hard"] else None

        await wait_for(lambda: used({"pods": "2", "requests.cpu": "200m", "count/configmaps": "1"}),
                       what="used counted")
        # A terminal pod stops counting; the controller notices the phase change.
        p1 = await client.get("v1", "pods", "p1", ns)
        p1["status"]["phase"] = "Succeeded"
        await client.update("v1", "pods", p1, ns, subresource="status")
        await wait_for(lambda: used({"pods": "1", "requests.cpu": "100m", "count/configmaps": "1"}),
                       what="recount after Succeeded")
        await client.create("v1", "pods", pod("p3"), ns)
        # A status someone got wrong is put right by the periodic recount.
        q = await client.get("v1", "resourcequotas", "q", ns)
        q["status"]["used"] = {"pods": "0", "requests.cpu": "0", "count/configmaps": "0"}
        await client.update("v1", "resourcequotas", q, ns, subresource="status")
        await wait_for(lambda: used({"pods": "2", "requests.cpu": "200m", "count/configmaps": "1"}),
                       what="periodic recount")


async def test_concurrent_creates_never_overshoot(srv: ServerProcess) -> None:
    client = Client.from_kubeconfig(str(srv.kubeconfig))
    try:
        ns = await make_namespace(client, "rq-race")
        await client.create("v1", "resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "three"},
            "spec": {"hard": {"pods": "3"}}}, ns)
        results = await asyncio.gather(*(client.create("v1", "pods", pod(f"r{i}", cpu=None), ns)
                                         for i in range(8)), return_exceptions=True)
        ok = [r for r in results if isinstance(r, dict)]
        refused = [r for r in results if isinstance(r, errors.Forbidden)]
        assert len(ok) == 3 and len(refused) == 5, results
        q = await client.get("v1", "resourcequotas", "three", ns)
        assert q["status"]["used"] == {"pods": "3"}
        # Dry runs are checked but charge nothing.
        with pytest.raises(errors.Forbidden):
            await client.create("v1", "pods", pod("dry", cpu=None), ns, dry_run=True)
    finally:
        await client.close()
