"""The control-plane components' secure ports under ``kyb server``: health endpoints, /metrics with
Kubernetes' names and labels after real work, delegated authentication and authorization (a token
RBAC allows, one it does not, a bad one, the admin's client certificate), and the bundle reporting a
component that stops answering."""

from __future__ import annotations

import json
import os
import signal
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from kybernetes.testing import ServerProcess
from tests.integration.conftest import _require_kubectl

NS = "scrape"
LEASES = {"scheduler": "kube-scheduler", "controller-manager": "kube-controller-manager",
          "cloud-controller-manager": "cloud-controller-manager"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    _require_kubectl()
    srv = ServerProcess.start(tmp_path_factory.mktemp("kyb-components"), "--component-health-grace", "5",
                              control_plane=True, cloud=True, timeout=90)
    try:
        srv.kubectl("create", "namespace", NS)
        srv.kubectl("create", "serviceaccount", "scraper", "-n", NS)
        srv.kubectl("create", "serviceaccount", "nobody", "-n", NS)
        srv.kubectl("create", "clusterrolebinding", "scraper-monitoring", "--clusterrole", "system:monitoring",
                    f"--serviceaccount={NS}:scraper")
        yield srv
    finally:
        srv.stop()


def _context(srv: ServerProcess, cert: bool = False) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(srv.data_dir / "tls" / "ca.crt"))
    if cert:
        ctx.load_cert_chain(srv.data_dir / "tls" / "admin.crt", srv.data_dir / "tls" / "admin.key")
    return ctx


def get(srv: ServerProcess, component: str, path: str, token: str = "", cert: bool = False) -> tuple[int, str]:
    """GET over HTTPS, the serving certificate verified against the cluster CA (it signed it)."""
    req = urllib.request.Request(f"https://127.0.0.1:{srv.secure_ports[component]}{path}")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, context=_context(srv, cert), timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def token(srv: ServerProcess, account: str) -> str:
    return srv.kubectl("create", "token", account, "-n", NS).stdout.strip()


def eventually(what: Callable[[], Any], timeout: float = 60.0, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            out = what()
            if out:
                return out
        except (AssertionError, OSError):
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout}s")
        time.sleep(interval)


def samples(body: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample by sample name, parsed by prometheus_client's parser."""
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body):
        out.setdefault(family.name, [])
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def value(found: dict[str, list[tuple[dict[str, str], float]]], metric: str, **labels: str) -> float | None:
    for got, v in found.get(metric, []):
        if all(got.get(k) == want for k, want in labels.items()):
            return v
    return None


def scrape(srv: ServerProcess, component: str, tok: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    status, body = get(srv, component, "/metrics", tok)
    assert status == 200, body
    return samples(body)


NODE = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "scrape-node", "labels": {
    "kubernetes.io/hostname": "scrape-node"}},
    "status": {"capacity": {"cpu": "8", "memory": "16Gi", "pods": "110"},
               "allocatable": {"cpu": "8", "memory": "16Gi", "pods": "110"},
               "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ready"}]}}
DEPLOYMENT = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": NS},
              "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                       "template": {"metadata": {"labels": {"app": "web"}},
                                    "spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}


@pytest.fixture(scope="module")
def worked(cluster: ServerProcess) -> ServerProcess:
    """Real work done: a Deployment reconciled into pods that the scheduler bound to a node."""
    cluster.kubectl("create", "-f", "-", input=json.dumps(NODE))
    cluster.kubectl("create", "-f", "-", input=json.dumps(DEPLOYMENT))

    def bound() -> bool:
        pods = json.loads(cluster.kubectl("get", "pods", "-n", NS, "-o", "json").stdout)["items"]
        return len(pods) == 2 and all(p["spec"].get("nodeName") == "scrape-node" for p in pods)

    eventually(bound, 90)
    return cluster


