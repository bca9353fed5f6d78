"""exec and port-forward with every client protocol, through a real ``kyb server`` and its node.

The official Python client's ``stream`` (WebSocket ``v5.channel.k8s.io``, or ``v4.channel.k8s.io``
when asked) and ``portforward`` (WebSocket ``v4.channel.k8s.io``, a data and an error channel per
port), and this project's channel client for the protocols no stock client here speaks (the
base64 forms, the pre-v4 ``channel.k8s.io`` and no subprotocol at all). kubectl's own transports
(WebSocket v5, SPDY, SPDY tunnelled in a WebSocket) are covered by ``test_node.py`` and
``tests/streaming/test_e2e.py``.

One server is shared by the module, with a pod network of its own (10.N/16, N in 200..239, so
that it collides neither with ``test_node.py``'s nor with another cluster on this machine).
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from kybernetes.streaming import channels, spdy
from kybernetes.streaming.channels import ChannelSocket, run_exec_client
from kybernetes.streaming.portforward import port_prefix, split_port_prefix
from kybernetes.testing import free_network_octet

from .conftest import require_kubectl, wait_until
from .test_node import Node, _node_missing, pod, running_node

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, config  # noqa: E402
from kubernetes.stream import portforward, stream  # noqa: E402
from kubernetes.stream.ws_client import WSClient  # noqa: E402

NS = "default"
ECHO_PORT = 9090
HTTP_PORT = 8080
WEB_SCRIPT = (f"mkdir -p /www && echo hello-from-httpd > /www/index.html && httpd -p {HTTP_PORT} -h /www && "
              f"exec nc -ll -p {ECHO_PORT} -e tr a-z A-Z")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    reason = _node_missing()
    if reason:
        pytest.skip(reason)
    require_kubectl()
    octet = free_network_octet(200, 240, "kye{}a")
    with running_node(tmp_path_factory.mktemp("kyb-stream").resolve(), "e2e-stream", octet) as n:
        n.apply(NS, pod("web", WEB_SCRIPT), pod("reader", 'while read line; do echo "got:$line"; done',
                                                container={"stdin": True}))
        n.wait_ready(NS, "web")
        n.wait_ready(NS, "reader")
        yield n


@pytest.fixture(scope="module")
def core(node: Node) -> Iterator[Any]:
    api = config.new_client_from_config(config_file=str(node.server.kubeconfig))
    try:
        yield client.CoreV1Api(api)
    finally:
        api.close()


# ---- the official client: exec ------------------------------------------------------------------


def _exec(core: Any, command: list[str], *, protocol: str | None = None, stdin: bool = False) -> WSClient:
    headers = {"sec-websocket-protocol": protocol} if protocol else None
    ws: WSClient = stream(core.connect_get_namespaced_pod_exec, "web", NS, command=command, stdin=stdin,
                          stdout=True, stderr=True, tty=False, _preload_content=False, _headers=headers)
    return ws


@pytest.mark.parametrize("protocol", [None, channels.V4])
def test_official_client_exec(core: Any, protocol: str | None) -> None:
    ws = _exec(core, ["sh", "-c", "echo out; echo err >&2; exit 3"], protocol=protocol)
    # Offering v5 and v4 (the client's default) gets v5; asking for v4 alone gets v4.
    assert ws.subprotocol == (protocol or channels.V5)
    ws.run_forever(timeout=30)
    assert ws.read_stdout() == "out\n"
    assert ws.read_stderr() == "err\n"
    assert ws.returncode == 3
    ok = _exec(core, ["cat", "/www/index.html"], protocol=protocol)
    ok.run_forever(timeout=30)
    assert (ok.read_stdout(), ok.returncode) == ("hello-from-httpd\n", 0)


def test_official_client_exec_stdin(core: Any) -> None:
    # v5: stdin is closed with the CLOSE signal and `cat` ends.
    ws = _exec(core, ["sh", "-c", "cat; echo done"], stdin=True)
    ws.write_stdin("piped\nlines\n")
    ws.close_channel(channels.STDIN)
    ws.run_forever(timeout=30)
    assert (ws.read_stdout(), ws.returncode) == ("piped\nlines\ndone\n", 0)
    # v4 cannot close stdin: the command reads what it needs.
    ws = _exec(core, ["sh", "-c", "read a; read b; echo \"$b $a\""], protocol=channels.V4, stdin=True)
    ws.write_stdin("first\nsecond\n")
    ws.run_forever(timeout=30)
    assert (ws.read_stdout(), ws.returncode) == ("second first\n", 0)


@pytest.mark.parametrize("protocol", [None, channels.V4])
def test_official_client_attach(core: Any, protocol: str | None) -> None:
    headers = {"sec-websocket-protocol": protocol} if protocol else None
    ws: WSClient = stream(core.connect_get_namespaced_pod_attach, "reader", NS, stdin=True, stdout=True,
                          stderr=True, tty=False, _preload_content=False, _headers=headers)
    try:
        assert ws.subprotocol == (protocol or channels.V5)
        ws.write_stdin(f"via {ws.subprotocol}\n")
        assert ws.readline_stdout(timeout=20) == f"got:via {ws.subprotocol}"
    finally:
        ws.close()


# ---- the official client: port-forward ----------------------------------------------------------


def _recv_until(sock: Any, done: Any, timeout: float = 20.0) -> bytes:
    """Reads from a port-forward socket until ``done(data)`` or end of stream."""
    sock.settimeout(timeout)
    data = b""
    while not done(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_official_client_port_forward_one_port(core: Any) -> None:
    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", NS, ports=str(HTTP_PORT))
    # The client offers v5 and v4; port-forward has no v5.
    assert pf.websocket.getheaders().get("sec-websocket-protocol") == channels.V4
    sock = pf.socket(HTTP_PORT)
    sock.sendall(b"GET /index.html HTTP/1.0\r\nHost: web\r\n\r\n")
    # httpd ends the connection after answering: the forwarding ends, and the socket with it.
    reply = _recv_until(sock, lambda d: False)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n"), reply
    assert reply.endswith(b"\r\n\r\nhello-from-httpd\n")
    wait_until(lambda: not pf.connected, 10, "the WebSocket to close once the port's connection ended")
    assert pf.error(HTTP_PORT) is None


def test_official_client_port_forward_two_ports(core: Any) -> None:
    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", NS, ports=f"{ECHO_PORT},{HTTP_PORT}")
    try:
        echo, web = pf.socket(ECHO_PORT), pf.socket(HTTP_PORT)
        echo.sendall(b"first line\n")
        web.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert _recv_until(echo, lambda d: d.endswith(b"\n")) == b"FIRST LINE\n"
        reply = _recv_until(web, lambda d: d.endswith(b"hello-from-httpd\n"))
        assert reply.startswith(b"HTTP/1.1 200 OK"), reply
        # The echo connection outlives the finished HTTP one on the same socket; more bytes, both ways.
        blob = b"abc" * 100_000 + b"\n"
        echo.sendall(blob)
        assert _recv_until(echo, lambda d: len(d) >= len(blob)) == blob.upper()
        assert pf.connected and pf.error(ECHO_PORT) is None and pf.error(HTTP_PORT) is None
    finally:
        pf.close()


def test_official_client_port_forward_error(core: Any) -> None:
    pf = portforward(core.connect_get_namespaced_pod_portforward, "web", NS, ports="9999")
    try:
        error = wait_until(lambda: pf.error(9999), 20, "an error on port 9999's error channel")
        assert "error forwarding port 9999 to pod" in error and "connection refused" in error, error
    finally:
        pf.close()


# ---- this project's client: the other channel protocols -----------------------------------------


def _ssl(core: Any) -> ssl.SSLContext:
    cfg = core.api_client.configuration
    ctx = ssl.create_default_context(cafile=cfg.ssl_ca_cert)
    if cfg.cert_file:
        ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
    return ctx


async def _channels_session(core: Any, path: str, protocols: list[str], work: Any) -> Any:
    cfg = core.api_client.configuration
    headers = {"Authorization": cfg.api_key["authorization"]} if cfg.api_key.get("authorization") else {}
    async with aiohttp.ClientSession(headers=headers) as session, session.ws_connect(
            cfg.host + path, protocols=protocols, ssl=_ssl(core), max_msg_size=0) as ws:
        return await work(ChannelSocket(ws, ws.protocol or ""), ws.protocol or "")


EXEC_PATH = f"/api/v1/namespaces/{NS}/pods/web/exec?stdout=true&stderr=true"
FAILING = "&command=sh&command=-c&command=echo%20out%3B%20echo%20err%20%3E%262%3B%20exit%205"


@pytest.mark.parametrize("protocol", [channels.V4_BASE64, channels.CHANNEL, channels.BASE64_CHANNEL, None])
def test_exec_channel_protocols(core: Any, protocol: str | None) -> None:
    async def run(sock: ChannelSocket, chosen: str) -> Any:
        assert chosen == (protocol or "")
        # Kubernetes' "connection is up": an empty message on the lowest output channel.
        assert await sock.receive() == (channels.STDOUT, b"")
        return await run_exec_client(sock)

    res = asyncio.run(_channels_session(core, EXEC_PATH + FAILING, [protocol] if protocol else [], run))
    assert (res.stdout, res.stderr) == (b"out\n", b"err\n")
    assert res.status is not None and res.status["status"] == "Failure"
    if protocol == channels.V4_BASE64:
        assert res.exit_code == 5  # a Status with the exit code
    else:
        # Before v4 the error channel carries only the failure's message.
        assert res.status["message"].endswith("], exit code 5"), res.status  # containerd's wording


def test_exec_stdin_round_trip_in_base64(core: Any) -> None:
    data = bytes(range(256)) * 256

    async def run(sock: ChannelSocket, chosen: str) -> bytes:
        assert chosen == channels.V4_BASE64
        await sock.send(channels.STDIN, data)
        out = b""
        while len(out) < len(data):
            item = await sock.receive()
            assert item is not None, len(out)
            if item[0] == channels.STDOUT:
                out += item[1]
        return out

    path = f"/api/v1/namespaces/{NS}/pods/web/exec?stdin=true&stdout=true&command=cat"
    assert asyncio.run(_channels_session(core, path, [channels.V4_BASE64], run)) == data


def test_port_forward_base64_channels(core: Any) -> None:
    async def run(sock: ChannelSocket, chosen: str) -> Any:
        assert chosen == channels.V4_BASE64
        # The port, little-endian, first on both channels of each port.
        firsts: dict[int, tuple[int, bytes]] = {}
        while len(firsts) < 4:
            item = await sock.receive()
            assert item is not None
            firsts[item[0]] = split_port_prefix(item[1])
        assert firsts == {0: (ECHO_PORT, b""), 1: (ECHO_PORT, b""), 2: (9999, b""), 3: (9999, b"")}
        assert port_prefix(ECHO_PORT) == bytes((ECHO_PORT & 0xFF, ECHO_PORT >> 8))
        await sock.send(0, b"base64 bytes\n")
        got: dict[int, bytes] = {0: b"", 3: b""}
        while not (got[0].endswith(b"\n") and got[3]):
            item = await sock.receive()
            assert item is not None, got
            got[item[0]] = got.get(item[0], b"") + item[1]
        return got

    got = asyncio.run(_channels_session(core, f"/api/v1/namespaces/{NS}/pods/web/portforward?ports={ECHO_PORT},9999",
                                        [channels.V4_BASE64], run))
    assert got[0] == b"BASE64 BYTES\n"
    assert b"9999" in got[3] and b"connection refused" in got[3], got[3]


def test_refusals(core: Any) -> None:
    """Kubernetes' answers to what cannot be served: a Status with its code and wording."""
    base = f"/api/v1/namespaces/{NS}/pods/web"
    cases = [
        # No subprotocol in common: the kubelet's WebSocket handshake refuses.
        (base + "/portforward?ports=80", ["v5.channel.k8s.io"], 403,
         "requested protocol(s) are not supported: [v5.channel.k8s.io]"),
        (EXEC_PATH + "&command=true", ["nope.k8s.io"], 403, "requested protocol(s) are not supported"),
        # The API server converts ?ports= to []int32; the kubelet needs at least one port above 0.
        (base + "/portforward?ports=http", [channels.V4], 400,
         'cannot convert to []int32: strconv.ParseUint: parsing "http": invalid syntax'),
        (base + "/portforward?ports=70000", [channels.V4], 400, "value out of range"),
        (base + "/portforward", [channels.V4], 400, 'query parameter "port" is required'),
        (base + "/portforward?ports=0", [channels.V4], 400, 'port "0" must be > 0'),
    ]
    for path, protocols, code, message in cases:
        status, body = asyncio.run(_refused(core, path, protocols))
        assert status == code and body.get("code") == code, (path, status, body)
        assert message in body["message"], (path, body)


