"""The API server's work per bound pod, in process: create + binding + the watch lines, CPU time.

Run from the repository root::

    .venv/bin/python -m bench.pod_pipeline                    # CPU us per pod (best of --rounds)
    .venv/bin/python -m bench.pod_pipeline --profile FILE     # the same under cProfile, stats to FILE
    .venv/bin/python -m bench.pod_pipeline --instructions --pods 100 --before-src /tmp/base6442/src \
        --json bench/results/pod-pipeline.json                 # callgrind instructions, after / before

What is measured: a real :class:`~kybernetes.apiserver.server.APIServer` in this process (fresh temp
data dir, embedded SQLite store, token auth as ``system:masters``, default admission) serving, through
its request handler ``_handle`` (no network, no TLS), what ``bench.scheduler`` asks of it per pod:
the create of a pod of scheduler_perf's shape and its ``pods/NAME/binding``, while ``--watchers``
watches of the namespace's pods (the scheduler's and the benchmark's) take every event as a watch
line, as the server writes them. The figure is this thread's CPU time (``time.thread_time``) per
pod, the best of ``--rounds`` rounds of ``--pods`` pods: on a shared machine, CPU time of one
thread moves far less than wall-clock time. The calibration figure (:mod:`bench.calibration`) is
printed with it, and the figure in calibration units.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from bench.calibration import calibrate, units
from kybernetes import aiorun

NS = "default"


def pod(name: str) -> dict[str, Any]:
    """scheduler_perf's pod-default.yaml, as bench.scheduler creates it."""
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": NS}},
            "spec": {"containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10",
                                     "resources": {"requests": {"cpu": "100m", "memory": "500Mi"}}}],
                     "terminationGracePeriodSeconds": 0}}


async def run(pods: int, rounds: int, watchers: int, profile: str | None) -> list[float]:
    """CPU microseconds per pod, one figure per round."""
    from kybernetes.apiserver.server import APIServer, APIServerConfig
    from kybernetes.httpserver.messages import Request
    from kybernetes.testing import free_port

    class NoTransport:
        transport = None

    tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-pipeline-"))
    (tmp / "tokens.csv").write_text('bench-token,bench,bench,"system:masters"\n')
    srv = APIServer(APIServerConfig(data_dir=tmp, port=free_port(), token_file=tmp / "tokens.csv"))
    await srv.start()
    _stop_timed_loops()
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": "Bearer bench-token", "Accept": "application/json",
                                            "Content-Type": "application/json"}))

    def request(method: str, path: str, body: bytes = b"") -> Any:
        return Request(method, path, "", headers, (1, 1), body, NoTransport(), True, False)  # type: ignore[arg-type]

    from kybernetes.apiserver.registry.request import ListOptions

    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}
    r = await srv._handle(request("POST", f"/api/v1/namespaces/{NS}/serviceaccounts", json.dumps(sa).encode()))
    assert r.status in (201, 409), (r.status, r.body)  # no controller manager here to make it

    registry = srv.registry
    pods_r = registry.catalogue.get("", "v1", "pods")
    assert pods_r is not None
    handlers = srv.handlers
    assert handlers is not None
    encoder = handlers._watch_encoder(pods_r, _json_accept(), "Metadata", False)
    streams = [await registry.open_watch(pods_r, NS, ListOptions(), bookmark_interval=None, timeout=3600)
               for _ in range(watchers)]
    lines = [0]

    def direct(batch: list[Any]) -> bool:
        lines[0] += len(b"".join([encoder(ev) for ev in batch]))
        return True

    tasks = []
    for s in streams:
        s.direct = direct

        async def drain(s: Any = s) -> None:
            async for batch in s.batches():
                direct(batch)

        tasks.append(asyncio.create_task(drain()))
    prof = cProfile.Profile(time.thread_time) if profile else None
    figures = []
    try:
        for rnd in range(rounds):
            t0 = time.thread_time()
            if prof is not None:
                prof.enable()
            for i in range(pods):
                name = f"p-{rnd}-{i}"
                r = await srv._handle(request("POST", f"/api/v1/namespaces/{NS}/pods", json.dumps(pod(name)).encode()))
                assert r.status == 201, (r.status, r.body)
                body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": name, "namespace": NS},
                        "target": {"apiVersion": "v1", "kind": "Node", "name": f"node-{i % 100}"}}
                r = await srv._handle(request("POST", f"/api/v1/namespaces/{NS}/pods/{name}/binding",
                                              json.dumps(body).encode()))
                assert r.status == 201, (r.status, r.body)
                await asyncio.sleep(0)  # the cacher's dispatcher and the watchers run as in the server
            for _ in range(20):
                await asyncio.sleep(0)
            if prof is not None:
                prof.disable()
            figures.append((time.thread_time() - t0) / pods * 1e6)
    finally:
        for t in tasks:
            t.cancel()
        for s in streams:
            s.close()
        await srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        if prof is not None and profile:
            prof.dump_stats(profile)
    assert lines[0] > 0, "the watchers saw no events"
    return figures


