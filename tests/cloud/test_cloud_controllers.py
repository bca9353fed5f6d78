"""The cloud controllers against a real API server, with a fake provider.

The controllers run in-process as ``system:cloud-controller-manager`` (the admin impersonates it,
so RBAC decides as for the real process: the role in ``bootstrappolicy/extras.py`` must be
enough); the provider is :class:`tests.cloud.fake.FakeCloud`, whose answers each test sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest

from kybernetes import errors
from kybernetes.client.events import EventRecorder
from kybernetes.client.informer import SharedInformerFactory
from kybernetes.client.rest import Client
from kybernetes.cloud.controllers.base import CloudController
from kybernetes.cloud.controllers.lifecycle import CloudNodeLifecycleController
from kybernetes.cloud.controllers.node import CloudNodeController
from kybernetes.cloud.controllers.route import RouteController
from kybernetes.cloud.controllers.service import ServiceController
from kybernetes.cloud.provider import LB_FINALIZER, SHUTDOWN_TAINT, UNINITIALIZED_TAINT
from kybernetes.controllers.base import ControllerContext
from kybernetes.testing import ServerProcess
from tests.cloud.fake import FakeCloud
from tests.controllers import harness
from tests.controllers.harness import get_or_none, make_node

pytestmark = pytest.mark.integration
wait_for = partial(harness.wait_for, timeout=15.0)
Obj = dict[str, Any]
CCM_USER = "system:cloud-controller-manager"


@asynccontextmanager
async def running(srv: ServerProcess, cloud: FakeCloud, *types: type[CloudController],
                  options: dict[str, Any] | None = None) -> AsyncIterator[Client]:
    """Run ``types`` with ``cloud`` as the cloud-controller-manager; yield the admin's client."""
    client = Client.from_kubeconfig(str(srv.kubeconfig))
    base = Client.from_kubeconfig(str(srv.kubeconfig))
    ccm = base.impersonating(CCM_USER)
    factory = SharedInformerFactory(ccm)
    recorder = EventRecorder(ccm, "cloud-controller-manager")
    ctx = ControllerContext(ccm, factory, lambda _n: recorder, options={"node-monitor-period": 0.2,
                                                                          "route-reconciliation-period": 0.2,
                                                                          **(options or {})})
    ctls = [t(ctx, cloud) for t in types]
    await factory.start()
    assert await factory.wait_for_sync(20)
    tasks = [asyncio.create_task(c.run()) for c in ctls]
    try:
        yield client
    finally:
        for c in ctls:
            await c.stop()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await recorder.close()
        await factory.stop()
        await base.close()
        await client.close()


async def set_ready(client: Client, name: str, status: str, addresses: list[Obj] | None = None) -> Obj:
    node = await client.get("v1", "nodes", name)
    node["status"] = {"conditions": [{"type": "Ready", "status": status, "reason": "Test", "message": "test"}],
                      "addresses": addresses or [{"type": "InternalIP", "address": "192.0.2.10"}]}
    return await client.update("v1", "nodes", node, subresource="status")


def taint_keys(node: Obj | None) -> set[str]:
    return {t["key"] for t in ((node or {}).get("spec") or {}).get("taints") or []}


