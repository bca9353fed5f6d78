"""Public test helpers: start a real ``kyb server`` process and drive it with kubectl.

Used by kybernetes' own integration tests and usable in users' tests::

    with ServerProcess.start(tmp_path) as srv:
        srv.kubectl("get", "ns")

The server runs as a child process on a free loopback port with its own data dir; ``stop()``
sends SIGTERM and waits, and kills the process only if it does not stop in time.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
              cloud: bool = False, host: str = "127.0.0.1", launcher: Sequence[str] = (),
              poll_interval: float = 0.1) -> ServerProcess:
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
        the server's, or end it when signalled (:mod:`kybernetes.testing.guardian`)."""
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
            srv.wait_ready(timeout, default_service_account=wait_for_account, poll_interval=poll_interval)
        except BaseException:
            srv.stop(timeout=15.0)  # a server that never got ready is not left running (nor its children)
            raise
        return srv

    def wait_ready(self, timeout: float = 30.0, default_service_account: bool = False,
                   poll_interval: float = 0.1) -> None:
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
                try:
                    with urllib.request.urlopen(f"{self.url}{path}", context=self._admin_context(), timeout=2) as r:
                        if path != "/readyz" or (r.read() == b"ok" and not default_service_account):
                            return
                        path = "/api/v1/namespaces/default/serviceaccounts/default"
                except (OSError, ssl.SSLError):
                    pass
            time.sleep(poll_interval)
        raise TimeoutError(f"server not ready after {timeout}s:\n{self.log()}")

    def _admin_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.load_cert_chain(self.data_dir / "tls" / "admin.crt", self.data_dir / "tls" / "admin.key")
        return ctx

    def request(self, method: str, path: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
        """One API request as the cluster's admin (its client certificate): (HTTP status, decoded
        JSON body). An error status is returned, not raised."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, context=self._admin_context(), timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

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


def __getattr__(name: str) -> Any:
    # The etcd helpers (etcd's client and PKI) and the console's (testing/console.py) load only
    # for the tests that ask for them, so that the pytest plugin (kybernetes.testing.plugin,
    # loaded into every pytest run) stays light.
    if name in ("EtcdCluster", "Member"):
        from kybernetes.testing import etcd

        return getattr(etcd, name)
    if name in ("CHROMIUM", "CHROMIUM_ARGS", "ConsoleProcess", "browser_missing"):
        from kybernetes.testing import console

        return getattr(console, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
