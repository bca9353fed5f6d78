"""The agent's client-side load balancer for the API servers (k3s's, on 127.0.0.1:6444).

A TCP proxy on loopback that the node's components (kubelet, kube-proxy, ``kyb network``) and
the agent itself reach the cluster through, so that they keep working when one API server dies.
TLS passes through untouched: clients verify the server they reach (every API server's
certificate carries 127.0.0.1) and present their own certificates to it.

Guarantees:

- **Servers.** The list starts with the ``--server`` address (the *default*) and the addresses a
  previous run learned (the state file, ``DATA/agent/etc/apiserver-load-balancer.json``, kept
  only while it is for the same ``--server``). :meth:`LoadBalancer.update` replaces the learned
  addresses (the ``kubernetes`` Service's endpoints, see :func:`follow_endpoints`) in the order
  given; the default stays on the list, last, as a fallback. An empty update changes nothing (an
  endpoints object without addresses is no reason to forget every server). Each change is
  written to the state file (atomically) before it is used.
- **Choosing.** Each new connection dials the *current* server (the last one a dial succeeded to;
  first the default), then every other server in list order, each within ``dial_timeout``; the
  first that accepts becomes current. When none does, the client's connection is closed (the
  client retries, as it would with a dead server).
- **Failing over.** Bytes are copied both ways until either side closes, then both are closed:
  a client whose server died sees its connection end, and its next one goes to the next live
  server. Connections to a server that leaves the list are closed at once (k3s does the same),
  so that no client keeps talking to a server the cluster no longer lists.
- **Stopping.** :meth:`LoadBalancer.stop` stops listening and ends every connection: their
  handlers (and the copies they run) are cancelled and awaited, so none is left for the event
  loop's shutdown to cancel (Python 3.11's stream server logs a handler that ends cancelled as an
  "Exception in callback" traceback: a handler therefore returns when cancelled).

Not done (k3s does): active health checks of the servers, and the balancer for the supervisor
port (kybernetes' agents talk to the API server port only).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from kybernetes.aiorun import wait_for
from kybernetes.fileutil import write_atomic

log = logging.getLogger(__name__)

DEFAULT_PORT = 6444
STATE_FILE = Path("etc") / "apiserver-load-balancer.json"
"""Under the agent's directory (DATA/agent), as k3s's ``agent/etc/k3s-agent-load-balancer.json``."""
COPY_CHUNK = 64 * 1024


def server_address(url: str) -> str:
    """``HOST:PORT`` of an ``https://`` URL (port 443 when it names none; IPv6 in brackets)."""
    parts = urllib.parse.urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    return join_host_port(parts.hostname, parts.port or 443)


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def split_host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def endpoint_addresses(endpoints: dict[str, Any]) -> list[str]:
    """``HOST:PORT`` of every address of an Endpoints object, with its ``https`` port (or its
    only port), in the object's order."""
    out: list[str] = []
    for subset in endpoints.get("subsets") or []:
        ports = subset.get("ports") or []
        port = next((p for p in ports if p.get("name") == "https"), ports[0] if len(ports) == 1 else None)
        if port is None or not port.get("port"):
            continue
        out += [join_host_port(a["ip"], int(port["port"])) for a in subset.get("addresses") or [] if a.get("ip")]
    return out


