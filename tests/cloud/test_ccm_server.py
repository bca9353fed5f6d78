"""``kyb server`` (the cloud-controller-manager on, as by default): the CCM as the server's supervised
child, under its own identity, with the local provider, driven by kubectl.

The nodes here are Node objects the test registers (no kubelet): the local provider judges them
by their addresses as it would a real machine (127.0.0.1 with the kubelet's port closed: the
machine answers, the agent is stopped; an address the test routes nowhere: the machine is gone).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kybernetes.testing import ServerProcess

pytestmark = pytest.mark.integration
POOL = "127.0.100.0/30"  # the test's own: two addresses, .1 and .2
UNREACHABLE = "198.51.100.78"
Obj = dict[str, Any]


@pytest.fixture(scope="module")
def ccm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    args: list[str] = []
    for a in (f"lb-pool={POOL}", "node-monitor-period=0.5s", "leader-elect-lease-duration=4s",
              "leader-elect-renew-deadline=3s", "leader-elect-retry-period=0.5s", "zone=zone-1", "region=region-1"):
        args += ["--kube-cloud-controller-manager-arg", a]
    srv = ServerProcess.start(tmp_path_factory.mktemp("ccm"), *args, cloud=True)
    try:
        yield srv
    finally:
        srv.stop()


def eventually(fn: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def get(srv: ServerProcess, *args: str) -> Obj | None:
    res = srv.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 else None


def apply(srv: ServerProcess, obj: Obj) -> None:
    srv.kubectl("apply", "-f", "-", input=json.dumps(obj))


def register_node(srv: ServerProcess, name: str, address: str, port: int, ready: str = "False",
                  taints: list[Obj] | None = None, provider_id: str = "") -> None:
    spec: Obj = {"taints": taints or []}
    if provider_id:
        spec["providerID"] = provider_id
    apply(srv, {"apiVersion": "v1", "kind": "Node", "metadata": {"name": name}, "spec": spec})
    srv.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps({"status": {
        "conditions": [{"type": "Ready", "status": ready, "reason": "Test", "message": "registered by the test"}],
        "addresses": [{"type": "InternalIP", "address": address}, {"type": "Hostname", "address": name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}}}}))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def lb_service(name: str, **spec: Any) -> Obj:
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": name},
                     **spec}}


def external_ip(srv: ServerProcess, name: str) -> str:
    """EXTERNAL-IP as ``kubectl get svc`` prints it."""
    out = srv.kubectl("get", "svc", name, "--no-headers").stdout.split()
    return out[3] if len(out) > 3 else ""


def pool_ip(srv: ServerProcess, name: str) -> str:
    return eventually(lambda: (ip := external_ip(srv, name)).startswith("127.0.100.") and ip,
                      what=f"{name}'s EXTERNAL-IP")


def ccm_pid(srv: ServerProcess) -> int:
    """The PID of the server's cloud-controller-manager child (this test's server started it)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == srv.proc.pid and b"cloud-controller-manager" in cmd:
            return int(entry.name)
    return 0


def kill_ccm(srv: ServerProcess) -> None:
    old = eventually(lambda: ccm_pid(srv), what="the cloud-controller-manager process")
    os.kill(old, signal.SIGKILL)
    eventually(lambda: (pid := ccm_pid(srv)) and pid != old, what="the cloud-controller-manager restarted")


def test_an_uninitialized_node_is_initialized(ccm_server: ServerProcess) -> None:
    register_node(ccm_server, "ccm-init", "127.0.0.1", closed_port(), ready="True",
                  taints=[{"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true",
                           "effect": "NoSchedule"}])
    node = eventually(lambda: (n := get(ccm_server, "node", "ccm-init")) and not n["spec"].get("taints") and n,
                      what="the uninitialized taint removed")
    assert node["spec"]["providerID"] == "kyb://ccm-init"
    labels = node["metadata"]["labels"]
    assert (labels["topology.kubernetes.io/zone"], labels["topology.kubernetes.io/region"],
            labels["node.kubernetes.io/instance-type"]) == ("zone-1", "region-1", "kyb")


def test_load_balancer_gets_an_external_ip_and_is_cleaned_up(ccm_server: ServerProcess) -> None:
    apply(ccm_server, lb_service("web"))
    ip = pool_ip(ccm_server, "web")
    svc = get(ccm_server, "svc", "web")
    assert svc is not None and "service.kubernetes.io/load-balancer-cleanup" in svc["metadata"]["finalizers"]
    assert svc["status"]["loadBalancer"]["ingress"] == [{"ip": ip}]
    ccm_server.kubectl("delete", "svc", "web", "--wait=true", "--timeout=30s")
    assert get(ccm_server, "svc", "web") is None


def test_another_load_balancer_class_is_left_alone(ccm_server: ServerProcess) -> None:
    apply(ccm_server, lb_service("other", loadBalancerClass="example.com/other-lb"))
    apply(ccm_server, lb_service("marker"))
    pool_ip(ccm_server, "marker")  # the controller has worked through the events before it
    other = get(ccm_server, "svc", "other")
    assert other is not None and not other["metadata"].get("finalizers")
    assert external_ip(ccm_server, "other") == "<pending>"
    ccm_server.kubectl("delete", "svc", "other", "marker", "--wait=true", "--timeout=30s")


