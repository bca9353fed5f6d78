"""Lifecycle hooks, activeDeadlineSeconds and probe-level terminationGracePeriodSeconds on the
kubelet, end to end (a real API server, `kyb kubelet` as a process, the tests' containerd; the
fixtures of ``test_kubelet_e2e``, one kubelet for this module).

Kubelet 1.32's words are checked: a failed postStart hook is a Warning ``FailedPostStartHook``
"PostStartHook failed" (the handler's output stays out of the event) and the container is killed
("FailedPostStartHook") and restarted; a failed preStop hook is a Warning ``FailedPreStopHook`` with
the handler runner's message; an HTTP hook fails only when no answer comes back (a 500 is an
answer) and identifies itself as ``kube-lifecycle/1.32``; a pod past its activeDeadlineSeconds is
Failed with reason ``DeadlineExceeded``; a liveness probe's own terminationGracePeriodSeconds
replaces the pod's when the probe kills the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from kybernetes import errors
from kybernetes.client import Client
from tests.kubelet.test_kubelet_e2e import (
    KubeletProcess,
    client,
    cluster,
    delete_pod,
    events_for,
    events_until,
    main_status,
    pod,
    running_ready,
    unique,
    wait_pod,
)

pytestmark = pytest.mark.integration

__all__ = ["client", "cluster"]

Obj = dict[str, Any]
SERVE = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]


class HookServer:
    """An HTTP server on the host's loopback that records what the kubelet's hooks ask for."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str]] = []  # (path, User-Agent, X-Hook)
        self.port = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, request.headers.get("User-Agent", ""), request.headers.get("X-Hook", "")))
        return web.Response(status=500, text="no")  # an answer all the same: the hook succeeds


