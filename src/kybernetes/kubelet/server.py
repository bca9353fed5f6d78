"""The kubelet's HTTPS API (port 10250): health, pods, stats, metrics, container logs, exec, attach,
port-forward.

The API server proxies ``pods/NAME/{log,exec,attach,portforward}`` here
(``kybernetes.apiserver.transport.proxy``); metrics-server and Prometheus scrape the stats and
metrics. TLS uses a serving certificate for the node; client certificates are verified against the
cluster CA. Everything but ``/healthz`` needs a user: a client certificate or, with ``auth`` (the
kubelet's webhook modes, :mod:`kybernetes.kubelet.auth`), a bearer token the API server's
TokenReview accepts (401 otherwise); the user is then authorized by a SubjectAccessReview for
``nodes/{stats,metrics,log,proxy}`` (403 with the kubelet's words). Without ``auth`` only the API
server's kubelet client (CN ``kube-apiserver-kubelet-client``) and ``system:masters`` get in.

Endpoints::

    GET  /healthz                                   "ok"
    GET  /pods                                      PodList of what runs here (resolver.running_pods())
    GET  /stats/summary, /metrics, /metrics/resource, /metrics/cadvisor
                                                    with a stats provider (kybernetes.kubelet.statsapi)
    GET  /containerLogs/{ns}/{pod}/{container}      ?follow&tailLines&sinceSeconds&sinceTime&previous
                                                    &timestamps&limitBytes -> text/plain (chunked)
    *    /exec/{ns}/{pod}/{container}               ?command=..(repeated)&stdin&stdout&stderr&tty
    *    /attach/{ns}/{pod}/{container}             ?stdin&stdout&stderr&tty
    *    /portForward/{ns}/{pod}                    ?port=P1,P2 (repeatable; WebSocket of channels only)

Logs come from the CRI log files, one record per line::

    2016-10-06T00:17:09.669794202Z stdout F the text       (F: full line, P: partial, more follows)

Partial records are joined with what follows on the same stream. ``follow`` polls the file and
ends once the container is no longer running and the file is drained.

exec/attach: the CRI ``Exec``/``Attach`` call returns a URL on containerd's streaming server, which
speaks remotecommand over SPDY/3.1 (``v4.channel.k8s.io`` and older) and over WebSocket v4 — but not
v5, and v4 over WebSocket cannot half-close stdin. So this server always talks SPDY v4 to
containerd and translates: a WebSocket client (any of the channel subprotocols of
``streaming.channels``: v5, v4 and its base64 form, the pre-v4 ``channel.k8s.io`` and
``base64.channel.k8s.io``, or none) gets its channels 0/4 turned into the stdin/resize streams,
the v5 CLOSE signal for stdin into a FIN on the stdin stream, stdout/stderr stream data into
channels 1/2, and the Status containerd writes on the error stream (``Success``, or a
``NonZeroExitCode`` Failure) into what the subprotocol reports on channel 3 before the socket is
closed. A client that falls back to SPDY is proxied stream by stream to a SPDY session with
containerd, with the stream protocol the two negotiate (``channel.k8s.io``, v2, v3, v4).

port-forward, three ways, each one CRI ``PortForward`` call per connection whose containerd URL is
spoken to as a SPDY client:

- a plain ``Upgrade: SPDY/3.1`` (``portforward.k8s.io``), or SPDY tunnelled in a WebSocket
  (subprotocol ``SPDY/3.1+portforward.k8s.io``, kubectl 1.31+): every stream the client opens
  (per forwarded connection an error and a data stream, headers ``streamType``, ``port``,
  ``requestID``) is opened with the same headers towards containerd and the bytes are shuttled
  both ways. containerd connects to the port inside the pod's network namespace and reports
  failures on the error stream; if containerd cannot be reached, this server writes the failure
  there itself.
- a WebSocket of channels (no subprotocol, ``v4.channel.k8s.io``, ``v4.base64.channel.k8s.io``;
  the official clients' ``portforward``) with the ports in ``?port=``: each port's data and error
  channels become one such stream pair (``streaming.portforward``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import ssl
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aiohttp import web

from kybernetes.api.timeutil import parse_epoch
from kybernetes.kubelet.auth import DelegatedAuth, User, certificate_user, is_privileged, request_attributes
from kybernetes.kubelet.cri import CRIClient, CRIError, NotFoundError, api
from kybernetes.kubelet.stats import StatsProvider
from kybernetes.kubelet.statsapi import StatsHandlers
from kybernetes.streaming import RawUpgrade, WebSocketBytes, portforward, spdy
from kybernetes.streaming.bridges import bridge_channels, run_spdy_proxy
from kybernetes.streaming.channels import (
    ERROR,
    PORTFORWARD_PROTOCOL,
    PORTFORWARD_WEBSOCKET_PROTOCOLS,
    REMOTECOMMAND_WEBSOCKET_PROTOCOLS,
    SPDY_PORTFORWARD_TUNNEL,
    STDERR,
    STDOUT,
    ChannelSocket,
    error_status,
    negotiate,
    unsupported_message,
)

log = logging.getLogger(__name__)

DEFAULT_PORT = 10250
FOLLOW_POLL = 0.1


class PodResolver(Protocol):
    """What the kubelet core tells this server about the pods it runs.

    Lookups of unknown pods or containers raise ``LookupError`` (``KeyError`` is one)."""

    async def container_id(self, namespace: str, pod: str, container: str) -> str: ...

    async def sandbox_id(self, namespace: str, pod: str) -> str: ...

    def log_path(self, namespace: str, pod: str, container: str, previous: bool) -> Path: ...

    def running_pods(self) -> list[dict[str, Any]]: ...


def _bool(v: str | None) -> bool:
    return (v or "").lower() in ("1", "true", "t", "yes", "y")


def _status(message: str, code: int, reason: str) -> web.Response:
    return web.json_response(error_status(message, code=code, reason=reason), status=code)


# ---- CRI log files ------------------------------------------------------------------------------


@dataclass
class LogRecord:
    timestamp: str
    time: float
    stream: str
    content: bytes
    complete: bool


def parse_timestamp(ts: str) -> float:
    """RFC 3339 (fractions to the nanosecond) -> epoch seconds; ValueError if it is not one."""
    t = parse_epoch(ts.strip())
    if t is None:
        raise ValueError(f"not an RFC 3339 time: {ts!r}")
    return t


class CRILogParser:
    """Turns CRI log file lines into records, joining partial (``P``) lines per stream."""

    def __init__(self) -> None:
        self.pending: dict[str, LogRecord] = {}

    def feed_line(self, line: bytes) -> LogRecord | None:
        line = line.rstrip(b"\n")
        parts = line.split(b" ", 3)
        if len(parts) < 3:
            return None
        ts, stream, tag = parts[0].decode(errors="replace"), parts[1].decode(errors="replace"), parts[2]
        content = parts[3] if len(parts) > 3 else b""
        pending = self.pending.pop(stream, None)
        if pending is not None:
            content = pending.content + content
            ts_first, t_first = pending.timestamp, pending.time
        else:
            ts_first = ts
            try:
                t_first = parse_timestamp(ts)
            except ValueError:
                return None
        record = LogRecord(ts_first, t_first, stream, content, tag != b"P")
        if not record.complete:
            self.pending[stream] = record
            return None
        return record

    def flush(self) -> list[LogRecord]:
        """Partial lines never completed (the container ended mid-line)."""
        out = list(self.pending.values())
        self.pending.clear()
        return out


@dataclass
class LogOptions:
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_time: float | None = None
    limit_bytes: int | None = None

    @classmethod
    def from_query(cls, q: Any) -> LogOptions:
        o = cls(follow=_bool(q.get("follow")), previous=_bool(q.get("previous")),
                timestamps=_bool(q.get("timestamps")))
        if q.get("tailLines"):
            o.tail_lines = max(0, int(q["tailLines"]))
        if q.get("limitBytes"):
            o.limit_bytes = max(1, int(q["limitBytes"]))
        if q.get("sinceSeconds"):
            o.since_time = dt.datetime.now(dt.UTC).timestamp() - int(q["sinceSeconds"])
        elif q.get("sinceTime"):
            o.since_time = parse_timestamp(q["sinceTime"])
        return o

    def render(self, r: LogRecord) -> bytes:
        prefix = (r.timestamp + " ").encode() if self.timestamps else b""
        return prefix + r.content + (b"\n" if r.complete else b"")


# ---- the server ---------------------------------------------------------------------------------


class KubeletServer:
    """The kubelet's HTTPS server. ``start()`` binds (``port=0``: a free port, then in ``.port``)."""

    def __init__(self, resolver: PodResolver, cri: CRIClient | Callable[[], CRIClient], *,
                 cert: Path, key: Path, ca: Path, address: str = "0.0.0.0", port: int = DEFAULT_PORT,
                 authorize: Callable[[dict[str, Any] | None], bool] | None = None,
                 auth: DelegatedAuth | None = None, stats: StatsProvider | None = None, node_name: str = "") -> None:
        self.resolver = resolver
        self.webhook = auth
        self.stats = stats
        self.node_name = node_name
        self._cri = cri
        self.cert, self.key, self.ca = cert, key, ca
        self.address = address
        self.port = port
        self.authorize = authorize or default_authorize
        self.runner: web.AppRunner | None = None
        self._sessions: set[spdy.Session] = set()

    @property
    def cri(self) -> CRIClient:
        return self._cri if isinstance(self._cri, CRIClient) else self._cri()

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        ctx.load_verify_locations(cafile=str(self.ca))
        # Optional, so that /healthz answers without a certificate; everything else checks below.
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.set_alpn_protocols(["http/1.1"])
        return ctx

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        r = app.router
        r.add_get("/healthz", self._healthz)
        r.add_get("/pods", self._pods)
        r.add_get("/pods/", self._pods)
        if self.stats is not None:
            StatsHandlers(self.stats, self.resolver.running_pods).register(r)
        r.add_get("/containerLogs/{ns}/{pod}/{container}", self._logs)
        r.add_route("*", "/exec/{ns}/{pod}/{container}", self._exec)
        r.add_route("*", "/attach/{ns}/{pod}/{container}", self._attach)
        r.add_route("*", "/portForward/{ns}/{pod}", self._port_forward)
        return app

    async def start(self) -> None:
        """Listen on the address and port; :class:`ListenError` when the port cannot be had."""
        self.runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.address, self.port, ssl_context=self.ssl_context(), reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            raise ListenError(self.address, self.port, err) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]

    async def stop(self) -> None:
        for s in list(self._sessions):
            with contextlib.suppress(Exception):
                await s.close()
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    # -- auth --

    @web.middleware
    async def _auth(self, request: web.Request,
                    handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        if request.path in ("/healthz", "/healthz/"):
            return await handler(request)
        refusal = await self._check_access(request)
        if refusal is not None:
            return refusal
        try:
            return await handler(request)
        except LookupError as e:
            return _status(f"pod or container not found: {e}", 404, "NotFound")
        except NotFoundError as e:
            return _status(f"container not found: {e.details}", 404, "NotFound")
        except CRIError as e:
            return _status(f"container runtime: {e.details}", 500, "InternalError")
        except ValueError as e:
            return _status(str(e), 400, "BadRequest")

    async def _check_access(self, request: web.Request) -> web.Response | None:
        """None if the request's user may make it; else the 401 or 403 (see the module doc)."""
        transport = request.transport
        peercert = transport.get_extra_info("peercert") if transport is not None else None
        user: User | None = certificate_user(peercert) if peercert else None
        bearer = request.headers.get("Authorization", "")
        if user is None and self.webhook is not None and bearer[:7].lower() == "bearer ":
            user = await self.webhook.authenticate_token(bearer[7:].strip())
        if user is None:
            return _status("Unauthorized", 401, "Unauthorized")
        if self.webhook is None:
            if peercert and self.authorize(peercert):
                return None
            return _status(f"Forbidden (user={user.name}, path={request.path})", 403, "Forbidden")
        attrs = request_attributes(request.method, request.path, self.node_name)
        if is_privileged(user) or (await self.webhook.authorize(user, resource=attrs.resource_attributes())).allowed:
            return None
        return _status(attrs.forbidden(user), 403, "Forbidden")

    # -- simple endpoints --

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.Response(text="ok", content_type="text/plain")

    async def _pods(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "PodList", "apiVersion": "v1", "metadata": {},
                                  "items": self.resolver.running_pods()})

    # -- logs --

    async def _logs(self, request: web.Request) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        opts = LogOptions.from_query(request.query)
        path = self.resolver.log_path(ns, pod, container, opts.previous)
        container_id = ""
        if opts.follow and not opts.previous:
            with contextlib.suppress(LookupError, CRIError):
                container_id = await self.resolver.container_id(ns, pod, container)
        try:
            f = open(path, "rb")  # noqa: SIM115 - held open across awaits while following
        except FileNotFoundError:
            if opts.previous:
                return _status(f'previous terminated container "{container}" in pod "{pod}" not found',
                               400, "BadRequest")
            f = None
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        budget = opts.limit_bytes

        async def emit(data: bytes) -> bool:
            nonlocal budget
            if budget is not None:
                data = data[:budget]
                budget -= len(data)
            if data:
                await resp.write(data)
            return budget is None or budget > 0

        try:
            parser = CRILogParser()
            buf = b""
            if f is not None:
                buf = f.read()
            lines = buf.split(b"\n")
            buf = lines.pop()  # an unterminated last line waits for the rest
            records = [r for r in (parser.feed_line(line) for line in lines) if r is not None]
            if opts.since_time is not None:
                records = [r for r in records if r.time >= opts.since_time]
            if opts.tail_lines is not None:
                records = records[-opts.tail_lines:] if opts.tail_lines else []
            more = True
            for r in records:
                if not (more := await emit(opts.render(r))):
                    break
            if more and opts.follow and container_id:
                await self._follow(f, path, parser, buf, opts, container_id, emit)
            elif more and not opts.follow:
                for r in parser.flush():
                    if opts.since_time is None or r.time >= opts.since_time:
                        await emit(opts.render(r))
            await resp.write_eof()
        except ConnectionResetError:
            pass  # the client went away: nothing more to send
        finally:
            if f is not None:
                f.close()
        return resp

    async def _follow(self, f: Any, path: Path, parser: CRILogParser, buf: bytes, opts: LogOptions,
                      container_id: str, emit: Callable[[bytes], Awaitable[bool]]) -> None:
        loop = asyncio.get_running_loop()
        last_check = 0.0
        pending = b""
        try:
            while True:
                if f is None:
                    with contextlib.suppress(FileNotFoundError):
                        f = open(path, "rb")  # noqa: SIM115
                chunk = pending + (f.read() if f is not None else b"")
                pending = b""
                if chunk:
                    buf += chunk
                    lines = buf.split(b"\n")
                    buf = lines.pop()
                    for line in lines:
                        r = parser.feed_line(line)
                        keep = r is not None and (opts.since_time is None or r.time >= opts.since_time)
                        if keep and r is not None and not await emit(opts.render(r)):
                            return
                    continue
                if f is not None and _rotated(f, path):
                    # The log manager renamed the file and the runtime reopened it: what reached the
                    # old one last is read, then the new one is followed.
                    pending = f.read()
                    f.close()
                    f = None
                    continue
                now = loop.time()
                if now - last_check >= 0.5:
                    last_check = now
                    if not await self._running(container_id):
                        # One more read: what the container wrote just before it exited.
                        rest = (f.read() if f is not None else b"") + b""
                        buf += rest
                        for line in buf.split(b"\n"):
                            r = parser.feed_line(line) if line else None
                            if r is not None and not await emit(opts.render(r)):
                                return
                        for r in parser.flush():
                            await emit(opts.render(r))
                        return
                await asyncio.sleep(FOLLOW_POLL)
        finally:
            if f is not None:
                f.close()  # the caller closes the one it opened, this one may be newer

    async def _running(self, container_id: str) -> bool:
        try:
            status = (await self.cri.container_status(container_id)).status
        except NotFoundError:
            return False
        except CRIError:
            return True
        return bool(status.state in (api.CONTAINER_RUNNING, api.CONTAINER_CREATED))

    # -- exec / attach --

    async def _exec(self, request: web.Request) -> web.StreamResponse:
        return await self._remotecommand(request, attach=False)

    async def _attach(self, request: web.Request) -> web.StreamResponse:
        return await self._remotecommand(request, attach=True)

    async def _remotecommand(self, request: web.Request, *, attach: bool) -> web.StreamResponse:
        ns, pod, container = (request.match_info[k] for k in ("ns", "pod", "container"))
        q = request.query
        stdin, stdout, stderr, tty = (_bool(q.get(k)) for k in ("stdin", "stdout", "stderr", "tty"))
        if tty:
            stderr = False  # a terminal merges stderr into stdout; the CRI refuses both
        command = q.getall("command", [])
        if not (stdin or stdout or stderr):
            raise ValueError("you must specify at least 1 of stdin, stdout, stderr")
        if not attach and not command:
            raise ValueError("you must specify at least one command for the container")
        websocket = request.headers.get("Upgrade", "").lower() == "websocket"
        spdy_upgrade = request.headers.get("Upgrade", "").lower().startswith("spdy/")
        if not websocket and not spdy_upgrade:
            return _status("Upgrade request required", 400, "BadRequest")
        cid = await self.resolver.container_id(ns, pod, container)
        if attach:
            url = await self.cri.attach(api.AttachRequest(container_id=cid, stdin=stdin, tty=tty, stdout=stdout,
                                                          stderr=stderr))
        else:
            url = await self.cri.exec(api.ExecRequest(container_id=cid, cmd=command, tty=tty, stdin=stdin,
                                                      stdout=stdout, stderr=stderr))
        log.debug("%s %s/%s/%s over %s", "attach" if attach else "exec", ns, pod, container,
                  request.headers.get("Upgrade"))
        if spdy_upgrade:
            offered = _header_list(request, "X-Stream-Protocol-Version")
            return await self._spdy_proxy(request, url, offered)
        chosen = _websocket_protocol(request, REMOTECOMMAND_WEBSOCKET_PROTOCOLS)
        if not isinstance(chosen, str):
            return chosen
        session, _ = await _connect_cri(url, ["v4.channel.k8s.io"])
        self._sessions.add(session)
        try:
            streams = {"error": await session.open_stream({"streamType": "error"})}
            if stdin:
                streams["stdin"] = await session.open_stream({"streamType": "stdin"})
            if stdout:
                streams["stdout"] = await session.open_stream({"streamType": "stdout"})
            if stderr:
                streams["stderr"] = await session.open_stream({"streamType": "stderr"})
            if tty:
                streams["resize"] = await session.open_stream({"streamType": "resize"})
            # We never write on the output and error streams: half-close them as Go clients do.
            for name in ("error", "stdout", "stderr"):
                if name in streams:
                    await streams[name].close()
            ws = await _accept_websocket(request, chosen)
            sock = ChannelSocket(ws, chosen)
            # Kubernetes' "connection is up" signal: an empty message on the lowest output channel.
            await sock.send(STDOUT if stdout else STDERR if stderr else ERROR, b"")
            await bridge_channels(sock, session, streams)
            return ws
        finally:
            self._sessions.discard(session)
            await session.close()

    async def _spdy_proxy(self, request: web.Request, url: str, offered: list[str],
                          on_failure: Callable[[spdy.Stream, Exception], Awaitable[None]] | None = None
                          ) -> web.StreamResponse:
        """Upgrades the client to SPDY and proxies its streams, one for one, to containerd's URL."""
        down, proto = await _connect_cri(url, offered)
        if offered and proto not in offered:
            await down.close()
            return _status(f"no common stream protocol among {offered}", 403, "Forbidden")
        raw = await RawUpgrade.accept(request, {"Connection": "Upgrade", "Upgrade": "SPDY/3.1",
                                                "X-Stream-Protocol-Version": proto})
        await run_spdy_proxy(raw, down, on_failure)
        assert raw.response is not None
        return raw.response

    # -- port-forward --

    async def _port_forward(self, request: web.Request) -> web.StreamResponse:
        ns, pod = request.match_info["ns"], request.match_info["pod"]
        sandbox = await self.resolver.sandbox_id(ns, pod)
        upgrade = request.headers.get("Upgrade", "").lower()
        log.debug("port-forward %s/%s over %s", ns, pod, upgrade or "no upgrade")
        if upgrade == "websocket":
            if SPDY_PORTFORWARD_TUNNEL not in _header_list(request, "Sec-WebSocket-Protocol"):
                return await self._port_forward_channels(request, pod, sandbox)
        elif upgrade.startswith("spdy/"):
            offered = _header_list(request, "X-Stream-Protocol-Version")
            if offered and PORTFORWARD_PROTOCOL not in offered:
                return _status(f"unsupported stream protocol {offered}", 403, "Forbidden")
        else:
            return _status("Upgrade request required", 400, "BadRequest")
        url = await self.cri.port_forward(sandbox)

        async def failure(stream: spdy.Stream, err: Exception) -> None:
            if stream.header("streamType") == "error":
                msg = (f"error forwarding port {stream.header('port')} to pod {pod} "
                       f"(sandbox {sandbox[:12]}): {err}")
                with contextlib.suppress(Exception):
                    await stream.write(msg.encode())
            with contextlib.suppress(Exception):
                await stream.close()

        if upgrade.startswith("spdy/"):
            return await self._spdy_proxy(request, url, [PORTFORWARD_PROTOCOL], failure)
        down, _ = await _connect_cri(url, [PORTFORWARD_PROTOCOL])
        ws = web.WebSocketResponse(protocols=(SPDY_PORTFORWARD_TUNNEL,), autoping=True, max_msg_size=0)
        await ws.prepare(request)
        await run_spdy_proxy(WebSocketBytes(ws), down, failure)
        return ws

    async def _port_forward_channels(self, request: web.Request, pod: str, sandbox: str) -> web.StreamResponse:
        """port-forward over a WebSocket of channels (the official clients'): see
        :mod:`kybernetes.streaming.portforward`."""
        # The ports are read before the handshake, as the kubelet does.
        ports = portforward.parse_ports(request.query.getall(portforward.PORT_PARAMETER, []))
        chosen = _websocket_protocol(request, PORTFORWARD_WEBSOCKET_PROTOCOLS)
        if not isinstance(chosen, str):
            return chosen
        url = await self.cri.port_forward(sandbox, ports)
        runtime, _ = await _connect_cri(url, [PORTFORWARD_PROTOCOL])
        self._sessions.add(runtime)
        try:
            ws = await _accept_websocket(request, chosen)
            await portforward.serve_ports(ChannelSocket(ws, chosen), runtime, ports,
                                          describe=f"{pod} (sandbox {sandbox[:12]})")
            return ws
        finally:
            self._sessions.discard(runtime)
            await runtime.close()