TIMED_LOOPS = frozenset({
    "EndpointReconciler._loop", "Repair._run", "Aggregator._controller", "StorageMetrics._count_forever",
    "HTTPServer._sweep", "SQLiteStore._compact_forever",
})
"""The server's background loops that run on a timer (the identity lease every 5 s, the Service
allocation repair, APIService availability, the object count, idle-connection sweep, compaction),
not per request: their work is per second, not per pod, and under callgrind (where the run of 2N
pods takes far longer than the run of N, the longer the busier the machine) it landed in the
difference per pod. Event-driven loops (watch caches, the Node authorizer's graph, RBAC, APF's
configuration) keep running."""


def _stop_timed_loops() -> None:
    for task in asyncio.all_tasks():
        coro = task.get_coro()
        if getattr(coro, "__qualname__", "") in TIMED_LOOPS:
            task.cancel()


def _json_accept() -> Any:
    from kybernetes.apiserver.transport.requests import parse_accept

    return parse_accept("application/json")


GOAL_RATIO = 0.5
"""Issue 18's goal: the API server's work per bound pod at most half of what it was at commit
:data:`BEFORE_COMMIT`."""
BEFORE_COMMIT = "6442bdf"


def instructions(pods: int, watchers: int, src: str | None = None) -> float:
    """Instructions per pod: callgrind runs of ``pods`` and ``2 * pods`` pods (one round each),
    the difference per extra pod, so start-up and warm-up cancel out (as :mod:`bench.callgrind`).
    ``src``: the ``src`` directory of another checkout to measure instead of this one (this
    bench, that code)."""
    env = None
    if src is not None:
        here = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join((src, here))}

    def total(n: int, tmp: str) -> int:
        out = os.path.join(tmp, f"cg.{n}")
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                        "-m", "bench.pod_pipeline", "--pods", str(n), "--rounds", "1", "--watchers",
                        str(watchers), "--no-calibration"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=3600, env=env)
        with open(out) as f:
            found = re.search(r"^summary: (\d+)", f.read(), re.M)
        assert found is not None, "no summary line in callgrind's output"
        return int(found.group(1))

    with tempfile.TemporaryDirectory(prefix="kyb-bench-cg-") as tmp, ThreadPoolExecutor(2) as pool:
        # The two runs side by side (valgrind runs one thread at a time: one core each).
        totals = list(pool.map(lambda n: total(n, tmp), (pods, 2 * pods)))
    return (totals[1] - totals[0]) / pods


def _instructions_report(args: argparse.Namespace) -> None:
    """Print instructions per pod; with ``--before-src``, also the figure of that checkout (run
    in the same sitting), after / before, issue 18's goal and PASS/MISS; ``--json`` saves them."""
    load_start = os.getloadavg()
    with ThreadPoolExecutor(2) as pool:
        before_run = pool.submit(instructions, args.pods, args.watchers, args.before_src) if args.before_src else None
        after = instructions(args.pods, args.watchers)
    what = f"create + binding + {args.watchers} watchers, in process, callgrind"
    print(f"API server instructions per pod ({what}): {after:,.0f}")
    result: dict[str, Any] = {"figure": "API server instructions per bound pod", "method": what,
                              "pods": args.pods, "watchers": args.watchers, "after": after}
    if args.before_src:
        assert before_run is not None
        before = before_run.result()
        ratio = after / before
        verdict = "PASS" if ratio <= GOAL_RATIO else "MISS"
        print(f"API server instructions per pod at {args.before_label}: {before:,.0f}")
        print(f"API server instructions per bound pod, after / before: {ratio:.2f} "
              f"(goal <= {GOAL_RATIO}): {verdict}")
        result.update(before=before, before_label=args.before_label, ratio=ratio, goal=GOAL_RATIO,
                      verdict=verdict)
    load_end = os.getloadavg()
    print(f"load average (1, 5, 15 min) at start {load_start}, at end {load_end} "
          "(instruction counts do not depend on it)")
    if args.json:
        result["load"] = {"start": load_start, "end": load_end}
        result["commit"] = _commit()
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=30,
                             cwd=Path(__file__).resolve().parent)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--watchers", type=int, default=2)
    ap.add_argument("--profile", default=None, metavar="FILE")
    ap.add_argument("--no-calibration", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--instructions", action="store_true",
                    help="instructions per pod under callgrind: runs of --pods and 2 x --pods pods, one round each")
    ap.add_argument("--before-src", default=None, metavar="DIR",
                    help="with --instructions: also measure the code in DIR (the src directory of a checkout "
                         f"of {BEFORE_COMMIT}, e.g. from git worktree add) and print after / before with the goal")
    ap.add_argument("--before-label", default=BEFORE_COMMIT, help=argparse.SUPPRESS)
    ap.add_argument("--json", default=None, metavar="FILE", help="with --instructions: save the figures")
    args = ap.parse_args()
    if args.instructions:
        _instructions_report(args)
        return
    cal = 0.0 if args.no_calibration else calibrate()
    figures = aiorun.run(run(args.pods, args.rounds, args.watchers, args.profile))
    best = min(figures)
    print(f"API server CPU per pod (create + binding + {args.watchers} watchers, in process): best {best:.0f} us, "
          f"rounds {', '.join(f'{f:.0f}' for f in figures)}; calibration {cal:.1f} ms "
          f"-> {units(best / 1000, cal) if cal else 0:.4f} cu")


if __name__ == "__main__":
    main()
