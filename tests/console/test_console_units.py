"""The console's machinery on plain objects: rows, journeys, problems, rates, and the token/cookie auth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import ClientSession, CookieJar
from aiohttp.test_utils import TestServer

from kybernetes.client import Client
from kybernetes.client.kubeconfig import ClusterConfig
from kybernetes.console import problems
from kybernetes.console.architecture import Sample, lease_health, parse_sums, rate, rates_of, readyz_check
from kybernetes.console.journey import journey
from kybernetes.console.rows import KINDS, camel, columns, make_row, node_extras, ready_endpoints, sort_key
from kybernetes.console.server import COOKIE, Console, ConsoleConfig

Obj = dict[str, Any]
NOW = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def ts(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def meta(name: str, ns: str = "default", uid: str = "", ago: float = 60, owner: Obj | None = None,
         manager: str = "kubectl") -> Obj:
    m: Obj = {"name": name, "namespace": ns, "uid": uid or f"uid-{name}", "creationTimestamp": ts(ago),
              "managedFields": [{"manager": manager, "operation": "Update", "time": ts(ago)}]}
    if owner is not None:
        m["ownerReferences"] = [{"kind": owner["kind"], "name": owner["metadata"]["name"],
                                 "uid": owner["metadata"]["uid"], "controller": True}]
    return m


def pod(name: str, *, node: str = "", phase: str = "Running", ready: bool = True, owner: Obj | None = None,
        ip: str = "", selector: Obj | None = None, waiting: str = "", restarts: int = 0) -> Obj:
    state: Obj = {"waiting": {"reason": waiting}} if waiting else {"running": {"startedAt": ts(30)}}
    conditions = [{"type": "PodScheduled", "status": "True" if node else "False",
                   "reason": "" if node else "Unschedulable", "lastTransitionTime": ts(50),
                   "message": "" if node else "0/2 nodes are available: 2 node(s) didn't match Pod's node "
                                              "affinity/selector."}]
    if node:
        conditions.append({"type": "Ready", "status": "True" if ready else "False", "lastTransitionTime": ts(20)})
    return {"kind": "Pod", "apiVersion": "v1",
            "metadata": meta(name, ago=55, owner=owner, manager="kube-controller-manager" if owner else "kubectl"),
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}],
                     **({"nodeSelector": selector} if selector else {})},
            "status": {"phase": phase if node else "Pending", "podIP": ip, "conditions": conditions,
                       "containerStatuses": [{"name": "c", "ready": ready and not waiting, "restartCount": restarts,
                                              "state": state}] if node else []}}


def node(name: str, ready: str = "True") -> Obj:
    return {"kind": "Node", "apiVersion": "v1", "metadata": {"name": name, "uid": f"uid-{name}", "labels": {},
                                                             "creationTimestamp": ts(600)},
            "spec": {},
            "status": {"capacity": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
                       "conditions": [{"type": "Ready", "status": ready, "reason": "KubeletReady",
                                       "lastTransitionTime": ts(300)}],
                       "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
                       "nodeInfo": {"kubeletVersion": "v1.32.0"}}}


def event(involved: Obj, reason: str, message: str, ago: float, type_: str = "Normal") -> Obj:
    m = involved["metadata"]
    return {"kind": "Event", "metadata": {"name": f"{m['name']}.{reason}", "namespace": m.get("namespace", "")},
            "involvedObject": {"kind": involved["kind"], "namespace": m.get("namespace", ""), "name": m["name"]},
            "reason": reason, "message": message, "type": type_, "lastTimestamp": ts(ago), "count": 1}


class ListSource:
    """The journey's Source over plain lists (the model answers the same from its indexes)."""

    def __init__(self, **objects: list[Obj]) -> None:
        self.objs = objects

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        return next((o for o in self.objs.get(resource, []) if o["metadata"]["name"] == name
                     and o["metadata"].get("namespace", "") == namespace), None)

    def owned(self, resource: str, uid: str) -> list[Obj]:
        return [o for o in self.objs.get(resource, [])
                if any(r["uid"] == uid for r in o["metadata"].get("ownerReferences", []))]

    def events_for(self, kind: str, namespace: str, name: str) -> list[Obj]:
        return [e for e in self.objs.get("events", []) if e["involvedObject"] == {
            "kind": kind, "namespace": namespace, "name": name}]

    def objects(self, resource: str, namespace: str = "") -> list[Obj]:
        return [o for o in self.objs.get(resource, []) if not namespace or o["metadata"].get("namespace") == namespace]


