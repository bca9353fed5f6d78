"""ReplicaSet controller against a real API server: create, replace, scale down by rank, adopt, release."""

from __future__ import annotations

from typing import Any

import pytest

from kybernetes.controllers.podutil import rank_pods_for_deletion
from kybernetes.controllers.replicaset import ReplicaSetController, ReplicationManager
from kybernetes.testing import ServerProcess
from tests.controllers.harness import (
    bind,
    container_template,
    list_pods,
    make_namespace,
    make_node,
    mark_ready,
    patch,
    running,
    wait_for,
)

pytestmark = pytest.mark.integration


def rs_obj(name: str, replicas: int, labels: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": container_template(labels)}}


async def test_creates_pods_with_owner_refs_and_replaces_deleted(srv: ServerProcess) -> None:
    async with running(srv, ReplicaSetController) as client:
        ns = await make_namespace(client, "rs-create")
        rs = await client.create("apps/v1", "replicasets", rs_obj("web", 3, {"app": "web"}), ns)
        pods = await wait_for(lambda: _pods_if(client, ns, "app=web", 3), what="3 pods")
        for p in pods:
            assert p["metadata"]["name"].startswith("web-") and len(p["metadata"]["name"]) == len("web-") + 5
            (ref,) = p["metadata"]["ownerReferences"]
            assert ref == {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                           "uid": rs["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
            assert p["spec"]["containers"][0]["image"] == "nginx:1"
        # Exactly 3, even after things settle (expectations stop double creation): a sync that has
        # seen all three pods writes status.replicas 3.
        async def settled() -> bool:
            st = (await client.get("apps/v1", "replicasets", "web", ns)).get("status") or {}
            return bool(st.get("replicas") == 3 and st.get("observedGeneration") == 1)

        await wait_for(settled, what="status.replicas 3")
        assert len(await list_pods(client, ns, "app=web")) == 3

        victim = pods[0]["metadata"]["name"]
        await client.delete("v1", "pods", victim, ns)
        after = await wait_for(lambda: _pods_if(client, ns, "app=web", 3, exclude=victim), what="replacement")
        assert victim not in {p["metadata"]["name"] for p in after}

        for p in after:
            await mark_ready(client, p)

        async def status_ok() -> Any:
            st = (await client.get("apps/v1", "replicasets", "web", ns)).get("status", {})
            return st if st.get("readyReplicas") == 3 and st.get("availableReplicas") == 3 else None

        st = await wait_for(status_ok, what="ready status")
        assert st["replicas"] == 3 and st["fullyLabeledReplicas"] == 3 and st["observedGeneration"] == 1


async def _pods_if(client: Any, ns: str, sel: str, n: int, exclude: str = "") -> list[dict[str, Any]] | None:
    pods = await list_pods(client, ns, sel)
    if len(pods) == n and all(p["metadata"]["name"] != exclude for p in pods):
        return pods
    return None


async def test_scale_down_deletes_unready_and_unassigned_first(srv: ServerProcess) -> None:
    async with running(srv, ReplicaSetController) as client:
        ns = await make_namespace(client, "rs-scale")
        await make_node(client, "rs-node-1")
        await client.create("apps/v1", "replicasets", rs_obj("api", 4, {"app": "api"}), ns)
        pods = await wait_for(lambda: _pods_if(client, ns, "app=api", 4), what="4 pods")
        names = sorted(p["metadata"]["name"] for p in pods)
        # pods 0,1: bound and ready; pod 2: bound, not ready; pod 3: unassigned.
        for name in names[:3]:
            await bind(client, {"metadata": {"name": name, "namespace": ns}}, "rs-node-1")
        for name in names[:2]:
            await mark_ready(client, {"metadata": {"name": name, "namespace": ns}})
        await mark_ready(client, {"metadata": {"name": names[2], "namespace": ns}}, ready=False)

        await patch(client, "apps/v1", "replicasets", "api", {"spec": {"replicas": 2}}, ns)

        async def two_left() -> Any:
            pods = await list_pods(client, ns, "app=api")
            return {p["metadata"]["name"] for p in pods} if len(pods) == 2 else None

        survivors = await wait_for(two_left, what="scale down to 2")
        assert survivors == set(names[:2])


async def test_adopts_orphan_and_releases_non_matching(srv: ServerProcess) -> None:
    async with running(srv, ReplicaSetController) as client:
        ns = await make_namespace(client, "rs-adopt")
        orphan = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "orphan", "labels": {"app": "db"}},
                  "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
        await client.create("v1", "pods", orphan, ns)
        rs = await client.create("apps/v1", "replicasets", rs_obj("db", 2, {"app": "db"}), ns)
        pods = await wait_for(lambda: _pods_if(client, ns, "app=db", 2), what="2 pods")
        names = {p["metadata"]["name"] for p in pods}
        assert "orphan" in names  # adopted instead of a second new pod

        async def adopted() -> Any:
            p = await client.get("v1", "pods", "orphan", ns)
            refs = p["metadata"].get("ownerReferences") or []
            return refs if refs and refs[0]["uid"] == rs["metadata"]["uid"] else None

        (ref,) = await wait_for(adopted, what="adoption")
        assert ref["controller"] is True and ref["blockOwnerDeletion"] is True

        # Relabel: the set releases the pod and makes a new one.
        await patch(client, "v1", "pods", "orphan", {"metadata": {"labels": {"app": "other"}}}, ns)

        async def released() -> Any:
            p = await client.get("v1", "pods", "orphan", ns)
            return not p["metadata"].get("ownerReferences")

        await wait_for(released, what="release")
        await wait_for(lambda: _pods_if(client, ns, "app=db", 2), what="replacement after release")


def test_rank_order_unit() -> None:
    def pod(name: str, node: str = "", phase: str = "Pending", ready: bool = False, created: str = "2024-01-01T00:00:00Z",
            cost: int | None = None, restarts: int = 0, ready_at: str = "2024-01-01T00:00:00Z") -> dict[str, Any]:
        ann = {"controller.kubernetes.io/pod-deletion-cost": str(cost)} if cost is not None else {}
        return {"metadata": {"name": name, "creationTimestamp": created, "annotations": ann},
                "spec": {"nodeName": node},
                "status": {"phase": phase, "containerStatuses": [{"restartCount": restarts}],
                           "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                           "lastTransitionTime": ready_at}]}}

    pods = [
        pod("ready-old", "n", "Running", True, ready_at="2024-01-01T00:00:00Z"),
        pod("ready-new", "n", "Running", True, ready_at="2024-01-02T00:00:00Z"),
        pod("unassigned"),
        pod("pending", "n", "Pending"),
        pod("unready", "n", "Running", False),
        pod("costly", "n", "Running", True, cost=100, ready_at="2024-01-03T00:00:00Z"),
    ]
    order = [p["metadata"]["name"] for p in rank_pods_for_deletion(pods)]
    assert order == ["unassigned", "pending", "unready", "ready-new", "ready-old", "costly"]


async def test_replication_controller(srv: ServerProcess) -> None:
    async with running(srv, ReplicationManager) as client:
        ns = await make_namespace(client, "rc-basic")
        rc = {"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "old"},
              "spec": {"replicas": 2, "selector": {"app": "old"}, "template": container_template({"app": "old"})}}
        created = await client.create("v1", "replicationcontrollers", rc, ns)
        pods = await wait_for(lambda: _pods_if(client, ns, "app=old", 2), what="2 pods")
        ref = pods[0]["metadata"]["ownerReferences"][0]
        assert ref["kind"] == "ReplicationController" and ref["uid"] == created["metadata"]["uid"]

        async def status_ok() -> Any:
            st = (await client.get("v1", "replicationcontrollers", "old", ns)).get("status", {})
            return st if st.get("replicas") == 2 else None

        await wait_for(status_ok, what="rc status")
