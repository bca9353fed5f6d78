"""``kyb console`` against a real ``kyb server`` with hollow nodes: the HTTP API of CONSOLE.md.

One server (scheduler and controllers), two hollow nodes and two console processes for the
module: one as the admin, one as a service account that may only read one namespace."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import ClientSession, ClientTimeout

from kybernetes.testing import ConsoleProcess, ServerProcess, stop_process

pytestmark = pytest.mark.integration

NODES = ("console-n1", "console-n2")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess.start(tmp_path_factory.mktemp("kyb-console"), control_plane=True)
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def hollow(server: ServerProcess) -> Iterator[None]:
    log = open(server.data_dir / "hollow.log", "ab")  # noqa: SIM115 (the child holds it)
    proc = subprocess.Popen([sys.executable, "-m", "kybernetes.cli", "hollow-nodes", "--kubeconfig",
                             str(server.kubeconfig), "--count", "2", "--name-prefix", "console-n", "--first-index",
                             "1", "--lease-interval", "1"], stdout=log, stderr=log, start_new_session=True)
    log.close()
    try:
        jsonpath = '{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status} {end}'
        until(lambda: server.kubectl("get", "nodes", "-o", f"jsonpath={jsonpath}").stdout.split()
              == [f"{n}=True" for n in NODES], 30, "two Ready hollow nodes")
        yield
    finally:
        stop_process(proc, 20)


class Console:
    """A ``kyb console`` process: its base URL, token, and a JSON getter."""

    def __init__(self, kubeconfig: Path, *extra: str) -> None:
        # ConsoleProcess reads the URL line with a deadline (a console that never prints one fails
        # the test with its log instead of hanging it).
        log = Path(tempfile.mkstemp(prefix="kyb-console-", suffix=".log")[1])
        process = ConsoleProcess.start(kubeconfig, log, *extra)
        assert process.url.startswith("http://127.0.0.1:") and "/?token=" in process.url, process.url
        self.proc, self.url, self.base, self.token = process.proc, process.url, process.base, process.token

    def get(self, path: str, token: str | None = "") -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token if token == '' else token}"} if token is not None else {}
        req = urllib.request.Request(self.base + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return body

    def stop(self) -> None:
        stop_process(self.proc, 10)


@pytest.fixture(scope="module")
def console(server: ServerProcess, hollow: None) -> Iterator[Console]:
    c = Console(server.kubeconfig,
                "--component-url", f"kube-scheduler=https://127.0.0.1:{server.secure_ports['scheduler']}",
                "--component-url", f"kube-controller-manager=https://127.0.0.1:{server.secure_ports['controller-manager']}",
                "--component-url", "cloud-controller-manager=")
    try:
        yield c
    finally:
        c.stop()


def until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def apply(server: ServerProcess, manifest: str) -> None:
    server.kubectl("apply", "-f", "-", input=manifest)


def test_nothing_without_the_token(console: Console) -> None:
    for path in ("/api/overview", "/api/list/pods", "/"):
        status, body = console.get(path, token=None)
        assert (status, body["code"]) == (401, 401), path
        assert body["error"]
    assert console.get("/api/session", token="wrong")[0] == 401


def test_session_overview_and_the_nodes_list(console: Console) -> None:
    session = console.json("/api/session")
    assert session["user"] == "system:admin" and session["server"].startswith("https://127.0.0.1:")

    seen: list[Any] = []

    def overview() -> Any:
        o = console.json("/api/overview")
        seen[:] = [o]
        parts = {c["name"]: c for c in o["controlPlane"]}
        ready = all(parts[n]["health"] == "ok" for n in ("kube-apiserver", "store", "kube-scheduler",
                                                         "kube-controller-manager"))
        return o if ready and o["nodeCount"] == 2 and "requestsPerSecond" in parts["kube-apiserver"]["rates"] \
            and "attemptsPerSecond" in parts["kube-scheduler"]["rates"] else None

    try:
        o = until(overview, 20, "an overview with every component ok, two nodes and rates")
    except AssertionError as e:
        raise AssertionError(f"{e}; the last overview: {seen}") from None
    parts = {c["name"]: c for c in o["controlPlane"]}
    assert parts["kube-apiserver"]["rates"]["watches"] > 0
    assert parts["kube-scheduler"]["holder"] and parts["kube-scheduler"]["renewed"]
    assert parts["cloud-controller-manager"]["health"] == "unknown"  # not running here, no lease
    assert [n["name"] for n in o["nodes"]] == list(NODES)
    assert all(n["ready"] is True and n["kubelet"]["health"] == "ok" for n in o["nodes"])
    nodes = console.json("/api/list/nodes")
    assert nodes["forbidden"] is False and nodes["total"] == 2
    assert [r["name"] for r in nodes["items"]] == list(NODES)
    assert nodes["items"][0]["status"] == "Ready" and nodes["items"][0]["cpuCapacity"] == "32"


def test_pods_of_a_deployment_appear_running_with_sort_filter_and_pages(server: ServerProcess,
                                                                        console: Console) -> None:
    server.kubectl("create", "namespace", "shop")
    server.kubectl("create", "deployment", "web", "--image=busybox", "--replicas=3", "-n", "shop")

    def running() -> Any:
        page = console.json("/api/list/pods?namespace=shop")
        return page if page["total"] == 3 and all(r["status"] == "Running" and r["ready"] == "1/1"
                                                  for r in page["items"]) else None

    page = until(running, 20, "three Running pods")
    assert [c["key"] for c in page["columns"]] == ["ready", "status", "restarts", "age", "ip", "node"]
    assert all(r["node"] in NODES and r["name"].startswith("web-") for r in page["items"])
    names = sorted(r["name"] for r in page["items"])
    first = console.json("/api/list/pods?namespace=shop&sort=name&order=desc&limit=2")
    assert (first["total"], [r["name"] for r in first["items"]]) == (3, names[::-1][:2])
    second = console.json("/api/list/pods?namespace=shop&sort=name&order=desc&limit=2&offset=2")
    assert [r["name"] for r in second["items"]] == names[:1]
    assert console.json(f"/api/list/pods?q={names[0][-5:]}")["total"] == 1
    assert console.json("/api/list/pods?q=app%3Dweb")["total"] == 3  # a label selector
    assert console.get("/api/list/pods?q=app%3D%3D%3D")[0] == 400
    dep = until(lambda: [d for d in console.json("/api/list/deployments?namespace=shop")["items"]
                         if d["available"] == 3], 15, "the Deployment's status")[0]
    assert (dep["name"], dep["ready"], dep["upToDate"], dep["available"]) == ("web", "3/3", 3, 3)
    server.kubectl("expose", "deployment", "web", "--port=80", "-n", "shop")
    svc = until(lambda: [r for r in console.json("/api/list/services?namespace=shop")["items"]
                         if r["endpoints"] == 3], 15, "the Service's three endpoints")[0]
    assert (svc["name"], svc["type"], svc["ports"]) == ("web", "ClusterIP", "80/TCP")
    events = console.json("/api/list/events?namespace=shop&sort=lastSeen&q=web")
    assert [c["key"] for c in events["columns"]] == ["lastSeen", "type", "reason", "object", "message"]
    assert any(e["reason"] == "Scheduled" and e["object"].startswith("pod/web-") for e in events["items"])
    journey = console.json("/api/journey/deployments/shop/web")
    stages = {s["stage"]: s for s in journey["stages"]}
    assert stages["accepted"]["ok"] and stages["controller"]["ok"] and stages["scheduled"]["ok"]
    assert "ReplicaSet" in stages["controller"]["detail"] and len(journey["pods"]) == 3
    assert stages["endpoints"]["ok"] is True and stages["endpoints"]["title"] == "endpoints of Service web"
    obj = console.json(f"/api/object/pods/shop/{names[0]}")
    assert obj["object"]["metadata"]["name"] == names[0] and "kind: Pod" in obj["yaml"]
    assert console.get("/api/object/pods/shop/nope") == (404, {"error": 'pods "nope" not found', "code": 404})


def test_a_pending_pods_journey_and_problem_carry_the_schedulers_reason(server: ServerProcess,
                                                                         console: Console) -> None:
    apply(server, """apiVersion: v1
