"""The scheduling cycle's CPU per pod, in process: a load-independent companion to bench.scheduler.

Run from the repository root::

    .venv/bin/python -m bench.schedule_cycle                       # 5,000 nodes, 1,000 pods, 5 rounds
    .venv/bin/python -m bench.schedule_cycle --nodes 500 --pods 200 --rounds 3
    .venv/bin/python -m bench.schedule_cycle --profile spread      # cProfile of one round, top 25

What is measured
----------------
A :class:`~kybernetes.scheduler.scheduler.Scheduler` with the default profile and no API server:
its cache is filled with ``--nodes`` Nodes exactly as ``kyb hollow-nodes`` registers them for
bench.scheduler (4 CPU, 32Gi, 110 pods, 3 zones round robin, :func:`kybernetes.hollow.objects.node_object`).
Then ``--pods`` pods of bench.scheduler's workloads (:func:`bench.scheduler.pod_manifest`: basic,
anti-affinity, spread), as the API server hands them over (namespace, uid, priority 0, the
DefaultTolerationSeconds tolerations), go one after another through the per-pod hot path of
``schedule_one`` without its awaits: PodInfo, PreFilter, Filter, PreScore, Score, select,
assume in the cache, Reserve, Permit. The binding's HTTP call, the queue and the informers are left
out, so the pods stay assumed and each next pod sees the previous ones, as in the real run.

CPU time of this process (``time.process_time``) over the ``--pods`` pods, per pod, on a fresh
cache each round; the best and the median of ``--rounds`` rounds (the best is the least disturbed
by other load on a shared machine). Printed with the ratios anti-affinity/basic and spread/basic of
per-pod cost (issue 18's goal: >= 0.8 for pods/s, i.e. cost ratios <= 1.25) and the calibration
figure (:mod:`bench.calibration`). Results go to ``bench/results/schedule-cycle.json``.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import platform
import pstats
import random
import statistics
import time
from pathlib import Path
from typing import Any

from bench.calibration import calibrate, units
from bench.scheduler import pod_manifest
from kybernetes.hollow.objects import NodeShape, node_object
from kybernetes.scheduler.config import SchedulerConfig
from kybernetes.scheduler.framework import CycleState
from kybernetes.scheduler.nodeinfo import PodInfo
from kybernetes.scheduler.scheduler import Scheduler

WORKLOADS = ("basic", "anti-affinity", "spread")
SHAPE = NodeShape(cpu="4", memory="32Gi", pods=110, zones=("zone-a", "zone-b", "zone-c"))
# What DefaultTolerationSeconds adds to every pod (and so what the scheduler's plugins see).
TOLERATIONS = [{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
                "tolerationSeconds": 300} for k in ("not-ready", "unreachable")]


def make_scheduler(n_nodes: int) -> Scheduler:
    """A scheduler with no client whose cache holds ``n_nodes`` hollow nodes (``sched-<i>``)."""
    sched = Scheduler(None, SchedulerConfig(), rng=random.Random(0))
    for i in range(n_nodes):
        sched.on_node_add(node_object(f"sched-{i}", i, SHAPE, now=0.0))
    return sched


def make_pods(workload: str, n: int, ns: str = "bench") -> list[dict[str, Any]]:
    pods = []
    for i in range(n):
        p = pod_manifest(f"p-{i}", workload, ns)
        p["metadata"].update(namespace=ns, uid=f"00000000-0000-4000-8000-{i:012d}",
                             creationTimestamp="2026-01-01T00:00:00Z")
        p["spec"].update(schedulerName="default-scheduler", priority=0, tolerations=TOLERATIONS)
        pods.append(p)
    return pods


def schedule(sched: Scheduler, pod: dict[str, Any]) -> str:
    """``schedule_one``'s synchronous part for one pod; returns the chosen node's name."""
    fw = sched.frameworks["default-scheduler"]
    pi = PodInfo(pod)
    state = CycleState()
    ni = sched.schedule_pod(fw, state, pi)
    sched.cache.assume(pi, ni.name)
    st = fw.run_reserve(state, pi, ni.name)
    if st is None:
        st = fw.run_permit(state, pi, ni.name)
    assert st is None, st
    return ni.name


def one_round(workload: str, n_nodes: int, n_pods: int) -> tuple[float, list[str]]:
    """CPU ms per pod for scheduling ``n_pods`` on a fresh cluster, and the nodes chosen."""
    sched = make_scheduler(n_nodes)
    pods = make_pods(workload, n_pods)
    t0 = time.process_time()
    chosen = [schedule(sched, p) for p in pods]
    return (time.process_time() - t0) * 1000 / n_pods, chosen


def profile(workload: str, n_nodes: int, n_pods: int, top: int) -> None:
    sched = make_scheduler(n_nodes)
    pods = make_pods(workload, n_pods)
    prof = cProfile.Profile()
    prof.enable()
    for p in pods:
        schedule(sched, p)
    prof.disable()
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=5000)
    ap.add_argument("--pods", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    ap.add_argument("--profile", choices=WORKLOADS, help="cProfile one round of this workload instead")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--out", default="bench/results/schedule-cycle.json")
    ap.add_argument("--note", default="", help="saved with the results (e.g. which change this measures)")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile, args.nodes, args.pods, args.top)
        return
    load_start = os.getloadavg()
    cal = calibrate()
    print(f"calibration: {cal:.1f} ms (bench.calibration); load average {load_start}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for w in args.workloads:
        per_pod = []
        for _ in range(args.rounds):
            ms, chosen = one_round(w, args.nodes, args.pods)
            per_pod.append(ms)
        best, med = min(per_pod), statistics.median(per_pod)
        results[w] = {"best_ms_per_pod": round(best, 4), "median_ms_per_pod": round(med, 4),
                      "rounds_ms_per_pod": [round(x, 4) for x in per_pod],
                      "best_cu_per_pod": round(units(best, cal), 6), "distinct_nodes": len(set(chosen))}
        print(f"  {w:14} best {best:7.3f} ms/pod  median {med:7.3f} ms/pod  "
              f"({units(best, cal) * 1000:.2f} mcu)  {len(set(chosen))} distinct nodes", flush=True)
    ratios = {}
    if "basic" in results:
        base = results["basic"]["best_ms_per_pod"]
        for w in ("anti-affinity", "spread"):
            if w in results:
                ratios[f"{w}/basic"] = round(results[w]["best_ms_per_pod"] / base, 3)
    print("per-pod cost ratios (best): " + ", ".join(f"{k} {v}" for k, v in ratios.items())
          + "  (goal: pods/s ratio >= 0.8, i.e. cost ratio <= 1.25)")
    load_end = os.getloadavg()
    print(f"load average at the end {load_end}")
    doc = {"when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "note": args.note,
           "nodes": args.nodes, "pods": args.pods, "rounds": args.rounds, "calibration_ms": round(cal, 1),
           "load": {"start": load_start, "end": load_end}, "workloads": results, "ratios": ratios,
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}
    out = Path(args.out)
    history = []
    if out.exists():
        old = json.loads(out.read_text())
        history = old.get("history", []) + [{k: v for k, v in old.items() if k != "history"}]
    doc["history"] = history
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
