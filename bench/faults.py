"""Component faults, long: ``python -m bench.faults [--rounds 5] [--faults scheduler agent kubelet ...]`` (root).

Each round is :func:`tests.reliability.faults.fault_round` (its docstring states what is checked) on
one ``kyb server`` with its node in the default layout (``control-plane``: the process of the
scheduler and the controller manager; ``agent``: the node's one process; ``containerd``), and the
faults of a component alone (``scheduler``, ``controller-manager``, ``kubelet``) on a second server
run with ``--split-control-plane --split-node-components``: a Deployment rollout (3 replicas,
maxSurge 1, maxUnavailable 1) and a Job (4 completions, 2 at a time) are under way when the
component is killed with SIGKILL; its supervisor restarts it. Prints a table per fault, each with
its goal and PASS/MISS: rounds,
rounds that converged (goal: all, within 90 s), median and worst time from the kill to convergence,
ReplicaSet over replicas + maxSurge (goal 0), Job over its completions (goal 0), containers left
without a pod (goal 0); the calibration figure (:mod:`bench.calibration`); JSON in
``bench/results/faults.json``. Leader leases are short (4 s, :data:`tests.reliability.faults.LEASE`):
with Kubernetes' 15 s a killed scheduler or controller manager takes about 11 s longer to come back.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.e2e.test_node import _pick_network, running_node
from tests.reliability.faults import FAULTS, SPLIT_FAULTS, FaultResult, fault_round, server_args

from bench.calibration import calibrate
from kybernetes.kubelet.cri.client import CRIClient
from kybernetes.kubelet.shimreaper import GRACE, INTERVAL, runtime_ids, shims_of


def run(faults: list[str], rounds: int, tmp: Path) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The rounds' rows per fault, and what was left behind once all rounds were over: shims
    serving nothing (after the kubelet's reaper had its chance), and whatever the node's teardown
    found (processes, mounts, veths, network namespaces)."""
    out: dict[str, list[dict[str, Any]]] = {f: [] for f in faults}
    leaked: list[str] = []
    # A component alone is a process only on a server run with every component split: a server of its own.
    for split in (False, True):
        mine = [f for f in faults if (f in SPLIT_FAULTS) == split]
        if not mine:
            continue
        try:
            leaked += _rounds(mine, rounds, tmp / ("split" if split else "one-process"), out, split)
        except AssertionError as err:  # the node's teardown found something left behind: a figure too
            leaked.append(f"left behind when the node stopped: {err}")
    return out, leaked


def _rounds(faults: list[str], rounds: int, tmp: Path, out: dict[str, list[dict[str, Any]]],
            split: bool) -> list[str]:
    tmp.mkdir(parents=True, exist_ok=True)
    with running_node(tmp, "faults", _pick_network(), *server_args(tmp, split)) as node:
        for n in range(rounds):
            for fault in faults:
                ns = f"f{n}-{fault}"
                node.kubectl("create", "namespace", ns)
                deadline = time.monotonic() + 30
                while node.kubectl("get", "sa", "default", "-n", ns, check=False).returncode != 0:
                    assert time.monotonic() < deadline, f"no default ServiceAccount in {ns}"
                    time.sleep(0.2)
                try:
                    result = fault_round(node.server, node.socket, ns, fault)
                    row = {"converged": True, **_row(result)}
                except AssertionError as err:  # did not converge in time: a MISS, the run goes on
                    row = {"converged": False, "error": str(err)[:500]}
                finally:
                    node.record_netns()
                out[fault].append(row)
                print(f"  round {n + 1} {fault}: " + (f"converged in {row['converge_s']:.1f} s"
                                                     if row["converged"] else row["error"]), flush=True)
                node.kubectl("delete", "namespace", ns, "--timeout=90s", timeout=100)
        return asyncio.run(wait_no_leaked_shims(node.socket))


async def wait_no_leaked_shims(socket: Path) -> list[str]:
    """Shims of the node serving no sandbox or container, once the kubelet's reaper has had its
    grace and a sweep (``kubelet/shimreaper.py``) to stop any containerd leaked; goal none."""
    deadline = time.monotonic() + GRACE + 2 * INTERVAL + 5
    async with CRIClient(str(socket), timeout=10) as cri:
        while True:
            known = await runtime_ids(cri)
            leaked = sorted(sid for sid in shims_of(str(socket)).values() if sid not in known)
            if not leaked or time.monotonic() > deadline:
                return leaked
            await asyncio.sleep(1)


def _row(r: FaultResult) -> dict[str, Any]:
    return {"converge_s": round(r.converge_seconds, 2), "restarted": r.restarted,
            "rs_violations": r.rs_violations[:5], "rs_violation_count": len(r.rs_violations),
            "job_violations": r.job_violations, "orphans": r.orphans, "max_live_pods": r.max_live_pods,
            "job_pods_succeeded": r.job_pods_succeeded}


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    times = [r["converge_s"] for r in rows if r["converged"]]
    ok = [r for r in rows if r["converged"]]
    s = {"rounds": len(rows), "converged": sum(1 for r in ok if r["restarted"] and not r["orphans"]),
         "converge_median_s": statistics.median(times) if times else None,
         "converge_max_s": max(times) if times else None,
         "rs_over": sum(r["rs_violation_count"] for r in ok), "job_over": sum(len(r["job_violations"]) for r in ok),
         "orphans": sum(len(r["orphans"]) for r in ok)}
    s["pass"] = s["converged"] == s["rounds"] and s["rs_over"] == s["job_over"] == s["orphans"] == 0
    return s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--faults", nargs="+", choices=FAULTS, default=list(FAULTS))
    parser.add_argument("--out", type=Path, default=Path("bench/results/faults.json"))
    args = parser.parse_args()
    calibration_ms = calibrate()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kyb-faults-") as tmp:
        rows, leaked = run(args.faults, args.rounds, Path(tmp).resolve())
    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                           "calibration_ms": round(calibration_ms, 1), "loadavg_before": load_before,
                           "loadavg_after": os.getloadavg(),
                           "faults": {f: {"summary": summary(r), "rounds": r} for f, r in rows.items()},
                           "leaked_shims_at_end": leaked}
    print(f"kill -9 of a component during a rollout and a Job; calibration {calibration_ms:.0f} ms")
    print("| fault | rounds | converged (goal all) | converge median / max | RS over replicas+maxSurge (goal 0) "
          "| Job over completions (goal 0) | containers without a pod (goal 0) | |")
    print("|---|---|---|---|---|---|---|---|")
    for fault in args.faults:
        s = out["faults"][fault]["summary"]
        times = (f"{s['converge_median_s']:.1f} s / {s['converge_max_s']:.1f} s"
                 if s["converge_median_s"] is not None else "-")
        print(f"| kill -9 {fault} | {s['rounds']} | {s['converged']} | {times} | {s['rs_over']} | {s['job_over']} | "
              f"{s['orphans']} | {'PASS' if s['pass'] else 'MISS'} |")
    print(f"| shims or pod leftovers once the node stopped (goal 0) | {len(leaked)} | | | | | | "
          f"{'PASS' if not leaked else 'MISS'} |")
    for item in leaked:
        print(f"  {item}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
