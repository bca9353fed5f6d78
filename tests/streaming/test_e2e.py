"""kubectl logs/exec/attach/port-forward end to end: kubectl -> API server -> kubelet server -> containerd.

Everything is real: a `kyb server` process, the project's containerd (tests/node/conftest.py) with
busybox containers run through CRI here, and a `KubeletServer` on a loopback port, running in a
thread with its own event loop (kubectl is called synchronously from the tests). The API server
finds the kubelet through a Node object (InternalIP 127.0.0.1, kubeletEndpoint.Port) and Pods bound
to it; a small resolver maps the pods' names to the CRI ids made here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from kybernetes.kubelet.cri import CRIClient, api
from kybernetes.kubelet.server import KubeletServer
from kybernetes.pki import PKI
from kybernetes.testing import KUBECTL, ServerProcess, free_port
from tests.node.conftest import (  # noqa: F401 - node_runtime is a fixture used by name
    NodeRuntime,
    container_config,
    node_runtime,
    remove_sandbox,
    sandbox_config,
)

pytestmark = pytest.mark.integration

T = TypeVar("T")
NS = "default"
NODE = "stream-node"
LOGGER_SCRIPT = "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.2; done"
HTTPD_SCRIPT = "mkdir -p /www && echo hello-from-httpd > /www/index.html && exec httpd -f -p 8080 -h /www"


class LoopThread:
    """An event loop in a thread: the kubelet server lives there while kubectl runs in the test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@dataclass
class Resolver:
    """The kubelet core's part, for these tests: names -> the CRI ids made below."""

    containers: dict[tuple[str, str, str], str] = field(default_factory=dict)
    sandboxes: dict[tuple[str, str], str] = field(default_factory=dict)
    log_dirs: dict[tuple[str, str], Path] = field(default_factory=dict)

    async def container_id(self, namespace: str, pod: str, container: str) -> str:
        return self.containers[(namespace, pod, container)]

    async def sandbox_id(self, namespace: str, pod: str) -> str:
        return self.sandboxes[(namespace, pod)]

    def log_path(self, namespace: str, pod: str, container: str, previous: bool) -> Path:
        return self.log_dirs[(namespace, pod)] / container / ("0.log" if not previous else "previous.log")

    def running_pods(self) -> list[dict[str, Any]]:
        return [{"metadata": {"namespace": ns, "name": name}} for ns, name in self.sandboxes]


@dataclass
class Env:
    srv: ServerProcess
    kubelet: KubeletServer
    resolver: Resolver
    loop: LoopThread
    node: NodeRuntime

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.srv.kubectl(*args, **kw)


async def _start_pods(node: NodeRuntime, cri: CRIClient, resolver: Resolver) -> None:
    async def pod(name: str, containers: list[api.ContainerConfig]) -> None:
        config = sandbox_config(node, name, namespace=NS)
        sid = await cri.run_pod_sandbox(config)
        resolver.sandboxes[(NS, name)] = sid
        resolver.log_dirs[(NS, name)] = Path(config.log_directory)
        for c in containers:
            cid = await cri.create_container(sid, c, config)
            await cri.start_container(cid)
            resolver.containers[(NS, name, c.metadata.name)] = cid

    reader = container_config("reader", ["cat"])
    reader.stdin = True
    reader.stdin_once = True
    await pod("web", [container_config("httpd", ["sh", "-c", HTTPD_SCRIPT]), reader])
    await pod("logger", [container_config("logger", ["sh", "-c", LOGGER_SCRIPT]),
                         container_config("done", ["sh", "-c", "echo first; echo second"])])


def _objects(kubelet_port: int) -> list[dict[str, Any]]:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE}}
    pods = []
    for name, containers in (("web", ["httpd", "reader"]), ("logger", ["logger", "done"])):
        pods.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": NS},
                     "spec": {"nodeName": NODE,
                              "containers": [{"name": c, "image": "busybox:1.36"} for c in containers]}})
    return [node, *pods]


