"""Container probes: startup, liveness and readiness, as the kubelet's prober manager runs them.

One worker task per probe of a started container (``prober/worker.go``):

- the first probe runs ``initialDelaySeconds`` after the container was added (started), then
  every ``periodSeconds``; each attempt has ``timeoutSeconds``;
- a result only counts after ``failureThreshold`` consecutive failures or ``successThreshold``
  consecutive successes; ``on_change(pod_uid, container, kind, result)`` is called when the
  counted result changes, never for a repeat;
- initial results are the kubelet's: readiness *failure* (a container is not ready until a
  probe says so), liveness *success*, startup *unknown*;
- a startup probe gates the other two: liveness and readiness workers wait until it succeeded,
  after which the startup worker stops. A liveness or startup failure puts the worker on hold —
  the core restarts the container and calls :meth:`ProbeManager.add` again with the new id;
- ``is_ready`` without a readiness probe is "started" (startup probe passed, or none).

Probe mechanisms (``prober/prober.go`` and ``probe/{exec,http,tcp,grpc}``):

``exec``       the CRI's ExecSync with the probe's timeout; exit code 0 is success, the output
               (stdout then stderr, at most 10 KiB) is the failure message; a timeout fails with
               ``command "..." timed out``.
``httpGet``    ``scheme://host:port/path`` (host: the pod IP unless given; port: a number or the
               name of a container port), ``httpHeaders`` (``Host`` included), ``User-Agent:
               kube-probe/1.32``; 2xx and 3xx succeed; redirects are followed on the same host (at
               most 10), a redirect to another host is a success with a warning, as in Kubernetes;
               HTTPS does not verify certificates. No keep-alive: each probe is its own connection.
``tcpSocket``  a TCP connect to host:port.
``grpc``       ``grpc.health.v1.Health/Check`` of ``service``; SERVING succeeds.

An attempt that *errors* (the runtime is unreachable, a named port does not exist) is retried up
to three times within the same period and then counts as a failure ("probe errored"), as the
kubelet's ``runProbeWithRetries`` does.

Messages follow Kubernetes' wording, so the core's ``Unhealthy`` events read like the kubelet's:
``Liveness probe failed: HTTP probe failed with statuscode: 500``, ``Readiness probe failed: dial
tcp 10.42.0.5:8080: connect: connection refused``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from multidict import CIMultiDict

from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.client.workqueue import Clock, RealClock

log = logging.getLogger(__name__)

ExecSync = Callable[[str, list[str], int], Awaitable[tuple[int, bytes, bytes]]]
OnChange = Callable[[str, str, str, bool], None]

KINDS = ("startup", "liveness", "readiness")
_FIELDS = {"startup": "startupProbe", "liveness": "livenessProbe", "readiness": "readinessProbe"}
USER_AGENT = "kube-probe/1.32"
MAX_OUTPUT = 10 * 1024
MAX_REDIRECTS = 10
MAX_RETRIES = 3

SUCCESS, WARNING, FAILURE, UNKNOWN = "success", "warning", "failure", "unknown"


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def dial_error(host: str, port: int, exc: BaseException) -> str:
    """A connect failure in Go's words (``dial tcp 10.0.0.1:80: connect: connection refused``)."""
    target = _host_port(host, port)
    if isinstance(exc, TimeoutError):
        return f"dial tcp {target}: i/o timeout"
    code = getattr(exc, "errno", None)
    words = {errno.ECONNREFUSED: "connection refused", errno.EHOSTUNREACH: "no route to host",
             errno.ENETUNREACH: "network is unreachable", errno.ECONNRESET: "connection reset by peer"}
    if code in words:
        return f"dial tcp {target}: connect: {words[code]}"
    return f"dial tcp {target}: {getattr(exc, 'strerror', None) or exc}"


def resolve_port(port: Any, container: Obj) -> int:
    """A probe's port: a number, a numeric string, or the name of one of the container's ports."""
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for p in container.get("ports") or []:
        if p.get("name") == text:
            return int(p["containerPort"])
    raise ValueError(f"couldn't find port: {text} in {container.get('name', '')}")


# --- the mechanisms ----------------------------------------------------------------------------


