"""Container lifecycle hooks (postStart, preStop) as kubelet 1.32's handler runner runs them.

`run_hook` runs one `LifecycleHandler` against a started container and returns None when it
succeeded, or the kubelet's failure message (``lifecycle/handlers.go``):

``exec``     the CRI's ExecSync; a non-zero exit is a failure: ``Exec lifecycle hook ([sh -c exit 3])
             for Container "c" in Pod "web_default(UID)" failed - error: command 'sh -c exit 3' exited
             with 3: ERR, message: "OUT+ERR"``;
``httpGet``  GET ``scheme://host:port/path`` (host: the pod IP unless given; port: a number or the
             name of a container port; ``httpHeaders``; ``User-Agent: kube-lifecycle/1.32``). Only a
             failed request fails the hook — any HTTP status is an answer, as in Kubernetes; an
             HTTPS hook answered in plain HTTP is retried over HTTP (Warning LifecycleHTTPFallback
             "request to HTTPS lifecycle hook HOST:PORT got HTTP response, retry with HTTP succeeded");
             ``HTTP lifecycle hook (/path) for Container "c" in Pod "..." failed - error: ...``;
``sleep``    waits ``seconds`` (never past the time the caller allows).

The caller bounds every hook: postStart by nothing but the runtime (as the kubelet, which passes no
timeout), preStop by the grace period (the kubelet abandons a preStop hook when the grace period runs
out and stops the container anyway).

What the kubelet then does with a failure is the caller's (`sync`): postStart — a Warning
``FailedPostStartHook`` event "PostStartHook failed" (the handler's message stays out of the event
so that secrets do not leak), the container killed with the message ``FailedPostStartHook`` and its
waiting reason ``PostStartHookError``; preStop — a Warning ``FailedPreStopHook`` event with the
message, then the container is stopped as usual.

`kill_grace` is the grace period a container gets when it is killed (``setTerminationGracePeriod``):
the pod's deletion grace period if it is being deleted; otherwise a failed liveness or startup
probe's own ``terminationGracePeriodSeconds`` when set; otherwise the pod's.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

import aiohttp

from kybernetes.aiorun import wait_for
from kybernetes.api.obj import Obj
from kybernetes.kubelet.cri import CRIError
from kybernetes.kubelet.probes import dial_error, resolve_port

log = logging.getLogger(__name__)

ExecSync = Callable[[str, list[str], int], Awaitable[tuple[int, bytes, bytes]]]
Fallback = Callable[[str], None]

USER_AGENT = "kube-lifecycle/1.32"
MAX_BODY = 10 * 1024
POST_START_FAILED = "PostStartHookError"  # the container's waiting reason (kubecontainer.ErrPostStartHook)
DEFAULT_GRACE = 30
REASON_LIVENESS = "liveness"
REASON_STARTUP = "startup"


def pod_ref(pod: Obj) -> str:
    """The kubelet's format.Pod: ``name_namespace(uid)``."""
    m = pod.get("metadata") or {}
    return f"{m.get('name', '')}_{m.get('namespace', '')}({m.get('uid', '')})"


def container_spec(pod: Obj, name: str) -> Obj:
    """The spec of the container (app, init or ephemeral) named `name`, or {}."""
    spec = pod.get("spec") or {}
    for group in ("containers", "initContainers", "ephemeralContainers"):
        for c in spec.get(group) or []:
            if c.get("name") == name:
                return dict(c)
    return {}