def test_health_endpoints_answer_anyone(cluster: ServerProcess) -> None:
    monitor = token(cluster, "scraper")
    for component in LEASES:
        for path in ("/healthz", "/livez", "/readyz"):
            assert eventually(lambda c=component, p=path: get(cluster, c, p) == (200, "ok")), (component, path)
        status, body = get(cluster, component, "/readyz?verbose")
        assert status == 200 and "[+]ping ok\n" in body and "[+]leaderElection ok\n" in body, body
        assert body.endswith("readyz check passed\n")
        # A named check is not an always-allowed path: anonymous is refused, system:monitoring may.
        assert get(cluster, component, "/readyz/leaderElection")[0] == 403
        assert get(cluster, component, "/readyz/leaderElection", monitor) == (200, "ok")
        assert get(cluster, component, "/livez/no-such-check", monitor)[0] == 404
    status, body = get(cluster, "scheduler", "/readyz?verbose")
    assert "[+]sched-handler-sync ok\n" in body and "[+]shutdown ok\n" in body
    status, body = get(cluster, "controller-manager", "/healthz?verbose")
    assert "[+]deployment-controller ok\n" in body and "[+]replicaset-controller ok\n" in body
    # The component SLIs of the checks just run (system:monitoring may read /metrics/slis).
    status, body = get(cluster, "scheduler", "/metrics/slis", monitor)
    assert status == 200, body
    slis = samples(body)
    assert value(slis, "kubernetes_healthcheck", name="sched-handler-sync", type="readyz") == 1
    assert (value(slis, "kubernetes_healthchecks_total", name="leaderElection", type="livez", status="success")
            or 0) >= 1


def test_metrics_need_rbac(cluster: ServerProcess) -> None:
    nobody = token(cluster, "nobody")
    for component in LEASES:
        status, body = get(cluster, component, "/metrics", nobody)
        assert status == 403, body
        st = json.loads(body)
        assert st["kind"] == "Status" and st["reason"] == "Forbidden" and st["code"] == 403
        assert st["message"] == f'forbidden: User "system:serviceaccount:{NS}:nobody" cannot get path "/metrics"'
        status, body = get(cluster, component, "/metrics")  # anonymous
        assert status == 403 and json.loads(body)["message"] == 'forbidden: User "system:anonymous" cannot get path "/metrics"'
        status, body = get(cluster, component, "/metrics", "not-a-token")
        assert status == 401 and json.loads(body)["reason"] == "Unauthorized"
        status, body = get(cluster, component, "/metrics", cert=True)  # the admin: system:masters
        assert status == 200 and "process_cpu_seconds_total" in body


def test_scheduler_metrics_after_scheduling(worked: ServerProcess) -> None:
    found = scrape(worked, "scheduler", token(worked, "scraper"))
    profile = "default-scheduler"
    assert (value(found, "scheduler_schedule_attempts_total", result="scheduled", profile=profile) or 0) >= 2
    assert (value(found, "scheduler_scheduling_attempt_duration_seconds_count", result="scheduled",
                  profile=profile) or 0) >= 2
    assert value(found, "scheduler_scheduling_attempt_duration_seconds_bucket", result="scheduled", profile=profile,
                 le="0.001") is not None  # ExponentialBuckets(0.001, 2, 15)
    # by attempts: "1" unless the scheduler saw a pod before the node
    sli = found.get("scheduler_pod_scheduling_sli_duration_seconds_count", [])
    assert sum(v for _, v in sli) >= 2 and all(labels["attempts"].isdigit() for labels, _ in sli), sli
    for queue in ("active", "backoff", "unschedulable", "gated"):
        assert value(found, "scheduler_pending_pods", queue=queue) == 0
    assert "scheduler_plugin_execution_duration_seconds" in found  # sampled: samples only in 10% of cycles
    assert value(found, "leader_election_master_status", name="kube-scheduler") == 1
    assert "python_gc_objects_collected_total" in found


