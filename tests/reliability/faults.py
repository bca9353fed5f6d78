"""kill -9 of a component during a Deployment rollout and a Job: one round, shared by the test and bench.faults.

:func:`fault_round` runs in a namespace of its own on a ``kyb server`` with its node (:class:`Node`):
a Deployment of :data:`REPLICAS` busybox pods (RollingUpdate, :data:`MAX_SURGE` /
:data:`MAX_UNAVAILABLE`) is rolled out to a new template and a Job of :data:`COMPLETIONS` short pods
(:data:`PARALLELISM` at a time) is created; once the new ReplicaSet and the Job each have a pod, the
component named by the fault (one of :data:`FAULTS`) is killed with SIGKILL. Its supervisor (the
server for the control plane and the agent, the agent for the kubelet, the kubelet for containerd)
restarts it. ``control-plane`` is the one process that runs the scheduler, the controller manager and
the cloud-controller-manager by default (``kyb control-plane``); ``agent`` is the node's one process,
running the kubelet, kube-proxy and the node network by default. ``scheduler``, ``controller-manager``
and ``kubelet`` are processes of their own only on a server started with ``--split-control-plane
--split-node-components`` (:data:`SPLIT_FAULTS`, ``server_args(tmp, split=True)``). Then it checks
the promise:

- the cluster converges: the Deployment has exactly ``REPLICAS`` Ready pods of the new template and
  no other, its status says so; the Job is Complete with ``COMPLETIONS`` succeeded; the node's
  runtime runs no container or sandbox whose pod is not in the API (none left without a pod, none
  twice for one pod);
- at every event of the pod and ReplicaSet watches (replayed as one history in revision order, so
  nothing is missed between polls): the ReplicaSets together never ask for more than
  ``REPLICAS + MAX_SURGE`` pods, no ReplicaSet has more live pods than that, and no pod is created
  for a ReplicaSet that already has as many live pods as it asks for;
- no more Job pods succeed than ``COMPLETIONS``, and the Job's ``status.succeeded`` never exceeds it.

Figures returned: seconds from the kill to convergence, whether the component came back with a new
process, the violations (goal: none), the most live pods the Deployment had at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.kubelet.cri import api_pb2 as cri
from kybernetes.kubelet.cri.client import CRIClient
from kybernetes.testing import ServerProcess
from tests.e2e.conftest import Watcher, is_ready, is_terminal, merged_events, require_kubectl

Obj = dict[str, Any]

SPLIT_FAULTS = ("scheduler", "controller-manager", "kubelet")
"""Components that are processes of their own only under ``kyb server --split-control-plane
--split-node-components``."""
FAULTS = ("control-plane", "agent", *SPLIT_FAULTS, "containerd")
REPLICAS, MAX_SURGE, MAX_UNAVAILABLE = 3, 1, 1
COMPLETIONS, PARALLELISM = 4, 2
LEASE = ("4s", "3s", "1s")  # lease duration, renew deadline, retry period: a killed leader's lease expires fast
CONVERGE_TIMEOUT = 90.0
POD_UID_LABEL = "io.kubernetes.pod.uid"
CONTAINER_NAME_LABEL = "io.kubernetes.container.name"


def server_args(tmp: Path, split: bool = False) -> list[str]:
    """``kyb server`` flags giving the scheduler and the controller manager short leader leases (a
    killed leader's lease must expire before its restarted process may lead; 15 s by default);
    ``split``: each component in a process of its own (``--split-control-plane``, and the node's
    kubelet, kube-proxy and network as the agent's children: ``--split-node-components``)."""
    sched_cfg = tmp / "scheduler-config.yaml"
    sched_cfg.write_text("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
                         f"leaderElection:\n  leaderElect: true\n  leaseDuration: {LEASE[0]}\n"
                         f"  renewDeadline: {LEASE[1]}\n  retryPeriod: {LEASE[2]}\n")
    return [*(["--split-control-plane"] if split else []), "--kube-scheduler-arg", f"config={sched_cfg}",
            "--kube-controller-manager-arg", f"leader-elect-lease-duration={LEASE[0]}",
            "--kube-controller-manager-arg", f"leader-elect-renew-deadline={LEASE[1]}",
            "--kube-controller-manager-arg", f"leader-elect-retry-period={LEASE[2]}",
            *(["--split-node-components"] if split else [])]


@dataclass
class FaultResult:
    fault: str
    converge_seconds: float = 0.0
    restarted: bool = False
    rs_violations: list[str] = field(default_factory=list)
    job_violations: list[str] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    max_live_pods: int = 0
    job_pods_succeeded: int = 0

    @property
    def ok(self) -> bool:
        return self.restarted and not (self.rs_violations or self.job_violations or self.orphans)


def component_pids(data_dir: Path, fault: str) -> list[int]:
    """The processes of one component of the server in ``data_dir`` (its node included), found by
    their command line naming the data dir: containerd is re-parented when its kubelet dies."""
    needle = os.fsencode(str(data_dir))
    out = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if not any(needle in a for a in argv):
            continue
        if fault == "containerd":
            if os.path.basename(argv[0]) == b"containerd":
                out.append(int(entry.name))
        elif argv[1:4] == [b"-m", b"kybernetes.cli", fault.encode()]:
            out.append(int(entry.name))
    return out


def require_node() -> None:
    """Skip where no node can run (not root, no containerd), except on CI, where that fails; and
    kubectl must be there."""
    from tests.e2e.test_node import _node_missing  # test_node uses this module

    reason = _node_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI runs as root with containerd: {reason}")
        pytest.skip(reason)
    require_kubectl()


def describe(pids: list[int]) -> str:
    """Each process' parent, age in clock ticks since boot, and command line (for a failure message)."""
    out = []
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            out.append(f"pid {pid} ppid {stat[1]} started {stat[19]}: {argv[:200]}")
        except OSError:
            out.append(f"pid {pid}: gone")
    return "; ".join(out)


def _log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path})"


