"""Two servers of one cluster on loopback: ``kyb server --cluster-init``, then ``kyb server
--server URL --token T`` on another data dir with ports of its own (its API server, its etcd
member's client and peer ports).

Real processes throughout: both servers with their etcd members, scheduler and controller
manager, kubectl, the official client, ``kyb etcd member``. A cluster of two etcd members needs
both for a quorum: while one server is stopped, the other answers nothing that needs the store.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from cryptography import x509
from kubernetes import client, config, watch

from kybernetes.apiserver.join.tokens import read_server_token
from kybernetes.testing import ServerProcess, embedded_etcd_args

KYB = [sys.executable, "-m", "kybernetes.cli"]


@pytest.fixture(autouse=True)
def _etcd_installed() -> None:
    if not shutil.which("etcd"):
        if os.environ.get("CI"):
            pytest.fail("etcd (Debian's etcd-server) is required on CI")
        pytest.skip("etcd is not installed on this machine (it is on CI)")


class Servers(ExitStack):
    """The test's servers, stopped together at the end: every one still running is signalled, then
    each is waited for. One at a time, the last ones would shut down without a quorum and wait out
    their store timeouts (~17 s a test)."""

    def __init__(self) -> None:
        super().__init__()
        self.servers: list[ServerProcess] = []
        self.callback(self._stop_together)

    def _stop_together(self) -> None:
        for srv in self.servers:
            if srv.proc.poll() is None:
                srv.proc.terminate()
        for srv in self.servers:
            srv.stop(60.0)


@pytest.fixture
def stack() -> Iterator[Servers]:
    with Servers() as s:
        yield s


def wait_until(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def members(srv: ServerProcess) -> dict[str, str]:
    """``kyb etcd member list`` on the server's data dir: name -> status."""
    out = subprocess.run([*KYB, "etcd", "member", "list", "--data-dir", str(srv.data_dir)], capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip().splitlines()
    assert out[0].split()[:3] == ["NAME", "ID", "STATUS"], out
    return {line.split()[0]: line.split()[2] for line in out[1:]}


def start(stack: Servers, data_dir: Path, *args: str, cloud: bool = False) -> ServerProcess:
    srv = ServerProcess.start(data_dir, *args, control_plane=True, cloud=cloud, timeout=120.0)
    stack.servers.append(srv)
    return srv


def children(srv: ServerProcess) -> set[str]:
    """The ``kyb`` subcommands the server's child processes run."""
    out = set()
    for pid in Path(f"/proc/{srv.proc.pid}/task/{srv.proc.pid}/children").read_text().split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if argv[1:3] == ["-m", "kybernetes.cli"]:
            out.add(argv[3])
    return out


def without_join_flags(args: list[str]) -> list[str]:
    i = args.index("--server")
    assert args[i + 2] == "--token"
    return args[:i] + args[i + 4:]


LEADER_ELECTED = {"kube-scheduler": "scheduler", "kube-controller-manager": "controller-manager",
                  "cloud-controller-manager": "cloud-controller-manager"}
"""Lease -> the component that holds it, whose lines in ``logs/control-plane.log`` name it."""


def component_lines(srv: ServerProcess, component: str) -> str:
    """What ``component`` logged in the server's control-plane process (each line names its component)."""
    text = (srv.data_dir / "logs" / "control-plane.log").read_text()
    return "".join(line for line in text.splitlines(keepends=True) if f" {component} kybernetes." in line)
VERBOSE = ("--kube-scheduler-arg", "verbose", "--kube-controller-manager-arg", "verbose",
           "--kube-cloud-controller-manager-arg", "verbose")  # they log "<identity>: became leader of <lease>"


def test_a_second_server_joins_serves_the_same_objects_and_rejoins(tmp_path: Path, stack: Servers) -> None:
    first = start(stack, tmp_path / "first", *embedded_etcd_args("first"), *VERBOSE, cloud=True)
    second_args = [*embedded_etcd_args("second", join=first), *VERBOSE]
    second = start(stack, tmp_path / "second", *second_args, cloud=True)
    assert members(first) == members(second) == {"first": "started", "second": "started"}
    for name in ("ca.crt", "ca.key", "service-account.key", "front-proxy-ca.key", "etcd-ca.key"):
        assert (first.data_dir / "tls" / name).read_bytes() == (second.data_dir / "tls" / name).read_bytes()
    assert read_server_token(second.data_dir) == read_server_token(first.data_dir)  # one per cluster

    # One store: an object written through either server is the same object through the other,
    # and a watch through the second sees a write through the first.
    first.kubectl("create", "configmap", "one", "--from-literal=a=1")
    second.kubectl("create", "configmap", "two", "--from-literal=b=2")
    for name in ("one", "two"):
        rvs = {srv.kubectl("get", "configmap", name, "-o", "jsonpath={.metadata.resourceVersion}").stdout
               for srv in (first, second)}
        assert len(rvs) == 1
    api = client.CoreV1Api(config.new_client_from_config(config_file=str(second.kubeconfig)))
    selector = "kybernetes-test=watched"  # not the controllers' own ConfigMaps (kube-root-ca.crt)
    since = api.list_namespaced_config_map("default", label_selector=selector).metadata.resource_version
    first.kubectl("apply", "-f", "-", input='{"apiVersion": "v1", "kind": "ConfigMap", "metadata": '
                                           '{"name": "watched", "labels": {"kybernetes-test": "watched"}}}')
    seen = []
    for event in watch.Watch().stream(api.list_namespaced_config_map, "default", resource_version=since,
                                      label_selector=selector, timeout_seconds=30):
        seen.append((event["type"], event["object"].metadata.name))
        if event["object"].metadata.name == "watched":
            break
    assert seen == [("ADDED", "watched")]
    # A second server's serving certificate is the cluster CA's: the first's kubeconfig reaches it too.
    assert first.kubectl("--server", second.url, "get", "configmap", "one", "-o", "name").stdout.strip() == \
        "configmap/one"

    # Both servers run a scheduler, a controller manager and a cloud controller manager, leader-elected
    # on one Lease each: exactly one of each pair has led, the one the Lease names.
    for lease, component in LEADER_ELECTED.items():
        holder = first.kubectl("get", "lease", "-n", "kube-system", lease, "-o",
                               "jsonpath={.spec.holderIdentity}").stdout
        led = [srv for srv in (first, second)
               if f"became leader of kube-system/{lease}" in component_lines(srv, component)]
        assert len(led) == 1, lease
        assert f"{holder}: became leader of kube-system/{lease}" in component_lines(led[0], component)
    for srv in (first, second):  # the others stand by (all three in the server's control-plane process)
        assert "control-plane" in children(srv)

    # A restart on the same data dir, without --server, rejoins as the same member.
    assert second.stop(60.0) == 0
    second = start(stack, second.data_dir, *without_join_flags(second_args))
    assert members(first) == {"first": "started", "second": "started"}
    first.kubectl("create", "configmap", "after-restart")
    assert second.kubectl("get", "configmap", "after-restart", "-o", "name").stdout.strip() == \
        "configmap/after-restart"


def test_members_are_removed_by_kyb_etcd_member_remove_and_on_node_deletion(tmp_path: Path, stack: Servers) -> None:
    first = start(stack, tmp_path / "first", *embedded_etcd_args("first"))
    second_args = embedded_etcd_args("second", join=first)
    second = start(stack, tmp_path / "second", *second_args)
    third = start(stack, tmp_path / "third", *embedded_etcd_args("third", join=first))
    assert members(first) == {"first": "started", "second": "started", "third": "started"}

    def kyb_remove(srv: ServerProcess, name: str) -> subprocess.CompletedProcess[str]:
        """etcd refuses to remove a member for 5 s after one connected (its HealthInterval) with
        ``unhealthy cluster``: asked again until then, as a user would."""
        deadline = time.monotonic() + 30
        while True:
            res = subprocess.run([*KYB, "etcd", "member", "remove", name, "--data-dir", str(srv.data_dir)],
                                 capture_output=True, text=True, timeout=60)
            if "unhealthy cluster" not in res.stderr or time.monotonic() > deadline:
                return res
            time.sleep(1)

    res = kyb_remove(first, "first")
    assert res.returncode == 1 and "is this data dir's own member" in res.stderr
    res = kyb_remove(first, "nobody")
    assert res.returncode == 1 and 'no etcd member named "nobody"' in res.stderr
    res = kyb_remove(first, "third")
    assert res.returncode == 0 and "member third" in res.stdout and "removed" in res.stdout, res.stderr
    assert members(first) == {"first": "started", "second": "started"}
    third.stop(60.0)

    # Deleting the Node of a server removes its member (k3s's etcd member removal).
    first.kubectl("apply", "-f", "-", input='{"apiVersion": "v1", "kind": "Node", "metadata": {"name": "second"}}')
    assert members(first) == {"first": "started", "second": "started"}
    first.kubectl("delete", "node", "second")
    wait_until(lambda: members(first) == {"first": "started"}, 30, "the deleted node's member is removed")
    second.stop(60.0)
    first.kubectl("create", "configmap", "alone")  # one member is a quorum of one
    assert first.kubectl("get", "configmap", "alone", "-o", "name").stdout.strip() == "configmap/alone"

    # A removed member never runs again: its server says so and what to do, and doing it rejoins.
    res = subprocess.run(second.args, capture_output=True, text=True, timeout=120)
    assert res.returncode == 1, res.stderr
    assert "etcd member second was removed from its cluster" in res.stderr
    shutil.rmtree(second.data_dir / "db" / "etcd")
    second = start(stack, second.data_dir, *second_args)
    assert members(first) == {"first": "started", "second": "started"}
    assert second.kubectl("get", "configmap", "alone", "-o", "name").stdout.strip() == "configmap/alone"


def test_a_member_listens_for_peers_on_the_advertise_address(tmp_path: Path, stack: Servers) -> None:
    """A first server's member used to listen on 127.0.0.1 only, where no other server reaches it. Now
    it listens (and is recorded) at the server's advertise address: also after a restart that gives
    it one, since a member started before is updated (MemberUpdate) to its new peer URL."""
    args = embedded_etcd_args("first")
    peer_port, client_port = args[args.index("--etcd-peer-port") + 1], args[args.index("--etcd-client-port") + 1]
    srv = start(stack, tmp_path / "first", *args)
    assert peer_urls(srv) == {"first": f"https://127.0.0.1:{peer_port}"}
    assert srv.stop(60.0) == 0

    srv = start(stack, tmp_path / "first", *args, "--advertise-address", "127.0.0.2")
    assert peer_urls(srv) == {"first": f"https://127.0.0.2:{peer_port}"}
    listing = subprocess.run([*KYB, "etcd", "member", "list", "--data-dir", str(srv.data_dir), "--endpoints",
                              f"https://127.0.0.2:{client_port}"], capture_output=True, text=True, timeout=60,
                             check=True).stdout
    assert f"https://127.0.0.2:{client_port}" in listing  # listens for clients there too, and advertises it
    srv.kubectl("create", "configmap", "still-here")
    for cert in ("etcd-server.crt", "serving.crt"):  # the member's and the API server's certificates
        assert {"127.0.0.1", "127.0.0.2"} <= ip_sans(srv.data_dir / "tls" / cert), cert


def ip_sans(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(a) for a in san.get_values_for_type(x509.IPAddress)}


def peer_urls(srv: ServerProcess) -> dict[str, str]:
    out = subprocess.run([*KYB, "etcd", "member", "list", "--data-dir", str(srv.data_dir)], capture_output=True,
                         text=True, timeout=60, check=True).stdout.strip().splitlines()
    return {line.split()[0]: line.split()[3] for line in out[1:]}