def test_controller_manager_workqueue_metrics_after_reconciling(worked: ServerProcess) -> None:
    tok = token(worked, "scraper")
    found = scrape(worked, "controller-manager", tok)
    for queue in ("deployment", "replicaset"):
        assert (value(found, "workqueue_adds_total", name=queue) or 0) >= 1, queue
        assert (value(found, "workqueue_queue_duration_seconds_count", name=queue) or 0) >= 1
        assert (value(found, "workqueue_work_duration_seconds_count", name=queue) or 0) >= 1
        assert value(found, "workqueue_work_duration_seconds_bucket", name=queue, le="1e-06") is not None
        for gauge in ("workqueue_depth", "workqueue_unfinished_work_seconds",
                      "workqueue_longest_running_processor_seconds"):
            assert value(found, gauge, name=queue) is not None, (gauge, queue)
        assert value(found, "workqueue_retries_total", name=queue) is not None
    assert value(found, "leader_election_master_status", name="kube-controller-manager") == 1


def test_cloud_controller_manager_metrics(worked: ServerProcess) -> None:
    found = scrape(worked, "cloud-controller-manager", token(worked, "scraper"))
    assert value(found, "leader_election_master_status", name="cloud-controller-manager") == 1
    assert any(labels.get("name") for labels, _ in found.get("workqueue_adds_total", []))
    assert "process_resident_memory_bytes" in found


def kyb_children(srv: ServerProcess) -> list[list[str]]:
    """The command lines (after ``-m kybernetes.cli``) of the server's ``kyb`` child processes."""
    out = []
    for pid in Path(f"/proc/{srv.proc.pid}/task/{srv.proc.pid}/children").read_text().split():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if argv[1:3] == ["-m", "kybernetes.cli"]:
            out.append(argv[3:])
    return out


def _queues(found: dict[str, list[tuple[dict[str, str], float]]]) -> set[str]:
    return {labels["name"] for labels, _ in found.get("workqueue_adds_total", [])}


def test_one_process_runs_the_components_each_with_its_own_series(worked: ServerProcess) -> None:
    """``kyb server``'s default layout: one child, ``kyb control-plane``, runs the three components
    (issue 18), each on its own port with its own series: its own lease's, its own work queues'."""
    children = kyb_children(worked)
    assert [argv[0] for argv in children] == ["control-plane"], children
    assert {"scheduler", "controller-manager", "cloud-controller-manager"} <= set(children[0])
    tok = token(worked, "scraper")
    found = {component: scrape(worked, component, tok) for component in LEASES}
    for component, lease in LEASES.items():
        leases = {labels["name"] for labels, _ in found[component].get("leader_election_master_status", [])}
        assert leases == {lease}, (component, leases)
        assert "process_resident_memory_bytes" in found[component]
    assert {"deployment", "replicaset"} <= _queues(found["controller-manager"])
    assert "cloud-node-controller" in _queues(found["cloud-controller-manager"])
    assert not _queues(found["scheduler"]) and not _queues(found["cloud-controller-manager"]) & {"deployment"}
    assert "cloud-node-controller" not in _queues(found["controller-manager"])
    for component in ("controller-manager", "cloud-controller-manager"):
        assert not [name for name in found[component] if name.startswith("scheduler_")], component
    # The SLIs of the checks each port ran: its own checks only.
    assert get(worked, "scheduler", "/readyz")[0] == 200 and get(worked, "controller-manager", "/readyz")[0] == 200
    status, body = get(worked, "scheduler", "/metrics/slis", tok)
    assert status == 200 and "deployment-controller" not in body and "sched-handler-sync" in body


def _child_pid(srv: ServerProcess, component: str) -> int:
    kubeconfig = str(srv.data_dir / f"{component}.kubeconfig")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if component.encode() in argv and kubeconfig.encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no {component} process of this server")


def test_server_reports_a_component_that_stops_answering(cluster: ServerProcess) -> None:
    pid = _child_pid(cluster, "cloud-controller-manager")  # the one whose pause disturbs no other test
    os.kill(pid, signal.SIGSTOP)
    try:
        # A component that has not answered yet is reported only after the monitor's grace from the
        # server's start (5 s here; run alone, this test may stop it before its first answer), then
        # within one probe round (interval + timeout): 5 + 10 + 5 s at the most, with a margin for load.
        eventually(lambda: "cloud-controller-manager is not answering https://127.0.0.1:" in cluster.log(), 60)
    finally:
        os.kill(pid, signal.SIGCONT)
    eventually(lambda: "cloud-controller-manager answers https://127.0.0.1:" in cluster.log(), 60)
