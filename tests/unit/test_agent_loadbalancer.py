"""The agent's API server load balancer (``agent/loadbalancer.py``) against real sockets on
loopback: several backends, the current one dies, connections go to the others; servers learned
from the endpoints are kept in the state file; a server that leaves the list loses its connections."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from kybernetes.agent.loadbalancer import STATE_FILE, LoadBalancer, endpoint_addresses, server_address

TIMEOUT = 5.0


class Backend:
    """A TCP server that greets each connection with its name, then echoes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.server: asyncio.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.writers.add(writer)
        writer.write(f"{self.name}\n".encode())
        try:
            while data := await reader.read(1024):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            self.writers.discard(writer)
            writer.close()

    async def die(self) -> None:
        """As a killed process: the port refuses, open connections end."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.close()
        await self.server.wait_closed()


@pytest.fixture
async def backends() -> AsyncIterator[list[Backend]]:
    started = [Backend(n) for n in ("a", "b", "c")]
    for b in started:
        await b.start()
    yield started
    for b in started:
        if b.server is not None and b.server.is_serving():
            await b.die()


@pytest.fixture
async def lb(backends: list[Backend], tmp_path: Path) -> AsyncIterator[LoadBalancer]:
    balancer = LoadBalancer(f"https://{backends[0].address}", tmp_path, port=0, dial_timeout=2.0)
    await balancer.start()
    yield balancer
    await balancer.stop()


async def connect(lb: LoadBalancer) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter]:
    """A connection through the balancer: the name of the backend it reached, and the streams."""
    reader, writer = await asyncio.open_connection("127.0.0.1", lb.port)
    name = (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode().strip()
    return name, reader, writer


async def test_connections_go_to_the_default_server_and_carry_bytes_both_ways(lb: LoadBalancer) -> None:
    name, reader, writer = await connect(lb)
    assert name == "a"
    writer.write(b"ping\n")
    assert await asyncio.wait_for(reader.readline(), TIMEOUT) == b"ping\n"
    writer.close()
    assert lb.url == f"https://127.0.0.1:{lb.port}"


async def test_when_the_current_server_dies_connections_go_to_the_next(
        lb: LoadBalancer, backends: list[Backend]) -> None:
    a, b, c = backends
    lb.update([b.address, a.address, c.address])
    name, reader, _ = await connect(lb)
    assert name == "a"  # the current server stays while it works
    await a.die()
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # the client sees its connection end
    for _ in range(3):
        assert (await connect(lb))[0] == "b"
    await b.die()
    assert (await connect(lb))[0] == "c"
    assert lb.current == c.address


async def test_no_live_server_closes_the_client_connection(lb: LoadBalancer, backends: list[Backend]) -> None:
    for b in backends:
        await b.die()
    lb.update([b.address for b in backends])
    reader, writer = await asyncio.open_connection("127.0.0.1", lb.port)
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    writer.close()


async def test_a_server_leaving_the_list_loses_its_connections(lb: LoadBalancer, backends: list[Backend]) -> None:
    a, b, _ = backends
    lb.update([a.address, b.address])
    lb.current = b.address
    name, reader, _ = await connect(lb)
    assert name == "b"
    lb.update([a.address])
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""
    assert lb.current == a.address
    assert (await connect(lb))[0] == "a"


async def test_the_learned_servers_survive_a_restart(
        lb: LoadBalancer, backends: list[Backend], tmp_path: Path) -> None:
    a, b, c = backends
    lb.update([c.address, b.address])
    assert lb.servers == [c.address, b.address, a.address]  # the default stays, last
    state = json.loads((tmp_path / STATE_FILE).read_text())
    assert state == {"serverURL": f"https://{a.address}", "serverAddresses": [c.address, b.address]}
    lb.update([])  # no addresses: nothing forgotten
    assert lb.learned == [c.address, b.address]
    await a.die()
    again = LoadBalancer(f"https://{a.address}", tmp_path, port=0)
    await again.start()
    try:
        assert again.servers == [c.address, b.address, a.address]
        assert (await connect(again))[0] == "c"  # the default is dead; the first learned answers
    finally:
        await again.stop()
    other = LoadBalancer(f"https://{b.address}", tmp_path, port=0)
    assert other.servers == [b.address]  # the state of another --server is not used


async def test_a_taken_port_is_an_error(lb: LoadBalancer, backends: list[Backend], tmp_path: Path) -> None:
    second = LoadBalancer(f"https://{backends[0].address}", tmp_path, port=lb.port)
    with pytest.raises(OSError):
        await second.start()


def test_addresses() -> None:
    assert server_address("https://10.0.0.1:6443") == "10.0.0.1:6443"
    assert server_address("https://[fd00::1]:6443/") == "[fd00::1]:6443"
    assert server_address("https://example.org") == "example.org:443"
    ep = {"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}],
                       "ports": [{"name": "https", "port": 6443, "protocol": "TCP"}]},
                      {"addresses": [{"ip": "fd00::1"}], "ports": [{"name": "other", "port": 1}]}]}
    assert endpoint_addresses(ep) == ["10.0.0.1:6443", "10.0.0.2:6443", "[fd00::1]:1"]
    assert endpoint_addresses({}) == []


def test_kyb_agent_on_a_taken_port_says_so(tmp_path: Path) -> None:
    """Two agents on one machine need their own ports: the second says which flag, no traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = subprocess.run(
            [sys.executable, "-m", "kybernetes.cli", "agent", "--server", "https://127.0.0.1:1", "--token",
             "K10" + "a" * 64 + "::node:abcdef0123456789", "--data-dir", str(tmp_path), "--node-name", "n",
             "--container-runtime-endpoint", "unix:///nonexistent", "--lb-server-port", str(port)],
            capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, res.stderr
    assert f"the API server load balancer cannot listen on 127.0.0.1:{port}" in res.stderr
    assert "--lb-server-port" in res.stderr and "Traceback" not in res.stderr


def _own_tasks() -> list[str]:
    """The balancer's tasks still running: connection handlers and their copies."""
    names = (t.get_coro().__qualname__ for t in asyncio.all_tasks() if not t.done())
    return [n for n in names if n.startswith(("LoadBalancer.", "_copy"))]


async def test_stop_ends_every_connection_and_its_tasks(lb: LoadBalancer, caplog: pytest.LogCaptureFixture) -> None:
    name, reader, writer = await connect(lb)
    assert name == "a" and len(_own_tasks()) == 3  # the handler and its two copies
    await lb.stop()
    assert _own_tasks() == []  # none left for the loop's shutdown to cancel
    assert await asyncio.wait_for(reader.read(), TIMEOUT) == b""  # the client saw its connection end
    writer.close()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


STOP_WITH_A_CONNECTION_OPEN = """
import asyncio, pathlib, sys
from kybernetes import aiorun
from kybernetes.agent.loadbalancer import LoadBalancer

async def main() -> None:
    async def greet(reader, writer):
        writer.write(b"hello\\n")
        await reader.read()
        writer.close()
    backend = await asyncio.start_server(greet, "127.0.0.1", 0)
    lb = LoadBalancer(f"https://127.0.0.1:{backend.sockets[0].getsockname()[1]}", pathlib.Path(sys.argv[1]), port=0)
    await lb.start()
    reader, writer = await asyncio.open_connection("127.0.0.1", lb.port)
    assert await reader.readline() == b"hello\\n"
    await lb.stop()  # as the agent does at its end, a client still connected
    backend.close()

aiorun.run(main())
print("stopped")
"""


def test_a_stopped_balancer_leaves_no_traceback_at_the_loops_end(tmp_path: Path) -> None:
    """The agent's way: the balancer stopped at the end of ``aiorun.run``'s main, then the loop
    shuts down (cancelling whatever is left): nothing is logged."""
    res = subprocess.run([sys.executable, "-c", STOP_WITH_A_CONNECTION_OPEN, str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout == "stopped\n", res.stderr
    assert "Traceback" not in res.stderr and "Exception in callback" not in res.stderr, res.stderr
