"""The API server's work per bound pod, in process: create + binding + the watch lines, CPU time.

Run from the repository root::

    .venv/bin/python -m bench.pod_pipeline                    # CPU us per pod (best of --rounds)
    .venv/bin/python -m bench.pod_pipeline --profile FILE     # the same under cProfile, stats to FILE

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


def _json_accept() -> Any:
    from kybernetes.apiserver.transport.requests import parse_accept

    return parse_accept("application/json")


def instructions(pods: int, watchers: int) -> float:
    """Instructions per pod: callgrind runs of ``pods`` and ``2 * pods`` pods (one round each),
    the difference per extra pod, so start-up and warm-up cancel out (as :mod:`bench.callgrind`)."""
    totals = []
    with tempfile.TemporaryDirectory(prefix="kyb-bench-cg-") as tmp:
        for n in (pods, 2 * pods):
            out = os.path.join(tmp, f"cg.{n}")
            subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
                            "-m", "bench.pod_pipeline", "--pods", str(n), "--rounds", "1", "--watchers",
                            str(watchers), "--no-calibration"],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=1800)
            with open(out) as f:
                found = re.search(r"^summary: (\d+)", f.read(), re.M)
            assert found is not None, "no summary line in callgrind's output"
            totals.append(int(found.group(1)))
    return (totals[1] - totals[0]) / pods


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pods", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--watchers", type=int, default=2)
    ap.add_argument("--profile", default=None, metavar="FILE")
    ap.add_argument("--no-calibration", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--instructions", action="store_true",
                    help="instructions per pod under callgrind: runs of --pods and 2 x --pods pods, one round each")
    args = ap.parse_args()
    if args.instructions:
        print(f"API server instructions per pod (create + binding + {args.watchers} watchers, in process, "
              f"callgrind): {instructions(args.pods, args.watchers):,.0f}")
        return
    cal = 0.0 if args.no_calibration else calibrate()
    figures = aiorun.run(run(args.pods, args.rounds, args.watchers, args.profile))
    best = min(figures)
    print(f"API server CPU per pod (create + binding + {args.watchers} watchers, in process): best {best:.0f} us, "
          f"rounds {', '.join(f'{f:.0f}' for f in figures)}; calibration {cal:.1f} ms "
          f"-> {units(best / 1000, cal) if cal else 0:.4f} cu")


if __name__ == "__main__":
    main()