@pytest.fixture
async def hooks() -> AsyncIterator[HookServer]:
    server = HookServer()
    app = web.Application()
    app.router.add_get("/{tail:.*}", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield server
    finally:
        await runner.cleanup()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_gone(c: Client, name: str, cluster: KubeletProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            await c.get("v1", "pods", name, "default")
        except errors.NotFound:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"pod {name} not deleted\n{cluster.log()}")


async def test_failed_post_start_exec_kills_and_restarts(client: Client, cluster: KubeletProcess) -> None:
    name = unique("poststart")
    spec = pod(name, SERVE, container={"lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "echo secret; exit 3"]}}}})
    await client.create("v1", "pods", spec, "default")
    try:
        await wait_pod(client, name, lambda p: main_status(p).get("restartCount", 0) >= 1, cluster)
        evs = await events_until(client, name, "FailedPostStartHook")
        assert ("FailedPostStartHook", "PostStartHook failed") in evs
        assert ("Killing", "FailedPostStartHook") in evs
        assert not any("secret" in m for _, m in evs), evs
    finally:
        await delete_pod(client, name)


async def test_failed_pre_stop_exec_event_has_the_kubelets_message(client: Client, cluster: KubeletProcess) -> None:
    name = unique("prestop")
    command = ["sh", "-c", "echo bad >&2; exit 3"]
    spec = pod(name, SERVE, terminationGracePeriodSeconds=10,
               container={"lifecycle": {"preStop": {"exec": {"command": command}}}})
    await client.create("v1", "pods", spec, "default")
    p = await wait_pod(client, name, running_ready, cluster)
    uid = p["metadata"]["uid"]
    await client.delete("v1", "pods", name, "default")
    await wait_gone(client, name, cluster)
    evs = await events_until(client, name, "FailedPreStopHook")
    message = next(m for r, m in evs if r == "FailedPreStopHook")
    assert message == (f'Exec lifecycle hook ([sh -c echo bad >&2; exit 3]) for Container "main" in Pod '
                       f'"{name}_default({uid})" failed - error: command \'sh -c echo bad >&2; exit 3\' exited with 3: '
                       'bad\n, message: "bad\\n"')


async def test_http_hooks_any_answer_succeeds(client: Client, cluster: KubeletProcess, hooks: HookServer) -> None:
    name, refused = unique("httphook"), unique("refused")
    lifecycle = {"postStart": {"httpGet": {"host": "127.0.0.1", "port": hooks.port, "path": "/started",
                                           "httpHeaders": [{"name": "X-Hook", "value": "post"}]}},
                 "preStop": {"httpGet": {"host": "127.0.0.1", "port": hooks.port, "path": "stopping"}}}
    await client.create("v1", "pods", pod(name, SERVE, container={"lifecycle": lifecycle}), "default")
    bad = {"postStart": {"httpGet": {"host": "127.0.0.1", "port": closed_port(), "path": "/x"}}}
    await client.create("v1", "pods", pod(refused, SERVE, container={"lifecycle": bad}), "default")
    try:
        p = await wait_pod(client, name, running_ready, cluster)
        assert main_status(p)["restartCount"] == 0
        assert hooks.requests == [("/started", "kube-lifecycle/1.32", "post")]
        await events_until(client, refused, "FailedPostStartHook")
        await client.delete("v1", "pods", name, "default")
        await wait_gone(client, name, cluster)
        assert hooks.requests[1:] == [("/stopping", "kube-lifecycle/1.32", "")]
        assert not any(r in ("FailedPostStartHook", "FailedPreStopHook") for r, _ in await events_for(client, name))
    finally:
        await delete_pod(client, name)
        await delete_pod(client, refused)


async def test_sleep_pre_stop_delays_the_stop(client: Client, cluster: KubeletProcess) -> None:
    name = unique("sleephook")
    spec = pod(name, SERVE, terminationGracePeriodSeconds=10,
               container={"lifecycle": {"preStop": {"sleep": {"seconds": 2}}}})
    await client.create("v1", "pods", spec, "default")
    await wait_pod(client, name, running_ready, cluster)
    started = time.monotonic()
    await client.delete("v1", "pods", name, "default")
    await wait_gone(client, name, cluster)
    assert 2 <= time.monotonic() - started < 9


async def test_active_deadline_fails_the_pod(client: Client, cluster: KubeletProcess) -> None:
    name = unique("deadline")
    await client.create("v1", "pods", pod(name, SERVE, activeDeadlineSeconds=2), "default")
    try:
        p = await wait_pod(client, name, lambda p: p["status"].get("phase") == "Failed", cluster, timeout=20)
        assert p["status"]["reason"] == "DeadlineExceeded"
        assert p["status"]["message"] == "Pod was active on the node longer than the specified deadline"
        evs = await events_until(client, name, "DeadlineExceeded")
        assert ("DeadlineExceeded", "Pod was active on the node longer than the specified deadline") in evs
        p = await wait_pod(client, name, lambda p: "terminated" in main_status(p).get("state", {}), cluster)
        assert p["status"]["phase"] == "Failed" and p["status"]["reason"] == "DeadlineExceeded"
    finally:
        await delete_pod(client, name)


async def test_liveness_probe_grace_period_replaces_the_pods(client: Client, cluster: KubeletProcess) -> None:
    name = unique("probegrace")
    # PID 1 without a TERM handler ignores SIGTERM: the container only stops when the grace period ends.
    spec = pod(name, ["sh", "-c", "touch /tmp/healthy; sleep 1; rm /tmp/healthy; exec sleep 3600"],
               terminationGracePeriodSeconds=120,
               container={"livenessProbe": {"exec": {"command": ["cat", "/tmp/healthy"]}, "periodSeconds": 1,
                                            "failureThreshold": 1, "terminationGracePeriodSeconds": 2}})
    await client.create("v1", "pods", spec, "default")
    try:
        await wait_pod(client, name, lambda p: main_status(p).get("restartCount", 0) >= 1, cluster, timeout=20)
    finally:
        with contextlib.suppress(errors.NotFound):
            await client.delete("v1", "pods", name, "default", grace_period_seconds=0)


async def test_liveness_kill_under_restart_policy_never_fails_the_pod(client: Client, cluster: KubeletProcess) -> None:
    name = unique("live-never")
    spec = pod(name, ["sleep", "3600"], restartPolicy="Never", container={
        "livenessProbe": {"exec": {"command": ["false"]}, "periodSeconds": 1, "failureThreshold": 1}})
    await client.create("v1", "pods", spec, "default")
    try:
        p = await wait_pod(client, name, lambda p: p["status"].get("phase") in ("Succeeded", "Failed"), cluster,
                           timeout=20)
        assert p["status"]["phase"] == "Failed"  # SIGKILLed after the grace period: 137
        assert main_status(p)["restartCount"] == 0
        evs = await events_until(client, name, "Killing")
        assert ("Killing", "Container main failed liveness probe") in evs, evs  # not "will be restarted"
        assert ("Unhealthy", "Liveness probe failed: ") in evs, evs  # the prober's words, once
    finally:
        await delete_pod(client, name)


async def test_https_hook_answered_in_plain_http_falls_back(client: Client, cluster: KubeletProcess,
                                                           hooks: HookServer) -> None:
    name = unique("fallback")
    lifecycle = {"postStart": {"httpGet": {"host": "127.0.0.1", "port": hooks.port, "path": "/tls", "scheme": "HTTPS",
                                           "httpHeaders": [{"name": "Authorization", "value": "Bearer x"}]}}}
    await client.create("v1", "pods", pod(name, SERVE, container={"lifecycle": lifecycle}), "default")
    try:
        p = await wait_pod(client, name, running_ready, cluster)
        assert main_status(p)["restartCount"] == 0
        evs = await events_until(client, name, "LifecycleHTTPFallback")
        assert ("LifecycleHTTPFallback", f"request to HTTPS lifecycle hook 127.0.0.1:{hooks.port} got HTTP response, "
                "retry with HTTP succeeded") in evs
        assert [r for r in hooks.requests if r[0] == "/tls"] == [("/tls", "kube-lifecycle/1.32", "")]
    finally:
        await delete_pod(client, name)
