"""ResourceQuota against a real API server: admission messages, CAS charging, the controller's recount."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.api.quota_usage import object_usage, pod_constraints, quota_usage, sources_for
from kybernetes.client.rest import Client
from kybernetes.client.workqueue import FakeClock
from kybernetes.controllers.resourcequota import DECREASE_CONFIRM_DELAY, ResourceQuotaController, lowers
from kybernetes.testing import ServerProcess
from tests.controllers import harness
from tests.controllers.harness import make_namespace, run_controllers, running, settled

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


def test_claim_usage_counts_the_class_as_kubernetes_reads_it() -> None:
    # GetPersistentVolumeClaimClass: the beta annotation wins over spec.storageClassName.
    pvc = {"metadata": {"annotations": {"volume.beta.kubernetes.io/storage-class": "gold"}},
           "spec": {"storageClassName": "silver", "resources": {"requests": {"storage": "1Gi"}}}}
    assert object_usage("", "persistentvolumeclaims", pvc) == {
        "persistentvolumeclaims": "1", "count/persistentvolumeclaims": "1", "requests.storage": "1Gi",
        "gold.storageclass.storage.k8s.io/persistentvolumeclaims": "1",
        "gold.storageclass.storage.k8s.io/requests.storage": "1Gi"}


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


async def test_a_refused_object_is_never_charged(srv: ServerProcess) -> None:
    """ResourceQuota validates after the strategy: a pod refused with 422 takes no quota, so the
    next valid pod is admitted at once, with no controller running to recount."""
    client = Client.from_kubeconfig(str(srv.kubeconfig))
    try:
        ns = await make_namespace(client, "rq-invalid")
        await client.create("v1", "resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "one"},
            "spec": {"hard": {"pods": "1"}}}, ns)
        with pytest.raises(errors.Invalid):
            await client.create("v1", "pods", pod("bad", cpu=None, container="Not_A_DNS_Label"), ns)
        await client.create("v1", "pods", pod("good", cpu=None), ns)
        q = await client.get("v1", "resourcequotas", "one", ns)
        assert q["status"]["used"] == {"pods": "1"}
        with pytest.raises(errors.Forbidden) as e:
            await client.create("v1", "pods", pod("third", cpu=None), ns)
        assert e.value.message == ('pods "third" is forbidden: exceeded quota: one, requested: pods=1, used: pods=1, '
                                   "limited: pods=1")
    finally:
        await client.close()


def test_lowers() -> None:
    assert lowers({"pods": "2"}, {"pods": "1"})
    assert lowers({"requests.cpu": "1"}, {"requests.cpu": "900m"})
    assert not lowers({"requests.cpu": "1"}, {"requests.cpu": "1000m"})
    assert not lowers({"pods": "1"}, {"pods": "2"})
    assert not lowers({"pods": "1", "secrets": "3"}, {"pods": "1"})  # no longer limited


async def test_lower_count_waits_for_charges_in_flight(srv: ServerProcess) -> None:
    """A charge whose object is not stored yet is not handed back by a recount that missed it."""
    clock = FakeClock()
    async with run_controllers(srv, ResourceQuotaController, clock=clock) as env:
        client, ctl = env.client, env.controllers[0]
        assert isinstance(ctl, ResourceQuotaController)
        ns = await make_namespace(client, "rq-lower")
        await client.create("v1", "resourcequotas", {
            "apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "q"},
            "spec": {"hard": {"pods": "5"}}}, ns)
        key = f"{ns}/q"

        async def status_used() -> dict[str, str]:
            return dict((await client.get("v1", "resourcequotas", "q", ns)).get("status", {}).get("used") or {})

        await wait_for(lambda: _equals(status_used(), {"pods": "0"}), what="first count")

        async def charge(n: str) -> str:
            # What admission does before it stores the pod: the quota holds a charge no LIST shows yet.
            quota = await client.get("v1", "resourcequotas", "q", ns)
            quota["status"]["used"] = {"pods": n}
            return str((await client.update("v1", "resourcequotas", quota, ns,
                                            subresource="status"))["metadata"]["resourceVersion"])

        async def recount_seen(rv: str) -> bool:
            # A Secret's deletion makes the controller recount the namespace at once.
            await client.create("v1", "secrets", {"apiVersion": "v1", "kind": "Secret",
                                                  "metadata": {"generateName": "poke-"}}, ns)
            names = [s["metadata"]["name"] for s in (await client.list("v1", "secrets", ns))["items"]]
            for name in names:
                await client.delete("v1", "secrets", name, ns)
            for _ in range(100):
                seen = ctl._lower.get(key)
                if seen is not None and seen[0] == rv:
                    return True
                await asyncio.sleep(0.05)
            return False

        rv = await charge("1")
        assert await recount_seen(rv)
        assert await status_used() == {"pods": "1"}, "a lower count was written without waiting"
        await clock.advance(DECREASE_CONFIRM_DELAY * 0.6)
        # A second charge meanwhile: the wait starts again from the new quota.
        rv = await charge("2")
        assert await recount_seen(rv)
        await clock.advance(DECREASE_CONFIRM_DELAY * 0.6)  # the first timer fires, too early for the second
        # The fired timer's sync has run (nothing is queued, processing or due on the fake clock):
        # it wrote no lower count.
        await settled(env, within=0, what="the sync of the first timer")
        assert await status_used() == {"pods": "2"}
        await clock.advance(DECREASE_CONFIRM_DELAY * 0.6)
        await wait_for(lambda: _equals(status_used(), {"pods": "0"}), what="confirmed lower count written")


async def _equals(got: Any, want: dict[str, str]) -> bool:
    return (await got) == want