async def exec_probe(exec_sync: ExecSync, container_id: str, command: list[str], timeout: int) -> tuple[str, str]:
    try:
        # The runtime enforces the timeout; the outer guard only protects against a stuck runtime.
        code, out, err = await wait_for(exec_sync(container_id, command, timeout), timeout + 10)
    except TimeoutError:
        return FAILURE, f'command "{" ".join(command)}" timed out'
    except Exception as e:
        text = str(e).lower()
        if "deadline" in text or "timeout" in text or "timed out" in text:
            return FAILURE, f'command "{" ".join(command)}" timed out'
        raise
    output = (out + err)[:MAX_OUTPUT].decode(errors="replace")
    return (SUCCESS if code == 0 else FAILURE), output


async def tcp_probe(host: str, port: int, timeout: float) -> tuple[str, str]:
    try:
        _, writer = await wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as e:
        return FAILURE, dial_error(host, port, e)
    writer.close()
    with contextlib.suppress(Exception):
        await writer.wait_closed()
    return SUCCESS, ""


def _insecure_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def http_probe(url: str, headers: list[tuple[str, str]], timeout: float) -> tuple[str, str]:
    hdrs: CIMultiDict[str] = CIMultiDict()
    for name, value in headers:
        hdrs.add(name, value)
    hdrs.setdefault("User-Agent", USER_AGENT)
    hdrs.setdefault("Accept", "*/*")
    connector = aiohttp.TCPConnector(force_close=True, ssl=_insecure_tls())
    first_host = urlsplit(url).hostname
    try:
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            for _ in range(MAX_REDIRECTS + 1):
                async with session.get(url, headers=hdrs, allow_redirects=False) as resp:
                    body = (await resp.content.read(MAX_OUTPUT)).decode(errors="replace")
                    status = resp.status
                    location = resp.headers.get("Location")
                if 300 <= status < 400 and location:
                    target = urljoin(url, location)
                    if urlsplit(target).hostname != first_host:
                        # Kubernetes does not follow a probe to another host; it reports success.
                        return WARNING, f"Probe terminated redirects, Response body: {body}"
                    url = target
                    continue
                if 200 <= status < 400:
                    return SUCCESS, body
                return FAILURE, f"HTTP probe failed with statuscode: {status}"
            return FAILURE, f'Get "{url}": stopped after {MAX_REDIRECTS} redirects'
    except aiohttp.ClientConnectorError as e:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return FAILURE, f'Get "{url}": {dial_error(parts.hostname or "", port, e.os_error)}'
    except TimeoutError:
        return FAILURE, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except aiohttp.ClientError as e:
        return FAILURE, f'Get "{url}": {e}'


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


_HEALTH_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


async def grpc_probe(host: str, port: int, service: str, timeout: float) -> tuple[str, str]:
    import grpc  # only grpc probes need it

    target = _host_port(host, port)
    # HealthCheckRequest{service=1} and HealthCheckResponse{status=1} are tiny: encoded by hand,
    # which spares a dependency on grpcio-health-checking.
    request = b"" if not service else b"\x0a" + _varint(len(service.encode())) + service.encode()
    async with grpc.aio.insecure_channel(target) as channel:
        try:
            await wait_for(channel.channel_ready(), timeout)
        except TimeoutError:
            return FAILURE, f'timeout: failed to connect service "{target}" within {timeout:g}s'
        check = channel.unary_unary("/grpc.health.v1.Health/Check",
                                    request_serializer=lambda b: b, response_deserializer=lambda b: b)
        try:
            raw = await check(request, timeout=timeout)
        except grpc.aio.AioRpcError as e:
            if e.code() == grpc.StatusCode.UNIMPLEMENTED:
                return FAILURE, ("this server does not implement the grpc health protocol "
                                 f"(grpc.health.v1.Health): {e.details()}")
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return FAILURE, f"timeout: health rpc did not complete within {timeout:g}s"
            return FAILURE, f"error: health rpc probe failed: {e.details()}"
    status = raw[1] if len(raw) >= 2 and raw[0] == 0x08 else 0
    if status == 1:
        return SUCCESS, ""
    return FAILURE, f'service unhealthy (responded with "{_HEALTH_STATUS.get(status, status)}")'


# --- the manager ---------------------------------------------------------------------------------


