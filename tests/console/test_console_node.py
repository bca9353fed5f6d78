"""``kyb console`` on a real node (root, containerd): a container's log streamed through the
console, a crash-looping container's last lines among the problems, the kubelet's stage of a
journey from the kubelet's own events."""

from __future__ import annotations

import json
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.test_console_api import Console, until
from tests.e2e.test_node import Node, _node_missing, _pick_network, pod, require_kubectl, running_node

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    reason = _node_missing()
    if reason and os.environ.get("CI"):
        pytest.fail(reason)  # CI runs node tests as root, with containerd
    if reason:
        pytest.skip(reason)
    require_kubectl()
    with running_node(tmp_path_factory.mktemp("kyb-console-node").resolve(), "console-node", _pick_network()) as n:
        yield n


@pytest.fixture(scope="module")
def console(node: Node) -> Iterator[Console]:
    c = Console(node.server.kubeconfig, "--component-url", "kube-scheduler=", "--component-url",
                "kube-controller-manager=", "--component-url", "cloud-controller-manager=")
    try:
        yield c
    finally:
        c.stop()


def sse_data(console: Console, path: str, count: int) -> list[str]:
    """The first ``count`` ``data:`` lines of an event stream (then the connection is dropped)."""
    req = urllib.request.Request(console.base + path, headers={"Authorization": f"Bearer {console.token}"})
    out: list[str] = []
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        while len(out) < count:
            line = r.readline().decode().rstrip("\n")
            if line.startswith("data: "):
                out.append(line[6:])
    return out


def test_a_containers_log_streams_and_its_journey_has_the_kubelets_stage(node: Node, console: Console) -> None:
    node.apply("default", pod("talker", "echo hello; echo from kybernetes; while true; do echo tick; sleep 0.2; done"))
    until(lambda: node.kubectl("get", "pod", "talker", "-o", "jsonpath={.status.phase}").stdout == "Running",
          60, "the pod running")
    assert sse_data(console, "/api/logs/default/talker?container=c&tailLines=100", 3) == \
        ["hello", "from kybernetes", "tick"]

    def started() -> Any:
        j = console.json("/api/journey/pods/default/talker")
        kubelet = next(s for s in j["stages"] if s["stage"] == "kubelet")
        return kubelet if kubelet["ok"] is True else None

    kubelet = until(started, 30, "the kubelet's stage done")
    assert any(s["title"].startswith("Started") for s in kubelet["steps"])
    assert kubelet["actor"] == f"kubelet on {node.node_name}"
    node.kubectl("expose", "pod", "talker", "--port=80")

    def programmed() -> Any:
        j = console.json("/api/journey/pods/default/talker")
        stages = {s["stage"]: s for s in j["stages"]}
        return stages if stages["endpoints"]["ok"] and stages["proxy"]["ok"] else None

    stages = until(programmed, 30, "kube-proxy's sync after the endpoints")
    assert stages["endpoints"]["title"] == "endpoints of Service talker"
    assert stages["proxy"]["time"] >= stages["endpoints"]["time"]
    node.kubectl("delete", "service", "talker", "--wait=false")


def test_a_crash_loop_is_a_problem_with_its_last_lines(node: Node, console: Console, tmp_path: Path) -> None:
    node.apply("default", pod("crasher", "echo about to fail; echo goodbye; exit 3"))

    def crashing() -> Any:
        items = console.json("/api/problems")["items"]
        return [p for p in items if p["name"] == "crasher" and p["reason"] == "CrashLoopBackOff"]

    found = until(crashing, 90, "CrashLoopBackOff among the problems")[0]
    assert found["severity"] == "error" and found["container"] == "c"
    assert found["logTail"][-2:] == ["about to fail", "goodbye"], json.dumps(found)
    node.kubectl("delete", "pod", "crasher", "talker", "--wait=false")


def test_the_architecture_shows_the_nodes_kube_proxy_healthy(node: Node, console: Console) -> None:
    """kube-proxy's /healthz through the API server's node proxy (a node of this machine)."""

    def proxy() -> Any:
        entry = next((n for n in console.json("/api/overview")["nodes"] if n["name"] == node.node_name), None)
        return entry["proxy"] if entry and entry["proxy"]["health"] == "ok" else None

    assert until(proxy, 30, "kube-proxy ok in the overview")["detail"] == "/healthz ok"