@pytest.fixture(scope="module")
def env(node_runtime: NodeRuntime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:  # noqa: F811
    if shutil.which(KUBECTL) is None and not Path(KUBECTL).exists():
        pytest.skip("needs kubectl")
    srv = ServerProcess.start(tmp_path_factory.mktemp("apiserver"))
    loop = LoopThread()
    resolver = Resolver()
    pki = PKI.load_or_create(srv.data_dir)
    crt, key = pki.ensure("kubelet-stream-node", common_name=f"system:node:{NODE}", organizations=("system:nodes",),
                          server=True, ip_addresses=("127.0.0.1",), dns_names=("localhost",))
    holder: dict[str, Any] = {}

    async def setup() -> KubeletServer:
        cri = CRIClient(node_runtime.endpoint, timeout=30)
        holder["cri"] = cri
        await _start_pods(node_runtime, cri, resolver)
        kubelet = KubeletServer(resolver, cri, cert=crt, key=key, ca=pki.ca_path, address="127.0.0.1", port=0)
        await kubelet.start()
        return kubelet

    async def teardown(kubelet: KubeletServer | None) -> None:
        if kubelet is not None:
            await kubelet.stop()
        cri = holder.get("cri")
        if cri is not None:
            for sid in resolver.sandboxes.values():
                with contextlib.suppress(Exception):
                    await remove_sandbox(cri, sid)
            await cri.close()

    kubelet = None
    try:
        kubelet = loop.run(setup())
        objs = _objects(kubelet.port)
        srv.kubectl("create", "-f", "-", input="\n".join(json.dumps(o) for o in objs))
        status = {"status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"},
                                           {"type": "Hostname", "address": NODE}],
                             "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet.port}}}}
        srv.kubectl("patch", "node", NODE, "--subresource=status", "--type=merge", "-p", json.dumps(status))
        # What the kubelet core will report; kubectl port-forward refuses pods that are not Running.
        for pod in ("web", "logger"):
            srv.kubectl("patch", "pod", pod, "--subresource=status", "--type=merge", "-p",
                        json.dumps({"status": {"phase": "Running"}}))
        yield Env(srv, kubelet, resolver, loop, node_runtime)
    finally:
        with contextlib.suppress(Exception):
            loop.run(teardown(kubelet))
        loop.stop()
        srv.stop()


def _wait_for(predicate: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.2)


# ---- logs ---------------------------------------------------------------------------------------


def test_logs(env: Env) -> None:
    _wait_for(lambda: "line 3" in env.kubectl("logs", "logger", "-c", "logger").stdout)
    out = env.kubectl("logs", "logger", "-c", "logger").stdout
    lines = out.splitlines()
    assert lines[:3] == ["line 0", "line 1", "line 2"]
    tail = env.kubectl("logs", "logger", "-c", "logger", "--tail=2").stdout.splitlines()
    assert len(tail) == 2 and all(re.fullmatch(r"line \d+", x) for x in tail)
    stamped = env.kubectl("logs", "logger", "-c", "logger", "--timestamps", "--tail=3").stdout.splitlines()
    assert len(stamped) == 3
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line \d+", x) for x in stamped), stamped
    limited = env.kubectl("logs", "logger", "-c", "logger", "--limit-bytes=9").stdout
    assert limited == "line 0\nli"
    # A finished container: its whole log, and -f ends by itself once the file is drained.
    assert env.kubectl("logs", "logger", "-c", "done").stdout == "first\nsecond\n"
    assert env.kubectl("logs", "-f", "logger", "-c", "done", timeout=30).stdout == "first\nsecond\n"


def test_logs_follow(env: Env) -> None:
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(env.srv.kubeconfig), "logs", "-f", "--tail=1",
                             "logger", "-c", "logger"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        got = [proc.stdout.readline().strip() for _ in range(4)]
        numbers = [int(x.split()[1]) for x in got]
        # Consecutive lines as the container writes them: the first is the tail, the rest arrive live.
        assert numbers == list(range(numbers[0], numbers[0] + 4)), got
    finally:
        proc.terminate()
        proc.wait(10)


def test_logs_previous_joins_partial_lines(env: Env) -> None:
    # The previous instance's file, in CRI format with a line split in partial records.
    path = env.resolver.log_path(NS, "logger", "done", previous=True)
    path.write_text("2024-05-01T10:00:00.000000001Z stdout P split \n"
                    "2024-05-01T10:00:00.100000000Z stdout F line\n"
                    "2024-05-01T10:00:01.000000000Z stderr F to stderr\n")
    try:
        out = env.kubectl("logs", "--previous", "logger", "-c", "done").stdout
        assert out == "split line\nto stderr\n"
        stamped = env.kubectl("logs", "--previous", "--timestamps", "logger", "-c", "done").stdout
        assert stamped.splitlines()[0] == "2024-05-01T10:00:00.000000001Z split line"
        since = env.kubectl("logs", "--previous", "logger", "-c", "done",
                            "--since-time=2024-05-01T10:00:01Z").stdout
        assert since == "to stderr\n"
    finally:
        path.unlink()
    res = env.kubectl("logs", "--previous", "logger", "-c", "done", check=False)
    assert res.returncode != 0 and 'previous terminated container "done" in pod "logger" not found' in res.stderr


def test_logs_errors(env: Env) -> None:
    # kubectl picks a default container itself; the API server's own rule shows on the raw URL.
    res = env.kubectl("get", "--raw", f"/api/v1/namespaces/{NS}/pods/logger/log", check=False)
    assert res.returncode != 0
    assert "a container name must be specified for pod logger, choose one of: [logger done]" in res.stderr
    res = env.kubectl("logs", "logger", "-c", "nope", check=False)
    assert "container nope is not valid for pod logger" in res.stderr


# ---- exec / attach ------------------------------------------------------------------------------


def test_exec_output_and_exit_code(env: Env) -> None:
    res = env.kubectl("exec", "web", "-c", "httpd", "--", "sh", "-c", "echo hi; echo err >&2; exit 3", check=False)
    assert res.stdout == "hi\n"
    assert "err" in res.stderr
    assert res.returncode == 3, res.stderr
    ok = env.kubectl("exec", "web", "-c", "httpd", "--", "cat", "/www/index.html")
    assert ok.stdout == "hello-from-httpd\n"


