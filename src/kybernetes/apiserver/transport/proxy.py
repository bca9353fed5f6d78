"""The API server's streaming subresources: ``pods/NAME/{log,exec,attach,portforward}``.

Each is served by the kubelet of the pod's node; the API server finds it and proxies:

    pod.spec.nodeName -> Node -> status.addresses[type=InternalIP] (else the first address)
                              -> status.daemonEndpoints.kubeletEndpoint.Port (default 10250)

The connection to the kubelet is HTTPS, verifying the kubelet's serving certificate against the
cluster CA *and* the node address (the kubelet's certificate must carry its InternalIP as a SAN:
kybernetes issues node serving certificates from the cluster CA), and presenting the API server's
kubelet-client certificate (CN ``kube-apiserver-kubelet-client``, O ``system:masters``).

logs: ``GET /containerLogs/{ns}/{pod}/{container}`` with the same options; the kubelet's body is
streamed through chunk by chunk (``follow`` therefore lasts until the kubelet ends the stream or the
client goes away, and then the kubelet request is dropped).

exec, attach, portforward: the client's upgrade request (WebSocket with the subprotocols it offers,
or ``Upgrade: SPDY/3.1`` with its ``X-Stream-Protocol-Version`` list) is replayed to the kubelet's
``/exec/...``, ``/attach/...`` or ``/portForward/...`` with the upgrade headers unchanged. The
kubelet's answer decides: a ``101`` goes back to the client verbatim (its ``Sec-WebSocket-Accept``
is computed from the client's own key, which was passed through) and from then on bytes are
copied both ways without interpretation; anything else (an error Status) is relayed as is. The
kubelet therefore negotiates the protocol (the channel subprotocols, SPDY, SPDY tunnelled in a
WebSocket) with the client end to end. portforward's ``ports`` (repeated or comma-separated, as
PodPortForwardOptions converts them; 400 otherwise) reach the kubelet as its ``port=P1,P2``.
"""

from __future__ import annotations

import asyncio
import ssl
import urllib.parse
from pathlib import Path

import aiohttp

from kybernetes import errors
from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.registry.store import Registry
from kybernetes.httpserver.messages import AnyResponse, Request, Response, StreamResponse
from kybernetes.streaming import StreamPair, UpgradeResponse, http_upgrade, read_body, splice
from kybernetes.streaming.portforward import PORT_PARAMETER, parse_uint16