kind: Pod
metadata: {name: stuck, namespace: default}
spec:
  nodeSelector: {disktype: unobtainium}
  containers: [{name: c, image: busybox}]
""")

    def explained() -> Any:  # the scheduler has tried (its condition or event), not only the console's explanation
        j = console.json("/api/journey/pods/default/stuck")
        scheduled = next(s for s in j["stages"] if s["stage"] == "scheduled")
        return j if scheduled["ok"] is False and j["scheduling"]["message"].startswith("0/2 nodes are available") \
            else None

    j = until(explained, 20, "the scheduler's verdict")
    assert "didn't match Pod's node affinity/selector" in j["scheduling"]["message"]
    assert {n["node"]: n["verdict"] for n in j["scheduling"]["nodes"]} == {n: "rejected" for n in NODES}
    assert any("nodeSelector" in s for s in j["scheduling"]["suggestions"])
    stages = {s["stage"]: s for s in j["stages"]}
    assert stages["scheduled"]["ok"] is False and stages["kubelet"]["time"] is None
    problems = until(lambda: [p for p in console.json("/api/problems")["items"] if p["name"] == "stuck"], 10,
                     "the pending pod among the problems")
    assert problems[0]["severity"] == "error" and problems[0]["reason"] == "Unschedulable"
    assert "node affinity/selector" in problems[0]["message"]
    assert problems[0]["journey"] == "/api/journey/pods/default/stuck"


async def test_the_stream_says_changed_after_a_create(server: ServerProcess, console: Console) -> None:
    console.json("/api/list/pods")  # the pods cache is started
    before = console.json("/api/list/pods")["version"]
    async with ClientSession(timeout=ClientTimeout(total=20)) as s, \
            s.get(console.base + "/api/stream", headers={"Authorization": f"Bearer {console.token}"}) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        await asyncio.to_thread(server.kubectl, "run", "streamed", "--image=busybox", "-n", "default")
        event, seen = "", set()
        while seen != {"changed", "overview"}:
            line = (await r.content.readline()).decode().strip()
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "changed":
                if json.loads(line[6:])["versions"]["pods"] > before:
                    seen.add(event)
            elif line.startswith("data: ") and event == "overview":
                assert json.loads(line[6:])["nodeCount"] == 2
                seen.add(event)


def test_a_user_who_reads_one_namespace(server: ServerProcess, console: Console, tmp_path: Path) -> None:
    server.kubectl("create", "namespace", "team")
    server.kubectl("create", "serviceaccount", "reader", "-n", "team")
    server.kubectl("create", "rolebinding", "reader", "--clusterrole=view", "--serviceaccount=team:reader",
                   "-n", "team")
    server.wait_allowed("list", "pods", "system:serviceaccount:team:reader", namespace="team")
    token = server.kubectl("create", "token", "reader", "-n", "team").stdout.strip()
    admin = yaml.safe_load(server.kubeconfig.read_text())
    admin["users"] = [{"name": "reader", "user": {"token": token}}]
    admin["contexts"][0]["context"]["user"] = "reader"
    kubeconfig = tmp_path / "reader.yaml"
    kubeconfig.write_text(yaml.safe_dump(admin))
    reader = Console(kubeconfig, "--component-url", "kube-scheduler=", "--component-url",
                     "kube-controller-manager=", "--component-url", "cloud-controller-manager=")
    try:
        assert reader.json("/api/session")["user"] == "system:serviceaccount:team:reader"
        nodes = reader.json("/api/list/nodes")
        assert (nodes["forbidden"], nodes["items"]) == (True, [])
        assert reader.json("/api/list/pods")["forbidden"] is True
        server.kubectl("run", "mine", "--image=busybox", "-n", "team")
        mine = until(lambda: reader.json("/api/list/pods?namespace=team")["items"], 15, "the team's pod")
        assert [r["name"] for r in mine] == ["mine"]
        assert reader.get("/api/journey/pods/shop/anything")[0] == 403
        assert reader.json("/api/journey/pods/team/mine")["object"]["name"] == "mine"
        overview = reader.json("/api/overview")  # nodes and leases unreadable: empty, unknown, never an error
        assert (overview["nodeCount"], overview["nodes"]) == (0, [])
        assert {c["name"]: c["health"] for c in overview["controlPlane"]}["kube-scheduler"] == "unknown"
        assert reader.json("/api/problems?namespace=team")["items"] == []
    finally:
        reader.stop()


def test_kyb_server_names_the_console(server: ServerProcess) -> None:
    assert f"Console: kyb console --kubeconfig {server.kubeconfig}" in server.log()