def test_exec_stdin(env: Env) -> None:
    text = "hello\nworld\n" + "x" * 1_000_000 + "\n"
    res = env.kubectl("exec", "-i", "web", "-c", "httpd", "--", "cat", input=text, timeout=60)
    assert res.stdout == text


def test_exec_spdy_fallback(env: Env) -> None:
    # kubectl's older transport: SPDY/3.1 end to end, proxied stream by stream by the kubelet.
    spdy_only = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"}
    res = env.kubectl("exec", "web", "-c", "httpd", "--", "sh", "-c", "echo via-spdy; exit 4", check=False,
                      env=spdy_only)
    assert (res.stdout, res.returncode) == ("via-spdy\n", 4), res.stderr
    res = env.kubectl("exec", "-i", "web", "-c", "httpd", "--", "cat", input="spdy stdin\n", env=spdy_only)
    assert res.stdout == "spdy stdin\n"


def test_attach_stdin(env: Env) -> None:
    # `reader` runs `cat` with stdin_once: our stdin reaches it, and its end ends the container.
    res = env.kubectl("attach", "-i", "web", "-c", "reader", input="through attach\n", timeout=60)
    assert "through attach" in res.stdout


# ---- port-forward -------------------------------------------------------------------------------


# kubectl 1.32 tunnels port-forward's SPDY in a WebSocket; KUBECTL_PORT_FORWARD_WEBSOCKETS=false
# makes it use the older plain SPDY/3.1 upgrade, which the kubelet serves too.
@pytest.mark.parametrize("websockets", ["true", "false"])
def test_port_forward(env: Env, websockets: str) -> None:
    local = free_port()
    environ = {**os.environ, "KUBECTL_PORT_FORWARD_WEBSOCKETS": websockets}
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(env.srv.kubeconfig), "port-forward", "pod/web",
                             f"{local}:8080"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environ)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "Forwarding from" not in line:
            proc.wait(10)
            raise AssertionError(f"kubectl port-forward: {line}{proc.stderr.read() if proc.stderr else ''}")
        for _ in range(3):  # several connections over the one forwarding session
            with urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=20) as r:
                assert r.read() == b"hello-from-httpd\n"
    finally:
        proc.terminate()
        proc.wait(10)


def test_port_forward_reports_failures(env: Env) -> None:
    local = free_port()
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", str(env.srv.kubeconfig), "port-forward", "pod/web",
                             f"{local}:9999"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and "Forwarding from" in proc.stdout.readline()
        with pytest.raises(OSError), urllib.request.urlopen(f"http://127.0.0.1:{local}/", timeout=20) as r:
            r.read()
        proc.wait(20)  # kubectl gives up on the forwarding after the error the pod's side reported
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "9999" in err and "connection refused" in err, err
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(10)


def test_exec_errors(env: Env) -> None:
    res = env.kubectl("exec", "web", "-c", "nope", "--", "true", check=False)
    assert res.returncode != 0 and "container nope is not valid for pod web" in res.stderr
    # A pod bound to the node but unknown to its kubelet: the kubelet's 404 reaches kubectl.
    env.kubectl("run", "ghost", "--image=busybox:1.36", "--overrides",
                json.dumps({"spec": {"nodeName": NODE}}))
    env.kubectl("patch", "pod", "ghost", "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"phase": "Running"}}))
    res = env.kubectl("exec", "ghost", "--", "true", check=False)
    assert res.returncode != 0 and "not found" in res.stderr, res.stderr
    res = env.kubectl("logs", "ghost", check=False)
    assert res.returncode != 0 and "not found" in res.stderr, res.stderr


# ---- the kubelet server's own rules ----------------------------------------------------------


def _kubelet_get(env: Env, path: str, cert: tuple[Path, Path] | None) -> tuple[int, bytes]:
    ctx = ssl.create_default_context(cafile=str(env.srv.data_dir / "tls" / "ca.crt"))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with urllib.request.urlopen(f"https://127.0.0.1:{env.kubelet.port}{path}", context=ctx, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_kubelet_authn_authz(env: Env) -> None:
    pki = PKI.load_or_create(env.srv.data_dir)
    assert _kubelet_get(env, "/healthz", None) == (200, b"ok")
    assert _kubelet_get(env, "/pods", None)[0] == 401
    other = pki.ensure("someone", common_name="someone", organizations=("developers",), client=True)
    assert _kubelet_get(env, "/pods", other)[0] == 403
    apiserver = pki.ensure("kubelet-client", common_name="kube-apiserver-kubelet-client",
                           organizations=("system:masters",), client=True)
    code, body = _kubelet_get(env, "/pods", apiserver)
    assert code == 200
    names = sorted(p["metadata"]["name"] for p in json.loads(body)["items"])
    assert names == ["logger", "web"]
    code, body = _kubelet_get(env, "/containerLogs/default/logger/done", apiserver)
    assert (code, body) == (200, b"first\nsecond\n")
    assert _kubelet_get(env, "/containerLogs/default/nope/x", apiserver)[0] == 404