def _rotated(f: Any, path: Path) -> bool:
    """Whether `path` is now another file than the open `f` (log rotation renamed it away)."""
    try:
        return os.stat(path).st_ino != os.fstat(f.fileno()).st_ino
    except FileNotFoundError:
        return False


def _websocket_protocol(request: web.Request, supported: tuple[str, ...]) -> str | web.Response:
    """The channel subprotocol to answer with, or the 403 refusal Kubernetes' handshake gives.

    Only the first Sec-WebSocket-Protocol line counts, in Go's handshake and in aiohttp's alike."""
    first = request.headers.get("Sec-WebSocket-Protocol", "")
    offered = [p.strip() for p in first.split(",") if p.strip()]
    chosen = negotiate(offered, supported)
    if chosen is None:
        return _status(unsupported_message(offered, supported), 403, "Forbidden")
    return chosen


async def _accept_websocket(request: web.Request, protocol: str) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(protocols=(protocol,) if protocol else (), autoping=True, max_msg_size=0)
    await ws.prepare(request)
    return ws


def _header_list(request: web.Request, name: str) -> list[str]:
    out = []
    for value in request.headers.getall(name, []):
        out += [p.strip() for p in value.split(",") if p.strip()]
    return out


class ListenError(Exception):
    """The kubelet API cannot listen (its port taken, its address not this host's). The message is
    the kubelet's: ``failed to listen and serve: listen tcp ADDR:PORT: bind: REASON``."""

    def __init__(self, address: str, port: int, err: OSError) -> None:
        host = f"[{address}]" if ":" in address else address
        reason = os.strerror(err.errno).lower() if err.errno else str(err)
        super().__init__(f"failed to listen and serve: listen tcp {host}:{port}: bind: {reason}")


def default_authorize(peercert: dict[str, Any] | None) -> bool:
    """Only the API server's kubelet client, or a cluster admin, may use the kubelet's API."""
    return bool(peercert) and is_privileged(certificate_user(peercert or {}))


async def _connect_cri(url: str, protocols: list[str]) -> tuple[spdy.Session, str]:
    """A SPDY client session to a CRI streaming URL (containerd serves plain HTTP on loopback)."""
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        ctx = ssl.create_default_context()
        # containerd's TLS streaming uses a self-signed certificate made at start-up.
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx = None
    path = u.path + (f"?{u.query}" if u.query else "")
    return await spdy.connect(u.hostname or "127.0.0.1", u.port or (443 if ctx else 80), path, protocols, ssl=ctx)