# -- rows --------------------------------------------------------------------------------------------


def test_column_keys_are_camel_case_titles() -> None:
    assert [camel(t) for t in ("Up-to-date", "Cluster-IP", "Port(s)", "IP", "Last Seen", "OS-Image")] == \
        ["upToDate", "clusterIP", "ports", "ip", "lastSeen", "osImage"]
    assert [c["key"] for c in columns(KINDS["pods"])] == ["ready", "status", "restarts", "age", "ip", "node"]
    assert [c["key"] for c in columns(KINDS["events"])] == ["lastSeen", "type", "reason", "object", "message"]
    assert [c["key"] for c in columns(KINDS["deployments"])] == ["ready", "upToDate", "available", "age"]


def test_pod_rows_read_as_kubectl_prints_them() -> None:
    running = make_row(KINDS["pods"], pod("web", node="n1", ip="10.42.0.5"), NOW).cells
    assert running | {"uid": ""} == running | {
        "namespace": "default", "name": "web", "uid": "", "ready": "1/1", "status": "Running", "restarts": "0",
        "age": "55s", "ip": "10.42.0.5", "node": "n1"}
    crashing = make_row(KINDS["pods"], pod("bad", node="n1", waiting="CrashLoopBackOff", restarts=4), NOW).cells
    assert (crashing["status"], crashing["ready"]) == ("CrashLoopBackOff", "0/1")
    assert make_row(KINDS["pods"], pod("p"), NOW).cells["status"] == "Pending"


