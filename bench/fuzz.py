"""Hostile input, long: ``python -m bench.fuzz [--requests 50000] [--hours 4] [--seed 20]``.

Two parts against one fresh API server (SQLite), each with its goal and PASS/MISS:

- property-based fuzzing from the server's own OpenAPI v2 and v3 (:func:`tests.reliability.fuzz.fuzz`,
  its docstring says what is generated and counted): requests sent until ``--requests`` (or
  ``--hours``), operations covered, 5xx answers (goal 0; the 504 "Too large resource version" that
  Kubernetes itself answers to a read from the future is counted apart), dropped connections
  (goal 0), unanswered requests (goal 0), half-writes (goal 0) out of the refused writes on
  existing objects that were checked;
- malformed transport (:func:`tests.reliability.hostile.run_attacks`): each attack's outcome (goal:
  a 4xx or a closed connection) and another client's p99 GET latency during the attacks against
  before them (goal: at most 2x).

Prints the calibration figure (:mod:`bench.calibration`), the tables, and writes JSON to
``bench/results/fuzz.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.reliability.fuzz import fuzz
from tests.reliability.hostile import ok, run_attacks

from bench.calibration import calibrate
from kybernetes.testing import ServerProcess

GOAL_P99_RATIO = 2.0


def _row(figure: str, value: Any, goal: str, passed: bool | None) -> str:
    mark = "" if passed is None else ("PASS" if passed else "MISS")
    return f"| {figure} | {value} | {goal} | {mark} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50_000)
    parser.add_argument("--hours", type=float, default=4.0, help="stop fuzzing after this long, whatever the count")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("bench/results/fuzz.json"))
    args = parser.parse_args()
    calibration_ms = calibrate()
    out: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
                           "calibration_ms": round(calibration_ms, 1), "loadavg_before": os.getloadavg(),
                           "seed": args.seed}
    with tempfile.TemporaryDirectory(prefix="kyb-fuzz-") as tmp:
        srv = ServerProcess.start(Path(tmp) / "srv", timeout=60)
        try:
            result = fuzz(srv, requests_goal=args.requests, seconds=args.hours * 3600, seed=args.seed)
            attacks = run_attacks(srv)
            tracebacks = srv.log().count("Traceback")
        finally:
            srv.stop()
    out["loadavg_after"] = os.getloadavg()
    out["fuzz"] = dict(result.summary(), server_errors=result.server_errors[:50], dropped=result.dropped[:50],
                       hung=result.hung[:50], half_writes=result.half_writes[:50],
                       generation_errors=dict(result.generation_errors.most_common(20)))
    out["hostile"] = attacks
    out["server_log_tracebacks"] = tracebacks
    s = result.summary()
    print(f"hostile input against one API server (SQLite); calibration {calibration_ms:.0f} ms; "
          f"load average {out['loadavg_before'][0]:.1f} -> {out['loadavg_after'][0]:.1f}")
    print("| figure | value | goal | |\n|---|---|---|---|")
    rows = [
        _row("generated requests sent", f"{s['requests']} in {s['seconds']:.0f} s", f">= {args.requests}",
             s["requests"] >= args.requests),
        _row("operations (v2 and v3) covered", s["operations"], "-", None),
        _row("answers by class", ", ".join(f"{k}: {v}" for k, v in s["by_class"].items()), "-", None),
        _row("5xx answers", s["5xx"], "0", s["5xx"] == 0),
        _row("504 Too large resource version (Kubernetes' own answer)", s["504_future_resource_version"], "-", None),
        _row("dropped connections", s["dropped"], "0", s["dropped"] == 0),
        _row("requests unanswered in 20 s", s["hung"], "0", s["hung"] == 0),
        _row("half-writes (of refused writes on existing objects checked)",
             f"{s['half_writes']} of {s['mutations_checked']}", "0", s["half_writes"] == 0),
        _row("server log tracebacks", tracebacks, "0", tracebacks == 0),
    ]
    for name, outcome in attacks["outcomes"].items():
        rows.append(_row(f"attack: {name}", outcome.replace("|", "/").replace("\n", " ")[:90],
                         "4xx or closed", ok(outcome)))
    rows.append(_row("other clients' p99 GET during the attacks / before",
                     f"{attacks['p99_during_s'] * 1000:.1f} ms / {attacks['p99_before_s'] * 1000:.1f} ms = "
                     f"x{attacks['ratio']:.2f} (slowest {attacks['max_during_s'] * 1000:.0f} ms)",
                     f"<= x{GOAL_P99_RATIO:.0f}", attacks["ratio"] <= GOAL_P99_RATIO))
    print("\n".join(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
