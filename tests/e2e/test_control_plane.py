"""The control plane end to end, all through kubectl 1.32 against ``kyb server`` with hollow nodes.

Workloads (Deployment rollout/undo/scale, DaemonSet, Job, CronJob), placement (nodeSelector, node
affinity, pod anti-affinity, topology spread, taints, FailedScheduling), node failure (eviction and
replacement), deletion (namespace, foreground cascade) and leader election (the
kube-controller-manager and kube-scheduler leaders killed and replaced).

Invariants that must hold *at every moment* (rollout surge/unavailability, Job parallelism) are
checked on every event of a watch the test runs, not by sampling.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from kybernetes.testing import ServerProcess, free_port

from .conftest import (
    FLEET_PREFIX,
    FLEET_SIZE,
    Cluster,
    HollowProcess,
    Obj,
    Watcher,
    is_ready,
    is_terminal,
    merged_events,
    require_kubectl,
    wait_until,
)

pytestmark = pytest.mark.integration

EXIT_AFTER = "kybernetes.io/hollow-exit-after"
ZONE = "topology.kubernetes.io/zone"
HOSTNAME = "kubernetes.io/hostname"


def deployment(name: str, replicas: int, *, image: str = "registry.k8s.io/pause:3.9", cpu: str = "10m",
               spec_extra: Obj | None = None, pod_extra: Obj | None = None) -> Obj:
    pod_spec: Obj = {"containers": [{"name": "c", "image": image,
                                     "resources": {"requests": {"cpu": cpu, "memory": "16Mi"}}}],
                     "terminationGracePeriodSeconds": 0}
    pod_spec.update(pod_extra or {})
    spec: Obj = {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec}}
    spec.update(spec_extra or {})
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name}, "spec": spec}


def bare_pod(name: str, *, cpu: str = "10m", spec_extra: Obj | None = None) -> Obj:
    spec: Obj = {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9",
                                 "resources": {"requests": {"cpu": cpu}}}],
                 "terminationGracePeriodSeconds": 0}
    spec.update(spec_extra or {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


def node_of(pod: Obj) -> str:
    return str(pod["spec"].get("nodeName") or "")


def wait_running(cluster: Cluster, ns: str, selector: str, count: int, timeout: float = 60) -> list[Obj]:
    """Until exactly ``count`` pods match, all Ready and none terminating; returns them."""
    def done() -> list[Obj] | None:
        pods = cluster.pods(ns, selector)
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        ok = len(pods) == count and len(live) == count and all(is_ready(p) for p in live)
        return live if ok else None
    return list(wait_until(done, timeout, f"{count} Ready pods {selector} in {ns}"))


def pod_template_hash(rs: Obj) -> str:
    return str(rs["metadata"]["labels"]["pod-template-hash"])


# --- workloads ------------------------------------------------------------------------------------


def test_deployment_available_rolling_update_undo_and_scale(cluster: Cluster, ns: str) -> None:
    name, replicas, surge, unavailable = "web", 50, 5, 5
    cluster.apply(deployment(name, replicas, image="example.com/web:v1", spec_extra={"strategy": {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}}), ns)
    cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=90s", timeout=100)
    cluster.kubectl("wait", "--for=condition=Available", f"deployment/{name}", "-n", ns, "--timeout=30s")
    dep = cluster.get("deployment", name, "-n", ns)
    assert dep["status"].get("availableReplicas") == replicas, dep["status"]
    assert len(cluster.running_pods(ns, f"app={name}")) == replicas
    first_rs = cluster.items("replicasets", "-n", ns, "-l", f"app={name}")
    assert len(first_rs) == 1, [r["metadata"]["name"] for r in first_rs]
    first_hash = pod_template_hash(first_rs[0])

    # Rolling update, checked on every event (pods and ReplicaSets replayed as one history):
    # - at least replicas - maxUnavailable pods are Ready and not being deleted;
    # - the ReplicaSets together never ask for more than replicas + maxSurge pods;
    # - no ReplicaSet ever has more live pods than it asks for, except one being scaled down whose
    #   surplus is being deleted. This is what bounds the total by replicas + maxSurge in Kubernetes:
    #   the Deployment controller counts ReplicaSet specs, so while an old ReplicaSet's surplus pods
    #   are still being deleted the new one may already create (that transient is not a violation).
    def check_rollout(pw: Watcher, rw: Watcher) -> tuple[list[str], int]:
        pods: dict[str, Obj] = {}
        rss: dict[str, Obj] = {}
        violations: list[str] = []
        max_live = 0
        for rv, plural, typ, obj in merged_events(pw, rw):
            store = pods if plural == "pods" else rss
            if typ == "DELETED":
                store.pop(obj["metadata"]["name"], None)
            else:
                store[obj["metadata"]["name"]] = obj
            if typ == "LISTED":
                continue  # the starting state is built up first; it is checked with the first change
            live = [p for p in pods.values() if not p["metadata"].get("deletionTimestamp") and not is_terminal(p)]
            ready = sum(1 for p in live if is_ready(p))
            max_live = max(max_live, len(live))
            if ready < replicas - unavailable:
                violations.append(f"rv {rv}: {ready} Ready pods < {replicas - unavailable}")
            total = sum(int(r["spec"].get("replicas") or 0) for r in rss.values())
            if total > replicas + surge:
                violations.append(f"rv {rv}: ReplicaSets ask for {total} pods > {replicas + surge}")
            if plural == "pods" and typ == "ADDED":
                owner = next((o["name"] for o in obj["metadata"].get("ownerReferences") or []
                              if o.get("kind") == "ReplicaSet"), "")
                rs = rss.get(owner)
                mine = sum(1 for p in live if any(o.get("name") == owner
                                                  for o in p["metadata"].get("ownerReferences") or []))
                if rs is None or mine > int(rs["spec"].get("replicas") or 0):
                    violations.append(f"rv {rv}: pod {obj['metadata']['name']} created as #{mine} of "
                                      f"{owner} which asks for {rs and rs['spec'].get('replicas')}")
        return violations, max_live

    def rollout(*change: str) -> Watcher:
        with Watcher(cluster.server.kubeconfig, "v1", "pods", ns) as pw, \
                Watcher(cluster.server.kubeconfig, "apps/v1", "replicasets", ns) as rw:
            cluster.kubectl(*change, "-n", ns)
            cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=120s", timeout=130)
            wait_running(cluster, ns, f"app={name}", replicas)
            # Everything up to now is in both histories once both have seen a later write.
            marker = f"{name}-watch-marker"
            cluster.kubectl("annotate", "replicasets", "-l", f"app={name}", "-n", ns, f"{marker}=1")
            wait_until(lambda: all(marker in (o["metadata"].get("annotations") or {})
                                   for o in rw.snapshot().values()), 10, "the ReplicaSet watch to catch up")
            wait_until(lambda: sum(1 for p in pw.snapshot().values() if is_ready(p)
                                   and not p["metadata"].get("deletionTimestamp")) == replicas == len(pw.snapshot()),
                       10, "the pod watch to catch up")
        assert pw.error is None and rw.error is None, (pw.error, rw.error)
        violations, max_live = check_rollout(pw, rw)
        assert not violations, violations[:5]
        print(f"{' '.join(change)}: {len(pw.events)} pod events, at most {max_live} live pods "
              f"(replicas {replicas}, maxSurge {surge})")
        return pw

    pw = rollout("set", "image", f"deployment/{name}", "c=example.com/web:v2")
    assert pw.samples > 2 * replicas, f"the watch saw only {pw.samples} events"
    pods = cluster.running_pods(ns, f"app={name}")
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"example.com/web:v2"}
    assert len(cluster.items("replicasets", "-n", ns, "-l", f"app={name}")) == 2

    # Undo brings the first template back: the same ReplicaSet (same pod-template-hash) scales up.
    rollout("rollout", "undo", f"deployment/{name}")  # the same invariants hold while rolling back
    pods = wait_running(cluster, ns, f"app={name}", replicas)
    assert {p["spec"]["containers"][0]["image"] for p in pods} == {"example.com/web:v1"}
    assert {p["metadata"]["labels"]["pod-template-hash"] for p in pods} == {first_hash}
    rss = {r["metadata"]["name"]: r for r in cluster.items("replicasets", "-n", ns, "-l", f"app={name}")}
    assert len(rss) == 2, sorted(rss)
    active = [r for r in rss.values() if r["spec"].get("replicas")]
    assert [pod_template_hash(r) for r in active] == [first_hash]

    # Scale to zero and back.
    cluster.kubectl("scale", f"deployment/{name}", "--replicas=0", "-n", ns)
    wait_until(lambda: not cluster.pods(ns, f"app={name}"), 60, "all pods gone after scale to 0")
    dep = cluster.get("deployment", name, "-n", ns)
    assert not dep["status"].get("replicas"), dep["status"]
    cluster.kubectl("scale", f"deployment/{name}", f"--replicas={replicas}", "-n", ns)
    cluster.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=90s", timeout=100)
    wait_running(cluster, ns, f"app={name}", replicas)


def test_daemonset_one_pod_per_node(cluster: Cluster, ns: str) -> None:
    nodes = cluster.node_names()
    cluster.apply({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
                   "spec": {"selector": {"matchLabels": {"app": "agent"}},
                            "template": {"metadata": {"labels": {"app": "agent"}},
                                         "spec": {"containers": [{"name": "c", "image": "example.com/agent"}]}}}},
                  ns)
    cluster.kubectl("rollout", "status", "daemonset/agent", "-n", ns, "--timeout=60s", timeout=70)
    ds = cluster.get("daemonset", "agent", "-n", ns)
    assert ds["status"]["desiredNumberScheduled"] == len(nodes), ds["status"]
    assert ds["status"].get("numberReady") == len(nodes), ds["status"]
    pods = wait_running(cluster, ns, "app=agent", len(nodes))
    assert sorted(node_of(p) for p in pods) == nodes


def test_job_completions_with_parallelism(cluster: Cluster, ns: str) -> None:
    completions, parallelism = 10, 3

    def at_most_parallelism(pods: dict[str, Obj]) -> str | None:
        active = [n for n, p in pods.items() if not is_terminal(p) and not p["metadata"].get("deletionTimestamp")]
        return f"{len(active)} active pods: {sorted(active)}" if len(active) > parallelism else None

    def status_ok(jobs: dict[str, Obj]) -> str | None:
        st = (jobs.get("batch") or {}).get("status") or {}
        return f"status.active={st['active']}" if int(st.get("active") or 0) > parallelism else None

    with Watcher(cluster.server.kubeconfig, "v1", "pods", ns, at_most_parallelism) as pw, \
            Watcher(cluster.server.kubeconfig, "batch/v1", "jobs", ns, status_ok) as jw:
        cluster.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "batch"},
                       "spec": {"completions": completions, "parallelism": parallelism,
                                "template": {"metadata": {"annotations": {EXIT_AFTER: "1s"}},
                                             "spec": {"restartPolicy": "Never",
                                                      "containers": [{"name": "c", "image": "example.com/batch"}]}}}},
                      ns)
        cluster.kubectl("wait", "--for=condition=Complete", "job/batch", "-n", ns, "--timeout=90s", timeout=100)
    assert pw.error is None and jw.error is None, (pw.error, jw.error)
    assert not pw.violations, pw.violations[:5]
    assert not jw.violations, jw.violations[:5]
    job = cluster.get("job", "batch", "-n", ns)
    assert job["status"]["succeeded"] == completions, job["status"]
    assert not job["status"].get("failed"), job["status"]
    succeeded = [p for p in cluster.pods(ns, "batch.kubernetes.io/job-name=batch")
                 if p["status"].get("phase") == "Succeeded"]
    assert len(succeeded) == completions


def test_cronjob_fires(cluster: Cluster, ns: str) -> None:
    """A ``*/1`` CronJob fires. Rather than wait up to a minute for the next tick, the test says the
    last run was three minutes ago (``status.lastScheduleTime``, which the controller computes missed
    schedules from): a minute tick has been missed since, so the controller must start the most
    recent one now, as Kubernetes' does. The server's clock is not touched."""
    cluster.apply({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
                   "spec": {"schedule": "*/1 * * * *", "successfulJobsHistoryLimit": 3,
                            "jobTemplate": {"spec": {"template": {
                                "metadata": {"annotations": {EXIT_AFTER: "1s"}},
                                "spec": {"restartPolicy": "OnFailure",
                                         "containers": [{"name": "c", "image": "example.com/tick"}]}}}}}}, ns)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    last = (now - dt.timedelta(minutes=3)).replace(second=0)
    cluster.kubectl("patch", "cronjob", "tick", "-n", ns, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"lastScheduleTime": last.strftime("%Y-%m-%dT%H:%M:%SZ")}}))
    jobs = wait_until(lambda: cluster.items("jobs", "-n", ns), 30, "a Job from the CronJob")
    job = jobs[0]
    owner = job["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner.get("controller")) == ("CronJob", "tick", True)
    # Kubernetes names the Job after its scheduled time in minutes since the epoch.
    m = re.fullmatch(r"tick-(\d+)", job["metadata"]["name"])
    assert m, job["metadata"]["name"]
    scheduled = dt.datetime.fromtimestamp(int(m.group(1)) * 60, dt.UTC)
    assert last < scheduled <= dt.datetime.now(dt.UTC), (last, scheduled)
    cluster.kubectl("wait", "--for=condition=Complete", f"job/{job['metadata']['name']}", "-n", ns,
                    "--timeout=60s", timeout=70)
    cj = wait_until(lambda: (c := cluster.get("cronjob", "tick", "-n", ns))["status"].get("lastSuccessfulTime") and c,
                    30, "the CronJob to record the success")
    assert cj["status"]["lastScheduleTime"] == scheduled.strftime("%Y-%m-%dT%H:%M:%SZ"), cj["status"]
    assert not cj["status"].get("active"), cj["status"]


# --- placement ------------------------------------------------------------------------------------


def test_node_selector_and_required_node_affinity(cluster: Cluster, ns: str) -> None:
    # e2e-1 is the only node in zone-b; zone-a holds e2e-0 and e2e-3.
    cluster.apply(deployment("sel", 4, pod_extra={"nodeSelector": {ZONE: "zone-b"}}), ns)
    cluster.apply(deployment("aff", 6, pod_extra={"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": ZONE, "operator": "In", "values": ["zone-a"]}]}]}}}}), ns)
    sel = wait_running(cluster, ns, "app=sel", 4)
    assert {node_of(p) for p in sel} == {f"{FLEET_PREFIX}1"}
    aff = wait_running(cluster, ns, "app=aff", 6)
    assert {node_of(p) for p in aff} <= {f"{FLEET_PREFIX}0", f"{FLEET_PREFIX}3"}, Counter(map(node_of, aff))


def test_pod_anti_affinity_one_per_node(cluster: Cluster, ns: str) -> None:
    nodes = cluster.node_names()
    n = len(nodes)
    cluster.apply(deployment("solo", n + 1, pod_extra={"affinity": {"podAntiAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": "solo"}}, "topologyKey": HOSTNAME}]}}}), ns)

    def placed() -> tuple[list[Obj], list[Obj]] | None:
        pods = [p for p in cluster.pods(ns, "app=solo") if not p["metadata"].get("deletionTimestamp")]
        bound = [p for p in pods if node_of(p) and is_ready(p)]
        pending = [p for p in pods if not node_of(p)]
        return (bound, pending) if len(bound) == n and len(pending) == 1 else None
    bound, pending = wait_until(placed, 60, f"{n} pods placed and one Pending")
    assert sorted(node_of(p) for p in bound) == nodes
    name = pending[0]["metadata"]["name"]
    msgs = wait_until(lambda: [e["message"] for e in cluster.events_for(ns, name) if e["reason"] == "FailedScheduling"],
                      30, "a FailedScheduling event")
    assert f"0/{n} nodes are available: {n} node(s) didn't match pod anti-affinity rules." in msgs[-1], msgs


def test_topology_spread_across_zones(cluster: Cluster, ns: str) -> None:
    cluster.apply(deployment("spread", 7, pod_extra={"topologySpreadConstraints": [
        {"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
         "labelSelector": {"matchLabels": {"app": "spread"}}}]}), ns)
    pods = wait_running(cluster, ns, "app=spread", 7)
    zone_of = {n["metadata"]["name"]: n["metadata"]["labels"].get(ZONE) for n in cluster.items("nodes")}
    per_zone = Counter(zone_of[node_of(p)] for p in pods)
    assert sorted(per_zone.values()) == [2, 2, 3], per_zone
    assert set(per_zone) == {"zone-a", "zone-b", "zone-c"}


def test_taints_keep_untolerated_pods_off(cluster: Cluster, ns: str) -> None:
    tainted = [f"{FLEET_PREFIX}{i}" for i in range(1, FLEET_SIZE)]
    free = f"{FLEET_PREFIX}0"
    cluster.kubectl("taint", "nodes", *tainted, "e2e-dedicated=infra:NoSchedule")
    try:
        cluster.apply(deployment("plain", 6), ns)
        pods = wait_running(cluster, ns, "app=plain", 6)
        assert {node_of(p) for p in pods} == {free}, Counter(map(node_of, pods))
        toleration = {"key": "e2e-dedicated", "operator": "Equal", "value": "infra", "effect": "NoSchedule"}
        cluster.apply(bare_pod("tolerant", spec_extra={"nodeSelector": {HOSTNAME: tainted[0]},
                                                         "tolerations": [toleration]}), ns)
        cluster.apply(bare_pod("intolerant", spec_extra={"nodeSelector": {HOSTNAME: tainted[0]}}), ns)
        pod = wait_running(cluster, ns, "app=tolerant", 1)[0]
        assert node_of(pod) == tainted[0]
        msgs = wait_until(lambda: [e["message"] for e in cluster.events_for(ns, "intolerant")
                                   if e["reason"] == "FailedScheduling"], 30, "FailedScheduling for intolerant")
        # Each node reports the first filter that rejects it: TaintToleration runs before NodeAffinity.
        assert msgs[-1] == ("0/4 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
                            "3 node(s) had untolerated taint {e2e-dedicated: infra}. preemption: 0/4 nodes are "
                            "available: 4 Preemption is not helpful for scheduling."), msgs
        assert not node_of(cluster.get("pod", "intolerant", "-n", ns))
    finally:
        cluster.kubectl("taint", "nodes", *tainted, "e2e-dedicated=infra:NoSchedule-", check=False)


def test_unschedulable_pod_reports_failed_scheduling(cluster: Cluster, ns: str) -> None:
    n = len(cluster.node_names())
    cluster.apply(bare_pod("huge", cpu="100"), ns)
    want = (f"0/{n} nodes are available: {n} Insufficient cpu. "
            f"preemption: 0/{n} nodes are available: {n} No preemption victims found for incoming pod.")
    events = wait_until(lambda: [e for e in cluster.events_for(ns, "huge") if e["reason"] == "FailedScheduling"],
                        30, "a FailedScheduling event")
    assert events[-1]["message"] == want, events[-1]["message"]
    assert events[-1]["type"] == "Warning"
    pod = cluster.get("pod", "huge", "-n", ns)
    assert pod["status"]["phase"] == "Pending" and not node_of(pod)
    cond = [c for c in pod["status"].get("conditions") or [] if c["type"] == "PodScheduled"]
    assert cond and cond[0]["status"] == "False" and cond[0]["reason"] == "Unschedulable", cond
    described = cluster.kubectl("describe", "pod", "huge", "-n", ns).stdout
    assert "FailedScheduling" in described, described
    assert re.search(r"0/\d+ nodes are available: \d+ Insufficient cpu\. preemption:", described), described


# --- node failure ---------------------------------------------------------------------------------


def test_dead_node_is_tainted_and_its_pods_replaced(cluster: Cluster, ns: str, tmp_path: Path) -> None:
    doomed = "e2e-doomed-50"
    proc = HollowProcess(cluster.server.kubeconfig, tmp_path / "doomed.log", "--count", "1",
                         "--name-prefix", "e2e-doomed-", "--first-index", "50", "--zones", "zone-a",
                         "--lease-interval", "1", "--status-interval", "10")
    try:
        wait_until(lambda: doomed in cluster.node_names(), 30, "the doomed node", )
        cluster.kubectl("wait", "--for=condition=Ready", f"node/{doomed}", "--timeout=30s")
        tolerations = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
                        "tolerationSeconds": 2} for k in ("not-ready", "unreachable")]
        cluster.apply(deployment("victim", 3, pod_extra={"tolerations": tolerations, "affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "preference": {"matchExpressions": [
                {"key": HOSTNAME, "operator": "In", "values": [doomed]}]}}]}}}), ns)
        before = wait_running(cluster, ns, "app=victim", 3)
        on_doomed = {p["metadata"]["name"] for p in before if node_of(p) == doomed}
        assert on_doomed, f"no pod preferred {doomed}: {[node_of(p) for p in before]}"

        t0 = time.monotonic()
        proc.stop()  # the kubelet dies: no more Lease renewals or status
        def unknown() -> Obj | None:
            node = cluster.get("node", doomed)
            ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
            taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
            ok = ready and ready[0]["status"] == "Unknown" and \
                ("node.kubernetes.io/unreachable", "NoExecute") in taints
            return node if ok else None
        node = wait_until(unknown, 40, f"{doomed} Ready=Unknown with the unreachable taint")
        took = time.monotonic() - t0
        taints = {(t["key"], t["effect"]) for t in node["spec"]["taints"]}
        assert ("node.kubernetes.io/unreachable", "NoSchedule") in taints, taints

        # The pods there are evicted after their 2 s toleration and replaced on live nodes.
        def replaced() -> list[Obj] | None:
            pods = cluster.pods(ns, "app=victim")
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp") and is_ready(p)]
            gone = all(p["metadata"].get("deletionTimestamp") for p in pods if p["metadata"]["name"] in on_doomed)
            ok = gone and len(live) == 3 and all(node_of(p) != doomed for p in live)
            return live if ok else None
        wait_until(replaced, 40, "the pods on the dead node replaced elsewhere")
        reasons = {e["reason"] for name in on_doomed for e in cluster.events_for(ns, name)}
        assert "TaintManagerEviction" in reasons, reasons
        print(f"node Unknown + tainted {took:.1f}s after its heartbeats stopped")
    finally:
        proc.stop()
        cluster.kubectl("delete", "node", doomed, "--ignore-not-found", "--wait=false", check=False)


# --- deletion -------------------------------------------------------------------------------------


def test_namespace_deletion_takes_everything(cluster: Cluster) -> None:
    ns = "e2e-doomed-ns"
    cluster.kubectl("create", "namespace", ns)
    wait_until(lambda: cluster.exists("serviceaccount", "default", "-n", ns), 30, "the default ServiceAccount")
    cluster.apply(deployment("app", 5), ns)
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"a": "b"}}, ns)
    cluster.apply({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"},
                   "spec": {"selector": {"app": "app"}, "ports": [{"port": 80}]}}, ns)
    cluster.apply({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
                   "spec": {"template": {"spec": {"restartPolicy": "Never",
                                                  "containers": [{"name": "c", "image": "example.com/j"}]}}}}, ns)
    wait_running(cluster, ns, "app=app", 5)
    res = cluster.kubectl("delete", "namespace", ns, "--timeout=90s", timeout=100)
    assert f'namespace "{ns}" deleted' in res.stdout
    assert not cluster.exists("namespace", ns)
    for kind in ("pods", "deployments", "replicasets", "jobs", "services", "configmaps", "endpoints",
                 "serviceaccounts", "events"):
        left = cluster.kubectl("get", kind, "-n", ns, "-o", "name").stdout.split()
        assert not left, (kind, left)


def gc_caught_up(cluster: Cluster, ns: str) -> None:
    """Wait until the garbage collector has handled what happened so far: a ConfigMap whose owner
    never existed is collected only after the collector's graph has taken in the earlier events
    (its queues are FIFO), as tests/controllers/test_garbagecollector.py's ``caught_up``."""
    name = f"gc-sentinel-{next(_GC_SENTINELS)}"
    cluster.apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "nobody", "uid": "00000000-0000-0000-0000-00000000dead"}]}},
        ns)
    wait_until(lambda: not cluster.exists("configmap", name, "-n", ns), 30, "the collector caught up (sentinel collected)")