def _go_list(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


async def run_hook(exec_sync: ExecSync, pod: Obj, container: Obj, handler: Obj, container_id: str, pod_ip: str,
                   timeout: float | None, on_fallback: Fallback | None = None) -> str | None:
    """Runs `handler`; None on success, else the kubelet's message. `timeout` (seconds, None: none)
    bounds the whole hook: a hook still running then is abandoned without a failure, as the kubelet
    does with a preStop hook that outlives the grace period ("PreStop hook not completed in grace
    period")."""
    try:
        return await wait_for(_run(exec_sync, pod, container, handler, container_id, pod_ip, on_fallback),
                                      None if timeout is None else max(timeout, 0.001))
    except TimeoutError:
        log.info("lifecycle hook of %s in %s not completed in %s s", container.get("name"), pod_ref(pod), timeout)
        return None


async def _run(exec_sync: ExecSync, pod: Obj, container: Obj, handler: Obj, container_id: str,
               pod_ip: str, on_fallback: Fallback | None) -> str | None:
    name = str(container.get("name", ""))
    where = f'for Container "{name}" in Pod "{pod_ref(pod)}" failed - error:'
    if handler.get("exec") is not None:
        command = [str(a) for a in handler["exec"].get("command") or []]
        try:
            code, out, err = await exec_sync(container_id, command, 0)
        except CRIError as e:
            return f'Exec lifecycle hook ({_go_list(command)}) {where} {e.details}, message: ""'
        if code == 0:
            return None
        output = (out + err).decode(errors="replace")
        error = f"command '{' '.join(command)}' exited with {code}: {err.decode(errors='replace')}"
        return f"Exec lifecycle hook ({_go_list(command)}) {where} {error}, message: {_go_quote(output)}"
    if handler.get("httpGet") is not None:
        h = handler["httpGet"]
        path = str(h.get("path") or "")
        failed = await _http_get(h, container, pod_ip, on_fallback)
        return None if failed is None else f"HTTP lifecycle hook ({path}) {where} {failed}"
    if handler.get("sleep") is not None:
        await asyncio.sleep(max(0, int(handler["sleep"].get("seconds") or 0)))
        return None
    return f"Cannot run handler: invalid handler: {handler}"


def _go_quote(text: str) -> str:
    """Go's %q of a string (the common escapes)."""
    out = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t")
    return f'"{out}"'


async def _http_get(h: Obj, container: Obj, pod_ip: str, on_fallback: Fallback | None) -> str | None:
    """One GET; None if any HTTP answer came back, else Go's url.Error text. An HTTPS hook whose
    server turns out to speak plain HTTP is retried over HTTP without the Authorization header, and
    `on_fallback(host:port)` is told when that worked (the kubelet's LifecycleHTTPFallback)."""
    host = str(h.get("host") or pod_ip)
    if not host:
        return "failed to find networking container"
    try:
        port = resolve_port(h.get("port") if h.get("port") not in (None, "") else 80, container)
    except ValueError as e:
        return str(e)
    scheme = str(h.get("scheme") or "HTTP").lower()
    path = str(h.get("path") or "")
    if not path.startswith("/"):
        path = "/" + path
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    headers = {"User-Agent": USER_AGENT}
    for x in h.get("httpHeaders") or []:
        headers[str(x.get("name", ""))] = str(x.get("value", ""))
    error, tls_failed = await _get(f"{scheme}://{netloc}{path}", headers, host, port)
    if error is not None and tls_failed and scheme == "https":
        plain = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        if (await _get(f"http://{netloc}{path}", plain, host, port))[0] is None:
            if on_fallback is not None:
                on_fallback(netloc)
            return None
    return error


async def _get(url: str, headers: dict[str, str], host: str, port: int) -> tuple[str | None, bool]:
    """(None, False) if an answer came back, else (the error, whether TLS itself failed)."""
    try:
        async with aiohttp.ClientSession() as session, session.get(url, headers=headers, ssl=False) as resp:
            await resp.content.read(MAX_BODY)
    except aiohttp.ClientSSLError as e:
        return f'Get "{url}": {e}', True
    except aiohttp.ClientConnectorError as e:
        return f'Get "{url}": {dial_error(host, port, e.os_error)}', isinstance(e.os_error, ssl.SSLError)
    except (aiohttp.ClientError, OSError) as e:
        return f'Get "{url}": {e}', isinstance(e, ssl.SSLError)
    return None, False


def kill_grace(pod: Obj, container: Obj, reason: str = "", *, recorded: int | None = None) -> int:
    """The grace period for killing `container` (module doc); `reason`: REASON_LIVENESS or
    REASON_STARTUP when a probe failure is why; `recorded`: the one recorded on the running
    container, which applies when the pod's spec is unknown (a pod known only from the runtime)."""
    m = pod.get("metadata") or {}
    if m.get("deletionGracePeriodSeconds") is not None:
        return int(m["deletionGracePeriodSeconds"])
    spec = pod.get("spec") or {}
    probe = {REASON_LIVENESS: "livenessProbe", REASON_STARTUP: "startupProbe"}.get(reason)
    if probe and (container.get(probe) or {}).get("terminationGracePeriodSeconds") is not None:
        return int(container[probe]["terminationGracePeriodSeconds"])
    if spec.get("terminationGracePeriodSeconds") is None and recorded is not None:
        return recorded
    return int(spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE))