def deployment(name: str, version: str) -> Obj:
    container = {"name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 3600 & wait"],
                 "env": [{"name": "VERSION", "value": version}]}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": {
        "replicas": REPLICAS, "selector": {"matchLabels": {"app": name}},
        "strategy": {"type": "RollingUpdate",
                     "rollingUpdate": {"maxSurge": MAX_SURGE, "maxUnavailable": MAX_UNAVAILABLE}},
        "template": {"metadata": {"labels": {"app": name}},
                     "spec": {"containers": [container], "terminationGracePeriodSeconds": 2}}}}


def job(name: str) -> Obj:
    container = {"name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                 "command": ["sh", "-c", "sleep 1"]}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": {
        "completions": COMPLETIONS, "parallelism": PARALLELISM, "backoffLimit": 6,
        "template": {"spec": {"containers": [container], "restartPolicy": "Never",
                              "terminationGracePeriodSeconds": 1}}}}


def _owner(obj: Obj, kind: str) -> str:
    return next((o["name"] for o in obj["metadata"].get("ownerReferences") or [] if o.get("kind") == kind), "")


def _live(pod: Obj) -> bool:
    return not pod["metadata"].get("deletionTimestamp") and not is_terminal(pod)


def rs_violations(pods_w: Watcher, rss_w: Watcher) -> tuple[list[str], int]:
    """The ReplicaSet promises checked at every event of the two watches, and the most live pods."""
    pods: dict[str, Obj] = {}
    rss: dict[str, Obj] = {}
    out: list[str] = []
    max_live = 0
    for rv, plural, typ, obj in merged_events(pods_w, rss_w):
        store = pods if plural == "pods" else rss
        if typ == "DELETED":
            store.pop(obj["metadata"]["name"], None)
        else:
            store[obj["metadata"]["name"]] = obj
        if typ == "LISTED":
            continue
        live = [p for p in pods.values() if _live(p) and _owner(p, "ReplicaSet")]
        max_live = max(max_live, len(live))
        asked = sum(int(r["spec"].get("replicas") or 0) for r in rss.values())
        if asked > REPLICAS + MAX_SURGE:
            out.append(f"rv {rv}: the ReplicaSets ask for {asked} pods > {REPLICAS + MAX_SURGE}")
        for rs_name in {_owner(p, "ReplicaSet") for p in live}:
            mine = sum(1 for p in live if _owner(p, "ReplicaSet") == rs_name)
            if mine > REPLICAS + MAX_SURGE:
                out.append(f"rv {rv}: ReplicaSet {rs_name} runs {mine} pods > {REPLICAS + MAX_SURGE}")
        if plural == "pods" and typ == "ADDED" and _owner(obj, "ReplicaSet"):
            owner = _owner(obj, "ReplicaSet")
            mine = sum(1 for p in live if _owner(p, "ReplicaSet") == owner)
            want = int((rss.get(owner) or {}).get("spec", {}).get("replicas") or 0)
            if mine > want:
                out.append(f"rv {rv}: pod {obj['metadata']['name']} created as #{mine} of {owner}, which asks "
                           f"for {want}")
    return out, max_live


def job_violations(pods_w: Watcher, jobs_w: Watcher) -> tuple[list[str], int]:
    """No more Job pods succeed than completions, and the Job's status never counts more."""
    succeeded = {obj["metadata"]["name"] for _, typ, obj in pods_w.events
                 if _owner(obj, "Job") and (obj.get("status") or {}).get("phase") == "Succeeded"}
    out = [f"{len(succeeded)} Job pods succeeded > {COMPLETIONS}: {sorted(succeeded)}"] \
        if len(succeeded) > COMPLETIONS else []
    for rv, _, obj in jobs_w.events:
        got = int((obj.get("status") or {}).get("succeeded") or 0)
        if got > COMPLETIONS:
            out.append(f"rv {rv}: Job status.succeeded {got} > {COMPLETIONS}")
    return out, len(succeeded)