def test_shut_down_node_is_tainted_and_gone_node_is_deleted(ccm_server: ServerProcess) -> None:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("needs root on CI")
        pytest.skip("needs root for a route of the test's own (CI runs as root)")
    subprocess.run(["ip", "route", "add", "unreachable", f"{UNREACHABLE}/32"], check=True)
    try:
        # One the provider initialised (kyb://NODE), one of a kubelet without --cloud-provider (no
        # providerID: looked up by name, as Kubernetes does).
        register_node(ccm_server, "ccm-stopped", "127.0.0.1", closed_port(), provider_id="kyb://ccm-stopped")
        register_node(ccm_server, "ccm-gone", UNREACHABLE, 10250)
        # Another provider's (a hollow node): never dialled, never deleted, never tainted.
        register_node(ccm_server, "ccm-foreign", UNREACHABLE, 10250, provider_id="hollow://ccm-foreign")
        eventually(lambda: get(ccm_server, "node", "ccm-gone") is None, what="the gone node deleted")

        def tainted() -> bool:
            n = get(ccm_server, "node", "ccm-stopped") or {}
            return any(t["key"] == "node.cloudprovider.kubernetes.io/shutdown" for t in n["spec"].get("taints") or [])
        eventually(tainted, what="the shutdown taint")
        foreign = get(ccm_server, "node", "ccm-foreign")
        assert foreign is not None and not foreign["spec"].get("taints")
    finally:
        subprocess.run(["ip", "route", "del", "unreachable", f"{UNREACHABLE}/32"], check=False)
        ccm_server.kubectl("delete", "node", "ccm-stopped", "ccm-gone", "ccm-foreign", "--ignore-not-found")


def test_restart_while_creating_and_deleting_leaves_the_right_end_state(ccm_server: ServerProcess) -> None:
    """Killed right after a Service is created and right after one is deleted: every Service ends
    with its own address, the deleted one is gone, and its address is handed out again (the pool
    has two: a leaked one would leave the third Service pending)."""
    apply(ccm_server, lb_service("first"))
    kill_ccm(ccm_server)
    first = pool_ip(ccm_server, "first")
    apply(ccm_server, lb_service("second"))
    second = pool_ip(ccm_server, "second")
    assert first != second
    ccm_server.kubectl("delete", "svc", "first", "--wait=false")
    kill_ccm(ccm_server)
    eventually(lambda: get(ccm_server, "svc", "first") is None, what="the deleted Service gone")
    apply(ccm_server, lb_service("third"))
    assert pool_ip(ccm_server, "third") == first
    assert external_ip(ccm_server, "second") == second
    ccm_server.kubectl("delete", "svc", "second", "third", "--wait=true", "--timeout=30s")


def test_allocate_load_balancer_node_ports_false_allocates_none_but_keeps_one_asked_for(
        ccm_server: ServerProcess) -> None:
    """The API server's side of ``allocateLoadBalancerNodePorts`` (Kubernetes' shouldAllocateNodePorts):
    false picks no node port, an explicit one is kept; the load balancer is made all the same."""
    svc = lb_service("noports", allocateLoadBalancerNodePorts=False)
    svc["spec"]["ports"] = [{"name": "a", "port": 80}, {"name": "b", "port": 81, "nodePort": 31081}]
    apply(ccm_server, svc)
    got = get(ccm_server, "svc", "noports")
    assert got is not None
    assert [p.get("nodePort") for p in got["spec"]["ports"]] == [None, 31081]
    assert pool_ip(ccm_server, "noports")
    ccm_server.kubectl("delete", "svc", "noports", "--wait=true", "--timeout=30s")


def test_an_exhausted_pool_leaves_the_service_pending_with_a_warning(ccm_server: ServerProcess) -> None:
    apply(ccm_server, lb_service("one"))
    apply(ccm_server, lb_service("two"))
    pool_ip(ccm_server, "one")
    pool_ip(ccm_server, "two")
    apply(ccm_server, lb_service("three"))

    def warned() -> str:
        out = ccm_server.kubectl("get", "events", "--field-selector", "involvedObject.name=three,type=Warning",
                                 "-o", "jsonpath={.items[*].message}").stdout
        return out if "pool" in out else ""
    message = eventually(warned, what="the SyncLoadBalancerFailed event")
    assert f"Error syncing load balancer: failed to ensure load balancer: no free address in the load " \
           f"balancer pool {POOL}" in message
    assert external_ip(ccm_server, "three") == "<pending>"
    ccm_server.kubectl("delete", "svc", "one", "two", "three", "--wait=true", "--timeout=30s")


def test_enable_and_disable_cloud_controller_together_are_refused(tmp_path: Path) -> None:
    """``--enable-cloud-controller`` (the default now, still accepted) contradicts k3s's
    ``--disable-cloud-controller``: a usage error before anything starts."""
    res = subprocess.run([sys.executable, "-m", "kybernetes.cli", "server", "--data-dir", str(tmp_path / "d"),
                          "--enable-cloud-controller", "--disable-cloud-controller"],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stderr
    assert "--enable-cloud-controller and --disable-cloud-controller are mutually exclusive" in res.stderr
    assert not (tmp_path / "d").exists()
