"""Sidecar containers end to end on a real node: a `kyb server` with its agent, kubectl 1.32.

A Job whose pod has a sidecar (an init container with ``restartPolicy: Always``) completes once its
main container did: the kubelet stops the sidecar and the pod Succeeds. A Deployment's pod with a
sidecar becomes Ready (kubectl counts the sidecar in READY), and a sidecar that dies is restarted
by the kubelet while the main container keeps running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kybernetes.images.oci import BUSYBOX_IMAGE

from .conftest import Obj, wait_until
from .test_node import Node, _pick_network, require_node, running_node

pytestmark = pytest.mark.integration

NS = "sidecars"
LOOP = "trap 'exit 0' TERM; while true; do sleep 0.1; done"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    require_node()
    with running_node(tmp_path_factory.mktemp("kyb-sidecar-node").resolve(), "e2e-sc", _pick_network()) as n:
        n.kubectl("create", "namespace", NS)
        yield n


def sidecar(**extra: object) -> Obj:
    return {"name": "side", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent", "restartPolicy": "Always",
            "command": ["sh", "-c", f"touch /tmp/up; {LOOP}"], **extra}


def template(labels: dict[str, str], main: str, **spec: object) -> Obj:
    return {"metadata": {"labels": labels},
            "spec": {"terminationGracePeriodSeconds": 5, "initContainers": [sidecar(
                readinessProbe={"exec": {"command": ["test", "-f", "/tmp/up"]}, "periodSeconds": 1})],
                     "containers": [{"name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                                     "command": ["sh", "-c", main]}], **spec}}


def test_job_with_a_sidecar_completes(node: Node) -> None:
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "with-sidecar"},
           "spec": {"backoffLimit": 0, "template": template({"job": "with-sidecar"}, "sleep 1; echo work done",
                                                             restartPolicy="Never")}}
    node.apply(NS, job)
    node.kubectl("wait", "-n", NS, "--for=condition=complete", "job/with-sidecar", "--timeout=60s", timeout=70)
    pods = node.get("pods", "-n", NS, "-l", "job=with-sidecar")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    side = pods[0]["status"]["initContainerStatuses"][0]
    assert side["state"]["terminated"]["exitCode"] == 0 and side["restartCount"] == 0
    assert node.kubectl("logs", "-n", NS, pods[0]["metadata"]["name"], "-c", "main").stdout == "work done\n"


def test_deployment_pod_with_a_sidecar_is_ready_and_the_sidecar_restarts(node: Node) -> None:
    deploy = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                       "template": template({"app": "web"}, LOOP)}}
    node.apply(NS, deploy)
    node.kubectl("rollout", "status", "-n", NS, "deployment/web", "--timeout=60s", timeout=70)
    name = node.get("pods", "-n", NS, "-l", "app=web")["items"][0]["metadata"]["name"]
    ready = node.kubectl("get", "pod", name, "-n", NS, "--no-headers", "-o",
                         "custom-columns=R:.status.conditions[?(@.type=='Ready')].status").stdout.strip()
    assert ready == "True"
    assert node.kubectl("get", "pod", name, "-n", NS, "--no-headers").stdout.split()[1] == "2/2"
    # The sidecar dies (SIGTERM to its PID 1, whose trap exits): the kubelet starts it again.
    node.kubectl("exec", "-n", NS, name, "-c", "side", "--", "kill", "1")
    p = node.wait_pod(NS, name, "the sidecar restarted and Ready", lambda p: (
        p["status"]["initContainerStatuses"][0]["restartCount"] == 1
        and p["status"]["initContainerStatuses"][0]["ready"]), timeout=40)
    assert p["status"]["containerStatuses"][0]["restartCount"] == 0
    assert p["status"]["initContainerStatuses"][0]["lastState"]["terminated"]["exitCode"] == 0
    wait_until(lambda: node.kubectl("get", "pod", name, "-n", NS, "--no-headers").stdout.split()[1] == "2/2",
               30, "the pod 2/2 again")
