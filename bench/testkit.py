"""How fast the pytest plugin's ``kyb_cluster`` starts, beside the floor it stands on.

``python -m bench.testkit [--rounds 5]`` starts :class:`kybernetes.testing.cluster.KybCluster` (what
the fixture does) ``rounds`` times, each on a fresh data dir, and measures per round:

- **start**: from the call to the API server's first answer to a namespaced create (the figure the
  plugin prints; issue 19's goal: under 1.0 s; envtest's own start is ~5 s, kind's ~30 s);
- **controllers**: from the call until the controller manager has made ``default/default`` (its
  ServiceAccount controller is running): when a pod can be created;
- **in-process**: the API server alone started in the benchmark's own process, its modules already
  imported (what an in-process mode would cost per cluster after the first one of a session);
- **floor**: in the same round, a fresh interpreter importing the API server
  (``python -c "import kybernetes.apiserver.server"``): what any process that serves the API pays
  before it can listen, whatever the server then does.

The calibration figure (:mod:`bench.calibration`), medians over the rounds, the ratio start / floor, the machine's load average before and after, a
table with the goal and PASS/MISS, JSON in ``bench/results/testkit.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
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


def one_round() -> dict[str, float]:
    floor = floor_seconds()
    t0 = time.monotonic()
    cluster = KybCluster.start()
    try:
        while cluster.process.request("GET", "/api/v1/namespaces/default/serviceaccounts/default")[0] != 200:
            time.sleep(0.02)
        controllers = time.monotonic() - t0
    finally:
        cluster.stop()
    in_process, in_process_cpu = in_process_seconds()
    return {"floor": floor, "start": cluster.started_in, "controllers": controllers,
            "in_process_api": in_process, "in_process_api_cpu": in_process_cpu}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("bench/results/testkit.json"))
    args = parser.parse_args()
    calibration_ms = calibrate()
    load_before = os.getloadavg()
    rounds = [one_round() for _ in range(args.rounds)]
    load_after = os.getloadavg()
    median = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    ratio = median["start"] / median["floor"]
    rows = [
        ("start: a namespaced create answered", f"{median['start']:.2f} s", f"<= {GOAL_START:.1f} s",
         "PASS" if median["start"] <= GOAL_START else "MISS"),
        ("controllers running (default/default exists)", f"{median['controllers']:.2f} s", "-", ""),
        ("floor: a process importing the API server", f"{median['floor']:.2f} s", "-", ""),
        ("start / floor", f"{ratio:.2f}", "-", ""),
        ("in-process API server start, modules already imported", f"{median['in_process_api']:.2f} s "
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
        "pass": median["start"] <= GOAL_START, "calibration_ms": round(calibration_ms, 1),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after]},
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