def test_deployment_and_node_rows() -> None:
    dep = {"kind": "Deployment", "metadata": meta("d"), "spec": {"replicas": 3, "template": {"spec": {}}},
           "status": {"replicas": 3, "readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}}
    cells = make_row(KINDS["deployments"], dep, NOW).cells
    assert (cells["ready"], cells["upToDate"], cells["available"], cells["age"]) == ("2/3", 3, 2, "60s")
    n = node("n1")
    cells = make_row(KINDS["nodes"], n, NOW, node_extras(n, {"cpu": "250m", "memory": "512Mi"})).cells
    assert (cells["status"], cells["version"], cells["cpuCapacity"], cells["memoryAllocatable"],
            cells["cpuUsage"], cells["internalIP"]) == ("Ready", "v1.32.0", "4", "8Gi", "250m", "10.0.0.1")
    assert node_extras(n, None)["memoryUsage"] == ""


def test_ready_endpoints_and_natural_sort() -> None:
    sl = {"endpoints": [{"addresses": ["10.0.0.1"], "conditions": {"ready": True}},
                        {"addresses": ["10.0.0.2"], "conditions": {"ready": False}}, {"addresses": ["10.0.0.3"]}]}
    assert ready_endpoints(sl) == 2
    names = ["pod-10", "pod-9", "Pod-1", "pod-100"]
    assert sorted(names, key=sort_key) == ["Pod-1", "pod-9", "pod-10", "pod-100"]
    assert sorted([3, 10, 2], key=sort_key) == [2, 3, 10]


# -- journey -----------------------------------------------------------------------------------------


def test_journey_of_a_deployment_follows_owners_to_the_pod_and_its_service() -> None:
    dep = {"kind": "Deployment", "metadata": meta("web", ago=60), "spec": {}, "status": {}}
    rs = {"kind": "ReplicaSet", "metadata": meta("web-abc", ago=59, owner=dep, manager="kube-controller-manager")}
    p = pod("web-abc-x", node="n1", owner=rs, ip="10.42.0.7")
    sl = {"kind": "EndpointSlice", "metadata": {**meta("web-xyz", ago=10, manager="endpointslice-controller"),
                                                "labels": {"kubernetes.io/service-name": "web"}},
          "endpoints": [{"addresses": ["10.42.0.7"], "conditions": {"ready": True}}]}
    events = [event(p, "Scheduled", "Successfully assigned default/web-abc-x to n1", 50),
              event(p, "Pulled", "Container image already present", 40),
              event(p, "Started", "Started container c", 30)]
    src = ListSource(deployments=[dep], replicasets=[rs], pods=[p], events=events, endpointslices=[sl],
                     nodes=[node("n1")])
    out = journey(src, dep, lambda n: ts(5))
    stages = {s["stage"]: s for s in out["stages"]}
    assert [s["stage"] for s in out["stages"]] == ["accepted", "controller", "scheduled", "kubelet", "endpoints",
                                                   "proxy"]
    assert stages["accepted"]["detail"].startswith("created by kubectl")
    assert "ReplicaSet web-abc created by kube-controller-manager" in [s["title"] for s in stages["controller"]["steps"]]
    assert stages["scheduled"]["title"] == "scheduled to n1" and stages["scheduled"]["ok"] is True
    assert stages["kubelet"]["ok"] is True and any(s["title"].startswith("Started") for s in stages["kubelet"]["steps"])
    assert stages["endpoints"]["title"] == "endpoints of Service web"
    assert stages["proxy"]["ok"] is True
    assert out["pods"] == [{"name": "web-abc-x", "phase": "Running", "node": "n1"}]
    assert out["scheduling"] is None


def test_journey_of_a_pending_pod_carries_the_schedulers_explanation() -> None:
    p = pod("stuck", selector={"disk": "ssd"})
    failed = event(p, "FailedScheduling", "0/2 nodes are available: 2 node(s) didn't match Pod's node "
                                          "affinity/selector.", 5, "Warning")
    src = ListSource(pods=[p], nodes=[node("n1"), node("n2")], events=[failed])
    out = journey(src, p)
    stages = {s["stage"]: s for s in out["stages"]}
    assert stages["scheduled"]["ok"] is False and stages["kubelet"]["time"] is None
    assert stages["kubelet"]["ok"] is None
    sched = out["scheduling"]
    assert sched["fits"] == [] and sched["message"] == failed["message"]
    assert {n["node"]: n["verdict"] for n in sched["nodes"]} == {"n1": "rejected", "n2": "rejected"}
    assert all("node affinity/selector" in " ".join(n["reasons"]) for n in sched["nodes"])
    assert any("nodeSelector" in s for s in sched["suggestions"])
    # Stages not reached come last, in stage order.
    assert [s["stage"] for s in out["stages"]][-3:] == ["kubelet", "endpoints", "proxy"]


def test_a_large_workloads_journey_is_capped() -> None:
    from kybernetes.console.journey import MAX_PODS, MAX_STEPS

    dep = {"kind": "Deployment", "metadata": meta("big", ago=60)}
    rs = {"kind": "ReplicaSet", "metadata": meta("big-1", ago=59, owner=dep)}
    pods = [pod(f"big-1-{i:04d}", node="n1", owner=rs) for i in range(MAX_PODS + 10)]
    out = journey(ListSource(deployments=[dep], replicasets=[rs], pods=pods), dep)
    controller = next(s for s in out["stages"] if s["stage"] == "controller")
    assert len(controller["steps"]) == MAX_STEPS + 1 and controller["steps"][-1]["title"] == f"and {MAX_PODS - MAX_STEPS + 11} more"
    assert (len(out["pods"]), out["podCount"]) == (MAX_PODS, MAX_PODS + 10)


# -- problems ----------------------------------------------------------------------------------------


def test_problems_per_object_and_their_order() -> None:
    crash = problems.object_problems("pods", pod("crash", node="n1", waiting="CrashLoopBackOff", restarts=3))
    assert [(p["reason"], p["container"], p["crashLoop"]) for p in crash] == [("CrashLoopBackOff", "c", True)]
    pending = problems.object_problems("pods", pod("stuck"))
    assert pending[0]["reason"] == "Unschedulable" and "affinity/selector" in pending[0]["message"]
    assert problems.object_problems("pods", pod("fine", node="n1")) == []
    assert problems.object_problems("nodes", node("n1")) == []
    assert problems.object_problems("nodes", node("n2", "Unknown"))[0]["reason"] == "Unknown"
    job = {"kind": "Job", "metadata": meta("j"), "status": {"conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the "
         "specified backoff limit", "lastTransitionTime": ts(1)}]}}
    assert problems.object_problems("jobs", job)[0]["journey"] == "/api/journey/jobs/default/j"
    dep = {"kind": "Deployment", "metadata": meta("d"), "status": {"unavailableReplicas": 2, "conditions": [
        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "lastTransitionTime": ts(2)}]}}
    slow = problems.object_problems("deployments", dep)
    assert (slow[0]["severity"], slow[0]["unavailable"]) == ("warning", 2)
    fresh = pod("new")
    fresh["status"]["conditions"] = []
    fresh["metadata"]["creationTimestamp"] = ts(5)
    unscheduled = problems.object_problems("pods", fresh)
    items = problems.collect([*slow, *crash, *pending, *unscheduled, *problems.object_problems("jobs", job)],
                             NOW, lambda ns, name: "")
    assert [p["name"] for p in items] == ["j", "stuck", "crash", "d"]  # errors newest first; grace hides "new"
    later = problems.collect(unscheduled, NOW + timedelta(seconds=120), lambda ns, name: "")
    assert [p["reason"] for p in later] == ["Pending"]