@dataclass
class _Container:
    pod_uid: str
    name: str
    container_id: str
    added: float
    probes: dict[str, Obj]
    started: asyncio.Event = field(default_factory=asyncio.Event)
    results: dict[str, bool | None] = field(default_factory=dict)
    messages: dict[str, str] = field(default_factory=dict)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    startup_failed: bool = False
    # Set when the container is removed. Workers also stop on it, not only on cancellation:
    # Python 3.11's asyncio.wait_for (used by the exec probe) drops a cancellation that arrives
    # just as the call it guards completes, and a worker that lost one would probe forever.
    removed: bool = False


class ProbeManager:
    """Probes every started container that has probes; answers readiness/liveness questions."""

    def __init__(self, exec_sync: ExecSync, on_change: OnChange, *, clock: Clock | None = None) -> None:
        self._exec_sync = exec_sync
        self._on_change = on_change
        self._clock: Clock = clock or RealClock()
        self._containers: dict[tuple[str, str], _Container] = {}
        # Every worker not yet finished, those of removed containers included: stop() waits for
        # them all, so no probe (and no gRPC call) outlives the manager or its event loop.
        self._running: set[asyncio.Task[None]] = set()

    # -- lifecycle -----------------------------------------------------------------------------------

    def add(self, pod: Obj, container_name: str, container_id: str, pod_ip: str) -> None:
        """Start probing a started container (a new container id replaces the old workers)."""
        uid = str((pod.get("metadata") or {}).get("uid", ""))
        key = (uid, container_name)
        current = self._containers.get(key)
        if current is not None and current.container_id == container_id:
            return
        if current is not None:
            self._cancel(current)
        spec = pod.get("spec") or {}
        container = next((c for group in ("containers", "initContainers") for c in spec.get(group) or []
                          if c.get("name") == container_name), None) or {}
        probes = {kind: container[_FIELDS[kind]] for kind in KINDS if isinstance(container.get(_FIELDS[kind]), dict)}
        c = _Container(uid, container_name, container_id, self._clock.now(), probes)
        c.results = {"startup": None, "liveness": True, "readiness": False}
        if "startup" not in probes:
            c.started.set()
        self._containers[key] = c
        loop = asyncio.get_running_loop()
        for kind, probe in probes.items():
            task = loop.create_task(self._worker(c, kind, probe, container, pod_ip),
                                    name=f"probe-{kind}-{uid}-{container_name}")
            c.tasks.append(task)
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    def remove_container(self, pod_uid: str, container_name: str) -> None:
        c = self._containers.pop((pod_uid, container_name), None)
        if c is not None:
            self._cancel(c)

    def remove_pod(self, pod_uid: str) -> None:
        for key in [k for k in self._containers if k[0] == pod_uid]:
            self.remove_container(*key)

    async def stop(self) -> None:
        """Cancels every worker, those of removed containers too, and waits for them all."""
        for c in self._containers.values():
            c.removed = True
        tasks = list(self._running)
        for task in tasks:
            task.cancel()
        self._containers.clear()
        await asyncio.gather(*tasks, return_exceptions=True)

    @staticmethod
    def _cancel(c: _Container) -> None:
        c.removed = True
        for task in c.tasks:
            task.cancel()

    # -- questions ------------------------------------------------------------------------------------

    def is_started(self, pod_uid: str, container_name: str) -> bool:
        c = self._containers.get((pod_uid, container_name))
        return c is not None and c.started.is_set()

    def is_ready(self, pod_uid: str, container_name: str) -> bool:
        c = self._containers.get((pod_uid, container_name))
        if c is None or not c.started.is_set():
            return False
        return "readiness" not in c.probes or bool(c.results["readiness"])

    def liveness_failed(self, pod_uid: str, container_name: str) -> bool:
        """Whether the container must be restarted: liveness (or startup) failed past its threshold."""
        c = self._containers.get((pod_uid, container_name))
        return c is not None and (c.results["liveness"] is False or c.startup_failed)

    def startup_failed(self, pod_uid: str, container_name: str) -> bool:
        c = self._containers.get((pod_uid, container_name))
        return c is not None and c.startup_failed

    def result(self, pod_uid: str, container_name: str, kind: str) -> bool | None:
        """The counted result of one probe (None: not probed / unknown)."""
        c = self._containers.get((pod_uid, container_name))
        return None if c is None or kind not in c.probes else c.results[kind]

    def last_failure(self, pod_uid: str, container_name: str, kind: str) -> str:
        """The last failed attempt's message in Kubernetes' words ('' if none failed yet)."""
        c = self._containers.get((pod_uid, container_name))
        return "" if c is None else c.messages.get(kind, "")

    # -- workers ----------------------------------------------------------------------------------------

    async def _worker(self, c: _Container, kind: str, probe: Obj, container: Obj, pod_ip: str) -> None:
        try:
            await self._run(c, kind, probe, container, pod_ip)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s probe worker for %s/%s died", kind, c.pod_uid, c.name)

    async def _run(self, c: _Container, kind: str, probe: Obj, container: Obj, pod_ip: str) -> None:
        period = max(1, int(probe.get("periodSeconds") or 10))
        timeout = max(1, int(probe.get("timeoutSeconds") or 1))
        success_threshold = max(1, int(probe.get("successThreshold") or 1))
        failure_threshold = max(1, int(probe.get("failureThreshold") or 3))
        if kind != "startup":
            await c.started.wait()
        delay = c.added + int(probe.get("initialDelaySeconds") or 0) - self._clock.now()
        if delay > 0:
            await self._clock.sleep(delay)
        last: bool | None = None
        run = 0
        while not c.removed:
            outcome, message = await self._attempt(c, kind, probe, container, pod_ip, timeout)
            if c.removed:
                return
            ok = outcome in (SUCCESS, WARNING)
            if not ok:
                c.messages[kind] = message
            if ok == last:
                run += 1
            else:
                last, run = ok, 1
            if run >= (success_threshold if ok else failure_threshold):
                self._set(c, kind, ok)
                if kind == "startup" and ok:
                    return  # started: liveness and readiness take over
                if kind in ("startup", "liveness") and not ok:
                    return  # on hold until the core restarts the container and adds it again
            await self._clock.sleep(period)

    def _set(self, c: _Container, kind: str, ok: bool) -> None:
        if kind == "startup":
            if ok:
                c.started.set()
            else:
                c.startup_failed = True
        if c.results[kind] is ok:
            return
        c.results[kind] = ok
        try:
            self._on_change(c.pod_uid, c.name, kind, ok)
        except Exception:
            log.exception("probe result callback failed")

    async def _attempt(self, c: _Container, kind: str, probe: Obj, container: Obj, pod_ip: str,
                       timeout: int) -> tuple[str, str]:
        title = kind.capitalize()
        error: BaseException | None = None
        for _ in range(MAX_RETRIES):
            try:
                outcome, output = await self._probe(c, probe, container, pod_ip, timeout)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                error = e
                continue
            if outcome == FAILURE:
                return FAILURE, f"{title} probe failed: {output}"
            if outcome == WARNING:
                return WARNING, f"{title} probe warning: {output}"
            return outcome, output
        return UNKNOWN, f"{title} probe errored: {error}"

    async def _probe(self, c: _Container, probe: Obj, container: Obj, pod_ip: str, timeout: int) -> tuple[str, str]:
        if probe.get("exec") is not None:
            command = [str(a) for a in probe["exec"].get("command") or []]
            return await exec_probe(self._exec_sync, c.container_id, command, timeout)
        if probe.get("httpGet") is not None:
            h = probe["httpGet"]
            scheme = str(h.get("scheme") or "HTTP").lower()
            host = str(h.get("host") or pod_ip)
            port = resolve_port(h.get("port"), container)
            path = str(h.get("path") or "/")
            if not path.startswith("/"):
                path = "/" + path
            headers = [(str(x.get("name", "")), str(x.get("value", ""))) for x in h.get("httpHeaders") or []]
            return await http_probe(f"{scheme}://{_host_port(host, port)}{path}", headers, timeout)
        if probe.get("tcpSocket") is not None:
            t = probe["tcpSocket"]
            return await tcp_probe(str(t.get("host") or pod_ip), resolve_port(t.get("port"), container), timeout)
        if probe.get("grpc") is not None:
            g = probe["grpc"]
            return await grpc_probe(pod_ip, int(g.get("port") or 0), str(g.get("service") or ""), timeout)
        raise ValueError("probe has no handler")
