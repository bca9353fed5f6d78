"""Kubernetes' API SLOs at 5,000 hollow nodes and 150,000 pods on one API server (issue 18).

Run from the repository root::

    nice -n 10 .venv/bin/python -m bench.slo                       # 5,000 nodes, 150,000 pods (30 x 5,000)
    .venv/bin/python -m bench.slo --nodes 500 --pods 5000          # a tenth of the nodes, 1/30 of the pods
    .venv/bin/python -m bench.slo --quick                          # 50 nodes, 500 pods (smoke test, ~1 min)

What is measured
----------------
A real ``kyb server`` (API server, kube-scheduler, kube-controller-manager; no agent; fresh data
dir) and ``kyb hollow-nodes`` processes (at most ``--nodes-per-fleet`` nodes each, default one
process: each caches every pod in the cluster, ~20 KB a pod, so five fleets held 9 GB at 100,000
pods) with the
scheduler benchmark's node shape and heartbeat settings (:mod:`bench.scheduler`: Leases every 100 s,
status every 300 s, so 5,000 nodes renew 50 Leases/s where Kubernetes' default 10 s would be 500/s).
This process creates ``--pods`` pause pods (10m CPU, 50Mi: the density test's small pods) through
the API, round robin over ``--namespaces`` namespaces, at a steady ``--rate`` with at most
``--concurrency`` creates in flight; the scheduler binds them and the hollow nodes report them
Running (a cluster-wide watch here sees both). Meanwhile, sampled at fixed rates: GETs of single
pods already created, merge PATCHes of a label on them, and creates + DELETEs (grace 0) of extra
``churn-`` pods. At the end, unpaginated LISTs of all pods cluster-wide and of one namespace, each
``--lists`` times.

The SLIs are Kubernetes' (kubernetes/community ``sig-scalability/slos/api_call_latency.md``):
latency from the API server receiving a request to the last byte of its answer, watches excluded;
mutating calls (POST, PUT, PATCH, DELETE) for single objects per (resource, verb), goal p99 <= 1 s;
non-streaming read-only calls (GET, LIST) per (resource, scope), goal p99 <= 1 s for a single
object, <= 5 s in a namespace, <= 30 s cluster-wide. They are read from the server's own
``apiserver_request_duration_seconds`` histogram (every client's calls: the scheduler's, the
controllers', the hollow nodes', this process's), p99 interpolated in its buckets as Prometheus'
``histogram_quantile`` does, over the whole run (Kubernetes: over 5-minute windows, p99 per
cluster-day) and per third of the pods; the verdict takes the worst (resource, subresource, verb)
pair with at least :data:`MIN_CALLS` calls. This process's own timings (request sent -> answer read,
so they include the client) are shown beside them, and are the LIST figures (time to the last byte).

Also: the API server's RSS and its process tree's (with the scheduler and controller manager), the
hollow nodes' and this process's, at 0 pods and after each third of the creates, and once all pods
are Running; total time; the API server's CPU per pod (whole run and per third, which shows a cost
growing with the store); create -> Running p50/p99; the machine's load average at every step and
its free memory (the run stops early if it falls under ``--min-free-gib``).

Results: a table with each goal and PASS/MISS, and ``bench/results/slo.json`` (written after every
step, so a run cut short still leaves its figures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.calibration import calibrate, units
from bench.procstat import kyb_cpu_seconds, tree_rss
from bench.scheduler import (
    LEASE_INTERVAL,
    NODE_MONITOR_GRACE,
    STATUS_INTERVAL,
    Fleet,
    make_namespace,
    pctl,
    wait_nodes,
)
from kybernetes import aiorun, errors
from kybernetes.client.rest import Client
from kybernetes.testing import ServerProcess

Obj = dict[str, Any]
Hist = dict[tuple[str, str, str, str], dict[float, float]]
"""(resource, subresource, verb, scope) -> cumulative count per bucket bound (le)."""

PREFIX = "slo-"
MUTATING = ("POST", "PUT", "PATCH", "DELETE", "APPLY")
MIN_CALLS = 50
GOAL_MUTATING_S, GOAL_GET_S, GOAL_LIST_NS_S, GOAL_LIST_CLUSTER_S = 1.0, 1.0, 5.0, 30.0
SAMPLE_PERIODS = {"get": 0.2, "patch": 1.0, "churn": 2.0}
"""Seconds between sampled calls of each kind, while the pods are created and until they run."""


# --- the server's request-duration histogram -------------------------------------------------------

def parse_durations(text: str) -> Hist:
    """``apiserver_request_duration_seconds`` buckets from a ``/metrics`` page, summed over groups
    and versions (and components) per (resource, subresource, verb, scope)."""
    out: Hist = {}
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request_duration_seconds":
            continue
        for s in family.samples:
            if not s.name.endswith("_bucket"):
                continue
            lab = s.labels
            key = (lab.get("resource", ""), lab.get("subresource", ""), lab.get("verb", ""), lab.get("scope", ""))
            le = float(lab["le"])
            buckets = out.setdefault(key, {})
            buckets[le] = buckets.get(le, 0.0) + s.value
    return out


def hist_diff(after: Hist, before: Hist) -> Hist:
    out: Hist = {}
    for key, buckets in after.items():
        old = before.get(key, {})
        diff = {le: n - old.get(le, 0.0) for le, n in buckets.items()}
        if diff.get(float("inf"), 0.0) > 0:
            out[key] = diff
    return out


def hist_quantile(q: float, buckets: dict[float, float]) -> float:
    """Prometheus' ``histogram_quantile``: linear within the bucket; the highest finite bound if the
    quantile falls in the +Inf bucket."""
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return 0.0
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for b in bounds:
        count = buckets[b]
        if count >= rank:
            if b == float("inf"):
                return prev_bound
            return prev_bound + (b - prev_bound) * (rank - prev_count) / max(1e-12, count - prev_count)
        prev_bound, prev_count = b, count
    return prev_bound


def sli_rows(hist: Hist) -> list[Obj]:
    """One row per (resource, subresource, verb, scope) that is an SLI: calls, p50, p99 (seconds)."""
    rows = []
    for (res, sub, verb, scope), buckets in sorted(hist.items()):
        mutating = verb in MUTATING and scope == "resource"
        if not (mutating or verb in ("GET", "LIST")) or not res:
            continue
        if sub in ("log", "exec", "attach", "portforward", "proxy"):
            continue
        rows.append({"resource": res, "subresource": sub, "verb": verb, "scope": scope,
                     "kind": "mutating" if mutating else "read", "calls": int(buckets[float("inf")]),
                     "p50_s": round(hist_quantile(0.5, buckets), 4), "p99_s": round(hist_quantile(0.99, buckets), 4)})
    return rows


def sli_name(row: Obj) -> str:
    return f"{row['resource']}{'/' + row['subresource'] if row['subresource'] else ''} {row['verb']}"


def worst(rows: list[Obj], kind: str, scope: str | None = None) -> Obj | None:
    cands = [r for r in rows if r["kind"] == kind and (scope is None or r["scope"] == scope)
             and r["calls"] >= MIN_CALLS]
    return max(cands, key=lambda r: r["p99_s"], default=None)


# --- the run ---------------------------------------------------------------------------------------

def pod_manifest(name: str, ns: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns, "labels": {"app": "slo"}},
            "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "10m", "memory": "50Mi"}}}],
                     "terminationGracePeriodSeconds": 0}}


def mem_available_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 2**20
    return 0.0


def mib(n: int) -> float:
    return round(n / 2**20, 1)


class SloRun:
    """One run: the server, the fleets, the pods, and everything measured (:attr:`res`)."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.namespaces = [f"{PREFIX}{k}" for k in range(args.namespaces)]
        self.created: dict[str, float] = {}  # ns/name -> when its create was sent
        self.bound: dict[str, float] = {}
        self.running: dict[str, float] = {}
        self.answered: list[str] = []  # ns/name of each pod whose create succeeded, in order
        self.client_lat: dict[str, list[float]] = {}
        self.errors: dict[str, int] = {}
        self.stop = asyncio.Event()
        self.note = ""
        self.res: Obj = {"started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                         "command": " ".join(sys.argv), "machine": {"cpus": os.cpu_count(),
                                                                     "python": platform.python_version(),
                                                                     "platform": platform.platform()},
                         "settings": {k: v for k, v in vars(args).items() if k != "out"},
                         "heartbeats": {"lease_interval_s": LEASE_INTERVAL, "status_interval_s": STATUS_INTERVAL,
                                        "node_monitor_grace_period": NODE_MONITOR_GRACE},
                         "snapshots": [], "phases": [], "lists": {}, "min_free_gib": None}
        self.hists: list[Hist] = []

    def timed(self, kind: str, seconds: float) -> None:
        self.client_lat.setdefault(kind, []).append(seconds)

    def failed(self, kind: str, e: BaseException) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if self.errors[kind] <= 3:
            print(f"    {kind}: {type(e).__name__}: {e}", flush=True)

    def write(self) -> None:
        out = Path(self.args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        self.res["client_latency"] = {k: {"calls": len(v), "p50_s": round(pctl(v, 0.5), 4),
                                          "p99_s": round(pctl(v, 0.99), 4)} for k, v in self.client_lat.items()}
        self.res["errors"], self.res["note"] = self.errors, self.note
        out.write_text(json.dumps(self.res, indent=2) + "\n")

    # -- snapshots ---------------------------------------------------------------------------------

    async def snapshot(self, label: str) -> Obj:
        """RSS, CPU, counts, load and the server's histogram now (also kept in :attr:`hists`)."""
        text = await self.client.request("GET", "/metrics")
        hist = parse_durations(text if isinstance(text, str) else "")
        api_pid = self.srv.proc.pid
        tree, per = tree_rss(api_pid)
        api_rss = per.get("kyb server", 0)  # one such process in the tree: the API server
        fleets = sum(tree_rss(f.proc.pid)[0] for f in self.fleets)
        cpu = kyb_cpu_seconds(api_pid)
        snap = {"label": label, "t_s": round(time.monotonic() - self.t0, 1), "created": len(self.created),
                "bound": len(self.bound), "running": len(self.running),
                "api_server_rss_mib": mib(api_rss), "server_tree_rss_mib": mib(tree),
                "server_tree_rss_by_process_mib": {k: mib(v) for k, v in sorted(per.items())},
                "hollow_nodes_rss_mib": mib(fleets),
                "bench_max_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "api_server_cpu_s": round(cpu.get("kyb server", 0.0), 2),
                "cpu_s_by_process": {k: round(v, 2) for k, v in sorted(cpu.items())},
                "free_gib": round(mem_available_gib(), 2), "loadavg": [round(x, 2) for x in os.getloadavg()]}
        self.hists.append(hist)
        self.res["snapshots"].append(snap)
        print(f"  [{snap['t_s']:7.1f}s] {label}: created {snap['created']}, bound {snap['bound']}, running "
              f"{snap['running']}; API server RSS {snap['api_server_rss_mib']} MiB (tree {snap['server_tree_rss_mib']}, "
              f"hollow {snap['hollow_nodes_rss_mib']}), CPU {snap['api_server_cpu_s']} s; free {snap['free_gib']} GiB; "
              f"load {snap['loadavg']}", flush=True)
        if len(self.hists) >= 2:
            prev = self.res["snapshots"][-2]
            pods = snap["created"] - prev["created"]
            rows = sli_rows(hist_diff(hist, self.hists[-2]))
            phase = {"from": prev["label"], "to": label, "pods": pods, "seconds": round(snap["t_s"] - prev["t_s"], 1),
                     "api_server_cpu_ms_per_pod": round(1000 * (snap["api_server_cpu_s"] - prev["api_server_cpu_s"])
                                                        / pods, 2) if pods > 0 else None,
                     "worst_mutating": worst(rows, "mutating"), "worst_get": worst(rows, "read", "resource"),
                     "pods_post": next((r for r in rows if (r["resource"], r["verb"], r["subresource"])
                                        == ("pods", "POST", "")), None)}
            self.res["phases"].append(phase)
            wm, pp = phase["worst_mutating"], phase["pods_post"]
            print(f"    phase {prev['label']} -> {label}: {pods} pods in {phase['seconds']} s, API server "
                  f"{phase['api_server_cpu_ms_per_pod']} CPU ms/pod; pods POST p99 {pp and pp['p99_s']} s; worst "
                  f"mutating p99 {wm and sli_name(wm) + ' ' + str(wm['p99_s'])} s", flush=True)
        self.write()
        return snap

    # -- background tasks --------------------------------------------------------------------------

    async def memory_guard(self) -> None:
        low = float("inf")
        while True:
            free = mem_available_gib()
            low = min(low, free)
            self.res["min_free_gib"] = round(low, 2)
            if free < self.args.min_free_gib and not self.stop.is_set():
                self.note = f"stopped: machine memory available {free:.2f} GiB < {self.args.min_free_gib} GiB"
                print(f"  {self.note}", flush=True)
                self.stop.set()
            await asyncio.sleep(2.0)

    async def watch_pods(self) -> None:
        """Record when each measured pod is first seen bound and Running (cluster-wide watch)."""
        rv = str((await self.client.list("v1", "pods", limit=1))["metadata"]["resourceVersion"])
        self.watching.set()
        while True:
            try:
                async for ev in self.client.watch("v1", "pods", resource_version=rv, timeout_seconds=600):
                    obj = ev.object
                    meta = obj.get("metadata") or {}
                    rv = str(meta.get("resourceVersion") or rv)
                    key = f"{meta.get('namespace')}/{meta.get('name')}"
                    if ev.type == "DELETED" or key not in self.created:
                        continue
                    now = time.monotonic()
                    if (obj.get("spec") or {}).get("nodeName"):
                        self.bound.setdefault(key, now)
                    if (obj.get("status") or {}).get("phase") == "Running":
                        self.running.setdefault(key, now)
            except errors.Gone:  # fell behind the store's history: catch up from a fresh listing
                items, rv = await self.client.list_all("v1", "pods")
                now = time.monotonic()
                for obj in items:
                    key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
                    if key in self.created and (obj.get("spec") or {}).get("nodeName"):
                        self.bound.setdefault(key, now)
                    if key in self.created and (obj.get("status") or {}).get("phase") == "Running":
                        self.running.setdefault(key, now)
            except ConnectionError as e:
                self.failed("watch", e)
                await asyncio.sleep(1.0)

    async def sampler(self, kind: str) -> None:
        """One sampled call every ``SAMPLE_PERIODS[kind]`` seconds, one at a time, until stopped."""
        churn: deque[tuple[str, str]] = deque()
        k = 0
        while not self.sampling_done.is_set():
            await asyncio.sleep(SAMPLE_PERIODS[kind])
            try:
                if kind in ("get", "patch") and self.answered:
                    ns, name = self.pick_created().split("/", 1)
                    t = time.monotonic()
                    if kind == "get":
                        await self.client.get("v1", "pods", name, ns)
                    else:
                        await self.client.patch("v1", "pods", name, {"metadata": {"labels": {"sampled": str(k)}}}, ns)
                    self.timed(f"{kind} pod", time.monotonic() - t)
                elif kind == "churn":
                    ns = self.namespaces[k % len(self.namespaces)]
                    t = time.monotonic()
                    await self.client.create("v1", "pods", pod_manifest(f"churn-{k}", ns), ns)
                    self.timed("create pod (churn)", time.monotonic() - t)
                    churn.append((ns, f"churn-{k}"))
                    if len(churn) > 5:  # deleted ~10 s after its create: bound, and likely Running
                        dns, dname = churn.popleft()
                        t = time.monotonic()
                        await self.client.delete("v1", "pods", dname, dns, grace_period_seconds=0)
                        self.timed("delete pod", time.monotonic() - t)
            except (errors.StatusError, ConnectionError) as e:
                self.failed(kind, e)
            k += 1

    def pick_created(self) -> str:
        """A random pod among those whose create was answered."""
        return random.choice(self.answered)

    # -- phases ------------------------------------------------------------------------------------

    async def create_pods(self) -> None:
        """``--pods`` creates at ``--rate`` per second, at most ``--concurrency`` in flight, round robin
        over the namespaces; a snapshot after each third."""
        args = self.args
        sem = asyncio.Semaphore(args.concurrency)
        inflight: set[asyncio.Task[None]] = set()
        marks = {args.pods * k // 3: f"{args.pods * k // 3} created" for k in (1, 2, 3)}
        done = 0

        async def create(i: int) -> None:
            nonlocal done
            ns = self.namespaces[i % len(self.namespaces)]
            name = f"p-{i // len(self.namespaces)}"
            try:
                self.created[f"{ns}/{name}"] = t = time.monotonic()
                await self.client.create("v1", "pods", pod_manifest(name, ns), ns)
                self.timed("create pod", time.monotonic() - t)
                self.answered.append(f"{ns}/{name}")
            except (errors.StatusError, ConnectionError) as e:
                self.created.pop(f"{ns}/{name}", None)
                self.failed("create", e)
            finally:
                sem.release()
                done += 1

        start = time.monotonic()
        for i in range(args.pods):
            if self.stop.is_set() or time.monotonic() - self.t0 > args.budget:
                self.note = self.note or f"stopped by --budget {args.budget:.0f} s after {i} creates"
                break
            delay = start + i / args.rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await sem.acquire()
            task = asyncio.create_task(create(i))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            if (i + 1) in marks and (i + 1) != args.pods:
                await self.snapshot(marks[i + 1])
        if inflight:
            await asyncio.gather(*inflight)
        took = time.monotonic() - start
        self.res["creates"] = {"sent": done, "created": len(self.created), "seconds": round(took, 1),
                               "per_s": round(len(self.created) / max(1e-9, took), 1)}
        print(f"  creates done: {len(self.created)} in {took:.1f} s ({self.res['creates']['per_s']}/s)", flush=True)

    async def wait_running(self) -> None:
        deadline = time.monotonic() + self.args.settle
        while len(self.running) < len(self.created) and not self.stop.is_set():
            if time.monotonic() > deadline or time.monotonic() - self.t0 > self.args.budget + self.args.settle:
                self.note = self.note or (f"only {len(self.running)}/{len(self.created)} Running after "
                                          f"{self.args.settle:.0f} s of settling")
                print(f"  {self.note}", flush=True)
                return
            await asyncio.sleep(0.5)

    async def timed_list(self, namespace: str) -> Obj:
        """An unpaginated LIST of pods: seconds to the last byte, bytes, items (``"uid"`` keys counted,
        one per pod: the body is not decoded)."""
        path = f"/api/v1/namespaces/{namespace}/pods" if namespace else "/api/v1/pods"
        t = time.monotonic()
        size, items = 0, 0
        tail = b""
        async with self.client.stream(path) as chunks:
            async for chunk in chunks:
                size += len(chunk)
                buf = tail + chunk
                items += buf.count(b'"uid":"') - tail.count(b'"uid":"')
                tail = buf[-8:]
        took = time.monotonic() - t
        self.timed("list pods (cluster)" if not namespace else "list pods (namespace)", took)
        return {"seconds": round(took, 3), "mib": mib(size), "items": items}

    async def lists(self) -> None:
        if mem_available_gib() < self.args.min_free_gib:  # a LIST's body costs the server memory too
            self.note += "; LISTs skipped: machine memory low"
            return
        for scope, ns in (("cluster", ""), ("namespace", self.namespaces[0])):
            runs = []
            for _ in range(self.args.lists):
                try:
                    runs.append(await self.timed_list(ns))
                except (errors.StatusError, ConnectionError) as e:
                    self.failed(f"list {scope}", e)
            self.res["lists"][scope] = runs
            print(f"  LIST pods ({scope}{' ' + ns if ns else ''}): "
                  + ", ".join(f"{r['seconds']} s ({r['items']} items, {r['mib']} MiB)" for r in runs), flush=True)

    async def run(self) -> None:
        args = self.args
        self.srv = ServerProcess.start(self.work / "data", "--kube-controller-manager-arg",
                                       f"node-monitor-grace-period={NODE_MONITOR_GRACE}", control_plane=True, timeout=90)
        self.res["api_server_pid"] = self.srv.proc.pid
        print(f"kyb server pid {self.srv.proc.pid}; log {self.srv.log_path}", flush=True)
        self.client = Client.from_kubeconfig(self.srv.kubeconfig, user_agent="bench-slo")
        self.fleets: list[Fleet] = []
        self.t0 = time.monotonic()
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(self.memory_guard())]
        self.watching, self.sampling_done = asyncio.Event(), asyncio.Event()
        try:
            for first in range(0, args.nodes, args.nodes_per_fleet):
                count = min(args.nodes_per_fleet, args.nodes - first)
                self.fleets.append(Fleet(self.srv.kubeconfig, self.work / f"hollow-{first}.log", count, first, PREFIX,
                                         "--lease-interval", str(LEASE_INTERVAL), "--status-interval",
                                         str(STATUS_INTERVAL), "--concurrency", "64"))
            took = await wait_nodes(self.client, PREFIX, args.nodes, timeout=max(120.0, args.nodes / 5))
            self.res["nodes_ready_s"] = round(took, 1)
            print(f"{args.nodes} nodes Ready in {took:.1f} s ({len(self.fleets)} hollow-nodes processes)", flush=True)
            for ns in self.namespaces:
                await make_namespace(self.client, ns)
            tasks.append(asyncio.create_task(self.watch_pods()))
            await self.watching.wait()
            await self.snapshot("0 pods")
            t_start = time.monotonic()
            tasks += [asyncio.create_task(self.sampler(kind)) for kind in SAMPLE_PERIODS]
            await self.create_pods()
            await self.wait_running()
            self.sampling_done.set()
            pod_s = time.monotonic() - t_start
            lat = [self.running[k] - self.created[k] for k in self.running if k in self.created]
            self.res["pods"] = {"created": len(self.created), "bound": len(self.bound), "running": len(self.running),
                                "seconds_to_all_running": round(pod_s, 1),
                                "create_to_running_p50_s": round(pctl(lat, 0.5), 3),
                                "create_to_running_p99_s": round(pctl(lat, 0.99), 3)}
            await self.snapshot(f"{len(self.running)} Running")
            await self.lists()
            await self.snapshot("after LISTs")
        finally:
            for t in tasks:
                t.cancel()
                with contextlib.suppress(BaseException):
                    await t
            await self.client.close()
            for f in self.fleets:
                f.stop()
            self.srv.stop()


# --- verdicts and the table -----------------------------------------------------------------------

def summarize(run: SloRun) -> None:
    res = run.res
    first, last = (run.hists[0], run.hists[-1]) if run.hists else ({}, {})
    rows = sli_rows(hist_diff(last, first))
    res["sli_whole_run"] = rows
    snaps = res["snapshots"]
    api_cpu = snaps[-1]["api_server_cpu_s"] - snaps[0]["api_server_cpu_s"] if len(snaps) >= 2 else 0.0
    pods = len(run.created)
    res["api_server_cpu_ms_per_pod"] = round(1000 * api_cpu / pods, 2) if pods else None
    res["total_s"] = round(time.monotonic() - run.t0, 1)
    goals = []

    def add(figure: str, value: float | None, goal: float, detail: str) -> None:
        goals.append({"figure": figure, "value_s": value, "goal_s": goal, "detail": detail,
                      "verdict": "n/a" if value is None else ("PASS" if value <= goal else "MISS")})

    wm = worst(rows, "mutating")
    add("p99 mutating API call latency, worst (resource, verb)", wm and wm["p99_s"], GOAL_MUTATING_S,
        f"{sli_name(wm)}, {wm['calls']} calls"
        if wm else f"no pair with >= {MIN_CALLS} calls")
    wg = worst(rows, "read", "resource")
    add("p99 GET of a single object, worst resource", wg and wg["p99_s"], GOAL_GET_S,
        f"{sli_name(wg)}, {wg['calls']} calls"
        if wg else f"no resource with >= {MIN_CALLS} GETs")
    for scope, goal in (("cluster", GOAL_LIST_CLUSTER_S), ("namespace", GOAL_LIST_NS_S)):
        runs = res["lists"].get(scope) or []
        v = max((r["seconds"] for r in runs), default=None)
        add(f"LIST of all pods, scope={scope} (slowest of {len(runs)}, to the last byte)", v, goal,
            f"{runs[0]['items']} pods, {runs[0]['mib']} MiB" if runs else "not run")
    res["goals"] = goals
    res["calibration_units"] = {"api_server_cpu_per_pod": round(units(res["api_server_cpu_ms_per_pod"] or 0,
                                                                      res["calibration_ms"]), 4)}


def table(run: SloRun) -> str:
    res = run.res
    cal = res["calibration_ms"]
    lines = ["", f"{res['settings']['nodes']} hollow nodes, {len(run.created)} pods created "
                 f"({res.get('pods', {}).get('running', 0)} Running) in {len(run.namespaces)} namespaces; "
                 f"total {res.get('total_s')} s; load {res['load']}", "",
             "| goal (issue 18, Kubernetes SLO) | measured | goal | |", "|---|---|---|---|"]
    for g in res.get("goals", []):
        v = "-" if g["value_s"] is None else f"{g['value_s']:.3f} s"
        lines.append(f"| {g['figure']} | {v} ({g['detail']}) | <= {g['goal_s']:g} s | {g['verdict']} |")
    lines += ["", "Server-side SLIs over the whole run (apiserver_request_duration_seconds, >= 1 call):", "",
              "| resource | subresource | verb | scope | calls | p50 s | p99 s |", "|---|---|---|---|---:|---:|---:|"]
    for r in sorted(res.get("sli_whole_run", []), key=lambda r: -r["calls"]):
        lines.append(f"| {r['resource']} | {r['subresource']} | {r['verb']} | {r['scope']} | {r['calls']} | "
                     f"{r['p50_s']} | {r['p99_s']} |")
    lines += ["", "Client-side (this process, request sent -> answer read):", "",
              "| call | calls | p50 s | p99 s |", "|---|---:|---:|---:|"]
    for k, v in sorted(run.client_lat.items()):
        lines.append(f"| {k} | {len(v)} | {pctl(v, 0.5):.4f} | {pctl(v, 0.99):.4f} |")
    lines += ["", "| step | t s | created | running | API server RSS MiB | server tree MiB | hollow nodes MiB | "
                  "API server CPU s | free GiB | load |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in res["snapshots"]:
        lines.append(f"| {s['label']} | {s['t_s']} | {s['created']} | {s['running']} | {s['api_server_rss_mib']} | "
                     f"{s['server_tree_rss_mib']} | {s['hollow_nodes_rss_mib']} | {s['api_server_cpu_s']} | "
                     f"{s['free_gib']} | {s['loadavg']} |")
    lines += ["", "| phase | pods | s | API server CPU ms/pod | pods POST p99 s | worst mutating p99 |",
              "|---|---:|---:|---:|---:|---|"]
    for p in res["phases"]:
        pp, wm = p["pods_post"], p["worst_mutating"]
        lines.append(f"| {p['from']} -> {p['to']} | {p['pods']} | {p['seconds']} | {p['api_server_cpu_ms_per_pod']} | "
                     f"{pp and pp['p99_s']} | {wm and sli_name(wm) + ' ' + str(wm['p99_s'])} |")
    pods = res.get("pods", {})
    lines.append(f"\nAPI server CPU per pod: {res.get('api_server_cpu_ms_per_pod')} ms "
                 f"({res['calibration_units']['api_server_cpu_per_pod']} cu); create -> Running p50 "
                 f"{pods.get('create_to_running_p50_s')} s, p99 {pods.get('create_to_running_p99_s')} s; "
                 f"errors {run.errors or 'none'}; lowest free memory {res['min_free_gib']} GiB")
    if run.note:
        lines.append(f"note: {run.note}")
    lines.append(f"calibration: {cal:.1f} ms (bench.calibration)")
    return "\n".join(lines)


async def amain(args: argparse.Namespace) -> SloRun:
    cal = round(calibrate(), 1)
    load = os.getloadavg()
    print(f"calibration: {cal:.1f} ms (bench.calibration); load average {load}; free {mem_available_gib():.1f} GiB",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="kyb-bench-slo-", dir=args.tmp_dir) as d:
        run = SloRun(args, Path(d))
        run.res["calibration_ms"], run.res["load"] = cal, {"start": [round(x, 2) for x in load]}
        try:
            await run.run()
        finally:
            run.res["load"]["end"] = [round(x, 2) for x in os.getloadavg()]
            if run.hists:
                summarize(run)
            run.write()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=150_000)
    ap.add_argument("--namespaces", type=int, default=30)
    ap.add_argument("--rate", type=float, default=100.0, help="pod creates per second (steady)")
    ap.add_argument("--concurrency", type=int, default=32, help="pod creates in flight at most")
    ap.add_argument("--nodes-per-fleet", type=int, default=5000,
                    help="hollow nodes per kyb hollow-nodes process (each process caches every pod: ~20 KB a pod)")
    ap.add_argument("--lists", type=int, default=3, help="LISTs of each scope at the end")
    ap.add_argument("--budget", type=float, default=3600.0, help="seconds from the server's start to stop creating")
    ap.add_argument("--settle", type=float, default=600.0, help="seconds to wait for the pods to run after the creates")
    ap.add_argument("--min-free-gib", type=float, default=3.0, help="stop if the machine's free memory falls below")
    ap.add_argument("--quick", action="store_true", help="50 nodes, 500 pods in 5 namespaces (smoke test)")
    ap.add_argument("--tmp-dir", default=None)
    ap.add_argument("--out", default="bench/results/slo.json")
    args = ap.parse_args()
    if args.quick:
        args.nodes, args.pods, args.namespaces, args.lists = 50, 500, 5, 2
    if args.pods > args.nodes * 110:
        ap.error(f"{args.pods} pods do not fit on {args.nodes} nodes of 110 pods")
    run = aiorun.run(amain(args))
    print(table(run))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