_GC_SENTINELS = itertools.count()


def test_foreground_deletion_removes_dependents_first(cluster: Cluster, ns: str) -> None:
    cluster.apply(deployment("fg", 3), ns)
    pods = wait_running(cluster, ns, "app=fg", 3)
    held = pods[0]["metadata"]["name"]
    # A finalizer of our own keeps one pod in existence, so the window is not a race.
    cluster.kubectl("patch", "pod", held, "-n", ns, "--type=merge",
                    "-p", '{"metadata":{"finalizers":["e2e.kybernetes.io/hold"]}}')
    cluster.kubectl("delete", "deployment", "fg", "-n", ns, "--cascade=foreground", "--wait=false")

    def waiting() -> Obj | None:
        dep = cluster.get("deployment", "fg", "-n", ns)
        others = [p for p in cluster.pods(ns, "app=fg") if p["metadata"]["name"] != held]
        ok = dep["metadata"].get("deletionTimestamp") and not others
        return dep if ok else None
    dep = wait_until(waiting, 30, "the Deployment terminating with only the held pod left")
    assert "foregroundDeletion" in dep["metadata"].get("finalizers", []), dep["metadata"]
    assert cluster.get("pod", held, "-n", ns)["metadata"].get("deletionTimestamp")
    # The owner must keep waiting while a dependent exists, not just at one instant: once the
    # collector has caught up with everything written so far, it still has not removed it.
    gc_caught_up(cluster, ns)
    assert cluster.exists("deployment", "fg", "-n", ns)
    rss = cluster.items("replicasets", "-n", ns, "-l", "app=fg")
    assert rss and all(r["metadata"].get("deletionTimestamp") for r in rss), rss

    cluster.kubectl("patch", "pod", held, "-n", ns, "--type=json",
                    "-p", '[{"op":"remove","path":"/metadata/finalizers"}]')
    wait_until(lambda: not cluster.exists("deployment", "fg", "-n", ns), 30, "the Deployment gone")
    assert not cluster.items("replicasets", "-n", ns, "-l", "app=fg")
    assert not cluster.pods(ns, "app=fg")