class LoadBalancer:
    def __init__(self, server_url: str, state_dir: Path, *, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 dial_timeout: float = 5.0) -> None:
        self.server_url = server_url.rstrip("/")
        self.default = server_address(self.server_url)
        self.state_file = state_dir / STATE_FILE
        self.host = host
        self.port = port
        self.dial_timeout = dial_timeout
        self.learned: list[str] = self._load()
        self.current = self.default
        self._server: asyncio.Server | None = None
        self._conns: dict[str, set[asyncio.StreamWriter]] = {}
        """Per server, the writers of its open connections (both the client's and the server's)."""
        self._handlers: set[asyncio.Task[None]] = set()
        """The tasks serving the client connections (one each)."""

    @property
    def servers(self) -> list[str]:
        """Every server, in the order connections try them after the current one."""
        return [*self.learned, *([self.default] if self.default not in self.learned else [])]

    @property
    def url(self) -> str:
        """The URL clients use: https:// this balancer's address."""
        return f"https://{join_host_port(self.host, self.port)}"

    # --- the list ----------------------------------------------------------------------------

    def _load(self) -> list[str]:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return []
        if not isinstance(state, dict) or state.get("serverURL") != self.server_url:
            return []
        addresses = state.get("serverAddresses")
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            return []
        return addresses

    def update(self, addresses: Iterable[str]) -> None:
        """Replace the learned servers (see the module's guarantees)."""
        new = list(dict.fromkeys(addresses))
        if not new or new == self.learned:
            return
        self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomic(self.state_file, json.dumps({"serverURL": self.server_url, "serverAddresses": new},
                                                 indent=2).encode() + b"\n", 0o600)
        log.info("API servers: %s (were %s)", ", ".join(new), ", ".join(self.learned) or "-")
        self.learned = new
        servers = self.servers
        for gone in [s for s in self._conns if s not in servers]:
            for writer in self._conns.pop(gone):
                writer.close()
        if self.current not in servers:
            self.current = servers[0]

    # --- serving -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen (OSError if the address is taken); with port 0, :attr:`port` becomes the chosen one."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("API server load balancer on %s: %s", self.url, ", ".join(self.servers))

    async def stop(self) -> None:
        """Stop listening; end every connection and wait for its handler to end."""
        if self._server is not None:
            self._server.close()
        for handler in self._handlers:
            handler.cancel()
        if self._handlers:  # each closes its connection and returns (see _serve)
            await asyncio.wait(self._handlers, timeout=5.0)
        for writers in self._conns.values():
            for writer in writers:
                writer.close()
        self._conns.clear()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                await wait_for(self._server.wait_closed(), 5.0)

    async def _dial(self) -> tuple[str, asyncio.StreamReader, asyncio.StreamWriter] | None:
        order = [self.current, *(s for s in self.servers if s != self.current)]
        for address in order:
            host, port = split_host_port(address)
            try:
                reader, writer = await wait_for(asyncio.open_connection(host, port), self.dial_timeout)
            except (OSError, TimeoutError) as e:
                log.warning("API server %s: %s", address, e or type(e).__name__)
                continue
            if address != self.current:
                log.info("API server %s answers; using it instead of %s", address, self.current)
                self.current = address
            return address, reader, writer
        return None

    async def _serve(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        # A handler ends by returning, also when cancelled (stop(), or the loop's shutdown): the
        # stream server of Python 3.11 logs a handler task that ends cancelled as a traceback.
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            await self._proxy(client_reader, client_writer)
        except asyncio.CancelledError:
            pass
        finally:
            self._handlers.discard(handler)
            client_writer.close()

    async def _proxy(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        """Copy bytes between the client and a server it dials, until either side closes."""
        dialed = await self._dial()
        if dialed is None:
            log.error("no API server accepts connections (%s)", ", ".join(self.servers))
            return
        address, server_reader, server_writer = dialed
        conns = self._conns.setdefault(address, set())
        conns |= {client_writer, server_writer}
        copies = [asyncio.create_task(_copy(client_reader, server_writer)),
                  asyncio.create_task(_copy(server_reader, client_writer))]
        try:
            await asyncio.wait(copies, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in copies:
                task.cancel()
            await asyncio.wait(copies)  # cancelled copies end at once; none is left behind
            conns -= {client_writer, server_writer}
            server_writer.close()


async def _copy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while chunk := await reader.read(COPY_CHUNK):
            writer.write(chunk)
            await writer.drain()


async def follow_endpoints(lb: LoadBalancer, kubeconfig: Path, retry: float = 5.0) -> None:
    """Keep ``lb``'s servers those of the ``kubernetes`` Service's endpoints (a watch, reopened
    after ``retry`` seconds whenever it ends or fails), until cancelled. ``kubeconfig``'s user
    must be allowed to watch endpoints in ``default`` (kube-proxy's is)."""
    # Imported here: `kyb agent` starts without the API client (see tests/unit/test_agent_commands.py).
    from kybernetes import errors
    from kybernetes.client import Client
    from kybernetes.client.kubeconfig import ConfigError

    while True:
        try:
            async with Client.from_kubeconfig(kubeconfig, user_agent="kyb-agent-load-balancer") as client:
                async for event in client.watch("v1", "endpoints", "default", timeout_seconds=300,
                                                field_selector="metadata.name=kubernetes"):
                    if event.type in ("ADDED", "MODIFIED"):
                        lb.update(endpoint_addresses(event.object))
        except (ConnectionError, OSError, errors.StatusError, ConfigError) as e:
            log.warning("watching the kubernetes endpoints: %s (retrying in %gs)", e, retry)
        await asyncio.sleep(retry)
