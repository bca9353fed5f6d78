"""The console in a real browser, against a real cluster: what a person sees, checked on the page.

One ``kyb server`` with its own node (kubelet on a private containerd: real containers, real logs),
one ``kyb console`` on its admin kubeconfig and one headless Chromium (Debian's, driven by Playwright)
are shared by the module (``tests/console/browser.py``). Every test works in a namespace of its own
and finds things through the UI's ``data-testid`` hooks, waiting (Playwright's auto-waiting
assertions) for what the console's watches bring in, never polling the API to decide what the page
should show. Screenshots of the main views go to the directory printed at the start.

Needs root (containerd, CNI), kubectl, Debian's chromium and the playwright wheel: outside CI a
machine without them skips, saying which is missing; CI has them all (scripts/setup.sh).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.e2e.conftest import require_kubectl, wait_until
from tests.e2e.test_node import BUSYBOX, Node, _node_missing, _pick_network, running_node

from .browser import ConsoleUI, artifacts_dir, console_ui, expect, require_browser

pytestmark = pytest.mark.integration

Obj = dict[str, Any]
DEPLOYMENT = "web"
IMPOSSIBLE = {"kybernetes.test/console": "no-such-node"}


@dataclass
class Setup:
    node: Node
    ui: ConsoleUI

    def kubectl(self, *args: str, input: str | None = None) -> str:
        return self.node.kubectl(*args, input=input).stdout

    def namespace(self, name: str) -> str:
        self.kubectl("create", "namespace", name)
        wait_until(lambda: self.node.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
                   30, f"the default ServiceAccount in {name}")
        return name


def require_everything() -> None:
    reason = _node_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root with containerd: {reason}")
        pytest.skip(f"outside CI, and this machine cannot run a node: {reason}")
    require_kubectl()
    require_browser()


@pytest.fixture(scope="module")
def setup(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    require_everything()
    artifacts = artifacts_dir(request, tmp_path_factory)
    tmp = tmp_path_factory.mktemp("console-node").resolve()
    with running_node(tmp, "console", _pick_network()) as node, \
            console_ui(node.server.kubeconfig, tmp, artifacts) as ui:
        yield Setup(node, ui)


@pytest.fixture(autouse=True)
def screenshot_on_failure(setup: Setup, request: pytest.FixtureRequest) -> Iterator[None]:
    """A failed test leaves the page as it was then among the screenshots (``failed-<test>.png``)."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:  # the call's report is counted before teardown
        setup.ui.screenshot(f"failed-{request.node.name}")


def busybox_pod_spec(script: str, **extra: Any) -> Obj:
    return {"terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                            "command": ["sh", "-c", script]}], **extra}


def deployment(name: str, replicas: int) -> Obj:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": busybox_pod_spec("echo serving; exec sleep 3600")}}}


def pod(name: str, script: str, **extra: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": busybox_pod_spec(script, **extra)}


def service(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
            "spec": {"selector": {"app": name}, "ports": [{"port": 80, "targetPort": 8080}]}}


def apply(s: Setup, ns: str, obj: Obj) -> None:
    s.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj))


def test_architecture_shows_the_control_plane_and_the_node(setup: Setup) -> None:
    ui = setup.ui
    ui.goto("#/architecture")
    for component in ("kube-apiserver", "store", "kube-scheduler", "kube-controller-manager"):
        expect(ui.testid(f"arch-component-{component}")).to_be_visible()
    # The node is drawn Ready, from the Node the console watches.
    expect(ui.testid(f"arch-node-{setup.node.node_name}")).to_contain_text("Ready")
    ui.screenshot("architecture")


def test_deployment_pods_appear_and_become_running(setup: Setup) -> None:
    ui, ns = setup.ui, setup.namespace("browser-deploy")
    ui.goto(f"#/pods?ns={ns}")
    ui.testid("list-table").wait_for(state="visible")
    expect(ui.rows(ns)).to_have_count(0)  # the page is open and empty before the apply
    apply(setup, ns, deployment(DEPLOYMENT, 2))
    apply(setup, ns, service(DEPLOYMENT))
    # The rows arrive through the console's watch (the page re-fetches on `changed`), no reload.
    expect(ui.rows(ns, f"{DEPLOYMENT}-")).to_have_count(2)
    for i in range(2):
        expect(ui.rows(ns, f"{DEPLOYMENT}-").nth(i).get_by_test_id("cell-status")).to_have_text(
            "Running", timeout=60_000)
    names = sorted(p["metadata"]["name"] for p in json.loads(setup.kubectl(
        "get", "pods", "-n", ns, "-l", f"app={DEPLOYMENT}", "-o", "json"))["items"])
    assert ui.row_names(ns, f"{DEPLOYMENT}-") == names
    ui.screenshot("pods")
    # The Deployment's journey, every stage done: accepted, the ReplicaSet's pods, scheduled,
    # started by the kubelet, in the Service's EndpointSlice.
    ui.goto(f"#/journey/deployments/{ns}/{DEPLOYMENT}")
    for stage in ("accepted", "controller", "scheduled", "kubelet", "endpoints"):
        expect(ui.testid(f"journey-stage-{stage}")).to_have_class(re.compile(r"\bstate-ok\b"))
    expect(ui.testid("journey-stage-scheduled")).to_contain_text(f"to {setup.node.node_name}")
    ui.screenshot("journey-deployment", full_page=True)
    # The architecture picture follows: the node now counts the running pods.
    ui.goto("#/architecture")
    expect(ui.testid(f"arch-node-{setup.node.node_name}")).to_contain_text(re.compile(r"\b[1-9]\d* running"))
    ui.screenshot("architecture-busy")


def test_pending_pods_journey_shows_the_schedulers_reason(setup: Setup) -> None:
    ui, ns = setup.ui, setup.namespace("browser-pending")
    apply(setup, ns, pod("stuck", "exec sleep 3600", nodeSelector=IMPOSSIBLE))
    ui.goto(f"#/journey/pods/{ns}/stuck")
    # kube-scheduler's own wording for a node that fails the pod's nodeSelector.
    expect(ui.testid("scheduling-reason")).to_contain_text("didn't match Pod's node affinity/selector")
    ui.testid("journey-stage-scheduled").wait_for(state="visible")
    ui.screenshot("journey-pending")
    # Problems first: the pending pod is listed, with a link to the journey just seen.
    ui.goto("#/problems")
    expect(ui.testid(f"problem-Pod-{ns}-stuck")).to_contain_text("Unschedulable")
    ui.screenshot("problems")


def test_a_containers_log_streams_to_the_page(setup: Setup) -> None:
    ui, ns = setup.ui, setup.namespace("browser-logs")
    script = 'echo "hello from the console test"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1; done'
    apply(setup, ns, pod("talker", script))
    setup.node.wait_ready(ns, "talker")
    ui.goto(f"#/object/pods/{ns}/talker")
    log = ui.testid("log-view")
    expect(log).to_contain_text("hello from the console test")
    expect(log).to_contain_text(re.compile(r"tick \d+"))
    first = max(int(n) for n in re.findall(r"tick (\d+)", log.inner_text()))
    # Lines the container prints after the page opened arrive on the open stream (follow).
    expect(log).to_contain_text(f"tick {first + 2}", timeout=15_000)
    log.scroll_into_view_if_needed()
    ui.screenshot("pod-logs")
