"""Probes against a real container: busybox httpd in a CRI sandbox on the test containerd.

One sandbox and one long-running container serve every test in this module; each test probes it
through "pods" of its own (distinct uids pointing at the same container id), so the tests stay
independent while only one container is started. Periods are 1 s (the API minimum); the tests
poll with deadlines instead of sleeping fixed times.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from kybernetes.kubelet.cri import CRIClient
from kybernetes.kubelet.probes import ProbeManager, dial_error, grpc_probe, resolve_port
from kybernetes.testing import free_port
from tests.node.conftest import NodeRuntime, container_config, remove_sandbox, sandbox_config

pytestmark = pytest.mark.integration
Obj = dict[str, Any]

SERVE = ("mkdir -p /www && echo ok > /www/index.html && touch /tmp/healthy && "
         "exec httpd -f -p 8080 -h /www")


@dataclass
class Web:
    cri: CRIClient
    container_id: str
    ip: str

    async def sh(self, script: str) -> str:
        code, out, err = await self.cri.exec_sync(self.container_id, ["sh", "-c", script], 10)
        assert code == 0, (out, err)
        return out.decode()

    async def lines(self, path: str) -> int:
        """How many lines ``path`` has in the container (0 if it does not exist)."""
        return int((await self.sh(f"cat {path} 2>/dev/null | wc -l")).strip())


@pytest.fixture
async def web(cri: CRIClient, node_runtime: NodeRuntime) -> AsyncIterator[Web]:
    config = sandbox_config(node_runtime, "probes-" + uuid.uuid4().hex[:6])
    sandbox_id = await cri.run_pod_sandbox(config)
    try:
        ip = (await cri.pod_sandbox_status(sandbox_id)).status.network.ip
        cid = await cri.create_container(sandbox_id, container_config("web", ["sh", "-c", SERVE]), config)
        await cri.start_container(cid)
        w = Web(cri, cid, ip)
        deadline = time.monotonic() + 15
        while True:  # httpd up?
            try:
                _, writer = await asyncio.open_connection(ip, 8080)
                writer.close()
                break
            except OSError:
                assert time.monotonic() < deadline, "httpd did not come up"
                await asyncio.sleep(0.1)
        yield w
    finally:
        await remove_sandbox(cri, sandbox_id)


class Recorder:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, bool]] = []

    def __call__(self, uid: str, name: str, kind: str, result: bool) -> None:
        self.changes.append((uid, kind, result))

    def of(self, uid: str) -> list[tuple[str, bool]]:
        return [(k, r) for u, k, r in self.changes if u == uid]


def pod(container: Obj) -> Obj:
    base = {"name": "web", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080}]}
    return {"metadata": {"uid": uuid.uuid4().hex, "name": "p", "namespace": "t"},
            "spec": {"containers": [dict(base, **container)]}}


def probe(handler: Obj, **timing: int) -> Obj:
    return {"periodSeconds": 1, "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 1,
            **timing, **handler}


async def until(pred: Callable[[], bool], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.fixture
async def manager(cri: CRIClient) -> AsyncIterator[tuple[ProbeManager, Recorder]]:
    rec = Recorder()
    pm = ProbeManager(cri.exec_sync, rec)
    try:
        yield pm, rec
    finally:
        await pm.stop()


async def test_readiness_flips_with_http_and_exec_liveness_fails(web: Web, manager: tuple[ProbeManager, Recorder]) -> None:
    pm, rec = manager
    p = pod({"readinessProbe": probe({"httpGet": {"path": "/index.html", "port": "http"}}, failureThreshold=2),
             "livenessProbe": probe({"exec": {"command": ["cat", "/tmp/healthy"]}}, failureThreshold=2)})
    uid = p["metadata"]["uid"]
    pm.add(p, "web", web.container_id, web.ip)
    assert pm.is_started(uid, "web") and not pm.is_ready(uid, "web")  # not ready until a probe says so
    await until(lambda: pm.is_ready(uid, "web"), what="ready")
    assert rec.of(uid) == [("readiness", True)]

    await web.sh("rm /www/index.html")
    await until(lambda: not pm.is_ready(uid, "web"), what="not ready")
    assert pm.last_failure(uid, "web", "readiness") == "Readiness probe failed: HTTP probe failed with statuscode: 404"
    assert not pm.liveness_failed(uid, "web")
    await web.sh("echo ok > /www/index.html")
    await until(lambda: pm.is_ready(uid, "web"), what="ready again")
    assert rec.of(uid) == [("readiness", True), ("readiness", False), ("readiness", True)]

    await web.sh("rm /tmp/healthy")
    t0 = time.monotonic()
    await until(lambda: pm.liveness_failed(uid, "web"), what="liveness failure")
    assert time.monotonic() - t0 >= 0.9  # two consecutive failures, one period apart
    assert pm.last_failure(uid, "web", "liveness").startswith("Liveness probe failed: cat: can't open '/tmp/healthy'")
    assert rec.of(uid)[-1] == ("liveness", False)
    await web.sh("touch /tmp/healthy")

    # The core restarts the container and adds it again: fresh workers, liveness healthy again.
    pm.remove_container(uid, "web")
    assert not pm.is_ready(uid, "web") and not pm.liveness_failed(uid, "web")
    pm.add(p, "web", web.container_id + "", web.ip)
    await until(lambda: pm.is_ready(uid, "web"), what="ready after re-add")
    assert not pm.liveness_failed(uid, "web")


async def test_tcp_probe_and_named_ports(web: Web, manager: tuple[ProbeManager, Recorder]) -> None:
    pm, rec = manager
    closed = pod({"readinessProbe": probe({"tcpSocket": {"port": 9999}})})
    open_ = pod({"readinessProbe": probe({"tcpSocket": {"port": "http"}}, successThreshold=2)})
    for p in (closed, open_):
        pm.add(p, "web", web.container_id, web.ip)
    c_uid, o_uid = closed["metadata"]["uid"], open_["metadata"]["uid"]
    await until(lambda: pm.last_failure(c_uid, "web", "readiness") != "", what="tcp failure")
    assert pm.last_failure(c_uid, "web", "readiness") == (
        f"Readiness probe failed: dial tcp {web.ip}:9999: connect: connection refused")
    t0 = time.monotonic()
    await until(lambda: pm.is_ready(o_uid, "web"), what="tcp ready")
    assert time.monotonic() - t0 >= 0.9  # successThreshold 2
    assert not pm.is_ready(c_uid, "web")
    assert rec.of(c_uid) == []  # failing from the start: never a change
    assert resolve_port("8080", {}) == 8080
    with pytest.raises(ValueError, match="couldn't find port"):
        resolve_port("nope", {"name": "web", "ports": []})


async def test_startup_probe_gates_liveness_and_readiness(web: Web, manager: tuple[ProbeManager, Recorder]) -> None:
    pm, rec = manager
    await web.sh("rm -f /tmp/started /tmp/startup-runs /tmp/liveness-runs")
    # Both probes leave a line per run, so the test sees what ran.
    p = pod({"startupProbe": probe({"exec": {"command": ["sh", "-c", "echo >> /tmp/startup-runs; cat /tmp/started"]}},
                                   failureThreshold=30),
             "livenessProbe": probe({"exec": {"command": ["sh", "-c", "echo >> /tmp/liveness-runs; false"]}}),
             "readinessProbe": probe({"httpGet": {"path": "/", "port": 8080}})})
    uid = p["metadata"]["uid"]
    pm.add(p, "web", web.container_id, web.ip)
    await until(lambda: pm.last_failure(uid, "web", "startup") != "", what="a startup attempt")
    # Three startup probes have failed (two periods in which an ungated liveness probe would have
    # run): liveness, which would fail at once, has not run, as the startup probe has not passed.
    runs = await web.lines("/tmp/startup-runs")
    for _ in range(100):
        if await web.lines("/tmp/startup-runs") >= runs + 2:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the startup probe did not run twice more")
    assert await web.lines("/tmp/liveness-runs") == 0
    assert not pm.is_started(uid, "web") and not pm.is_ready(uid, "web") and not pm.liveness_failed(uid, "web")
    assert pm.last_failure(uid, "web", "liveness") == ""
    await web.sh("touch /tmp/started")
    await until(lambda: pm.is_started(uid, "web"), what="started")
    await until(lambda: pm.liveness_failed(uid, "web"), what="liveness failure after startup")
    assert pm.last_failure(uid, "web", "liveness") == "Liveness probe failed: "
    assert rec.of(uid)[0] == ("startup", True)
    assert ("liveness", False) in rec.of(uid)

    # A startup probe that never passes fails the container (the core restarts it).
    never = pod({"startupProbe": probe({"exec": {"command": ["cat", "/nonexistent"]}}, failureThreshold=2)})
    n_uid = never["metadata"]["uid"]
    pm.add(never, "web", web.container_id, web.ip)
    await until(lambda: pm.startup_failed(n_uid, "web"), what="startup failure")
    assert pm.liveness_failed(n_uid, "web") and not pm.is_started(n_uid, "web")
    assert rec.of(n_uid) == [("startup", False)]


async def test_timeouts_and_initial_delay(web: Web, manager: tuple[ProbeManager, Recorder]) -> None:
    pm, _ = manager
    slow = pod({"livenessProbe": probe({"exec": {"command": ["sleep", "5"]}}, timeoutSeconds=1)})
    s_uid = slow["metadata"]["uid"]
    delayed = pod({"readinessProbe": probe({"httpGet": {"path": "/", "port": 8080}}, initialDelaySeconds=2)})
    d_uid = delayed["metadata"]["uid"]
    t0 = time.monotonic()
    pm.add(slow, "web", web.container_id, web.ip)
    pm.add(delayed, "web", web.container_id, web.ip)
    await until(lambda: pm.is_ready(d_uid, "web"), what="ready after the initial delay")
    assert time.monotonic() - t0 >= 1.9
    await until(lambda: pm.liveness_failed(s_uid, "web"), timeout=20, what="exec timeout")
    assert pm.last_failure(s_uid, "web", "liveness") == 'Liveness probe failed: command "sleep 5" timed out'
    assert time.monotonic() - t0 < 5  # the timeout, not the command, ended the probe


async def test_http_probe_details(web: Web, manager: tuple[ProbeManager, Recorder]) -> None:
    pm, _ = manager
    await web.sh("mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho Status: 302 Found\\n"
                 "echo Location: http://example.invalid/\\necho\\n' > /www/cgi-bin/away && chmod +x /www/cgi-bin/away")
    cases = {
        "away": pod({"readinessProbe": probe({"httpGet": {"path": "/cgi-bin/away", "port": 8080}})}),
        "refused": pod({"readinessProbe": probe({"httpGet": {"path": "/", "port": 8081}})}),
        "host": pod({"readinessProbe": probe({"httpGet": {"path": "index.html", "port": 8080, "httpHeaders": [
            {"name": "Host", "value": "example.com"}, {"name": "X-Probe", "value": "1"}]}})}),
    }
    for p in cases.values():
        pm.add(p, "web", web.container_id, web.ip)
    uid = {k: p["metadata"]["uid"] for k, p in cases.items()}
    # A redirect to another host is not followed and counts as success (with a warning).
    await until(lambda: pm.is_ready(uid["away"], "web"), what="redirect elsewhere is success")
    await until(lambda: pm.is_ready(uid["host"], "web"), what="custom headers")
    await until(lambda: pm.last_failure(uid["refused"], "web", "readiness") != "", what="refused")
    assert pm.last_failure(uid["refused"], "web", "readiness") == (
        f'Readiness probe failed: Get "http://{web.ip}:8081/": dial tcp {web.ip}:8081: connect: connection refused')
    assert dial_error("10.0.0.1", 80, TimeoutError()) == "dial tcp 10.0.0.1:80: i/o timeout"


async def test_grpc_health_probe_on_loopback() -> None:
    import grpc

    statuses = {"": 1, "down": 2}

    async def check(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        service = request[2:].decode() if request else ""
        if service not in statuses:
            await context.abort(grpc.StatusCode.NOT_FOUND, "unknown service")
        return b"\x08" + bytes([statuses[service]])

    handler = grpc.method_handlers_generic_handler("grpc.health.v1.Health", {
        "Check": grpc.unary_unary_rpc_method_handler(check, request_deserializer=lambda b: b,
                                                     response_serializer=lambda b: b)})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        assert await grpc_probe("127.0.0.1", port, "", 2) == ("success", "")
        assert await grpc_probe("127.0.0.1", port, "down", 2) == (
            "failure", 'service unhealthy (responded with "NOT_SERVING")')
        free = free_port()
        outcome, message = await grpc_probe("127.0.0.1", free, "", 1)
        assert outcome == "failure" and message.startswith(f'timeout: failed to connect service "127.0.0.1:{free}"')
    finally:
        await server.stop(0)