async def runtime_orphans(socket: Path, pod_uids: set[str]) -> list[str]:
    """Running containers and ready sandboxes of the node whose pod is not in the API, and pods'
    containers that run twice."""
    async with CRIClient(str(socket), timeout=10) as client:
        containers = await client.list_containers(cri.ContainerFilter(
            state=cri.ContainerStateValue(state=cri.CONTAINER_RUNNING)))
        sandboxes = await client.list_pod_sandbox(cri.PodSandboxFilter(
            state=cri.PodSandboxStateValue(state=cri.SANDBOX_READY)))
    out = [f"sandbox {s.id[:12]} of pod {s.metadata.namespace}/{s.metadata.name} ({s.metadata.uid})"
           for s in sandboxes if s.metadata.uid not in pod_uids]
    seen: dict[tuple[str, str], str] = {}
    for c in containers:
        uid, name = c.labels.get(POD_UID_LABEL, ""), c.labels.get(CONTAINER_NAME_LABEL, "")
        if uid not in pod_uids:
            out.append(f"container {c.id[:12]} ({name}) of pod uid {uid or '?'}")
        elif (uid, name) in seen:
            out.append(f"container {name} of pod uid {uid} runs twice: {seen[uid, name][:12]}, {c.id[:12]}")
        seen[uid, name] = c.id
    return out


def _converged(name: str, deps: dict[str, Obj], pods: dict[str, Obj], jobs: dict[str, Obj]) -> bool:
    dep = deps.get(name)
    if dep is None:
        return False
    st = dep.get("status") or {}
    if (st.get("observedGeneration") != dep["metadata"].get("generation")
            or not st.get("updatedReplicas") == st.get("readyReplicas") == st.get("availableReplicas")
            == st.get("replicas") == REPLICAS):
        return False
    mine = [p for p in pods.values() if _owner(p, "ReplicaSet")]
    if len(mine) != REPLICAS or not all(_live(p) and is_ready(p) for p in mine):
        return False
    if {p["spec"]["containers"][0]["env"][0]["value"] for p in mine} != {"v2"}:
        return False
    done = next((c for c in ((jobs.get(name) or {}).get("status") or {}).get("conditions") or []
                 if c.get("type") == "Complete"), {})
    return done.get("status") == "True"


def wait_for(cond: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := cond()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
    return got


def fault_round(srv: ServerProcess, socket: Path, ns: str, fault: str) -> FaultResult:
    """One fault (see the module's docstring); ``socket`` is the node's containerd socket."""
    result = FaultResult(fault)
    name = "w"
    kc = srv.kubeconfig
    srv.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(deployment(name, "v1")))
    srv.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=60s", timeout=70)
    with Watcher(kc, "v1", "pods", ns) as pods_w, Watcher(kc, "apps/v1", "replicasets", ns) as rss_w, \
            Watcher(kc, "apps/v1", "deployments", ns) as deps_w, Watcher(kc, "batch/v1", "jobs", ns) as jobs_w:
        first_rs = set(rss_w.snapshot())
        srv.kubectl("apply", "-n", ns, "-f", "-", input="\n".join(json.dumps(o) for o in (
            deployment(name, "v2"), job(name))))

        def started() -> bool:
            pods = pods_w.snapshot().values()
            new = any(_owner(p, "ReplicaSet") not in first_rs for p in pods if _owner(p, "ReplicaSet"))
            return new and any(_owner(p, "Job") for p in pods)
        wait_for(started, 30, "the rollout's and the Job's first pods")
        victims = component_pids(srv.data_dir, fault)
        assert len(victims) == 1, f"{fault}: {describe(victims)}\n{_log_tail(srv.data_dir / 'logs' / 'agent.log')}"
        os.kill(victims[0], signal.SIGKILL)
        t0 = time.monotonic()

        def converged() -> bool:
            return _converged(name, deps_w.snapshot(), pods_w.snapshot(), jobs_w.snapshot())
        while True:
            wait_for(converged, max(1.0, t0 + CONVERGE_TIMEOUT - time.monotonic()),
                     f"convergence after killing the {fault}")
            status, listed = srv.request("GET", "/api/v1/pods")
            assert status == 200, listed
            uids = {p["metadata"]["uid"] for p in listed["items"]}
            orphans = asyncio.run(runtime_orphans(socket, uids))
            if not orphans:
                break
            if time.monotonic() > t0 + CONVERGE_TIMEOUT:
                result.orphans = orphans
                break
            time.sleep(0.2)
        result.converge_seconds = time.monotonic() - t0
        try:  # it came back (the kubelet may not have been needed for the rest: wait a little)
            wait_for(lambda: [p for p in component_pids(srv.data_dir, fault) if p != victims[0]], 30,
                     f"the {fault} to be restarted")
            result.restarted = True
        except AssertionError:
            result.restarted = False
    for w in (pods_w, rss_w, deps_w, jobs_w):
        assert w.error is None, (w.plural, w.error)
    result.rs_violations, result.max_live_pods = rs_violations(pods_w, rss_w)
    result.job_violations, result.job_pods_succeeded = job_violations(pods_w, jobs_w)
    return result