DEFAULT_KUBELET_PORT = 10250
LOG_PARAMS = ("follow", "previous", "timestamps", "sinceSeconds", "sinceTime", "tailLines", "limitBytes")
# Request headers replayed to the kubelet on an upgrade: what the protocols negotiate with.
UPGRADE_HEADERS = ("Connection", "Upgrade", "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                   "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version", "User-Agent")
# Response headers of the kubelet's 101 passed back to the client.
RESPONSE_HEADERS = ("Connection", "Upgrade", "Sec-WebSocket-Accept", "Sec-WebSocket-Protocol",
                    "Sec-WebSocket-Extensions", "X-Stream-Protocol-Version")


class StreamingProxy:
    def __init__(self, registry: Registry, catalogue: Catalogue, *, ca: Path, client_cert: Path,
                 client_key: Path, connect_timeout: float = 10.0) -> None:
        self.registry = registry
        self.catalogue = catalogue
        self.connect_timeout = connect_timeout
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(ca))
        ctx.load_cert_chain(str(client_cert), str(client_key))
        ctx.set_alpn_protocols(["http/1.1"])
        self.ssl = ctx

    # -- locating the kubelet --

    async def _pod(self, ns: str, name: str) -> Obj:
        pods = self.catalogue.get("", "v1", "pods")
        assert pods is not None
        return await self.registry.get(pods, ns, name)

    async def kubelet_address(self, pod: Obj) -> tuple[str, int]:
        node_name = (pod.get("spec") or {}).get("nodeName")
        name = pod["metadata"]["name"]
        if not node_name:
            raise errors.BadRequest(f"pod {name} does not have a host assigned")
        nodes = self.catalogue.get("", "v1", "nodes")
        assert nodes is not None
        # A pod bound to a node that does not exist: the node's own 404, as kube's
        # NodeConnectionInfoGetter returns it (it was a 500).
        node = await self.registry.get(nodes, "", node_name)
        status = node.get("status") or {}
        addresses = status.get("addresses") or []
        host = next((a.get("address") for a in addresses if a.get("type") == "InternalIP"), None)
        host = host or next((a.get("address") for a in addresses if a.get("address")), None)
        if not host:
            raise errors.InternalError(f'node "{node_name}" has no address to reach its kubelet at')
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        return host, int(port or DEFAULT_KUBELET_PORT)

    @staticmethod
    def container_name(pod: Obj, requested: str) -> str:
        spec = pod.get("spec") or {}
        name = pod["metadata"]["name"]
        containers = [c["name"] for c in spec.get("containers") or []]
        others = [c["name"] for c in (spec.get("initContainers") or []) + (spec.get("ephemeralContainers") or [])]
        if requested:
            if requested not in containers + others:
                raise errors.BadRequest(f"container {requested} is not valid for pod {name}")
            return requested
        default = ((pod.get("metadata") or {}).get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
        if default in containers:
            return str(default)
        if len(containers) == 1:
            return containers[0]
        raise errors.BadRequest(f"a container name must be specified for pod {name}, choose one of: "
                                f"[{' '.join(containers)}]" + (f" or one of the init containers: [{' '.join(others)}]"
                                                              if others else ""))

    # -- entry --

    async def handle(self, request: Request, sub: str, ns: str, name: str) -> AnyResponse:
        pod = await self._pod(ns, name)
        host, port = await self.kubelet_address(pod)
        q = request.query
        if sub == "log":
            if request.method != "GET":
                raise errors.MethodNotAllowed(f"method {request.method} is not allowed on log")
            container = self.container_name(pod, q.get("container", ""))
            params = [(k, v) for k in LOG_PARAMS for v in q.getall(k, [])]
            path = f"/containerLogs/{_p(ns)}/{_p(name)}/{_p(container)}"
            return await self._logs(request, host, port, path, params)
        if sub == "portforward":
            path = f"/portForward/{_p(ns)}/{_p(name)}"
            ports = _ports(q.getall("ports", []))
            params = [(PORT_PARAMETER, ",".join(map(str, ports)))] if ports else []
        elif sub in ("exec", "attach"):
            container = self.container_name(pod, q.get("container", ""))
            kubelet_sub = "exec" if sub == "exec" else "attach"
            path = f"/{kubelet_sub}/{_p(ns)}/{_p(name)}/{_p(container)}"
            params = [(k, v) for k, v in q.items() if k in ("command", "stdin", "stdout", "stderr", "tty")]
        else:
            raise errors.NotFound(f"the server could not find the requested resource ({sub})")
        if not request.headers.get("Upgrade"):
            raise errors.BadRequest("Upgrade request required")
        return await self._upgrade(request, host, port, path, params)

    # -- logs --

    async def _logs(self, request: Request, host: str, port: int, path: str,
                    params: list[tuple[str, str]]) -> AnyResponse:
        url = f"https://{_host(host)}:{port}{path}"
        timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            try:
                upstream = await session.get(url, params=params, ssl=self.ssl)
            except (aiohttp.ClientError, OSError) as e:
                raise errors.InternalError(f"Get {url!r}: {e}") from e
            async with upstream:
                if upstream.status != 200:
                    body = await upstream.read()
                    return Response(body=body, status=upstream.status,
                                        headers={"Content-Type": upstream.headers.get("Content-Type", "text/plain")})
                resp = StreamResponse(headers={"Content-Type": "text/plain"})
                await resp.prepare(request)
                try:
                    async for chunk in upstream.content.iter_any():
                        await resp.write(chunk)
                except (aiohttp.ClientError, ConnectionResetError):
                    # Either the client went away (stop reading from the kubelet) or the kubelet did.
                    return resp
                await resp.write_eof()
                return resp

    # -- upgrades --

    async def _upgrade(self, request: Request, host: str, port: int, path: str,
                       params: list[tuple[str, str]]) -> AnyResponse:
        target = path + ("?" + urllib.parse.urlencode(params) if params else "")
        headers = [(k, v) for k in UPGRADE_HEADERS for v in request.headers.getall(k, [])]
        try:
            head, reader, writer = await http_upgrade(host, port, target, headers, method=request.method,
                                                      ssl=self.ssl, server_hostname=host,
                                                      timeout=self.connect_timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError) as e:
            raise errors.InternalError(f"error dialing kubelet at {host}:{port}: {e}") from e
        return await relay_upgrade(request, head, reader, writer, self.connect_timeout)


async def relay_upgrade(request: Request, head: UpgradeResponse, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter, timeout: float) -> AnyResponse:
    """Answer ``request`` with an upstream's answer to its replayed upgrade: anything but ``101``
    is relayed as is; a ``101`` (with :data:`RESPONSE_HEADERS`) upgrades the client's connection
    too, and bytes are then copied both ways until either side ends."""
    if head.status != 101:
        try:
            body = await wait_for(read_body(reader, head), timeout)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            body = b""
        finally:
            writer.close()
        return Response(body=body, status=head.status,
                        headers={"Content-Type": head.get("Content-Type", "application/json")})
    upstream = StreamPair(reader, writer)
    try:
        out = {k: head.get(k) for k in RESPONSE_HEADERS if head.get(k)}
        client = await request.upgrade(out)
    except BaseException:
        await upstream.close()
        raise
    # Bytes the upstream sent right behind its 101 are already in the reader's buffer: the pipe
    # reads through the same reader, so nothing is lost.
    await splice(client, upstream)
    # The connection was taken over; the HTTP server sends nothing more on it.
    return Response(status=101)


def _ports(values: list[str]) -> list[int]:
    """``?ports=`` (repeated and/or comma-separated) as PodPortForwardOptions' ``[]int32`` converts it."""
    ports: list[int] = []
    for value in values:
        for item in value.split(","):
            port = parse_uint16(item)
            if isinstance(port, str):
                raise errors.BadRequest(f"cannot convert to []int32: {port}")
            ports.append(port)
    return ports


def _p(segment: str) -> str:
    return urllib.parse.quote(segment, safe="")


def _host(host: str) -> str:
    return f"[{host}]" if ":" in host else host

