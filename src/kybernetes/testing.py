"""Public test helpers: start a real ``kyb server`` process and drive it with kubectl.

Used by kybernetes' own integration tests and usable in users' tests::

    with ServerProcess.start(tmp_path) as srv:
        srv.kubectl("get", "ns")

The server runs as a child process on a free loopback port with its own data dir; ``stop()``
sends SIGTERM and waits, and kills the process only if it does not stop in time.
"""

from __future__ import annotations

import itertools
import os
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kybernetes.etcdmember import etcd_pki, member_command
from kybernetes.etcdmember import wait_healthy as wait_member_healthy
from kybernetes.storage.etcd_client import EtcdConnection, TLSFiles, parse_endpoints

API_ONLY_CONTROLLERS = ("serviceaccount-controller", "clusterrole-aggregation")
"""The controllers an API-server-only test server still runs: without them no pod could be created
(its ServiceAccount would not exist) and the aggregated roles (``view``, ``edit``, ``admin``) would
grant nothing. (Not the root-ca-cert-publisher: tests count the ConfigMaps of their namespaces.)"""

KUBECTL = os.environ.get("KUBECTL", shutil.which("kubectl") or "/usr/bin/kubectl")


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> int:
    """SIGTERM a process this test or benchmark started, SIGKILL it after ``timeout``; its exit code."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def free_network_octet(first: int, last: int, bridge: str) -> int:
    """A second octet N in [first, last) with 10.N.0.0/16 on no route or address of this machine and
    no link named ``bridge.format(N)``: a pod network that collides with no other cluster here."""
    used = subprocess.run(["ip", "-4", "route", "show", "table", "all"], capture_output=True, text=True).stdout
    used += subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    for octet in range(first, last):
        if f"10.{octet}." not in used and bridge.format(octet) not in links:
            return octet
    raise RuntimeError(f"no free 10.N.0.0/16 between 10.{first} and 10.{last - 1}")


_COMPONENT_ARG = {"scheduler": "--kube-scheduler-arg", "controller-manager": "--kube-controller-manager-arg",
                  "cloud-controller-manager": "--kube-cloud-controller-manager-arg"}


def _free_secure_ports(extra: tuple[str, ...]) -> dict[str, int]:
    """A free secure port for each control-plane component whose port ``extra`` does not set: the
    Kubernetes defaults (10259, 10257, 10258) would collide between servers running at once."""
    out = {}
    for name, flag in _COMPONENT_ARG.items():
        values = [v for a, v in itertools.pairwise(extra) if a == flag]
        values += [a.split("=", 1)[1] for a in extra if a.startswith(f"{flag}=")]
        if not any(v.lstrip("-").startswith("secure-port") for v in values):
            out[name] = free_port()
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def embedded_etcd_args(node_name: str, join: ServerProcess | None = None) -> list[str]:
    """``kyb server`` flags for a server that runs an etcd member on free loopback ports, named
    ``node_name`` (also the server's node name): the first of a cluster (``--cluster-init``) or, with
    ``join``, one more server of ``join``'s cluster (``--server`` with its server token)."""
    from kybernetes.apiserver.join.tokens import read_server_token

    args = ["--node-name", node_name, "--etcd-client-port", str(free_port()), "--etcd-peer-port", str(free_port())]
    if join is None:
        return ["--cluster-init", *args]
    token = read_server_token(join.data_dir)
    assert token is not None, f"{join.data_dir} has no server token"
    return ["--server", join.url, "--token", token, *args]


@dataclass
class ServerProcess:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    """The address the server is bound to (``--bind-address``) and asked at."""
    secure_ports: dict[str, int] = field(default_factory=dict)
    """The control-plane components' secure ports this server was given (``scheduler``,
    ``controller-manager``, ``cloud-controller-manager``; free ports unless the caller chose)."""

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "kubeconfig.yaml"

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"https://{host}:{self.port}"

    @classmethod
    def start(cls, data_dir: Path, *extra: str, port: int = 0, command: str = "server",
              timeout: float = 30.0, control_plane: bool = False, agent: bool = False,
              drain: bool = True, service_accounts: bool = True, addons: bool = False,
              cloud: bool = False, host: str = "127.0.0.1", launcher: Sequence[str] = ()) -> ServerProcess:
        """Start ``kyb server``: the API server only; with ``control_plane`` also the scheduler and
        the controller manager; with ``agent`` also this machine's node (kubelet and containerd,
        on a free kubelet port, removing its pods when it stops unless not ``drain``).

        Without the control plane the controller manager still runs :data:`API_ONLY_CONTROLLERS`
        (unless not ``service_accounts``), and the server counts as ready once ``default/default``
        exists: as in Kubernetes, ServiceAccount admission refuses a pod whose account does not
        exist, and the ``view``/``edit``/``admin`` roles are empty until aggregated.

        The add-ons (CoreDNS, local-storage, metrics-server) are left out (``--disable coredns,local-storage,metrics-server``, and
        the node does not import the system image) unless ``addons``: most tests want an empty
        kube-system, no default StorageClass and no add-on pod competing for their node.

        The cloud-controller-manager (on by default in ``kyb server``) is left out
        (``--disable-cloud-controller``) unless ``cloud``: it would taint a test's node until it
        initialises it, and its node lifecycle controller would probe (and delete) the hollow nodes
        of a test at their made-up addresses once they stop.

        A node's kubelet reads a resolv.conf of the test's own that names no nameserver: pods with
        ``dnsPolicy: Default`` and the cluster DNS's forwarding never reach this machine's real
        resolvers (names outside the cluster domain fail at once instead).

        ``host`` is the address it listens on (``--bind-address``; its kubeconfig names it unless
        it is loopback); ``launcher`` an argv prefix that runs the command elsewhere (another
        network namespace: a test's machine), which must exec it so that the process started is
        the server's."""
        data_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        log_path = data_dir / f"{command}.log"
        args = [*launcher, sys.executable, "-m", "kybernetes.cli", command, "--data-dir", str(data_dir),
                "--https-port", str(port), "--bind-address", host, *extra]
        if command == "server" and not addons:
            args += ["--disable", "coredns,local-storage,metrics-server"]
        if command == "server" and not cloud:
            args.append("--disable-cloud-controller")
        if command == "server" and agent:
            control_plane = True
            args += ["--lb-server-port", "0"]  # tests may run several nodes on this machine
            args += ["--kubelet-arg", f"port={free_port()}", *(["--kubelet-arg", "drain-on-exit"] if drain else [])]
            if not any(a.startswith("resolv-conf=") for a in extra):
                resolv = data_dir / "test-resolv.conf"
                resolv.write_text("# kybernetes tests: no upstream nameserver (traffic stays on this machine)\n")
                args += ["--kubelet-arg", f"resolv-conf={resolv}"]
            if not addons:  # nothing runs the system image: spare the node its import
                args += ["--kubelet-arg", "import-system-image=false"]
        elif command == "server" and "--disable-agent" not in extra:
            args.append("--disable-agent")
        secure_ports = _free_secure_ports(extra) if command == "server" else {}
        for name, secure_port in secure_ports.items():
            args += [_COMPONENT_ARG[name], f"secure-port={secure_port}"]
        # A caller that disables the controller manager itself runs its own (or none).
        service_accounts = service_accounts and "--disable-controller-manager" not in extra
        wait_for_account = command == "server" and service_accounts
        if command == "server" and not control_plane:
            args += [] if "--disable-scheduler" in extra else ["--disable-scheduler"]
            if "--disable-controller-manager" not in extra:
                args += ["--kube-controller-manager-arg", f"controllers={','.join(API_ONLY_CONTROLLERS)}"] \
                    if service_accounts else ["--disable-controller-manager"]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        srv = cls(data_dir, port, proc, log_path, args, host, secure_ports)
        try:
            srv.wait_ready(timeout, default_service_account=wait_for_account)
        except BaseException:
            srv.stop(timeout=15.0)  # a server that never got ready is not left running (nor its children)
            raise
        return srv

    def wait_ready(self, timeout: float = 30.0, default_service_account: bool = False) -> None:
        """Until ``/readyz`` answers ``ok`` and the admin kubeconfig is written (and, if asked, the
        ``default/default`` ServiceAccount exists). Asked with the admin certificate: whether an
        anonymous request may read ``/readyz`` depends on the server's ``--anonymous-auth`` and
        authorization modes (a 401 with AlwaysAllow, as kube-apiserver)."""
        deadline = time.monotonic() + timeout
        admin_crt, admin_key = self.data_dir / "tls" / "admin.crt", self.data_dir / "tls" / "admin.key"
        path = "/readyz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            if self.kubeconfig.exists() and admin_crt.exists() and admin_key.exists():
                ctx = ssl.create_default_context()
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                try:
                    ctx.load_cert_chain(admin_crt, admin_key)
                    with urllib.request.urlopen(f"{self.url}{path}", context=ctx, timeout=2) as r:
                        if path != "/readyz" or (r.read() == b"ok" and not default_service_account):
                            return
                        path = "/api/v1/namespaces/default/serviceaccounts/default"
                except (OSError, ssl.SSLError):
                    pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-5000:]
        except OSError:
            return ""

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full_env = dict(os.environ)
        full_env["KUBECONFIG"] = str(self.kubeconfig)
        full_env.pop("KUBERNETES_SERVICE_HOST", None)
        full_env.update(env or {})
        res = subprocess.run([KUBECTL, *args], input=input, capture_output=True, text=True, timeout=timeout,
                             env=full_env)
        if check and res.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
        return res

    def wait_allowed(self, verb: str, resource: str, user: str, *, groups: tuple[str, ...] = (),
                     namespace: str = "", timeout: float = 15.0) -> None:
        """Until ``kubectl auth can-i`` (as the admin, impersonating ``user``) says yes: a grant just
        written reaches the authorizer through its watch, and an aggregated role (``view``) is
        filled by a controller, so a test that grants waits for the grant before using it."""
        args = ["auth", "can-i", verb, resource, f"--as={user}", *(f"--as-group={g}" for g in groups)]
        args += ["-n", namespace] if namespace else []
        deadline = time.monotonic() + timeout
        while self.kubectl(*args, check=False).stdout.strip() != "yes":
            if time.monotonic() > deadline:
                raise AssertionError(f"{user} is still not allowed to {verb} {resource} after {timeout}s")
            time.sleep(0.1)

    def stop(self, timeout: float = 150.0) -> int:
        return stop_process(self.proc, timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


# ---------------------------------------------------------------------------------------------
# The console (`kyb console`) and the browser that tests and benchmarks drive it with.

CHROMIUM = "/usr/bin/chromium"
"""Debian's Chromium (scripts/setup.sh installs it); Playwright drives it through ``executable_path``
and never downloads a browser of its own (``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1``)."""

CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")
"""Headless, as root (no sandbox), and silent: no update checks, sync or other traffic of its own, so
the only requests it makes are the page's, to the console on loopback. Each launch also gets a
fresh user-data-dir (Playwright's persistent context in a temporary directory)."""


def browser_missing() -> str | None:
    """Why this machine cannot drive a browser (no Debian chromium, no playwright wheel), or None."""
    if not os.path.exists(CHROMIUM):
        return f"needs Debian's chromium at {CHROMIUM} (scripts/setup.sh installs it as root)"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "needs the playwright wheel (the test extra: pip install -e '.[test]')"
    return None


@dataclass
class ConsoleProcess:
    """A ``kyb console`` child process on a free loopback port, and the URL it printed.

    ``kyb console`` prints exactly one line to stdout, ``Console: http://127.0.0.1:PORT/?token=T``
    (its log goes to stderr, here to ``log_path``); :meth:`start` returns once that line is read.
    """

    proc: subprocess.Popen[bytes]
    url: str
    """The login URL with the one-time token (``GET`` it to get the session cookie)."""
    log_path: Path

    @property
    def base(self) -> str:
        """``http://127.0.0.1:PORT`` (no path, no token)."""
        return self.url.split("/?", 1)[0]

    @property
    def token(self) -> str:
        """The token, also usable as ``Authorization: Bearer TOKEN`` by scripts."""
        return self.url.rsplit("token=", 1)[1]

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    @classmethod
    def start(cls, kubeconfig: Path, log_path: Path, *extra: str, timeout: float = 30.0) -> ConsoleProcess:
        args = [sys.executable, "-m", "kybernetes.cli", "console", "--kubeconfig", str(kubeconfig),
                "--port", "0", *extra]
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        try:
            while not line.endswith(b"\n"):
                left = deadline - time.monotonic()
                if left <= 0 or proc.poll() is not None:
                    raise RuntimeError(f"kyb console printed no URL in {timeout}s (exit code {proc.poll()}; "
                                       f"stdout {line!r}):\n{_tail(log_path)}")
                ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
                if ready:
                    chunk = os.read(proc.stdout.fileno(), 4096)
                    if not chunk:  # stdout closed: the process is ending; poll() says so next round
                        time.sleep(0.05)
                    line += chunk
        except BaseException:
            stop_process(proc, 10)
            raise
        text = line.decode(errors="replace").strip()
        if not text.startswith("Console: http://"):
            stop_process(proc, 10)
            raise RuntimeError(f"kyb console printed {text!r}, not 'Console: URL'")
        return cls(proc, text.removeprefix("Console: "), log_path)

    def log(self) -> str:
        return _tail(self.log_path)

    def stop(self, timeout: float = 15.0) -> int:
        rc = stop_process(self.proc, timeout)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return rc

    def __enter__(self) -> ConsoleProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _tail(path: Path, size: int = 5000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""


# ---------------------------------------------------------------------------------------------
# etcd for tests and benchmarks: Debian's /usr/bin/etcd on loopback, TLS, a temp dir, free ports.
# Each member is a child process ended by its PID (kill -9 on request; SIGTERM, then SIGKILL, at
# the end); their command line and certificates are kybernetes.etcdmember's, as `kyb server
# --cluster-init`'s member's are.


@dataclass
class Member:
    name: str
    dir: Path
    client_port: int
    peer_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"https://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"https://127.0.0.1:{self.peer_port}"


@dataclass
class EtcdCluster:
    """One or more etcd members sharing a CA; ``start()`` runs them, ``stop()`` ends them."""

    dir: Path
    size: int = 1
    members: list[Member] = field(default_factory=list)
    tls: TLSFiles = field(default_factory=TLSFiles)

    def __post_init__(self) -> None:
        self.member_tls = etcd_pki(self.dir)
        self.tls = self.member_tls.client
        for i in range(self.size):
            self.members.append(Member(f"m{i}", self.dir / f"m{i}", free_port(), free_port()))

    @property
    def endpoints(self) -> str:
        return ",".join(m.client_url for m in self.members)

    def connection(self) -> EtcdConnection:
        return EtcdConnection(parse_endpoints(self.endpoints), self.tls, timeout=5.0)

    def start(self) -> None:
        """Start every member (then ``await wait_healthy()``)."""
        for m in self.members:
            self.start_member(m)

    def start_member(self, m: Member) -> None:
        initial = ",".join(f"{x.name}={x.peer_url}" for x in self.members)
        m.dir.mkdir(parents=True, exist_ok=True)
        log = open(m.dir / "etcd.log", "ab")  # noqa: SIM115 (the child holds it)
        m.proc = subprocess.Popen(
            member_command(m.name, m.dir / "data", m.client_url, m.peer_url, initial, f"kyb-test-{os.getpid()}",
                           self.member_tls, "--heartbeat-interval", "50", "--election-timeout", "500",
                           "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}"),
            stdout=log, stderr=log, start_new_session=True,
        )
        log.close()

    async def wait_healthy(self, timeout: float = 30.0) -> None:
        """Every running member answers a linearizable read (so the cluster has a leader)."""
        deadline = time.monotonic() + timeout
        for m in self.members:
            proc = m.proc
            if proc is not None:
                await wait_member_healthy(m.client_url, self.tls, lambda p=proc: p.poll() is None,  # type: ignore[misc]
                                          m.dir / "etcd.log", max(deadline - time.monotonic(), 0.1))

    def kill(self, m: Member) -> None:
        """kill -9 one member, by its PID."""
        assert m.proc is not None
        os.kill(m.proc.pid, signal.SIGKILL)
        m.proc.wait(10)
        m.proc = None

    def stop(self) -> None:
        for m in self.members:
            if m.proc is not None and m.proc.poll() is None:
                os.kill(m.proc.pid, signal.SIGTERM)
                try:
                    m.proc.wait(10)
                except subprocess.TimeoutExpired:
                    os.kill(m.proc.pid, signal.SIGKILL)
                    m.proc.wait(10)
            m.proc = None

