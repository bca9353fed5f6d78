"""Crash consistency, long: ``python -m bench.chaos [--rounds 20] [--datastore sqlite etcd]``.

Each round is :func:`tests.reliability.crash.crash_round` (its docstring states what is checked): 64
clients create ConfigMaps, the API server is killed with SIGKILL in mid-flight after ``--kill-after``
acknowledged writes, and restarted on the same data dir (with etcd, etcd keeps running: the API
server is what dies). Prints a table per datastore — faults injected, acknowledged writes, writes
whose answer was lost, acknowledged writes lost (goal 0), refused writes present (goal 0), watch gaps
and duplicates after resuming (goal 0), median and worst recovery time — with PASS/MISS, the
calibration figure, and JSON in ``bench/results/chaos.json``.
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

from tests.reliability.crash import RoundResult, crash_round

from bench.calibration import calibrate
from kybernetes.testing import EtcdCluster, ServerProcess


def run_store(store: str, rounds: int, kill_after: int, tmp: Path) -> list[RoundResult]:
    extra: list[str] = []
    etcd = None
    if store == "etcd":
        etcd = EtcdCluster(tmp / "etcd")
        etcd.start()
        asyncio.run(etcd.wait_healthy())
        extra = ["--datastore-endpoint", etcd.endpoints, "--datastore-cafile", etcd.tls.cafile,
                 "--datastore-certfile", etcd.tls.certfile, "--datastore-keyfile", etcd.tls.keyfile]
    data_dir = tmp / f"srv-{store}"
    srv = ServerProcess.start(data_dir, *extra, timeout=60)
    results = []
    try:
        for n in range(rounds):
            ns = f"chaos-{n}"
            assert srv.request("POST", "/api/v1/namespaces", {"metadata": {"name": ns}})[0] == 201
            result, srv = asyncio.run(crash_round(srv, lambda: ServerProcess.start(data_dir, *extra, timeout=60),
                                                  ns=ns, kill_after=kill_after))
            results.append(result)
            print(f"  {store} round {n + 1}: {result.acked} acked, {len(result.lost)} lost, "
                  f"{result.unknown} unanswered, recovery {result.recovery_seconds:.1f} s", flush=True)
    finally:
        srv.stop()
        if etcd is not None:
            etcd.stop()
    return results


def summary(results: list[RoundResult]) -> dict[str, Any]:
    recovery = [r.recovery_seconds for r in results]
    return {"faults": len(results), "acked": sum(r.acked for r in results),
            "unanswered": sum(r.unknown for r in results),
            "acked_lost": sum(len(r.lost) for r in results),
            "refused_present": sum(len(r.refused_present) for r in results),
            "watch_gaps": sum(len(r.watch_gaps) for r in results),
            "watch_duplicates": sum(len(r.watch_duplicates) for r in results),
            "recovery_median_s": statistics.median(recovery), "recovery_max_s": max(recovery)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--kill-after", type=int, default=300)
    parser.add_argument("--datastore", nargs="+", choices=("sqlite", "etcd"), default=["sqlite"])
    parser.add_argument("--out", type=Path, default=Path("bench/results/chaos.json"))
    args = parser.parse_args()
    calibration_ms = calibrate()
    load_before = os.getloadavg()
    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                           "calibration_ms": round(calibration_ms, 1), "loadavg_before": load_before}
    with tempfile.TemporaryDirectory(prefix="kyb-chaos-") as tmp:
        for store in args.datastore:
            out[store] = summary(run_store(store, args.rounds, args.kill_after, Path(tmp)))
    out["loadavg_after"] = os.getloadavg()
    print(f"kill -9 of the API server under 64 writers; calibration {calibration_ms:.0f} ms")
    print("| datastore | faults | acked | unanswered | acked lost (goal 0) | refused present (goal 0) "
          "| watch gaps / duplicates (goal 0) | recovery median / max | |")
    print("|---|---|---|---|---|---|---|---|---|")
    for store in args.datastore:
        s = out[store]
        ok = s["acked_lost"] == s["refused_present"] == s["watch_gaps"] == s["watch_duplicates"] == 0
        print(f"| {store} | {s['faults']} | {s['acked']} | {s['unanswered']} | {s['acked_lost']} | "
              f"{s['refused_present']} | {s['watch_gaps']} / {s['watch_duplicates']} | "
              f"{s['recovery_median_s']:.1f} s / {s['recovery_max_s']:.1f} s | {'PASS' if ok else 'MISS'} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