async def test_an_uninitialized_node_gets_provider_id_labels_addresses_and_loses_the_taint(srv: ServerProcess) -> None:
    cloud = FakeCloud()
    async with running(srv, cloud, CloudNodeController, options={"configure-cloud-routes": True}) as client:
        await make_node(client, "init-a", labels={"topology.kubernetes.io/zone": "own-zone"},
                        taints=[{"key": UNINITIALIZED_TAINT, "value": "true", "effect": "NoSchedule"},
                                {"key": "keep", "effect": "NoSchedule"}])
        await make_node(client, "init-b")  # no taint: not the controller's

        async def initialized() -> Obj | None:
            n = await client.get("v1", "nodes", "init-a")
            return n if UNINITIALIZED_TAINT not in taint_keys(n) else None
        node = await wait_for(initialized, what="the taint removed")
        assert node["spec"]["providerID"] == "fake://init-a"
        assert taint_keys(node) == {"keep"}
        labels = node["metadata"]["labels"]
        assert labels["topology.kubernetes.io/zone"] == "own-zone"  # the node's own label wins
        assert labels["topology.kubernetes.io/region"] == "region-1"
        assert labels["node.kubernetes.io/instance-type"] == "fake.large"
        node = await wait_for(lambda: _with_addresses(client, "init-a"), what="addresses")
        assert {"type": "InternalIP", "address": "192.0.2.10"} in node["status"]["addresses"]
        # The route controller runs: the node waits for its route (kyb network does not route it yet).
        cond = await network_condition(client, "init-a")
        assert cond is not None
        assert (cond["status"], cond["reason"], cond["message"]) == ("True", "NoRouteCreated",
                                                                     "Node created without a route")
        other = await client.get("v1", "nodes", "init-b")
        assert await network_condition(client, "init-b") is None
        assert "providerID" not in other["spec"] and "topology.kubernetes.io/region" not in other["metadata"]["labels"]


async def _with_addresses(client: Client, name: str) -> Obj | None:
    n = await client.get("v1", "nodes", name)
    return n if (n.get("status") or {}).get("addresses") else None


async def test_lifecycle_deletes_gone_nodes_and_taints_shut_down_ones(srv: ServerProcess) -> None:
    cloud = FakeCloud(exists={"gone": False}, shutdown={"off": True})
    async with running(srv, cloud, CloudNodeLifecycleController) as client:
        for name in ("gone", "off", "ready-gone"):
            await make_node(client, name)
        await set_ready(client, "gone", "False")
        await set_ready(client, "off", "Unknown")
        await set_ready(client, "ready-gone", "True")

        async def deleted() -> bool:
            return await get_or_none(client, "v1", "nodes", "gone") is None
        await wait_for(deleted, what="the gone node deleted")

        async def tainted() -> bool:
            return SHUTDOWN_TAINT in taint_keys(await client.get("v1", "nodes", "off"))
        await wait_for(tainted, what="the shutdown taint")
        # The sweeps now see ready-gone Ready (written before off's): kept whatever the provider says.
        cloud.exists["ready-gone"] = False
        # Back up: the taint goes.
        cloud.shutdown["off"] = False
        await set_ready(client, "off", "True")

        async def untainted() -> bool:
            return SHUTDOWN_TAINT not in taint_keys(await client.get("v1", "nodes", "off"))
        await wait_for(untainted, what="the shutdown taint removed")
        assert await get_or_none(client, "v1", "nodes", "ready-gone") is not None
        assert await get_or_none(client, "v1", "nodes", "off") is not None


def lb_service(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80}], "selector": {"app": name}, **spec}}


async def test_load_balancer_service_gets_finalizer_and_ingress_then_is_cleaned_up(srv: ServerProcess) -> None:
    cloud = FakeCloud()
    async with running(srv, cloud, ServiceController) as client:
        ns = await harness.namespace(client, "lb")
        await client.create("v1", "services", lb_service("web"), ns)

        async def ingress() -> Obj | None:
            s = await client.get("v1", "services", "web", ns)
            return s if (s.get("status") or {}).get("loadBalancer", {}).get("ingress") else None
        svc = await wait_for(ingress, what="status.loadBalancer.ingress")
        assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": "203.0.113.1"}]
        assert LB_FINALIZER in svc["metadata"]["finalizers"]
        await client.delete("v1", "services", "web", ns)

        async def gone() -> bool:
            return await get_or_none(client, "v1", "services", "web", ns) is None
        await wait_for(gone, what="the service deleted (finalizer removed)")
        assert ("delete", "web") in cloud.calls and cloud.lbs == {}


