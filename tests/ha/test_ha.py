"""HA: servers on machines of their own lose power during a stream of writes (issue 14).

Real processes throughout: ``kyb server`` (with its etcd member, scheduler, controller manager and,
on one machine, the node) in network namespaces, driven from the host by the official client
over the test bridge; kill -9 of every process of a machine. What must hold (``tests.ha.traffic``):
every acknowledged write is in the final list at its resourceVersion, and each watcher, resuming by
resourceVersion whenever its stream broke, saw exactly the final list's objects in order, none
missing and none twice.
"""

from __future__ import annotations

import json
import sys
import time

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from kybernetes.images.oci import BUSYBOX_IMAGE
from tests.e2e.conftest import wait_until
from tests.ha.conftest import HAMachines, ServerMachine
from tests.ha.traffic import Watcher, Writer, api_client, check_stream, core_api, listed, missing_acknowledged

pytestmark = pytest.mark.integration
NS = "ha"
KYB = [sys.executable, "-m", "kybernetes.cli"]
LEADER_LEASES = ("kube-scheduler", "kube-controller-manager")


def _report(writer: Writer, watchers: list[Watcher]) -> str:
    lines = [f"writer: {len(writer.acks)} acknowledged, {len(writer.failures)} failed attempts, "
             f"error {writer.error!r}; last failures {writer.failures[-3:]}"]
    lines += [f"watcher {w.name}: {len(w.events)} events, at {w.last_rv}, resumes {w.resumes[-6:]}, "
              f"error {w.error!r}" for w in watchers]
    return "\n".join(lines)


def _check(writer: Writer, watchers: list[Watcher], final: dict[str, int]) -> None:
    try:
        assert not writer.error, _report(writer, watchers)
        assert not missing_acknowledged(writer.acks, final), missing_acknowledged(writer.acks, final)
        for w in watchers:
            w.wait_for(max(final.values()), 60)
    finally:
        _stop(watchers)
    for w in watchers:
        assert not w.error, _report(writer, watchers)
        problems = check_stream(w.events, w.start_rv, final)
        assert not problems, f"watcher {w.name}:\n" + "\n".join(problems[:20])


def _stop(watchers: list[Watcher]) -> None:
    for w in watchers:
        w.stopping()
    for w in watchers:
        w.stop()


def test_the_only_server_crashes_and_comes_back(ha_machines: HAMachines) -> None:
    """One ``--cluster-init`` server killed with -9 mid-stream and restarted on its data dir: the
    writer retries until it answers again, its watcher resumes from its resourceVersion."""
    s1 = ha_machines.first_server(0)
    s1.start()
    api = core_api(s1.kubeconfig)
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    watcher = Watcher("a", [api], [0], NS)
    watcher.start()
    writer = Writer([api], NS, write_deadline=90.0)
    writer.start()
    try:
        wait_until(lambda: len(writer.acks) >= 20 or writer.error, 60, "20 writes acknowledged")
        s1.power_off()
        down = len(writer.acks)
        s1.start()
        back = time.monotonic()
        wait_until(lambda: writer.acked_by(0, since=back) >= 20 or writer.error, 60,
                   "20 writes acknowledged after the restart")
    except BaseException:
        _stop([watcher])
        raise
    finally:
        writer.stop()
    final = listed(api, NS)
    _check(writer, [watcher], final)
    assert down < len(writer.acks) and writer.failures, "the server died in the middle of the stream"
    assert any(rv > watcher.start_rv for _, rv in watcher.resumes), "the watcher resumed by resourceVersion"


def _wait_node_ready(s: ServerMachine, timeout: float = 120) -> None:
    def ready() -> bool:
        out = s.kubectl("get", "node", s.name, "-o", "json", check=False)
        if not out:
            return False
        conditions = json.loads(out)["status"].get("conditions") or []
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    wait_until(ready, timeout, f"node {s.name} Ready")


def _pod(name: str) -> client.V1Pod:
    return client.V1Pod(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1PodSpec(termination_grace_period_seconds=1, containers=[
            client.V1Container(name="main", image=BUSYBOX_IMAGE, command=["sleep", "3600"])]))