def test_a_pending_pods_message_falls_back_to_its_last_failed_scheduling_event() -> None:
    p = pod("stuck")
    p["status"]["conditions"][0]["message"] = ""
    items = problems.collect(problems.object_problems("pods", p), NOW, lambda ns, name: f"event for {ns}/{name}")
    assert items[0]["message"] == "event for default/stuck"


# -- rates ---------------------------------------------------------------------------------------------

SCRAPE_1 = """# HELP apiserver_request_total Counter of apiserver requests.
# TYPE apiserver_request_total counter
apiserver_request_total{verb="GET",code="200"} 100
apiserver_request_total{verb="LIST",code="200"} 50
apiserver_request_duration_seconds_bucket{verb="GET",le="0.1"} 7
# TYPE apiserver_longrunning_requests gauge
apiserver_longrunning_requests{verb="WATCH",resource="pods"} 4
apiserver_longrunning_requests{verb="WATCH",resource="nodes"} 3
apiserver_longrunning_requests{verb="CONNECT",resource="pods"} 9
# TYPE apiserver_current_inflight_requests gauge
apiserver_current_inflight_requests{request_kind="readOnly"} 2
apiserver_current_inflight_requests{request_kind="mutating"} 1
"""
SCRAPE_2 = SCRAPE_1.replace("} 100", "} 130").replace("} 50", "} 60")


def test_rates_from_two_scrapes() -> None:
    from kybernetes.console.architecture import WANTED

    first = Sample(10.0, parse_sums(SCRAPE_1, WANTED["kube-apiserver"]))
    second = Sample(12.0, parse_sums(SCRAPE_2, WANTED["kube-apiserver"]))
    assert first.sums["apiserver_longrunning_requests"] == 7  # WATCH only
    assert rate(first, second, "apiserver_request_total") == 20.0  # (190 - 150) / 2 s
    assert rates_of("kube-apiserver", first, second) == {"requestsPerSecond": 20.0, "watches": 7.0, "inflight": 3.0}
    assert rates_of("kube-apiserver", None, first) == {"watches": 7.0, "inflight": 3.0}  # one scrape: no rate
    declared = "# HELP scheduler_schedule_attempts_total x\n# TYPE scheduler_schedule_attempts_total counter\n"
    assert parse_sums(declared, WANTED["kube-scheduler"]) == {"scheduler_schedule_attempts_total": 0.0}
    restarted = Sample(14.0, parse_sums(SCRAPE_1.replace("} 100", "} 1"), WANTED["kube-apiserver"]))
    assert rate(second, restarted, "apiserver_request_total") is None