async def _refused(core: Any, path: str, protocols: list[str]) -> tuple[int, Any]:
    """The status and body of a WebSocket upgrade that is expected to be refused."""
    cfg = core.api_client.configuration
    headers = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": ", ".join(protocols)}
    async with aiohttp.ClientSession() as session, session.get(cfg.host + path, headers=headers,
                                                                ssl=_ssl(core)) as resp:
        return resp.status, json.loads(await resp.read())


# ---- SPDY: every remotecommand version (kubectl's fallback speaks the newest) --------------------


@pytest.mark.parametrize("protocol", channels.REMOTECOMMAND_SPDY_PROTOCOLS)
def test_exec_over_spdy_every_version(core: Any, protocol: str) -> None:
    cfg = core.api_client.configuration
    host, port = cfg.host.removeprefix("https://").rsplit(":", 1)
    script = "cat; echo err >&2; exit 3".replace(" ", "%20").replace(";", "%3B").replace(">", "%3E").replace("&", "%26")
    path = f"/api/v1/namespaces/{NS}/pods/web/exec?stdin=true&stdout=true&stderr=true" \
           f"&command=sh&command=-c&command={script}"
    auth = {"Authorization": cfg.api_key["authorization"]} if cfg.api_key.get("authorization") else {}

    async def run() -> tuple[str, dict[str, bytes]]:
        session, chosen = await spdy.connect(host, int(port), path, [protocol], ssl=_ssl(core), extra_headers=auth)
        try:
            # The streams client-go opens, error first; only stdin is written.
            streams = {name: await session.open_stream({"streamType": name})
                       for name in ("error", "stdin", "stdout", "stderr")}
            for name in ("error", "stdout", "stderr"):
                await streams[name].close()
            await streams["stdin"].write(b"over spdy\n")
            await streams["stdin"].close()
            got = {name: await asyncio.wait_for(streams[name].read_all(), 30) for name in ("stdout", "stderr", "error")}
            return chosen, got
        finally:
            await session.close()

    chosen, got = asyncio.run(run())
    assert chosen == protocol
    assert (got["stdout"], got["stderr"]) == (b"over spdy\n", b"err\n")
    if protocol == channels.V4:
        status = json.loads(got["error"])
        assert channels.exit_code(status) == 3, status
    elif protocol == channels.CHANNEL:
        # v1 resets the error stream as soon as the streams are set up (what kubelet 1.0 did, kept
        # by Kubernetes' v1ProtocolHandler): a v1 client never learns the exit status.
        assert got["error"] == b""
    else:
        # v2 and v3: the error stream carries the failure's message alone.
        assert got["error"].decode().endswith("exit code 3"), got["error"]
