"""StatefulSet controller against a real API server: ordered creation, PVCs, partitioned update, scale down."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.controllers.statefulset import StatefulSetController
from kybernetes.testing import ServerProcess
from tests.controllers.harness import (
    container_template,
    is_ready,
    list_pods,
    make_namespace,
    mark_ready,
    patch,
    run_controllers,
    seen,
    settled,
    wait_for,
)

pytestmark = pytest.mark.integration


def sts_obj(name: str, replicas: int, image: str = "nginx:1", **spec: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "serviceName": name, "selector": {"matchLabels": labels},
                     "template": container_template(labels, image), **spec}}


async def pod_names(client: Client, ns: str, app: str) -> list[str]:
    return sorted(p["metadata"]["name"] for p in await list_pods(client, ns, f"app={app}"))


async def get_pod(client: Client, ns: str, name: str) -> Any:
    try:
        return await client.get("v1", "pods", name, ns)
    except Exception:
        return None


async def test_ordered_creation_with_claims(srv: ServerProcess) -> None:
    claim = {"metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    async with run_controllers(srv, StatefulSetController) as env:
        client = env.client
        ns = await make_namespace(client, "sts-order")
        sts = await client.create("apps/v1", "statefulsets", sts_obj("web", 3, volumeClaimTemplates=[claim]), ns)
        for i in range(3):
            pod = await wait_for(functools.partial(get_pod, client, ns, f"web-{i}"), what=f"web-{i}")
            # The next ordinal waits for this one to be Running and Ready: once the controller has
            # synced the set with this pod in its cache, there is still no next one.
            await settled(env, seen(env, "v1", "pods", pod), what=f"the controller to sync with web-{i}")
            assert await pod_names(client, ns, "web") == [f"web-{j}" for j in range(i + 1)]
            labels = pod["metadata"]["labels"]
            assert labels["statefulset.kubernetes.io/pod-name"] == f"web-{i}"
            assert labels["apps.kubernetes.io/pod-index"] == str(i)
            assert labels["controller-revision-hash"].startswith("web-")
            assert pod["spec"]["hostname"] == f"web-{i}" and pod["spec"]["subdomain"] == "web"
            vols = {v["name"]: v for v in pod["spec"]["volumes"]}
            assert vols["data"]["persistentVolumeClaim"]["claimName"] == f"data-web-{i}"
            pvc = await client.get("v1", "persistentvolumeclaims", f"data-web-{i}", ns)
            assert pvc["metadata"]["labels"]["app"] == "web"
            assert pod["metadata"]["ownerReferences"][0]["uid"] == sts["metadata"]["uid"]
            await mark_ready(client, pod)

        async def status_ready() -> Any:
            st = (await client.get("apps/v1", "statefulsets", "web", ns))["status"]
            return st if st.get("readyReplicas") == 3 and st.get("currentReplicas") == 3 else None

        st = await wait_for(status_ready, what="status")
        assert st["replicas"] == 3 and st["updatedReplicas"] == 3 and st["availableReplicas"] == 3
        assert st["currentRevision"] == st["updateRevision"]
        revs, _ = await client.list_all("apps/v1", "controllerrevisions", ns)
        assert [r["metadata"]["name"] for r in revs] == [st["updateRevision"]]

        # Scale down: highest ordinal first, one at a time; claims are retained by default.
        await patch(client, "apps/v1", "statefulsets", "web", {"spec": {"replicas": 1}}, ns)

        async def one_left() -> Any:
            return await pod_names(client, ns, "web") == ["web-0"]

        await wait_for(one_left, what="scale down to 1")
        await client.get("v1", "persistentvolumeclaims", "data-web-2", ns)


async def test_partitioned_rolling_update(srv: ServerProcess) -> None:
    async with run_controllers(srv, StatefulSetController) as env:
        client = env.client
        ns = await make_namespace(client, "sts-partition")
        spec: dict[str, Any] = {"podManagementPolicy": "Parallel",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 2}}}
        await client.create("apps/v1", "statefulsets", sts_obj("db", 4, **spec), ns)

        async def kubelet_pass() -> None:
            for p in await list_pods(client, ns, "app=db"):
                if not is_ready(p):
                    await mark_ready(client, p)

        async def all_ready(n: int) -> Any:
            await kubelet_pass()
            pods = await list_pods(client, ns, "app=db")
            return pods if len(pods) == n and all(is_ready(p) for p in pods) else None

        pods = await wait_for(lambda: all_ready(4), what="4 parallel pods")
        old_rev = pods[0]["metadata"]["labels"]["controller-revision-hash"]
        await patch(client, "apps/v1", "statefulsets", "db",
                           {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "nginx:2"}]}}}},
                           ns, patch_type="strategic")

        async def partition_done() -> Any:
            await kubelet_pass()
            pods = {p["metadata"]["name"]: p for p in await list_pods(client, ns, "app=db")}
            if len(pods) != 4 or not all(is_ready(p) for p in pods.values()):
                return None
            imgs = {n: p["spec"]["containers"][0]["image"] for n, p in pods.items()}
            return pods if imgs == {"db-0": "nginx:1", "db-1": "nginx:1", "db-2": "nginx:2", "db-3": "nginx:2"} else None

        pods = await wait_for(partition_done, timeout=30, what="ordinals >= 2 updated")
        new_rev = pods["db-3"]["metadata"]["labels"]["controller-revision-hash"]
        assert new_rev != old_rev and pods["db-0"]["metadata"]["labels"]["controller-revision-hash"] == old_rev

        async def partial_status() -> Any:
            sts = await client.get("apps/v1", "statefulsets", "db", ns)
            st = sts["status"]
            return sts if st.get("updatedReplicas") == 2 and st.get("readyReplicas") == 4 else None

        sts = await wait_for(partial_status, what="partial status")
        st = sts["status"]
        assert st["currentRevision"] == old_rev and st["updateRevision"] == new_rev and st["currentReplicas"] == 2
        # The controller has seen its own status (all 4 ready) and is idle: the partition holds.
        await settled(env, seen(env, "apps/v1", "statefulsets", sts), what="the controller to settle on the partition")
        assert (await get_pod(client, ns, "db-1"))["spec"]["containers"][0]["image"] == "nginx:1"

        await patch(client, "apps/v1", "statefulsets", "db",
                           {"spec": {"updateStrategy": {"rollingUpdate": {"partition": 0}}}}, ns)

        async def rolled() -> Any:
            await kubelet_pass()
            st = (await client.get("apps/v1", "statefulsets", "db", ns))["status"]
            return st if st.get("currentRevision") == new_rev and st.get("updatedReplicas") == 4 else None

        st = await wait_for(rolled, timeout=30, what="full rollout")
        assert st["currentReplicas"] == 4
        res = await asyncio.to_thread(srv.kubectl, "rollout", "status", "sts/db", "-n", ns, "--timeout=30s")
        assert "roll out complete" in res.stdout or "rolling update complete" in res.stdout