def test_health_from_leases_and_readyz() -> None:
    lease = {"spec": {"holderIdentity": "a", "renewTime": ts(5), "leaseDurationSeconds": 15}}
    assert lease_health(lease, NOW)[:3] == ("ok", "lease renewed by a", "a")
    assert lease_health(lease, NOW + timedelta(seconds=30))[0] == "failing"
    assert lease_health(None, NOW)[0] == "unknown"
    assert readyz_check("[+]ping ok\n[-]etcd failed: reason withheld\nreadyz check failed", "etcd") == "failed"
    assert readyz_check("[+]etcd ok\n", "etcd") == "ok"


# -- token and cookie --------------------------------------------------------------------------------


@pytest.fixture
async def console_url(tmp_path: Any) -> Any:
    (tmp_path / "index.html").write_text("<!doctype html><title>console</title>")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "app.js").write_text("export {};")
    client = Client(ClusterConfig(server="http://127.0.0.1:9"))  # never called by these requests
    console = Console(client, ConsoleConfig(token="T0K", static_dir=tmp_path))
    server = TestServer(console.app())
    await server.start_server()
    try:
        yield str(server.make_url("")), console
    finally:
        await server.close()
        await client.close()


async def test_the_token_becomes_a_cookie_and_nothing_is_served_without_it(console_url: Any) -> None:
    base, console = console_url
    async with ClientSession(cookie_jar=CookieJar(unsafe=True)) as s:  # unsafe: cookies of IP addresses
        for path in ("/", "/api/overview", "/lib/app.js", "/?token=wrong"):
            async with s.get(base + path, allow_redirects=False) as r:
                assert r.status == 401, path
                assert (await r.json())["code"] == 401
        async with s.get(base + "/?token=T0K", allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/"
            cookie = r.headers["Set-Cookie"]
            assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie
            assert "Path=/" in cookie and "T0K" not in cookie
        async with s.get(base + "/") as r:  # the session's cookie jar now holds it
            assert r.status == 200 and "console" in await r.text()
        async with s.get(base + "/lib/app.js") as r:
            assert r.status == 200
        async with s.get(base + "/../../etc/passwd") as r:
            assert r.status == 404
    async with ClientSession() as other:  # the token stays valid for another tab
        async with other.get(base + "/lib/app.js", headers={"Authorization": "Bearer T0K"}) as r:
            assert r.status == 200
        async with other.get(base + "/lib/app.js", headers={"Authorization": "Bearer nope"}) as r:
            assert r.status == 401
    assert len(console.sessions) == 1


async def test_no_token_serves_everyone(tmp_path: Any) -> None:
    (tmp_path / "index.html").write_text("<!doctype html><title>open console</title>")
    client = Client(ClusterConfig(server="http://127.0.0.1:9"))
    server = TestServer(Console(client, ConsoleConfig(token=None, static_dir=tmp_path)).app())
    await server.start_server()
    try:
        async with ClientSession() as s, s.get(str(server.make_url("/"))) as r:
            assert r.status == 200 and "open console" in await r.text()
    finally:
        await server.close()
        await client.close()


def test_the_accepted_stage_names_who_wrote_the_spec_not_a_status_writer() -> None:
    """A Deployment applied by kubectl, then its status written by the controller manager: the
    entries are sorted by manager name, and the status one (a subresource's) is not the creator."""
    from kybernetes.console.journey import accepted

    dep = {"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns", "creationTimestamp": "2026-12-07T10:00:00Z",
                                              "managedFields": [
        {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status",
         "time": "2026-12-07T10:00:00Z"},
        {"manager": "kubectl-client-side-apply", "operation": "Update", "time": "2026-12-07T10:00:00Z"}]}}
    assert accepted(dep)["detail"].startswith("created by kubectl-client-side-apply;")
