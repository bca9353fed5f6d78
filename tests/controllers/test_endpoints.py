"""Endpoints and EndpointSlice controllers against a real API server.

No kubelet runs: the tests create pods and write their status (IP, Ready) through ``/status``
themselves, then watch the controllers follow.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from kybernetes.client.rest import Client
from kybernetes.controllers.endpoints import EndpointsController
from kybernetes.controllers.endpointslice import EndpointSliceController
from kybernetes.testing import ServerProcess
from tests.controllers import harness
from tests.controllers.harness import (
    get_or_none,
    make_namespace,
    rfc3339,
    run_controllers,
    running,
    seen,
    settled,
)

pytestmark = pytest.mark.integration
wait_for = partial(harness.wait_for, timeout=15.0)
CONTROLLERS = (EndpointsController, EndpointSliceController)
Obj = dict[str, Any]


async def make_pod(client: Client, ns: str, name: str, ip: str, *, labels: dict[str, str],
                   ready: bool = True, ports: list[Obj] | None = None, node: str = "",
                   hostname: str = "", subdomain: str = "") -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "busybox", "ports": ports or []}]}
    if node:
        spec["nodeName"] = node
    if hostname:
        spec["hostname"] = hostname
    if subdomain:
        spec["subdomain"] = subdomain
    pod = await client.create("v1", "pods", {"apiVersion": "v1", "kind": "Pod",
                                             "metadata": {"name": name, "labels": labels}, "spec": spec}, ns)
    return await set_status(client, pod, ip, ready)


async def set_status(client: Client, pod: Obj, ip: str, ready: bool) -> Obj:
    status = {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
              "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                               "lastTransitionTime": rfc3339()}]}
    m = pod["metadata"]
    return await client.patch("v1", "pods", m["name"], {"status": status}, m["namespace"], subresource="status")


async def slices_of(client: Client, ns: str, svc: str) -> list[Obj]:
    items, _ = await client.list_all("discovery.k8s.io/v1", "endpointslices", ns,
                                     label_selector=f"kubernetes.io/service-name={svc}")
    return items


def summary(ep: Obj) -> list[tuple[list[str], list[str], list[tuple[str, int]]]]:
    """Endpoints subsets as (ready IPs, not-ready IPs, (port name, port)) for easy comparison."""
    out = []
    for s in ep.get("subsets") or []:
        out.append(([a["ip"] for a in s.get("addresses") or []],
                    [a["ip"] for a in s.get("notReadyAddresses") or []],
                    sorted((p.get("name", ""), p["port"]) for p in s.get("ports") or [])))
    return sorted(out)


WEB_PORTS = [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "metrics", "port": 9090, "targetPort": 9090}]


async def test_endpoints_follow_pods(srv: ServerProcess) -> None:
    async with running(srv, *CONTROLLERS) as client:
        ns = await make_namespace(client, "ep-web")
        await client.create("v1", "nodes", {"apiVersion": "v1", "kind": "Node",
                                            "metadata": {"name": "ep-node-a",
                                                         "labels": {"topology.kubernetes.io/zone": "zone-1"}}})
        svc = await client.create("v1", "services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "labels": {"tier": "front"}},
            "spec": {"selector": {"app": "web"}, "ports": WEB_PORTS}}, ns)
        p1 = await make_pod(client, ns, "p1", "10.0.0.1", labels={"app": "web"}, node="ep-node-a",
                            ports=[{"name": "http", "containerPort": 8080}])
        await make_pod(client, ns, "p2", "10.0.0.2", labels={"app": "web"}, ready=False,
                       ports=[{"name": "http", "containerPort": 8081}])
        await make_pod(client, ns, "p3", "10.0.0.3", labels={"app": "web"})  # no "http" port
        await make_pod(client, ns, "other", "10.0.0.9", labels={"app": "db"})

        want = sorted([(["10.0.0.1"], [], [("http", 8080), ("metrics", 9090)]),
                       ([], ["10.0.0.2"], [("http", 8081), ("metrics", 9090)]),
                       (["10.0.0.3"], [], [("metrics", 9090)])])

        async def endpoints_match() -> Obj | None:
            ep = await get_or_none(client, "v1", "endpoints", "web", ns)
            return ep if ep is not None and summary(ep) == want else None

        ep = await wait_for(endpoints_match, what="endpoints of web")
        assert ep["metadata"]["labels"] == {"tier": "front"}
        assert "endpoints.kubernetes.io/last-change-trigger-time" in ep["metadata"].get("annotations", {})
        addr = next(a for s in ep["subsets"] for a in s.get("addresses") or [] if a["ip"] == "10.0.0.1")
        assert addr["nodeName"] == "ep-node-a"
        assert addr["targetRef"] == {"kind": "Pod", "namespace": ns, "name": "p1", "uid": p1["metadata"]["uid"]}

        # EndpointSlices: one per distinct port set, owned by the Service.
        async def slices_match() -> list[Obj] | None:
            sl = await slices_of(client, ns, "web")
            ips = sorted(e["addresses"][0] for s in sl for e in s.get("endpoints") or [])
            return sl if len(sl) == 3 and ips == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] else None

        slices = await wait_for(slices_match, what="3 slices for web")
        for s in slices:
            assert s["metadata"]["name"].startswith("web-")
            assert s["addressType"] == "IPv4"
            labels = s["metadata"]["labels"]
            assert labels["endpointslice.kubernetes.io/managed-by"] == "endpointslice-controller.k8s.io"
            assert labels["tier"] == "front"
            (owner,) = s["metadata"]["ownerReferences"]
            assert owner["kind"] == "Service" and owner["uid"] == svc["metadata"]["uid"] and owner["controller"]
        by_ip = {e["addresses"][0]: (e, s) for s in slices for e in s["endpoints"]}
        e1, s1 = by_ip["10.0.0.1"]
        assert e1["conditions"] == {"ready": True, "serving": True, "terminating": False}
        assert e1["nodeName"] == "ep-node-a" and e1["zone"] == "zone-1"
        assert e1["targetRef"]["name"] == "p1"
        assert sorted((p["name"], p["port"]) for p in s1["ports"]) == [("http", 8080), ("metrics", 9090)]
        assert by_ip["10.0.0.2"][0]["conditions"]["ready"] is False
        assert [(p["name"], p["port"]) for p in by_ip["10.0.0.3"][1]["ports"]] == [("metrics", 9090)]

        # p2 becomes ready: it moves to the ready addresses.
        p2 = await client.get("v1", "pods", "p2", ns)
        await set_status(client, p2, "10.0.0.2", True)
        want = sorted([(["10.0.0.1"], [], [("http", 8080), ("metrics", 9090)]),
                       (["10.0.0.2"], [], [("http", 8081), ("metrics", 9090)]),
                       (["10.0.0.3"], [], [("metrics", 9090)])])
        await wait_for(endpoints_match, what="p2 ready")

        # p1 is deleted; bound to a node, it is only marked (terminating) until its kubelet confirms.
        await client.delete("v1", "pods", "p1", ns)
        want = sorted([(["10.0.0.2"], [], [("http", 8081), ("metrics", 9090)]),
                       (["10.0.0.3"], [], [("metrics", 9090)])])
        await wait_for(endpoints_match, what="terminating p1 gone from endpoints")

        async def p1_terminating() -> bool:
            for s in await slices_of(client, ns, "web"):
                for e in s.get("endpoints") or []:
                    if e["addresses"] == ["10.0.0.1"]:
                        return bool(e["conditions"] == {"ready": False, "serving": True, "terminating": True})
            return False

        await wait_for(p1_terminating, what="p1 terminating in its slice")

        # The Service goes: its Endpoints go with it (slices too).
        await client.delete("v1", "services", "web", ns)
        await wait_for(lambda: _absent(client, "v1", "endpoints", "web", ns), what="endpoints deleted")
        await wait_for(lambda: _no_slices(client, ns, "web"), what="slices deleted")


async def _absent(client: Client, api_version: str, plural: str, name: str, ns: str) -> bool:
    return await get_or_none(client, api_version, plural, name, ns) is None


async def _no_slices(client: Client, ns: str, svc: str) -> bool:
    return not await slices_of(client, ns, svc)


async def test_headless_publish_not_ready_and_selectorless(srv: ServerProcess) -> None:
    async with run_controllers(srv, *CONTROLLERS) as env:
        client = env.client
        ns = await make_namespace(client, "ep-headless")
        await client.create("v1", "services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "db"},
            "spec": {"clusterIP": "None", "selector": {"app": "db"}, "publishNotReadyAddresses": True}}, ns)
        await make_pod(client, ns, "db-0", "10.1.0.1", labels={"app": "db"}, ready=False,
                       hostname="db-0", subdomain="db")
        await make_pod(client, ns, "db-1", "10.1.0.2", labels={"app": "db"})

        async def headless() -> Obj | None:
            ep = await get_or_none(client, "v1", "endpoints", "db", ns)
            return ep if ep is not None and summary(ep) == [(["10.1.0.1", "10.1.0.2"], [], [])] else None

        ep = await wait_for(headless, what="headless endpoints")
        assert ep["metadata"]["labels"] == {"service.kubernetes.io/headless": ""}
        hostnames = {a["ip"]: a.get("hostname") for a in ep["subsets"][0]["addresses"]}
        assert hostnames == {"10.1.0.1": "db-0", "10.1.0.2": None}

        async def slice_ready() -> list[Obj] | None:
            sl = await slices_of(client, ns, "db")
            eps = [e for s in sl for e in s.get("endpoints") or []]
            return sl if len(eps) == 2 and all(e["conditions"]["ready"] for e in eps) else None

        (sl,) = await wait_for(slice_ready, what="headless slice")
        assert sl["metadata"]["labels"]["service.kubernetes.io/headless"] == ""
        assert not sl.get("ports")

        # A Service without selector: its Endpoints are the user's, left untouched.
        ext = await client.create("v1", "services", {"apiVersion": "v1", "kind": "Service",
                                                     "metadata": {"name": "ext"}, "spec": {"ports": [{"port": 5432}]}}, ns)
        ext_ep = await client.create("v1", "endpoints", {
            "apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "ext"},
            "subsets": [{"addresses": [{"ip": "192.0.2.1"}], "ports": [{"port": 5432}]}]}, ns)
        await settled(env, seen(env, "v1", "services", ext), seen(env, "v1", "endpoints", ext_ep),
                      what="both controllers to process the selector-less Service")
        ep = await client.get("v1", "endpoints", "ext", ns)
        assert summary(ep) == [(["192.0.2.1"], [], [("", 5432)])]
        assert await slices_of(client, ns, "ext") == []


async def test_slices_hold_at_most_max_endpoints(srv: ServerProcess) -> None:
    async with run_controllers(srv, *CONTROLLERS, options={"max-endpoints-per-slice": 3}) as env:
        client = env.client
        ns = await make_namespace(client, "ep-many")
        await client.create("v1", "services", {
            "apiVersion": "v1", "kind": "Service", "metadata": {"name": "many"},
            "spec": {"selector": {"app": "many"}, "ports": [{"port": 80}]}}, ns)

        async def slice_state() -> list[Obj]:
            return await slices_of(client, ns, "many")

        # Before any pod: one empty placeholder slice.
        placeholder = await wait_for(slice_state, what="placeholder slice")
        assert len(placeholder) == 1 and not placeholder[0].get("endpoints")

        for i in range(7):
            await make_pod(client, ns, f"m{i}", f"10.2.0.{i + 1}", labels={"app": "many"})

        async def seven() -> list[Obj] | None:
            sl = await slices_of(client, ns, "many")
            eps = [e["addresses"][0] for s in sl for e in s.get("endpoints") or []]
            return sl if sorted(eps) == sorted(f"10.2.0.{i + 1}" for i in range(7)) else None

        sl = await wait_for(seven, what="7 endpoints")
        assert all(len(s["endpoints"]) <= 3 for s in sl)
        # Once the controller has seen its own writes and has nothing left to do: no duplicates.
        await settled(env, *(seen(env, "discovery.k8s.io/v1", "endpointslices", s) for s in sl),
                      what="the slice controller to see its slices and go idle")
        assert len(await slices_of(client, ns, "many")) == 3

        # Removing one pod updates its slice in place: names stay the same.
        names = sorted(s["metadata"]["name"] for s in sl)
        await client.delete("v1", "pods", "m0", ns)

        async def six() -> list[Obj] | None:
            sl = await slices_of(client, ns, "many")
            n = sum(len(s.get("endpoints") or []) for s in sl)
            return sl if n == 6 else None

        sl = await wait_for(six, what="6 endpoints")
        assert sorted(s["metadata"]["name"] for s in sl) == names
