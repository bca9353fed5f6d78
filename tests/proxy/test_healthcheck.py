"""kube-proxy's health endpoints, served for real on loopback: /healthz and /livez, and a
Service's health-check node port (kube-proxy's JSON body, 200 with local endpoints, else 503)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from typing import Any

from kybernetes.proxy.healthcheck import (
    ProxyHealth,
    ServiceHealthServers,
    go_time,
    node_eligible,
    parse_bind_address,
    service_health_body,
)


async def get(port: int, path: str = "/") -> tuple[int, dict[str, str], str]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    raw = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    lines = head.split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_service_health_body_is_kube_proxys() -> None:
    assert service_health_body("ns", "web", 2, True) == (
        '{\n\t"service": {\n\t\t"namespace": "ns",\n\t\t"name": "web"\n\t},\n\t"localEndpoints": 2,\n'
        '\t"serviceProxyHealthy": true\n}')


def test_small_helpers() -> None:
    assert parse_bind_address("0.0.0.0:10256") == ("0.0.0.0", 10256)
    assert parse_bind_address("127.0.0.1") == ("127.0.0.1", 10256)
    assert re.fullmatch(r"2026-01-02 03:04:05\.5 \+0000 UTC m=\+\d+\.\d{9}", go_time(1767323045.5, 10**6))
    assert node_eligible(None) and node_eligible({"spec": {"taints": [{"key": "other"}]}})
    assert not node_eligible({"metadata": {"deletionTimestamp": "2026-01-01T00:00:00Z"}})
    assert not node_eligible({"spec": {"taints": [{"key": "ToBeDeletedByClusterAutoscaler"}]}})


async def test_health_check_node_port_server() -> None:
    now = [0.0]
    health = ProxyHealth(60.0, now=lambda: now[0])
    servers = ServiceHealthServers(health)
    port = free_port()
    key = ("default", "web")
    try:
        await servers.sync({key: port}, {key: 1}, ["127.0.0.1"])
        status, headers, body = await get(port, "/anything")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert json.loads(body) == {"service": {"namespace": "default", "name": "web"}, "localEndpoints": 1,
                                    "serviceProxyHealthy": True}
        await servers.sync({key: port}, {}, ["127.0.0.1"])  # no local endpoint any more
        status, _, body = await get(port)
        assert status == 503 and json.loads(body)["localEndpoints"] == 0
        # a change waiting longer than the health timeout makes the proxy unhealthy
        await servers.sync({key: port}, {key: 3}, ["127.0.0.1"])
        health.queued_update()
        now[0] = 61.0
        status, _, body = await get(port)
        assert status == 503 and json.loads(body)["serviceProxyHealthy"] is False
        # the Service goes away: its port is closed
        await servers.sync({}, {}, ["127.0.0.1"])
        assert servers.ports == {}
        try:
            await get(port)
            raise AssertionError("the health check port is still open")
        except OSError:
            pass
    finally:
        await servers.stop()


async def test_a_taken_port_is_not_fatal() -> None:
    servers = ServiceHealthServers(ProxyHealth(60.0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        taken = int(s.getsockname()[1])
        await servers.sync({("default", "web"): taken}, {}, ["127.0.0.1"])
        assert servers.ports == {}  # logged, retried on the next sync
    await servers.stop()


async def test_healthz_and_livez() -> None:
    now = [0.0]
    health = ProxyHealth(60.0, now=lambda: now[0])
    port = await health.start("127.0.0.1:0")
    try:
        health.updated()
        status, headers, body = await get(port, "/healthz")
        assert status == 200 and headers["Content-Type"] == "application/json"
        assert re.fullmatch(r'\{"lastUpdated": "[^"]+ \+0000 UTC m=\+[0-9.]+","currentTime": "[^"]+", '
                            r'"nodeEligible": true\}', body)
        livez: Any = json.loads((await get(port, "/livez"))[2])
        assert set(livez) == {"lastUpdated", "currentTime"}
        health.node_eligible = False  # the node is being deleted: /healthz fails, /livez does not
        assert (await get(port, "/healthz"))[0] == 503
        assert (await get(port, "/livez"))[0] == 200
        health.node_eligible = True
        health.queued_update()
        now[0] = 61.0
        assert (await get(port, "/livez"))[0] == 503
        health.updated()
        assert (await get(port, "/healthz"))[0] == 200
        assert (await get(port, "/other"))[0] == 404
    finally:
        await health.stop()