# --- leader election ------------------------------------------------------------------------------


class Component:
    """A ``kyb controller-manager`` or ``kyb scheduler`` process of this test."""

    def __init__(self, name: str, args: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "kybernetes.cli", *args], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    def logged(self, text: str) -> bool:
        return text in self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def test_killed_leaders_are_replaced(tmp_path: Path) -> None:
    require_kubectl()
    # A server of its own without its own controller manager and scheduler: every candidate for the
    # leases is a process this test started, so killing the leader kills nothing else.
    srv = ServerProcess.start(tmp_path / "data", "--disable-controller-manager", "--disable-scheduler")
    procs: list[Component] = []
    fleet: HollowProcess | None = None
    try:
        kc = str(srv.kubeconfig)
        fleet = HollowProcess(srv.kubeconfig, tmp_path / "hollow.log", "--count", "2", "--name-prefix", "le-",
                              "--lease-interval", "2")
        sched_cfg = tmp_path / "scheduler.yaml"
        sched_cfg.write_text(
            "apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\n"
            f"clientConnection:\n  kubeconfig: {kc}\n"
            "leaderElection:\n  leaderElect: true\n  leaseDuration: 4s\n  renewDeadline: 3s\n  retryPeriod: 1s\n")
        for i in range(2):
            # Each on a free secure port of loopback: Kubernetes' fixed ports would let only one bind.
            procs.append(Component(f"kcm-{i}", [
                "controller-manager", "--kubeconfig", kc, "-v", "--leader-elect-lease-duration", "4s",
                "--leader-elect-renew-deadline", "3s", "--leader-elect-retry-period", "1s",
                "--bind-address", "127.0.0.1", "--secure-port", str(free_port())],
                tmp_path / f"kcm-{i}.log"))
            procs.append(Component(f"sched-{i}", ["scheduler", "--config", str(sched_cfg), "-v",
                                                  "--bind-address", "127.0.0.1", "--secure-port", str(free_port())],
                                   tmp_path / f"sched-{i}.log"))

        def holder(lease: str) -> str:
            res = srv.kubectl("get", "lease", lease, "-n", "kube-system", "-o", "json", check=False)
            return str(json.loads(res.stdout)["spec"].get("holderIdentity") or "") if res.returncode == 0 else ""

        def leader(lease: str, kind: str) -> tuple[str, Component] | None:
            ident = holder(lease)
            owners = [p for p in procs if p.name.startswith(kind) and p.proc.poll() is None and ident
                      and p.logged(ident)]
            return (ident, owners[0]) if len(owners) == 1 else None

        def deployment_runs(name: str) -> None:
            srv.kubectl("apply", "-f", "-", input=json.dumps(deployment(name, 3)))
            wait_until(lambda: len([p for p in json.loads(srv.kubectl("get", "pods", "-l", f"app={name}", "-o",
                                                                        "json").stdout)["items"]
                                    if is_ready(p)]) == 3, 45, f"deployment {name} running")

        wait_until(lambda: srv.kubectl("get", "serviceaccount", "default", check=False).returncode == 0, 30,
                   "the default ServiceAccount")
        deployment_runs("before")
        def failover(lease: str, kind: str) -> None:
            ident, old = wait_until(lambda: leader(lease, kind), 30, f"the {lease} leader identified")
            old.stop(signal.SIGKILL)  # a crash: the lease is not released, it must expire
            t0 = time.monotonic()
            _, new = wait_until(lambda: holder(lease) not in ("", ident) and leader(lease, kind),
                                15, f"another process to take {lease}")
            took = time.monotonic() - t0
            assert new is not old and new.proc.poll() is None
            print(f"{lease}: {new.name} took over {took:.1f}s after {old.name} was killed")

        failover("kube-controller-manager", "kcm")
        failover("kube-scheduler", "sched")
        deployment_runs("after")  # the surviving controller manager and scheduler reconcile
    finally:
        for p in procs:
            p.stop()
        if fleet is not None:
            fleet.stop()
        srv.stop()

