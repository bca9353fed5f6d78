"""Sidecar containers (init containers with ``restartPolicy: Always``) on the kubelet, end to end:
a real API server, `kyb kubelet` as a process, the tests' containerd (the fixtures of
``test_kubelet_e2e``, one kubelet for this module).

What kubelet 1.32 guarantees and is checked here: a sidecar starts in init order and the next init
container only once it started (its startup probe passed); it keeps running next to the app
containers; when the app containers of a Never/OnFailure pod are done the sidecars are stopped and
the pod Succeeds (a Job's pod); a sidecar that exits is restarted whatever the pod's restartPolicy;
its readiness counts for the pod's; on deletion the app containers stop first, then the sidecars in
reverse order.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from kybernetes.client import Client
from kybernetes.images.oci import BUSYBOX_IMAGE
from tests.kubelet.test_kubelet_e2e import (
    KubeletProcess,
    client,
    cluster,
    condition,
    delete_pod,
    events_until,
    main_status,
    pod,
    unique,
    wait_pod,
)

pytestmark = pytest.mark.integration

__all__ = ["client", "cluster"]

Obj = dict[str, Any]
WORK = [{"name": "work", "mountPath": "/work"}]


def forever(body: str = "", on_term: str = "") -> list[str]:
    """A container that runs `body`, then runs until SIGTERM, on which it runs `on_term` and exits 0."""
    return ["sh", "-c", f"trap '{on_term} exit 0' TERM; {body} while true; do sleep 0.1; done"]


def sidecar(name: str, command: list[str], **extra: Any) -> Obj:
    return {"name": name, "image": BUSYBOX_IMAGE, "restartPolicy": "Always", "command": command,
            "volumeMounts": WORK, **extra}


def init_status(p: Obj, name: str) -> Obj:
    return next(s for s in p["status"].get("initContainerStatuses") or [] if s["name"] == name)


async def test_job_like_pod_with_sidecar_succeeds(client: Client, cluster: KubeletProcess) -> None:
    name = unique("sc-job")
    spec = pod(name, ["sh", "-c", "test -f /work/side-up && test -f /work/setup-done && echo main-done"],
               restartPolicy="Never", volumes=[{"name": "work", "emptyDir": {}}], container={"volumeMounts": WORK},
               initContainers=[
                   sidecar("side", forever("touch /work/side-up;")),
                   {"name": "setup", "image": BUSYBOX_IMAGE, "volumeMounts": WORK,
                    "command": ["sh", "-c", "test -f /work/side-up && touch /work/setup-done"]}])
    await client.create("v1", "pods", spec, "default")
    try:
        p = await wait_pod(client, name, lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), cluster)
        assert p["status"]["phase"] == "Succeeded", p["status"]
        assert main_status(p)["state"]["terminated"]["reason"] == "Completed"
        side = init_status(p, "side")
        assert side["state"]["terminated"]["exitCode"] == 0, side  # stopped by SIGTERM (its trap)
        assert side["restartCount"] == 0
        assert init_status(p, "setup")["state"]["terminated"]["reason"] == "Completed"
        assert condition(p, "Initialized") == "True"
        evs = await events_until(client, name, "Killing")
        assert ("Killing", "Stopping container side") in evs
    finally:
        await delete_pod(client, name)


async def test_startup_probe_gates_the_next_container(client: Client, cluster: KubeletProcess) -> None:
    name = unique("sc-startup")
    probe = {"exec": {"command": ["test", "-f", "/work/ready"]}, "periodSeconds": 1, "failureThreshold": 30}
    spec = pod(name, ["sh", "-c", "test -f /work/ready"], restartPolicy="Never",
               volumes=[{"name": "work", "emptyDir": {}}], container={"volumeMounts": WORK},
               initContainers=[sidecar("side", forever("sleep 3; touch /work/ready;"), startupProbe=probe)])
    await client.create("v1", "pods", spec, "default")
    try:
        p = await wait_pod(client, name, lambda p: "running" in (
            (p["status"].get("initContainerStatuses") or [{}])[0].get("state") or {}), cluster)
        side = init_status(p, "side")
        assert side["started"] is False and side["ready"] is False, side
        assert main_status(p)["state"] == {"waiting": {"reason": "PodInitializing"}}
        initialized = next(c for c in p["status"]["conditions"] if c["type"] == "Initialized")
        assert (initialized["status"], initialized["reason"], initialized["message"]) == (
            "False", "ContainersNotInitialized", "containers with incomplete status: [side]")
        assert p["status"]["phase"] == "Pending"
        p = await wait_pod(client, name, lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), cluster)
        assert p["status"]["phase"] == "Succeeded", p["status"]  # main found /work/ready: it started after
    finally:
        await delete_pod(client, name)


async def test_sidecar_restarts_and_its_readiness_counts(client: Client, cluster: KubeletProcess) -> None:
    name = unique("sc-restart")
    crash_once = ("if [ -f /work/crashed ]; then touch /tmp/ok; else touch /work/crashed; sleep 1; exit 2; fi;")
    readiness = {"exec": {"command": ["test", "-f", "/tmp/ok"]}, "periodSeconds": 1}
    spec = pod(name, forever(), volumes=[{"name": "work", "emptyDir": {}}],
               initContainers=[sidecar("side", forever(crash_once), readinessProbe=readiness)])
    await client.create("v1", "pods", spec, "default")
    try:
        p = await wait_pod(client, name, lambda p: p["status"].get("phase") == "Running" and condition(
            p, "Ready") == "True", cluster)
        side = init_status(p, "side")
        assert side["restartCount"] == 1 and side["ready"] and side["started"], side
        assert side["lastState"]["terminated"]["exitCode"] == 2
        assert "running" in side["state"]
        assert main_status(p)["restartCount"] == 0
        assert condition(p, "Initialized") == "True"
    finally:
        await delete_pod(client, name)


async def test_deletion_stops_app_containers_then_sidecars_in_reverse(client: Client, cluster: KubeletProcess,
                                                                      tmp_path: Path) -> None:
    name = unique("sc-order")
    data = tmp_path / "data"
    data.mkdir()
    mount = [{"name": "data", "mountPath": "/data"}]
    # Without ordering, the quickest would be first: a, then b, then main.
    spec = pod(name, forever(on_term="sleep 1; echo main >> /data/order;"), terminationGracePeriodSeconds=15,
               volumes=[{"name": "data", "hostPath": {"path": str(data), "type": "Directory"}},
                        {"name": "work", "emptyDir": {}}],
               container={"volumeMounts": mount},
               initContainers=[sidecar("a", forever(on_term="echo a >> /data/order;"), volumeMounts=mount),
                               sidecar("b", forever(on_term="sleep 0.5; echo b >> /data/order;"),
                                       volumeMounts=mount)])
    await client.create("v1", "pods", spec, "default")
    p = await wait_pod(client, name, lambda p: condition(p, "Ready") == "True", cluster)
    assert [s["name"] for s in p["status"]["initContainerStatuses"]] == ["a", "b"]
    await client.delete("v1", "pods", name, "default")
    order = data / "order"
    deadline = time.monotonic() + 30
    while not (order.exists() and len(order.read_text().split()) == 3):
        assert time.monotonic() < deadline, f"{order.read_text() if order.exists() else ''}\n{cluster.log()}"
        await asyncio.sleep(0.1)
    assert order.read_text().split() == ["main", "b", "a"]


async def test_failed_liveness_restarts_a_sidecar_even_with_restart_policy_never(
        client: Client, cluster: KubeletProcess) -> None:
    name = unique("sc-live")
    liveness = {"exec": {"command": ["test", "-f", "/tmp/alive"]}, "periodSeconds": 1, "failureThreshold": 1}
    spec = pod(name, forever(), restartPolicy="Never", volumes=[{"name": "work", "emptyDir": {}}],
               initContainers=[sidecar("side", forever("touch /tmp/alive; sleep 1; rm /tmp/alive;"),
                                       livenessProbe=liveness)])
    await client.create("v1", "pods", spec, "default")
    try:
        p = await wait_pod(client, name, lambda p: init_status(p, "side")["restartCount"] >= 1
                           if p["status"].get("initContainerStatuses") else False, cluster)
        assert p["status"]["phase"] == "Running" and main_status(p)["restartCount"] == 0
        evs = await events_until(client, name, "Killing")
        assert ("Killing", "Init container side failed liveness probe") in evs, evs
    finally:
        await delete_pod(client, name)


async def test_kubelet_restart_keeps_sidecars(client: Client, cluster: KubeletProcess) -> None:
    name, sentinel = unique("sc-keep"), unique("sentinel")
    readiness = {"exec": {"command": ["true"]}, "periodSeconds": 1}
    spec = pod(name, forever(), volumes=[{"name": "work", "emptyDir": {}}],
               initContainers=[sidecar("side", forever(), readinessProbe=readiness)])
    await client.create("v1", "pods", spec, "default")
    try:
        p = await wait_pod(client, name, lambda p: condition(p, "Ready") == "True", cluster)
        before = (init_status(p, "side")["containerID"], main_status(p)["containerID"])
        rv = p["metadata"]["resourceVersion"]
        await asyncio.to_thread(cluster.stop)
        cluster.start()
        # The new kubelet syncs the pods it finds before one created after (test_kubelet_e2e's way).
        await client.create("v1", "pods", pod(sentinel, forever(), container={"readinessProbe": readiness}),
                            "default")
        await wait_pod(client, sentinel, lambda p: condition(p, "Ready") == "True", cluster)
        p = await client.get("v1", "pods", name, "default")
        assert (init_status(p, "side")["containerID"], main_status(p)["containerID"]) == before
        assert init_status(p, "side")["restartCount"] == 0 and condition(p, "Ready") == "True"
        assert p["metadata"]["resourceVersion"] == rv, p["status"]
    finally:
        await delete_pod(client, name)
        await delete_pod(client, sentinel)