def test_three_servers_one_loses_power_and_rejoins(ha_machines: HAMachines) -> None:
    """Three servers (the node on the third); every process of the first (which leads the scheduler
    and the controller manager) killed with -9 during a stream of writes through all three; the
    other two keep serving (writes, watches, new leaders, a new pod scheduled and started); the
    first, restarted on its data dir, rejoins and serves the same state."""
    s1 = ha_machines.first_server(0)
    s1.start(timeout=120)
    leases = client.CoordinationV1Api(api_client(s1.kubeconfig))
    # Alone, the first server's scheduler and controller manager lead: the loss must move them.
    first_leaders = {name: wait_until(lambda name=name: _holder(leases, name), 60, f"a {name} leader")
                     for name in LEADER_LEASES}
    s2 = ha_machines.joining_server(1, s1)
    s2.start(timeout=120)
    s3 = ha_machines.joining_server(2, s1, agent=True)
    s3.start(timeout=120)
    servers = [s1, s2, s3]
    apis = [core_api(s.kubeconfig) for s in servers]
    everyone = {s.machine.address for s in servers}
    apis[1].create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=NS)))
    _wait_node_ready(s3)
    wait_until(lambda: _api_endpoints(apis[2]) == everyone, 30, "the kubernetes Endpoints listing all three")
    watchers = [Watcher("a", apis, [0, 1, 2], NS), Watcher("b", [apis[1], apis[2]], [1, 2], NS),
                Watcher("c", [apis[2], apis[1]], [2, 1], NS)]
    for w in watchers:
        w.start()
    writer = Writer(apis, NS)
    writer.start()
    try:
        wait_until(lambda: len(writer.acks) >= 30 or writer.error, 60, "30 writes acknowledged")
        assert writer.acked_by(0) and writer.acked_by(1) and writer.acked_by(2), _report(writer, watchers)
        assert {name: _holder(leases, name) for name in LEADER_LEASES} == first_leaders
        leases = client.CoordinationV1Api(api_client(s2.kubeconfig))
        killed = time.monotonic()
        s1.power_off()
        wait_until(lambda: (writer.acked_by(1, killed) >= 15 and writer.acked_by(2, killed) >= 15) or writer.error,
                   60, "15 writes acknowledged by each surviving server")

        apis[1].create_namespaced_pod(NS, _pod("after"))
        started = wait_until(lambda: _running(apis[2], "after"), 120, "the pod created after the loss Running")
        assert started.spec.node_name == s3.name
        wait_until(lambda: _api_endpoints(apis[1]) == everyone - {s1.machine.address}, 60,
                   "the kubernetes Endpoints without the lost server")
        for name, lost in first_leaders.items():
            wait_until(lambda name=name, lost=lost: _holder(leases, name) not in ("", lost), 60,
                       f"another {name} leader")

        s1.start(timeout=120)
        back = time.monotonic()
        wait_until(lambda: writer.acked_by(0, back) >= 10 or writer.error, 60,
                   "10 writes acknowledged by the rejoined server")
    except BaseException:
        _stop(watchers)
        raise
    finally:
        writer.stop()
    assert _members(s2) == {s.name: "started" for s in servers}
    wait_until(lambda: _api_endpoints(apis[0]) == everyone, 60, "the kubernetes Endpoints listing all three again")
    final = listed(apis[1], NS)
    for i in (0, 2):
        wait_until(lambda i=i: listed(apis[i], NS) == final, 30, f"server {i + 1} listing what server 2 lists")
    _check(writer, watchers, final)
    assert any(server != 0 for server, rv in watchers[0].resumes), \
        "the first server's watcher resumed on another server"


def _holder(leases: client.CoordinationV1Api, name: str) -> str:
    """The holder of the leader-election Lease ``kube-system/name`` ("" if none)."""
    try:
        lease = leases.read_namespaced_lease(name, "kube-system", _request_timeout=(2, 10))
    except ApiException as err:
        if err.status == 404:
            return ""
        raise
    return str(lease.spec.holder_identity or "")


def _api_endpoints(api: client.CoreV1Api) -> set[str]:
    """The addresses of the ``kubernetes`` Service's Endpoints (every live API server's)."""
    ep = api.read_namespaced_endpoints("kubernetes", "default", _request_timeout=(2, 10))
    return {a.ip for subset in ep.subsets or [] for a in subset.addresses or []}


def _members(s: ServerMachine) -> dict[str, str]:
    """``kyb etcd member list`` on the machine of ``s``: ``{name: started or unstarted}``."""
    out = s.machine.run(*KYB, "etcd", "member", "list", "--data-dir", str(s.data_dir)).stdout
    return {row.split()[0]: row.split()[2] for row in out.splitlines()[1:]}


def _running(api: client.CoreV1Api, name: str) -> client.V1Pod | None:
    try:
        pod = api.read_namespaced_pod(name, NS, _request_timeout=(2, 10))
    except ApiException as err:
        if err.status == 404:  # not yet in this server's view
            return None
        raise
    return pod if pod.status and pod.status.phase == "Running" else None
