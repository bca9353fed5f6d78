"""How fast the pytest plugin's ``kyb_cluster`` starts, in both modes, beside the floor it stands on.

``python -m bench.testkit [--rounds 5]`` measures per round, each cluster on a fresh data dir:

- **process start** (the default mode): :class:`kybernetes.testing.cluster.KybCluster` (what the
  fixture does) from the call to the API server's first answer to a namespaced create (the figure
  the plugin prints; issue 19's goal: under 1.0 s; envtest's own start is ~5 s, kind's ~30 s);
- **in-process start** (``kyb_cluster_mode = in-process``): the same, the API server on a thread of
  this process, its modules already imported by an earlier round's cluster: what every cluster of
  a session after the first costs;
- **in-process first**: the same in a fresh interpreter (``python -c``), timed inside it from the
  call: what a session's first cluster costs, imports included;
- **controllers** (each mode): from the call until the controller manager has made
  ``default/default`` (its ServiceAccount controller is running): when a pod can be created;
- **test-thread stall** (in-process): while a second thread keeps the in-process API server busy
  (GETs of the namespace list, back to back, 2 s), the longest and the 99th-percentile gap of a
  1 ms ticker on the calling thread: what sharing the GIL costs a test;
- **API server alone** in this process (``APIServer.start()``, imported, no cluster around it) and
  the **floor**: a fresh interpreter importing the API server (``python -c "import
  kybernetes.apiserver.server"``), what any process that serves the API pays before it listens.

The calibration figure (:mod:`bench.calibration`), medians over the rounds, the machine's load
average before and after, a table with the goal and PASS/MISS, JSON in ``bench/results/testkit.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from bench.calibration import calibrate
from kybernetes.testing.cluster import KybCluster

GOAL_START = 1.0


def floor_seconds() -> float:
    t0 = time.monotonic()
    subprocess.run([sys.executable, "-c", "import kybernetes.apiserver.server"], check=True)
    return time.monotonic() - t0


def in_process_seconds() -> tuple[float, float]:
    """The API server alone, started in this process with its modules already imported (what an
    in-process mode would cost for every cluster after the first): wall and CPU seconds of
    ``APIServer.start()`` on a fresh data dir until it listens."""
    import asyncio
    import shutil
    import tempfile

    from kybernetes.apiserver.server import APIServer, APIServerConfig

    async def run() -> tuple[float, float]:
        data_dir = Path(tempfile.mkdtemp(prefix="kyb-bench-"))
        server = APIServer(APIServerConfig(data_dir=data_dir, port=0))
        t0, c0 = time.monotonic(), time.process_time()
        await server.start()
        took = time.monotonic() - t0, time.process_time() - c0
        await server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
        return took

    return asyncio.run(run())


def _until_controllers(cluster: KybCluster, t0: float) -> float:
    while cluster.process.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] != 200:
        time.sleep(0.02)
    return time.monotonic() - t0


def test_thread_stall(cluster: KybCluster, seconds: float = 2.0) -> tuple[float, float]:
    """(longest, 99th percentile) gap of a 1 ms ticker here while another thread keeps the server busy."""
    url = f"{cluster.server}/api/v1/namespaces"
    ctx = cluster.process._admin_context()
    done = threading.Event()

    def hammer() -> None:
        while not done.is_set():
            with urllib.request.urlopen(url, context=ctx, timeout=10) as r:
                r.read()

    worker = threading.Thread(target=hammer, name="bench-hammer")
    worker.start()
    gaps, last = [], time.monotonic()
    end = last + seconds
    while last < end:
        time.sleep(0.001)
        now = time.monotonic()
        gaps.append(now - last)
        last = now
    done.set()
    worker.join(30)
    gaps.sort()
    return gaps[-1], gaps[int(len(gaps) * 0.99)]


FIRST_IN_PROCESS = ("from kybernetes.testing.cluster import KybCluster\n"
                    "c = KybCluster.start(in_process=True)\nprint(c.started_in)\nc.stop()\n")


def first_in_process_seconds() -> float:
    """A session's first in-process cluster: a fresh interpreter, timed from the call (imports included)."""
    out = subprocess.run([sys.executable, "-c", FIRST_IN_PROCESS], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    return float(out.split()[-1])


def one_round() -> dict[str, float]:
    floor = floor_seconds()
    t0 = time.monotonic()
    cluster = KybCluster.start()
    try:
        controllers = _until_controllers(cluster, t0)
    finally:
        cluster.stop()
    t0 = time.monotonic()
    warm = KybCluster.start(in_process=True)
    try:
        warm_controllers = _until_controllers(warm, t0)
        stall_max, stall_p99 = test_thread_stall(warm)
    finally:
        warm.stop()
    first = first_in_process_seconds()
    in_process, in_process_cpu = in_process_seconds()
    return {"floor": floor, "start": cluster.started_in, "controllers": controllers,
            "in_process_start": warm.started_in, "in_process_controllers": warm_controllers,
            "in_process_first_start": first, "stall_max": stall_max, "stall_p99": stall_p99,
            "in_process_api": in_process, "in_process_api_cpu": in_process_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/testkit.json"))
    args = parser.parse_args()
    calibration_ms = calibrate()
    KybCluster.start(in_process=True).stop()  # the imports, once: "in-process start" is a later cluster's
    load_before = os.getloadavg()
    rounds = [one_round() for _ in range(args.rounds)]
    load_after = os.getloadavg()
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ratio = median["start"] / median["floor"]
    rows = [
        ("process mode: start (a namespaced create answered)", f"{median['start']:.2f} s", f"<= {GOAL_START:.1f} s",
         "PASS" if median["start"] <= GOAL_START else "MISS"),
        ("process mode: controllers running (default/default exists)", f"{median['controllers']:.2f} s", "-", ""),
        ("in-process mode: start, modules imported (2nd cluster on)", f"{median['in_process_start']:.2f} s",
         f"<= {GOAL_START:.1f} s", "PASS" if median["in_process_start"] <= GOAL_START else "MISS"),
        ("in-process mode: first start of a session (imports included)",
         f"{median['in_process_first_start']:.2f} s", "-", ""),
        ("in-process mode: controllers running", f"{median['in_process_controllers']:.2f} s", "-", ""),
        ("in-process mode: test-thread stall while the server is busy (max / p99)",
         f"{median['stall_max'] * 1000:.0f} / {median['stall_p99'] * 1000:.0f} ms", "-", ""),
        ("floor: a process importing the API server", f"{median['floor']:.2f} s", "-", ""),
        ("process start / floor", f"{ratio:.2f}", "-", ""),
        ("API server alone in this process, imported", f"{median['in_process_api']:.2f} s "
         f"({median['in_process_api_cpu']:.2f} s CPU)", "-", ""),
    ]
    print(f"kyb_cluster start, median of {args.rounds} rounds (load average {load_before[0]:.1f} -> "
          f"{load_after[0]:.1f}); calibration {calibration_ms:.0f} ms (bench.calibration)")
    print("| figure | median | goal | |\n|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "rounds": rounds, "median": median, "start_over_floor": ratio, "goal_start_seconds": GOAL_START,
        "pass": median["start"] <= GOAL_START,
        "modes": {"process": {"start": median["start"], "controllers": median["controllers"]},
                  "in-process": {"start": median["in_process_start"], "first_start": median["in_process_first_start"],
                                 "controllers": median["in_process_controllers"],
                                 "test_thread_stall_max": median["stall_max"],
                                 "test_thread_stall_p99": median["stall_p99"]}}, "calibration_ms": round(calibration_ms, 1),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after]},
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
