"""The node end to end: real containers on a real ``kyb server`` with its agent, through kubectl 1.32.

One server (API server, scheduler, controller manager, agent -> kubelet -> private containerd) is
shared by the module. Every test gets its own namespace. The server's node uses a bridge and a pod
CIDR of this module's own (picked so as not to collide with another cluster running on this
machine), and the API server also listens on that bridge's gateway address so that pods can call it
with their service-account token.

What is covered: logs, exec (exit codes, stdin), port-forward, init containers, env and config
volumes, liveness restarts, CrashLoopBackOff, readiness and Endpoints, graceful deletion (preStop and
SIGTERM), OOMKilled, in-cluster API calls with the projected token, pulls from a loopback registry,
a 20-replica Deployment answering on every pod IP, the kubelet and kube-proxy serving from the
agent's one process, a SIGKILLed agent whose kubelet adopts its containers, a second node joining. The last test stops the server and checks that nothing is left behind: no
containerd or shim of our data dirs, no mounts under them, no network namespace of our pods, no
veth on our bridges.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kybernetes.apiserver.join.tokens import server_token
from kybernetes.images.importer import push_to_registry
from kybernetes.images.oci import BUSYBOX_IMAGE, build_busybox_image
from kybernetes.kubelet.containerd import cleanup_mounts, kill_pids, mounts_under
from kybernetes.pki import primary_address
from kybernetes.testing import ServerProcess, free_network_octet, free_port, stop_process
from tests.reliability.faults import runtime_orphans

from .conftest import Obj, is_ready, require_kubectl, wait_until

pytestmark = pytest.mark.integration

BUSYBOX = BUSYBOX_IMAGE  # docker.io/library/busybox:1.36, imported by the kubelet at start
TLS_IMAGE = "docker.io/kybe2e/openssl:1"
REGISTRY_BINARY = "/usr/bin/docker-registry"
SA_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
HOSTNAME = "kubernetes.io/hostname"
KYB = [sys.executable, "-m", "kybernetes.cli"]
SECOND_NODE = "e2e-second"


def _node_missing() -> str | None:
    if os.geteuid() != 0:
        return "needs root (containerd, CNI)"
    for binary in ("containerd", "runc", "ctr"):
        if shutil.which(binary) is None:
            return f"needs {binary}"
    return None


def require_node(*, pods_reach_primary_address: bool = False) -> None:
    """Skip unless this machine can run a node (root, containerd, runc, ctr) and kubectl is there.
    With ``pods_reach_primary_address`` (pods that call the API server's primary address, as the
    add-ons do) it needs a default route too: a CI machine has one, so there its absence fails."""
    reason = _node_missing()
    if reason:
        pytest.skip(reason)
    require_kubectl()
    if pods_reach_primary_address and not primary_address():
        if os.environ.get("CI"):
            pytest.fail("CI machines have a default route")
        pytest.skip("this machine has no default route, hence no primary address for pods to reach")


def _pick_network() -> int:
    """A second octet N such that 10.N.0.0/16 is on no interface or route of this machine.

    Other clusters (other test runs, a developer's server) use 10.42/16 and their own bridges; ours
    must not share either, or two kubelets would hand out the same addresses.
    """
    return free_network_octet(160, 200, "kye{}a")


# ---- process, mount and network inspection -----------------------------------------------------


def _cmdlines() -> Iterator[tuple[int, list[bytes]]]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            yield int(entry.name), argv


def pids_mentioning(path: Path) -> list[int]:
    """Processes whose command line names `path` or something under it (containerd, shims, kubelet)."""
    needle = os.fsencode(str(path))
    return [pid for pid, argv in _cmdlines() if pid != os.getpid() and any(needle in a for a in argv)]


def veths_on(bridge: str) -> list[str]:
    res = subprocess.run(["ip", "-j", "link", "show", "master", bridge], capture_output=True, text=True)
    if res.returncode != 0 or not res.stdout.strip():
        return []
    return [str(link["ifname"]) for link in json.loads(res.stdout)]


def bridge_exists(bridge: str) -> bool:
    return subprocess.run(["ip", "link", "show", bridge], capture_output=True).returncode == 0


def sandbox_netns(socket: Path) -> set[str]:
    """The network namespace paths of every pod sandbox in the containerd at `socket`."""
    if not socket.exists():
        return set()
    base = ["ctr", "--address", str(socket), "--namespace", "k8s.io"]
    ids = subprocess.run([*base, "containers", "ls", "-q"], capture_output=True, text=True, timeout=30).stdout.split()
    found: set[str] = set()
    for cid in ids:
        res = subprocess.run([*base, "containers", "info", cid], capture_output=True, text=True, timeout=30)
        if res.returncode != 0:
            continue  # removed meanwhile
        spec = (json.loads(res.stdout).get("Spec") or {})
        for ns in ((spec.get("linux") or {}).get("namespaces") or []):
            path = ns.get("path") or ""
            if ns.get("type") == "network" and "/netns/" in path:
                found.add(path)
    return found


def http_get(url: str, timeout: float = 3.0) -> tuple[int, str]:
    # No proxy: the pod network and loopback are reached directly.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as r:
        return int(r.status), r.read().decode(errors="replace")


# ---- the shared node -----------------------------------------------------------------------------


@dataclass
class Agent:
    """A second ``kyb agent`` of this module (stopped by its own PID)."""

    data_dir: Path
    bridge: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self, timeout: float = 120.0) -> int:
        return stop_process(self.proc, timeout)


@dataclass
class Node:
    """The module's server and helpers; records what must be gone once everything has stopped."""

    server: ServerProcess
    octet: int
    tmp: Path
    node_name: str
    netns: set[str] = field(default_factory=set)
    agents: list[Agent] = field(default_factory=list)
    tls_image_imported: bool = False
    stopped: bool = False

    @property
    def bridge(self) -> str:
        return f"kye{self.octet}a"

    @property
    def gateway(self) -> str:
        return f"10.{self.octet}.0.1"

    @property
    def agent_dir(self) -> Path:
        return self.server.data_dir / "agent"

    @property
    def socket(self) -> Path:
        return self.agent_dir / "containerd" / "containerd.sock"

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 90.0) -> subprocess.CompletedProcess[str]:
        return self.server.kubectl(*args, input=input, check=check, timeout=timeout)

    def apply(self, ns: str, *objs: Obj) -> None:
        # A stream of JSON objects, not a v1 List: see test_kubectl_applies_a_list_of_objects.
        self.kubectl("apply", "-n", ns, "-f", "-", input="\n".join(json.dumps(o) for o in objs))

    def get(self, *args: str) -> Obj:
        out: Obj = json.loads(self.kubectl("get", *args, "-o", "json").stdout)
        return out

    def pod(self, ns: str, name: str) -> Obj:
        return self.get("pod", name, "-n", ns)

    def describe(self, ns: str, name: str) -> str:
        pod = self.kubectl("get", "pod", name, "-n", ns, "-o", "yaml", check=False).stdout
        events = self.kubectl("get", "events", "-n", ns, check=False).stdout
        return f"{pod}\n{events}"

    def wait_pod(self, ns: str, name: str, what: str, cond: Any, timeout: float = 60) -> Obj:
        """Poll the pod until ``cond(pod)``; on timeout the failure shows the pod and its events."""
        def check() -> Obj | None:
            res = self.kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False)
            if res.returncode != 0:
                return None
            pod: Obj = json.loads(res.stdout)
            return pod if cond(pod) else None
        try:
            return dict(wait_until(check, timeout, f"pod {ns}/{name}: {what}", interval=0.25))
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.describe(ns, name)}") from None

    def wait_ready(self, ns: str, name: str, timeout: float = 60) -> Obj:
        return self.wait_pod(ns, name, "Ready", is_ready, timeout)

    def events(self, ns: str, name: str) -> list[Obj]:
        got = self.get("events", "-n", ns, "--field-selector", f"involvedObject.name={name}")
        return list(got.get("items") or [])

    def record_netns(self) -> None:
        """Remember the network namespaces of the pods that exist now (checked at the end)."""
        self.netns |= sandbox_netns(self.socket)
        for agent in self.agents:
            self.netns |= sandbox_netns(agent.data_dir / "containerd" / "containerd.sock")

    def ensure_tls_image(self) -> str:
        """An image with OpenSSL's s_client (busybox's own TLS cannot talk to the API server).

        busybox 1.35's TLS client sends no signature_algorithms extension, which leaves OpenSSL 3
        servers only SHA-1 signatures to choose from, and those it refuses ("no shared cipher").
        The image carries /usr/bin/openssl with its libraries and runs it through the dynamic
        loader as /bin/ld.so (only files under bin/ get the executable bit).
        """
        if not self.tls_image_imported:
            libdir = Path("/lib/x86_64-linux-gnu")
            files = {"/bin/ld.so": Path("/lib64/ld-linux-x86-64.so.2").read_bytes(),
                     "/usr/bin/openssl": Path("/usr/bin/openssl").read_bytes()}
            for lib in ("libssl.so.3", "libcrypto.so.3", "libc.so.6"):
                files[f"{libdir}/{lib}"] = (libdir / lib).read_bytes()
            tar = self.tmp / "openssl-image.tar"
            tar.write_bytes(build_busybox_image(TLS_IMAGE, cmd=["sh"], extra_files=files))
            res = subprocess.run([*KYB, "image", "import", "--data-dir", str(self.agent_dir), str(tar)],
                                 capture_output=True, text=True, timeout=120)
            assert res.returncode == 0 and TLS_IMAGE in res.stdout, res.stderr
            self.tls_image_imported = True
        return TLS_IMAGE

    def start_agent(self, name: str, index: int) -> Agent:
        # A short data dir: containerd's socket path must stay under the 108-byte unix socket limit.
        data_dir = Path(tempfile.mkdtemp(prefix="kybe2e-", dir="/tmp")).resolve()
        bridge = f"kye{self.octet}{chr(ord('a') + index)}"
        log_path = self.tmp / f"agent-{name}.log"
        token = server_token(self.server.data_dir)
        with open(log_path, "ab") as out:
            proc = subprocess.Popen(
                [*KYB, "agent", "--server", self.server.url, "--token", token, "--data-dir", str(data_dir),
                 "--node-name", name, "--node-ip", "127.0.0.1", "--kubelet-port", str(free_port()),
                 "--cni-bridge", bridge, "--default-pod-cidr", f"10.{self.octet}.{index}.0/24",
                 "--kubelet-arg", "drain-on-exit", "--lb-server-port", "0"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        agent = Agent(data_dir, bridge, proc, log_path)
        self.agents.append(agent)
        return agent

    def shutdown(self) -> list[str]:
        """Stop everything this module started; return what was left behind (then removed)."""
        if self.stopped:
            return []
        self.stopped = True
        problems: list[str] = []
        agent_nets = [(a.data_dir, a.bridge) for a in self.agents]
        for agent in self.agents:
            if agent.stop() != 0:
                problems.append(f"agent {agent.data_dir} exited with {agent.proc.returncode}:\n{agent.log()}")
        rc = self.server.stop()
        if rc != 0:
            problems.append(f"kyb server exited with {rc}:\n{self.server.log()}")
        for data_dir, bridge in [(self.server.data_dir, self.bridge), *agent_nets]:
            left = pids_mentioning(data_dir)
            if left:
                names = {pid: b" ".join(argv)[:200].decode(errors="replace") for pid, argv in _cmdlines()
                         if pid in left}
                problems.append(f"processes of {data_dir} still running: {names}")
                # Kubelets first (they would restart containerd), then containerd, then shims.
                kill_pids(left)
            mounts = mounts_under(data_dir)
            if mounts:
                problems.append(f"mounts left under {data_dir}: {mounts}")
                cleanup_mounts(data_dir)
            veths = veths_on(bridge)
            if veths:
                problems.append(f"veths left on {bridge}: {veths}")
            if bridge_exists(bridge):
                # The CNI bridge plugin creates the bridge and never deletes it: ours to delete.
                subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
        left_netns = sorted(p for p in self.netns if os.path.exists(p))
        if left_netns:
            problems.append(f"network namespaces of our pods left: {left_netns}")
            for path in left_netns:
                subprocess.run(["ip", "netns", "delete", os.path.basename(path)], capture_output=True)
        for agent in self.agents:
            shutil.rmtree(agent.data_dir, ignore_errors=True)
        return problems


@contextlib.contextmanager
def running_node(tmp: Path, prefix: str, octet: int, *server_args: str, addons: bool = False,
                 cloud: bool = False) -> Iterator[Node]:
    """A `kyb server` with its own node on 10.OCTET.0.0/16 and bridge kyeOCTETa, Ready and with a
    default ServiceAccount; on exit everything it started is stopped and checked gone, and
    ``net.ipv4.ip_forward`` (which the CNI bridge turns on) is put back. ``addons`` and ``cloud``
    as :meth:`ServerProcess.start`'s."""
    ip_forward = Path("/proc/sys/net/ipv4/ip_forward").read_text()
    name = f"{prefix}-{octet}"
    srv = ServerProcess.start(
        tmp / "srv", *server_args,
        "--cluster-cidr", f"10.{octet}.0.0/16", "--node-name", name,
        "--kubelet-arg", f"cni-bridge=kye{octet}a", "--kubelet-arg", f"default-pod-cidr=10.{octet}.0.0/24",
        agent=True, timeout=60, addons=addons, cloud=cloud)
    n = Node(srv, octet, tmp, name)
    try:
        # kubectl wait fails at once on a node that has not registered yet: poll first.
        wait_until(lambda: n.kubectl("get", "node", name, check=False).returncode == 0, 60, f"node {name}")
        n.kubectl("wait", "--for=condition=Ready", f"node/{name}", "--timeout=90s", timeout=100)
        wait_until(lambda: n.kubectl("get", "sa", "default", "-n", "default", check=False).returncode == 0, 30,
                   "the default ServiceAccount")
        yield n
    finally:
        n.record_netns()
        problems = n.shutdown()
        Path("/proc/sys/net/ipv4/ip_forward").write_text(ip_forward)
        assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    reason = _node_missing()
    if reason:
        pytest.skip(reason)
    require_kubectl()
    octet = _pick_network()
    # Pods reach the API server through their bridge's gateway: listen there too.
    with running_node(tmp_path_factory.mktemp("kyb-node").resolve(), "e2e-node", octet,
                      "--bind-address", "0.0.0.0", "--tls-san", f"10.{octet}.0.1") as n:
        yield n


@pytest.fixture
def ns(node: Node, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, with its default ServiceAccount."""
    name = "n-" + re.sub(r"[^a-z0-9]+", "-", request.node.name.lower().removeprefix("test_"))[:50].strip("-")
    node.kubectl("create", "namespace", name)
    wait_until(lambda: node.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0, 30,
               f"the default ServiceAccount in {name}")
    yield name
    node.record_netns()
    node.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pod(name: str, command: list[str] | str, *, image: str = BUSYBOX, grace: int = 1, **spec: Any) -> Obj:
    """A busybox pod; ``command`` as a string runs under ``sh -c``."""
    argv = ["sh", "-c", command] if isinstance(command, str) else command
    container: Obj = {"name": "c", "image": image, "imagePullPolicy": "IfNotPresent", "command": argv}
    container.update(spec.pop("container", {}))
    body: Obj = {"terminationGracePeriodSeconds": grace, "containers": [container], **spec}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": body}


def container_status(p: Obj, name: str = "c") -> Obj:
    for cs in (p.get("status") or {}).get("containerStatuses") or []:
        if cs.get("name") == name:
            return dict(cs)
    return {}


# ---- basics: logs, exec, port-forward ------------------------------------------------------------


def test_pod_runs_and_its_logs_read_back(node: Node, ns: str) -> None:
    node.apply(ns, pod("hello", "echo hello; echo from the pod; sleep 3600"))
    p = node.wait_ready(ns, "hello")
    assert p["status"]["phase"] == "Running"
    assert p["spec"]["nodeName"] == node.node_name
    assert ipaddress.ip_address(p["status"]["podIP"]) in ipaddress.ip_network(f"10.{node.octet}.0.0/24")
    cid = container_status(p)["containerID"]
    assert cid.startswith("containerd://"), cid
    logs = wait_until(lambda: node.kubectl("logs", "hello", "-n", ns).stdout, 10, "logs")
    assert logs == "hello\nfrom the pod\n"
    # The same through the container name, and with --tail.
    assert node.kubectl("logs", "pod/hello", "-c", "c", "--tail=1", "-n", ns).stdout == "from the pod\n"


def test_exec_runs_a_command_and_returns_its_exit_code(node: Node, ns: str) -> None:
    node.apply(ns, pod("ex", "sleep 3600"))
    node.wait_ready(ns, "ex")
    ok = node.kubectl("exec", "ex", "-n", ns, "--", "sh", "-c", "echo out; echo err >&2; hostname")
    assert ok.stdout == "out\nex\n" and "err" in ok.stderr
    bad = node.kubectl("exec", "ex", "-n", ns, "--", "sh", "-c", "exit 42", check=False)
    assert bad.returncode == 42, (bad.returncode, bad.stderr)
    missing = node.kubectl("exec", "ex", "-n", ns, "--", "/no/such/binary", check=False)
    assert missing.returncode != 0
    # stdin goes through too.
    echoed = node.kubectl("exec", "-i", "ex", "-n", ns, "--", "sh", "-c", "cat; echo done", input="piped\n")
    assert echoed.stdout == "piped\ndone\n"


def test_port_forward_reaches_httpd_in_the_pod(node: Node, ns: str) -> None:
    marker = uuid.uuid4().hex
    node.apply(ns, pod("web", f"mkdir -p /www && echo {marker} > /www/index.html && exec httpd -f -p 8080 -h /www"))
    node.wait_ready(ns, "web")
    env = dict(os.environ, KUBECONFIG=str(node.server.kubeconfig))
    pf = subprocess.Popen(["kubectl", "port-forward", "-n", ns, "--address", "127.0.0.1", "pod/web", ":8080"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert pf.stdout is not None
        line = pf.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
        m = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert m, f"{line!r} {pf.stderr.read() if pf.poll() is not None and pf.stderr else ''}"
        for _ in range(3):  # several connections over the one forward
            status, body = http_get(f"http://127.0.0.1:{m.group(1)}/index.html")
            assert (status, body) == (200, marker + "\n")
    finally:
        pf.terminate()
        pf.wait(10)


def test_kubectl_applies_a_list_of_objects(node: Node, ns: str) -> None:
    """``kubectl apply -f`` of a v1 List (what ``kubectl get -o json`` prints for several objects).

    kubectl 1.32 validates a List on the client side (a List has no PATCH operation in OpenAPI v3
    to say the server validates it), with the OpenAPI v2 document fetched as protobuf; a server
    that answers that with 406 makes the apply fail ("the server was unable to respond with a
    content type that the client supports").
    """
    items = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"l{i}"}, "data": {"i": str(i)}}
             for i in range(2)]
    node.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
    assert node.get("configmap", "l1", "-n", ns)["data"] == {"i": "1"}


# ---- the pod spec: init containers, env, volumes -------------------------------------------------


def test_init_containers_run_in_order(node: Node, ns: str) -> None:
    spec = pod("init", "cat /work/order; echo main; sleep 3600")
    spec["spec"]["volumes"] = [{"name": "work", "emptyDir": {}}]
    spec["spec"]["containers"][0]["volumeMounts"] = [{"name": "work", "mountPath": "/work"}]
    spec["spec"]["initContainers"] = [
        {"name": f"init{i}", "image": BUSYBOX, "command": ["sh", "-c", f"sleep 0.{i}; echo init{i} >> /work/order"],
         "volumeMounts": [{"name": "work", "mountPath": "/work"}]} for i in (1, 2, 3)]
    node.apply(ns, spec)
    p = node.wait_ready(ns, "init")
    inits = p["status"]["initContainerStatuses"]
    assert [s["name"] for s in inits] == ["init1", "init2", "init3"]
    assert all(s["state"]["terminated"]["reason"] == "Completed" and s["ready"] for s in inits), inits
    # Each init container started only after the one before it finished.
    times = [(s["state"]["terminated"]["startedAt"], s["state"]["terminated"]["finishedAt"]) for s in inits]
    assert all(times[i][1] <= times[i + 1][0] for i in range(2)), times
    logs = wait_until(lambda: node.kubectl("logs", "init", "-n", ns).stdout, 10, "logs")
    assert logs == "init1\ninit2\ninit3\nmain\n"
    assert node.kubectl("logs", "init", "-c", "init2", "-n", ns).stdout == ""


def test_env_and_configmap_and_secret_volumes(node: Node, ns: str) -> None:
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"},
          "data": {"COLOUR": "blue", "SIZE": "xl", "app.conf": "key=value\nother=2\n"}}
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"USER": "admin", "PASS": "s3cr3t!", "tls.key": "-----KEY-----\n"}}
    spec = pod("env", "sleep 3600")
    spec["metadata"]["labels"]["tier"] = "gold"
    c = spec["spec"]["containers"][0]
    c["env"] = [
        {"name": "PLAIN", "value": "just a value"},
        {"name": "EXPANDED", "value": "$(PLAIN)!"},
        {"name": "MY_POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "MY_NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "MY_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
        {"name": "MY_NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "MY_TIER", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['tier']"}}},
        {"name": "THE_COLOUR", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "COLOUR"}}},
        {"name": "THE_PASS", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "PASS"}}},
        {"name": "MEM_LIMIT", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
    ]
    c["envFrom"] = [{"configMapRef": {"name": "cfg"}, "prefix": "CM_"}, {"secretRef": {"name": "creds"}}]
    c["resources"] = {"limits": {"memory": "64Mi"}}
    c["volumeMounts"] = [{"name": "cm", "mountPath": "/etc/cfg"}, {"name": "sec", "mountPath": "/etc/creds"},
                         {"name": "picked", "mountPath": "/etc/picked"}]
    spec["spec"]["volumes"] = [
        {"name": "cm", "configMap": {"name": "cfg"}},
        {"name": "sec", "secret": {"secretName": "creds", "defaultMode": 0o400}},
        {"name": "picked", "configMap": {"name": "cfg", "items": [{"key": "app.conf", "path": "sub/app.conf"}]}},
    ]
    node.apply(ns, cm, secret, spec)
    p = node.wait_ready(ns, "env")
    out = node.kubectl("exec", "env", "-n", ns, "--", "env").stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    expected = {
        "PLAIN": "just a value", "EXPANDED": "just a value!", "MY_POD": "env", "MY_NS": ns,
        "MY_IP": p["status"]["podIP"], "MY_NODE": node.node_name, "MY_TIER": "gold", "THE_COLOUR": "blue",
        "THE_PASS": "s3cr3t!", "MEM_LIMIT": "64", "CM_COLOUR": "blue", "CM_SIZE": "xl", "USER": "admin",
        "PASS": "s3cr3t!",
    }
    assert {k: env.get(k) for k in expected} == expected

    def sh(cmd: str) -> str:
        return node.kubectl("exec", "env", "-n", ns, "--", "sh", "-c", cmd).stdout

    assert sh("ls /etc/cfg | sort").split() == ["COLOUR", "SIZE", "app.conf"]
    assert sh("cat /etc/cfg/COLOUR") == "blue"
    assert sh("cat /etc/cfg/app.conf") == "key=value\nother=2\n"
    assert sh("ls /etc/creds | sort").split() == ["PASS", "USER", "tls.key"]
    assert sh("cat /etc/creds/PASS; echo; cat /etc/creds/tls.key") == "s3cr3t!\n-----KEY-----\n"
    assert sh("stat -L -c %a /etc/creds/PASS").strip() == "400"
    assert sh("ls /etc/picked; cat /etc/picked/sub/app.conf") == "sub\nkey=value\nother=2\n"


# ---- probes and restarts -------------------------------------------------------------------------


def test_failing_liveness_probe_restarts_the_container(node: Node, ns: str) -> None:
    spec = pod("live", "touch /tmp/alive; sleep 3600")
    spec["spec"]["containers"][0]["livenessProbe"] = {
        "exec": {"command": ["sh", "-c", "test -f /tmp/alive"]},
        "periodSeconds": 1, "failureThreshold": 2, "timeoutSeconds": 2}
    node.apply(ns, spec)
    first = container_status(node.wait_ready(ns, "live"))
    assert first["restartCount"] == 0
    node.kubectl("exec", "live", "-n", ns, "--", "rm", "/tmp/alive")
    p = node.wait_pod(ns, "live", "restarted", lambda p: container_status(p).get("restartCount", 0) >= 1, 60)
    cs = container_status(p)
    assert cs["containerID"] != first["containerID"]
    assert cs["lastState"]["terminated"]["containerID"] == first["containerID"]
    reasons = {(e["reason"], e["type"]) for e in node.events(ns, "live")}
    assert ("Unhealthy", "Warning") in reasons and ("Killing", "Normal") in reasons, reasons
    unhealthy = [e for e in node.events(ns, "live") if e["reason"] == "Unhealthy"]
    assert "Liveness probe failed" in unhealthy[0]["message"], unhealthy
    killing = [e for e in node.events(ns, "live") if e["reason"] == "Killing"]
    assert "failed liveness probe" in killing[0]["message"], killing
    # The new instance made /tmp/alive again: it stays up.
    node.wait_ready(ns, "live")


def test_crashing_container_reaches_crash_loop_back_off(node: Node, ns: str) -> None:
    node.apply(ns, pod("crash", "echo crashing; exit 3"))
    restarts: dict[int, float] = {}
    reasons: set[str] = set()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        cs = container_status(node.pod(ns, "crash"))
        count = int(cs.get("restartCount", 0))
        restarts.setdefault(count, time.monotonic())
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason"):
            reasons.add(waiting["reason"])
        if count >= 2 and waiting.get("reason") == "CrashLoopBackOff":
            break
        time.sleep(0.25)
    else:
        raise AssertionError(f"no CrashLoopBackOff after 2 restarts: {restarts} {reasons}\n{node.describe(ns, 'crash')}")
    assert "CrashLoopBackOff" in reasons
    assert waiting["message"].startswith("back-off "), waiting
    assert cs["lastState"]["terminated"]["exitCode"] == 3
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    # Back-off: the second restart waited (Kubernetes: 10 s, doubling), no hot loop.
    assert restarts[2] - restarts[1] >= 8, restarts
    p = node.pod(ns, "crash")
    assert p["status"]["phase"] == "Running" and not is_ready(p)
    events = node.events(ns, "crash")
    backoff = [e for e in events if e["reason"] == "BackOff"]
    assert backoff and "Back-off restarting failed container" in backoff[0]["message"], events
    assert node.kubectl("logs", "crash", "-n", ns, "--previous").stdout == "crashing\n"


def test_readiness_gates_endpoints(node: Node, ns: str) -> None:
    spec = pod("rdy", "sleep 3600")
    # Each probe leaves a line in /tmp/probes, so the test can tell that probes ran (and failed).
    spec["spec"]["containers"][0]["readinessProbe"] = {
        "exec": {"command": ["sh", "-c", "echo >> /tmp/probes; test -f /tmp/ready"]},
        "periodSeconds": 1, "failureThreshold": 1}
    spec["spec"]["containers"][0]["ports"] = [{"containerPort": 8080, "name": "http"}]
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "rdy"},
           "spec": {"selector": {"app": "rdy"}, "ports": [{"port": 80, "targetPort": "http"}]}}
    node.apply(ns, spec, svc)
    p = node.wait_pod(ns, "rdy", "running", lambda p: container_status(p).get("state", {}).get("running"), 60)
    ip = p["status"]["podIP"]

    def endpoints() -> tuple[list[str], list[str]]:
        res = node.kubectl("get", "endpoints", "rdy", "-n", ns, "-o", "json", check=False)
        if res.returncode != 0:
            return [], []
        subsets = json.loads(res.stdout).get("subsets") or []
        ready = [a["ip"] for s in subsets for a in s.get("addresses") or []]
        not_ready = [a["ip"] for s in subsets for a in s.get("notReadyAddresses") or []]
        return ready, not_ready

    wait_until(lambda: endpoints() == ([], [ip]), 30, "the pod in notReadyAddresses")

    def probes_run() -> int:
        out = node.kubectl("exec", "rdy", "-n", ns, "--", "cat", "/tmp/probes", check=False).stdout
        return out.count("\n")

    # The probe keeps failing: three more probes later (a wrong "ready" from the first two has had
    # a probe period or more to reach the pod's status and the Endpoints), still not ready.
    seen = probes_run()
    wait_until(lambda: probes_run() >= seen + 3, 30, "three more readiness probes")
    assert not is_ready(node.pod(ns, "rdy"))
    assert endpoints() == ([], [ip])
    node.kubectl("exec", "rdy", "-n", ns, "--", "touch", "/tmp/ready")
    wait_until(lambda: endpoints() == ([ip], []), 30, "the pod in addresses")
    assert is_ready(node.pod(ns, "rdy"))
    node.kubectl("exec", "rdy", "-n", ns, "--", "rm", "/tmp/ready")
    wait_until(lambda: endpoints() == ([], [ip]), 30, "the pod back in notReadyAddresses")


# ---- termination -------------------------------------------------------------------------------


def test_deletion_is_graceful(node: Node, ns: str) -> None:
    host_dir = node.tmp / f"grace-{uuid.uuid4().hex[:8]}"
    host_dir.mkdir()
    spec = pod("grace", "trap 'echo term >> /h/log; exit 0' TERM; echo started >> /h/log; "
                        "while true; do sleep 0.1; done", grace=30)
    c = spec["spec"]["containers"][0]
    c["volumeMounts"] = [{"name": "h", "mountPath": "/h"}]
    c["lifecycle"] = {"preStop": {"exec": {"command": ["sh", "-c", "echo prestop >> /h/log"]}}}
    spec["spec"]["volumes"] = [{"name": "h", "hostPath": {"path": str(host_dir), "type": "Directory"}}]
    node.apply(ns, spec)
    node.wait_ready(ns, "grace")
    started = time.monotonic()
    node.kubectl("delete", "pod", "grace", "-n", ns, "--timeout=60s")
    took = time.monotonic() - started
    # preStop ran first, then SIGTERM reached the shell's trap; the container exited by itself,
    # well before the 30 s grace period would have ended with SIGKILL.
    assert (host_dir / "log").read_text() == "started\nprestop\nterm\n"
    assert took < 20, took


def test_container_over_its_memory_limit_is_oom_killed(node: Node, ns: str) -> None:
    spec = pod("oom", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M"], restartPolicy="Never",
               container={"resources": {"limits": {"memory": "32Mi"}}})
    node.apply(ns, spec)
    p = node.wait_pod(ns, "oom", "failed", lambda p: p.get("status", {}).get("phase") == "Failed", 60)
    term = container_status(p)["state"]["terminated"]
    assert term["reason"] == "OOMKilled", term
    assert term["exitCode"] == 137, term
    # The same under restartPolicy Always shows up in lastState.
    spec = pod("oom-again", ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M"],
               container={"resources": {"limits": {"memory": "32Mi"}}})
    node.apply(ns, spec)
    p = node.wait_pod(ns, "oom-again", "restarted after OOM",
                      lambda p: (container_status(p).get("lastState") or {}).get("terminated"), 60)
    assert container_status(p)["lastState"]["terminated"]["reason"] == "OOMKilled"


# ---- the pod talks to the API server -----------------------------------------------------------


def test_pod_calls_the_api_server_with_its_service_account_token(node: Node, ns: str) -> None:
    image = node.ensure_tls_image()
    node.apply(ns, pod("client", "sleep 3600", image=image, container={"imagePullPolicy": "Never"}))
    node.wait_ready(ns, "client")
    target = f"{node.gateway}:{node.server.port}"

    def request(token_expr: str) -> str:
        # HTTP/1.0: the server closes the connection after the answer, which ends s_client.
        script = (
            f'printf "GET /api/v1/namespaces/{ns}/pods HTTP/1.0\\r\\nHost: {node.gateway}\\r\\n'
            f'Authorization: Bearer %s\\r\\n\\r\\n" "{token_expr}" | '
            f"/bin/ld.so --library-path /lib/x86_64-linux-gnu /usr/bin/openssl s_client -quiet -connect {target} "
            f"-servername kubernetes.default.svc -CAfile {SA_DIR}/ca.crt -verify_return_error 2>/dev/null")
        return node.kubectl("exec", "client", "-n", ns, "--", "sh", "-c", script).stdout

    # The projected volume: token, CA and namespace.
    assert node.kubectl("exec", "client", "-n", ns, "--", "cat", f"{SA_DIR}/namespace").stdout == ns
    # The pod's default account may list nothing until bound (Node,RBAC): 403 in Kubernetes' words.
    refused = request(f"$(cat {SA_DIR}/token)")
    assert re.match(r"HTTP/1\.[01] 403", refused), refused[:500]
    assert f'User \\"system:serviceaccount:{ns}:default\\" cannot list resource \\"pods\\"' in refused, refused[:800]
    node.kubectl("create", "rolebinding", "client-view", "--clusterrole=view", f"--serviceaccount={ns}:default",
                 "-n", ns)
    node.server.wait_allowed("list", "pods", f"system:serviceaccount:{ns}:default", namespace=ns)
    answer = request(f"$(cat {SA_DIR}/token)")
    # kubectl's output went through universal newlines: the header ends at a blank line.
    head, _, body = answer.partition("\n\n")
    assert head.startswith("HTTP/1.0 200") or head.startswith("HTTP/1.1 200"), answer[:500]
    assert body.startswith("{"), answer[:500]
    listing = json.loads(body)
    assert listing["kind"] == "PodList"
    assert "client" in [i["metadata"]["name"] for i in listing["items"]]
    bogus = request("not-a-token")
    assert re.match(r"HTTP/1\.[01] 401", bogus), bogus[:500]
    # The real token with its signature replaced is refused too.
    forged = request(f"$(cat {SA_DIR}/token | sed 's/\\.[^.]*$/.AAAA/')")
    assert re.match(r"HTTP/1\.[01] 401", forged), forged[:500]


# ---- storage.k8s.io CSINode and node.k8s.io RuntimeClass -------------------------------------------


def test_kubelet_registers_its_csi_node(node: Node) -> None:
    """As Kubernetes' kubelet does at start even without CSI drivers: named and owned by the Node."""
    csi_node = wait_until(lambda: node.kubectl("get", "csinode", node.node_name, "-o", "json", check=False).stdout,
                          30, "the node's CSINode")
    obj = json.loads(csi_node)
    assert not obj["spec"].get("drivers")
    uid = node.get("node", node.node_name)["metadata"]["uid"]
    assert obj["metadata"]["ownerReferences"] == [{"apiVersion": "v1", "kind": "Node", "name": node.node_name,
                                                   "uid": uid}]
    assert node.kubectl("get", "csinodes", "--no-headers").stdout.split()[:2] == [node.node_name, "0"]


def test_runtime_class_handler_reaches_the_runtime(node: Node, ns: str) -> None:
    """The kubelet asks containerd for the RuntimeClass's handler: runc runs, an unconfigured one fails."""
    for name, handler in (("runc-class", "runc"), ("kata-class", "kata")):
        node.kubectl("apply", "-f", "-", input=json.dumps({
            "apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": name},
            "handler": handler, "overhead": {"podFixed": {"cpu": "10m"}}}))
    try:
        node.apply(ns, pod("on-runc", "sleep 3600", runtimeClassName="runc-class"))
        p = node.wait_ready(ns, "on-runc")
        assert p["spec"]["overhead"] == {"cpu": "10m"}
        node.apply(ns, pod("on-kata", "sleep 3600", runtimeClassName="kata-class"))
        failed = wait_until(lambda: [e["message"] for e in node.events(ns, "on-kata")
                                     if e["reason"] == "FailedCreatePodSandBox"], 60, "FailedCreatePodSandBox")
        assert failed[0].startswith("Failed to create pod sandbox: "), failed
        assert 'no runtime for "kata" is configured' in failed[0], failed
        assert container_status(node.pod(ns, "on-kata")).get("ready") is not True
    finally:
        node.kubectl("delete", "pod", "on-kata", "-n", ns, "--wait=false", check=False)
        node.kubectl("delete", "runtimeclass", "runc-class", "kata-class", check=False)


# ---- images from a registry ---------------------------------------------------------------------


@pytest.fixture
def registry(node: Node) -> Iterator[str]:
    """Debian's docker-registry on 127.0.0.1:PORT (storage under our tmp dir); yields host:port."""
    if not os.access(REGISTRY_BINARY, os.X_OK):
        if os.environ.get("CI"):
            pytest.fail("needs docker-registry")
        pytest.skip("needs Debian's docker-registry (apt-get install docker-registry)")
    port = free_port()
    root = node.tmp / f"registry-{port}"
    root.mkdir()
    config = root / "config.yml"
    config.write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                      f"http:\n  addr: 127.0.0.1:{port}\n")
    with open(root / "log", "wb") as log:
        proc = subprocess.Popen([REGISTRY_BINARY, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        def answers() -> bool:
            if proc.poll() is not None:
                return True  # reported below
            try:
                return http_get(f"http://127.0.0.1:{port}/v2/")[0] == 200
            except OSError:
                return False

        wait_until(answers, 15, "docker-registry to answer", interval=0.1)
        assert proc.poll() is None, (root / "log").read_text()
        yield f"127.0.0.1:{port}"
    finally:
        stop_process(proc, 10)


def test_image_is_pulled_from_a_loopback_registry(node: Node, ns: str, registry: str) -> None:
    # The node has no registry config dir (no kubelet/agent/server flag sets one); containerd 1.6
    # falls back to plain HTTP for loopback registries, which is what this relies on.
    marker = uuid.uuid4().hex
    name = f"e2e/hello-{marker[:8]}:v1"
    tar = node.tmp / f"push-{marker[:8]}.tar"
    tar.write_bytes(build_busybox_image(f"{registry}/{name}", cmd=["sh", "-c", "cat /hello"],
                                        extra_files={"/hello": f"{marker}\n".encode()}))
    digest = asyncio.run(push_to_registry(tar, f"http://{registry}", name))
    assert digest.startswith("sha256:")
    image = f"{registry}/{name}"
    spec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "pulled"},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": image, "imagePullPolicy": "Always"}]}}
    node.apply(ns, spec)
    p = node.wait_pod(ns, "pulled", "succeeded", lambda p: p.get("status", {}).get("phase") == "Succeeded", 90)
    cs = container_status(p)
    assert cs["image"] == image and cs["imageID"].endswith(digest), cs
    assert node.kubectl("logs", "pulled", "-n", ns).stdout == f"{marker}\n"
    pulled = [e for e in node.events(ns, "pulled") if e["reason"] == "Pulled"]
    assert pulled and image in pulled[0]["message"], node.events(ns, "pulled")
    # Always pulls again, and the node lists the image.
    node.apply(ns, {**spec, "metadata": {"name": "pulled-again"}})
    node.wait_pod(ns, "pulled-again", "succeeded", lambda p: p.get("status", {}).get("phase") == "Succeeded", 60)
    assert any(e["reason"] == "Pulled" for e in node.events(ns, "pulled-again"))

    def listed() -> bool:
        images = node.get("node", node.node_name)["status"].get("images") or []
        return any(image in (i.get("names") or []) for i in images)

    wait_until(listed, 30, f"the node to list {image}")


def test_image_imported_into_the_servers_data_dir_runs_with_pull_policy_never(node: Node, ns: str) -> None:
    """`kyb image import --data-dir SERVER_DATA_DIR`, as the README says, reaches the server's node.

    The image is the user's own busybox:1.36 (the built-in's name) with a file of its own; the
    pod must see that file, so the node's built-in image must not stand in for it.
    """
    marker = uuid.uuid4().hex
    tar = node.tmp / f"users-busybox-{marker[:8]}.tar"
    tar.write_bytes(build_busybox_image(BUSYBOX, cmd=["sh"], extra_files={"/marker": f"{marker}\n".encode()}))
    res = subprocess.run([*KYB, "image", "import", "--data-dir", str(node.server.data_dir), str(tar)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.split() == [BUSYBOX], (res.stdout, res.stderr)
    assert f"imported into the running containerd of the node in {node.agent_dir}" in res.stderr, res.stderr
    assert "replaces the node's built-in image" in res.stderr, res.stderr
    node.apply(ns, pod("imported", "cat /marker", restartPolicy="Never", container={"imagePullPolicy": "Never"}))
    node.wait_pod(ns, "imported", "succeeded", lambda p: p.get("status", {}).get("phase") == "Succeeded", 60)
    assert node.kubectl("logs", "imported", "-n", ns).stdout == f"{marker}\n"


def test_tutorial_wget_reaches_a_pod_and_a_service(node: Node, ns: str) -> None:
    """`kubectl exec client -- wget -T 2 -qO- http://web`: to the pod IP, the Service IP, and the
    Service's name (from /etc/hosts through hostAliases, until cluster DNS exists)."""
    node.apply(ns, pod("web", "mkdir -p /www && echo tutorial > /www/index.html && exec httpd -f -p 8080 -h /www",
                       container={"readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}),
               {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}})
    web_ip = node.wait_ready(ns, "web")["status"]["podIP"]
    service_ip = node.get("service", "web", "-n", ns)["spec"]["clusterIP"]
    node.apply(ns, pod("client", "sleep 3600", hostAliases=[{"ip": service_ip, "hostnames": ["web"]}]))
    node.wait_ready(ns, "client")
    for url in (f"http://{web_ip}:8080/", f"http://{service_ip}/", "http://web/"):
        def fetched(url: str = url) -> subprocess.CompletedProcess[str] | None:
            res = node.kubectl("exec", "client", "-n", ns, "--", "wget", "-T", "2", "-qO-", url, check=False)
            return res if res.returncode == 0 else None
        res = wait_until(fetched, 30, f"wget {url} from the client pod")
        assert res.stdout == "tutorial\n", (url, res.stdout, res.stderr)


# ---- scale: a Deployment of 20 httpd pods --------------------------------------------------------


def test_deployment_of_20_httpd_replicas_answers_on_every_pod_ip(node: Node, ns: str) -> None:
    replicas = 20
    dep = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
           "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                    "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                        "terminationGracePeriodSeconds": 1,
                        "containers": [{"name": "httpd", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                                        "command": ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && "
                                                                "exec httpd -f -p 8080 -h /www"],
                                        "ports": [{"containerPort": 8080}],
                                        "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]}}}}
    started = time.monotonic()
    node.apply(ns, dep)
    node.kubectl("wait", "-n", ns, "--for=condition=Available", "deployment/web", "--timeout=120s", timeout=130)
    wait_until(lambda: node.get("deployment", "web", "-n", ns)["status"].get("readyReplicas") == replicas, 120,
               "20 ready replicas")
    took = time.monotonic() - started
    pods = [p for p in node.get("pods", "-n", ns, "-l", "app=web")["items"] if not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == replicas and all(is_ready(p) for p in pods)
    ips = {p["status"]["podIP"]: p["metadata"]["name"] for p in pods}
    assert len(ips) == replicas, "pod IPs must be distinct"
    net = ipaddress.ip_network(f"10.{node.octet}.0.0/24")
    for ip, name in ips.items():
        assert ipaddress.ip_address(ip) in net
        assert http_get(f"http://{ip}:8080/") == (200, name + "\n"), ip
    print(f"20 replicas Available in {took:.1f}s")
    node.record_netns()
    node.kubectl("delete", "deployment", "web", "-n", ns)
    wait_until(lambda: not node.get("pods", "-n", ns, "-l", "app=web")["items"], 90, "the web pods to go")


# ---- the agent's one process: the kubelet and kube-proxy in it; killed, its containers live on ---------


def agent_pids(server_dir: Path) -> list[int]:
    """The ``kyb agent`` processes of the server in ``server_dir`` (their --data-dir is under it)."""
    want = os.fsencode(str(server_dir))
    return [pid for pid, argv in _cmdlines()
            if argv[1:4] == [b"-m", b"kybernetes.cli", b"agent"] and any(want in a for a in argv)]


def listening_pids(port: int) -> set[int]:
    """The processes holding a listening TCP socket on ``port`` (any address; /proc/net/tcp{,6})."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    out = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                    out.add(int(entry.name))
    return out


def test_agent_serves_the_kubelet_and_kube_proxy_healthz_from_one_process(node: Node) -> None:
    """The default layout (issue 18): the kubelet, kube-proxy and the node network run in the agent's
    process, each with its own servers: the kubelet API (its /healthz) and kube-proxy's 10256."""
    agents = agent_pids(node.server.data_dir)
    assert len(agents) == 1, agents
    mine = os.fsencode(str(node.agent_dir))
    children = [argv[3] for _, argv in _cmdlines() if argv[1:3] == [b"-m", b"kybernetes.cli"]
                and argv[3:4] in ([b"kubelet"], [b"proxy"], [b"network"]) and any(mine in a for a in argv)]
    assert children == [], children
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE  # /healthz needs no client certificate
    node_obj = node.get("node", node.node_name)
    port = node_obj["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
    address = next(a["address"] for a in node_obj["status"]["addresses"] if a["type"] == "InternalIP")
    with urllib.request.urlopen(f"https://{address}:{port}/healthz", context=ctx, timeout=5) as r:
        assert (r.status, r.read()) == (200, b"ok")
    assert http_get("http://127.0.0.1:10256/healthz")[0] == 200
    assert listening_pids(port) == listening_pids(10256) == set(agents)


def test_killed_agent_leaves_its_containers_running(node: Node, ns: str) -> None:
    """kill -9 of the agent (the kubelet's process): the server restarts it, the new kubelet adopts
    the running container (same ID, no restart, no Killing event) and leaves no container without a pod."""
    node.apply(ns, pod("survivor", "sleep 3600"))
    before = container_status(node.wait_ready(ns, "survivor"))
    pids = agent_pids(node.server.data_dir)
    assert len(pids) == 1, pids
    os.kill(pids[0], signal.SIGKILL)
    # The server's supervisor restarts it (1 s back-off).
    new = wait_until(lambda: [p for p in agent_pids(node.server.data_dir) if p != pids[0]], 30, "a new agent")
    assert len(new) == 1
    # The new kubelet is serving: exec goes through it, to the same container.
    wait_until(lambda: node.kubectl("exec", "survivor", "-n", ns, "--", "true", check=False).returncode == 0, 90,
               "exec through the new kubelet")
    # It has synced the pods it found at its start before it runs one created after: once a
    # sentinel pod is ready, the survivor has been synced (and its status written if it changed).
    node.apply(ns, pod("sentinel", "sleep 3600"))
    node.wait_ready(ns, "sentinel")
    after = node.pod(ns, "survivor")
    cs = container_status(after)
    assert after["status"]["phase"] == "Running" and is_ready(after)
    assert cs["containerID"] == before["containerID"], (before, cs)
    assert cs["restartCount"] == before["restartCount"] == 0
    assert cs["state"]["running"]["startedAt"] == before["state"]["running"]["startedAt"]
    kinds = {e["reason"] for e in node.events(ns, "survivor")}
    assert "Killing" not in kinds, kinds
    uids = {p["metadata"]["uid"] for p in node.get("pods", "-A")["items"]}
    assert asyncio.run(runtime_orphans(node.socket, uids)) == []
    node.kubectl("wait", "--for=condition=Ready", f"node/{node.node_name}", "--timeout=30s")


# ---- a second node ---------------------------------------------------------------------------------


def test_second_agent_joins_and_runs_a_pod(node: Node, ns: str) -> None:
    agent = node.start_agent(SECOND_NODE, 1)

    def ready() -> bool:
        if agent.proc.poll() is not None:
            raise AssertionError(f"agent exited with {agent.proc.returncode}:\n{agent.log()}")
        res = node.kubectl("get", "node", SECOND_NODE, "-o", "json", check=False)
        return res.returncode == 0 and is_ready(json.loads(res.stdout))

    try:
        wait_until(ready, 90, f"node {SECOND_NODE} Ready", interval=0.5)
    except AssertionError as err:
        raise AssertionError(f"{err}\n{agent.log()}") from None
    second = node.get("node", SECOND_NODE)
    assert second["metadata"]["labels"][HOSTNAME] == SECOND_NODE
    spec = pod("there", "echo on $(hostname); sleep 3600", nodeSelector={HOSTNAME: SECOND_NODE})
    node.apply(ns, spec, pod("here", "sleep 3600", nodeName=node.node_name))
    p = node.wait_ready(ns, "there", 90)
    assert p["spec"]["nodeName"] == SECOND_NODE
    cidr = second["spec"].get("podCIDR")
    if cidr:
        assert ipaddress.ip_address(p["status"]["podIP"]) in ipaddress.ip_network(cidr), (cidr, p["status"])
    assert node.kubectl("logs", "there", "-n", ns).stdout == "on there\n"
    assert node.kubectl("exec", "there", "-n", ns, "--", "hostname").stdout == "there\n"
    # Its containers live in the second node's containerd, not the first's.
    assert pids_mentioning(agent.data_dir), "no processes of the second node"
    here = node.wait_ready(ns, "here")
    assert here["status"]["podIP"] != p["status"]["podIP"]
    node.record_netns()
    node.kubectl("delete", "pod", "there", "-n", ns, "--timeout=60s")
    # Stopping the agent stops its kubelet (draining) and its containerd.
    assert agent.stop() == 0, agent.log()
    assert pids_mentioning(agent.data_dir) == [], "the second node left processes running"
    assert mounts_under(agent.data_dir) == [], "the second node left mounts"
    # The node is gone for good: its Node object goes too (else pods would still be scheduled there).
    node.kubectl("delete", "node", SECOND_NODE)


# ---- nothing left behind -------------------------------------------------------------------------


def test_stopping_everything_leaves_nothing_behind(node: Node) -> None:
    """Runs last: stop the agents and the server; no process, mount, netns or veth may remain.

    A pod is still running when the server stops: the node drains it (``drain-on-exit``), which
    must leave no container, mount (its service-account token volume) or network namespace.
    """
    node.kubectl("create", "namespace", "leftover")
    wait_until(lambda: node.kubectl("get", "sa", "default", "-n", "leftover", check=False).returncode == 0, 30,
               "the default ServiceAccount in leftover")
    node.apply("leftover", pod("still-running", "sleep 3600", nodeName=node.node_name))
    node.wait_ready("leftover", "still-running")
    node.record_netns()
    assert node.netns, "no pod network namespaces were recorded"
    problems = node.shutdown()
    assert not problems, "\n".join(problems)