async def test_type_change_releases_the_load_balancer_and_other_classes_are_left_alone(srv: ServerProcess) -> None:
    cloud = FakeCloud()
    async with running(srv, cloud, ServiceController) as client:
        ns = await harness.namespace(client, "lbclass")
        await client.create("v1", "services", lb_service("theirs", loadBalancerClass="example.com/other"), ns)
        await client.create("v1", "services", lb_service("mine"), ns)

        async def ingress() -> Obj | None:
            s = await client.get("v1", "services", "mine", ns)
            return s if (s.get("status") or {}).get("loadBalancer", {}).get("ingress") else None
        await wait_for(ingress, what="mine's ingress")
        # Services are synced in order of events: "theirs" came first and was looked at already.
        theirs = await client.get("v1", "services", "theirs", ns)
        assert not theirs["metadata"].get("finalizers") and not theirs["status"].get("loadBalancer", {}).get("ingress")
        assert ("ensure", "theirs") not in cloud.calls
        await harness.patch(client, "v1", "services", "mine", {"spec": {"type": "ClusterIP"}}, ns)

        async def released() -> Obj | None:
            s = await client.get("v1", "services", "mine", ns)
            clear = not s["metadata"].get("finalizers") and s["status"].get("loadBalancer") == {}
            return s if clear else None
        await wait_for(released, what="finalizer and ingress removed after the type change")
        assert ("delete", "mine") in cloud.calls


async def network_condition(client: Client, name: str) -> Obj | None:
    n = await client.get("v1", "nodes", name)
    for c in (n.get("status") or {}).get("conditions") or []:
        if c["type"] == "NetworkUnavailable":
            return c  # type: ignore[no-any-return]
    return None


async def test_route_controller_records_routes_and_marks_the_network_available(srv: ServerProcess) -> None:
    cloud = FakeCloud(refuse_routes={"route-b"})
    async with running(srv, cloud, RouteController) as client:
        for name, cidr in (("route-a", "10.42.7.0/24"), ("route-b", "10.42.8.0/24")):
            await make_node(client, name)
            await harness.patch(client, "v1", "nodes", name, {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}})

        async def condition_of(name: str, reason: str) -> Obj | None:
            c = await network_condition(client, name)
            return c if c and c["reason"] == reason else None
        cond = await wait_for(partial(condition_of, "route-a", "RouteCreated"), what="route-a RouteCreated")
        assert (cond["status"], cond["message"]) == ("False", "RouteController created a route")
        assert ("route-a", "10.42.7.0/24") in cloud.route_table
        # The provider refuses route-b's route: the node says so (kyb network does not route it), and why.
        cond = await wait_for(partial(condition_of, "route-b", "NoRouteCreated"), what="route-b NoRouteCreated")
        assert (cond["status"], cond["message"]) == ("True", "RouteController failed to create a route")

        async def refused_event() -> Obj | None:
            events = (await client.list("v1", "events", "default"))["items"]
            return next((e for e in events if e["reason"] == "FailedToCreateRoute"
                         and e["involvedObject"]["name"] == "route-b"), None)
        event = await wait_for(refused_event, what="the FailedToCreateRoute event")
        assert event["type"] == "Warning" and "route quota exceeded for route-b" in event["message"]
        cloud.refuse_routes.clear()  # retried every round: it comes
        await wait_for(partial(condition_of, "route-b", "RouteCreated"), what="route-b RouteCreated once allowed")
        assert ("route-b", "10.42.8.0/24") in cloud.route_table

        await client.delete("v1", "nodes", "route-a")

        async def route_gone() -> bool:
            return ("route-a", "10.42.7.0/24") not in cloud.route_table
        await wait_for(route_gone, what="the route deleted with its node")
        assert ("route-b", "10.42.8.0/24") in cloud.route_table


async def test_the_cloud_controller_manager_may_not_touch_what_it_does_not_own(srv: ServerProcess) -> None:
    """Least privilege: no secrets, no pods."""
    async with Client.from_kubeconfig(str(srv.kubeconfig)) as admin:
        ccm = admin.impersonating(CCM_USER)
        for plural in ("secrets", "pods"):
            with pytest.raises(errors.Forbidden):
                await ccm.list("v1", plural, "kube-system")
