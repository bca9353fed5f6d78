"""The API server's request metrics, timed in process: what they add to one request's CPU time.

Run from the repository root::

    .venv/bin/python -m bench.request_metrics                  # ns per request (min of 7 runs)
    .venv/bin/python -m bench.request_metrics --instructions   # instructions per request (callgrind)
    .venv/bin/python -m bench.request_metrics --server         # a real server's GET handling, in process

What is measured: the three steps a request's metrics add in the server
(:mod:`kybernetes.apiserver.metrics`): counting its authentication (``authenticated``), its
authorization (``decide``, here with no authorizer: AlwaysAllow) and the request itself
(``begin``/``done``: reported verb, scope and labels, in-flight count, latency and size
histograms), for a
GET of one ConfigMap (the hot path of ``bench.apiserver``'s GET cells), against the same calls
without the metrics: nanoseconds per request (the fastest of 7 runs of 20,000), or with
``--instructions`` instructions per request under callgrind (two runs per case, N and N + 20,000
requests), which other load on a shared machine does not move. Compare with the server's CPU per
GET (``bench.apiserver``'s ``cpu us/op`` of the wrk cells).
"""

from __future__ import annotations

import argparse
import math
import shutil
import sys
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy

from bench.callgrind import instructions_per_call, run_case
from kybernetes import aiorun
from kybernetes.api.resources import Catalogue
from kybernetes.apiserver.metrics import APIServerMetrics
from kybernetes.apiserver.registry.request import User
from kybernetes.apiserver.transport.requestinfo import request_info
from kybernetes.apiserver.transport.requests import parse_resource_path
from kybernetes.httpserver.messages import Response

N = 20_000
RUNS = 7
PATH = "/api/v1/namespaces/bench/configmaps/cm-c16-1"


def _request() -> Any:
    """The parts of a GET the metrics read (method, query, headers)."""
    return SimpleNamespace(method="GET", path=PATH, query_string="", query=MultiDictProxy(MultiDict()),
                           headers=CIMultiDictProxy(CIMultiDict({"Accept": "application/json"})))


def _drive(coro: Any) -> Any:
    """Run a coroutine that never suspends (the handler here answers at once) without an event loop."""
    try:
        coro.send(None)
    except StopIteration as e:
        return e.value
    raise RuntimeError("the request suspended")


def cases() -> dict[str, Callable[[], object]]:
    """One GET's steps without the metrics (the harness: the same calls the server makes anyway)
    and with them."""
    m = APIServerMetrics(frozenset(Catalogue.builtin().groups()))
    request, user = _request(), User("system:admin", ("system:masters",))
    response = Response(body=b'{"kind":"ConfigMap"}' * 50, headers={"Content-Type": "application/json"})
    rp = parse_resource_path(PATH)

    async def call() -> Response:
        return response

    def authenticate() -> User:
        return user

    def plain() -> object:
        u = authenticate()
        info = request_info("GET", PATH, rp, None)
        return (u, info, _drive(call()))

    def measured() -> object:  # as APIServer._measured does it
        u = authenticate()
        m.authenticated(u)
        info = request_info("GET", PATH, rp, None)
        m.decide(None, u, info)
        flight = m.begin(request, rp, info)
        r = _drive(call())
        if flight is not None:
            m.done(flight, r)
        return (u, info, r)

    return {"GET without metrics": plain, "GET with metrics": measured}


def instructions(case: str, tmp: str) -> float:
    """Instructions per request of ``case`` (bench.callgrind)."""
    return instructions_per_call("bench.request_metrics", case, tmp)


async def in_server(rounds: int = 9, n: int = 5000) -> dict[str, float]:
    """A real API server in this process (fresh temp data dir, token auth, RBAC): ``_handle`` of
    a GET of one ConfigMap, without the network, with its metrics off and on alternately (the
    same server: ``monitoring`` unset and set). The fastest round's ns per GET of each."""
    from multidict import CIMultiDict, CIMultiDictProxy

    from kybernetes.apiserver.server import APIServer, APIServerConfig
    from kybernetes.httpserver.messages import Request
    from kybernetes.testing import free_port

    class NoTransport:
        transport = None

    tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-"))
    (tmp / "tokens.csv").write_text('bench-token,bench,bench,"system:masters"\n')
    srv = APIServer(APIServerConfig(data_dir=tmp, port=free_port(), token_file=tmp / "tokens.csv"))
    await srv.start()
    headers = CIMultiDictProxy(CIMultiDict({"Authorization": "Bearer bench-token", "Accept": "application/json"}))

    def request(method: str, path: str, body: bytes = b"") -> Any:
        return Request(method, path, "", headers, (1, 1), body, NoTransport(), True, False)  # type: ignore[arg-type]

    try:
        created = await srv._handle(request("POST", "/api/v1/namespaces/default/configmaps",
                                            b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}'))
        assert created.status == 201, created.status
        monitoring = srv.monitoring
        assert monitoring is not None, "start it with its metrics on (no KYB_APISERVER_METRICS=off)"
        best = {"metrics off": math.inf, "metrics on": math.inf}
        for _ in range(rounds):
            for case, mon in (("metrics off", None), ("metrics on", monitoring)):
                srv.monitoring = mon
                t0 = time.perf_counter_ns()
                for _ in range(n):
                    r = await srv._handle(request("GET", "/api/v1/namespaces/default/configmaps/x"))
                best[case] = min(best[case], (time.perf_counter_ns() - t0) / n)
                assert r.status == 200, r.status
        srv.monitoring = monitoring
    finally:
        await srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instructions", action="store_true", help="instructions per request (valgrind callgrind)")
    ap.add_argument("--server", action="store_true",
                    help="a real API server in this process: ns per GET through its request handling (no network)")
    ap.add_argument("--run", nargs=2, metavar=("CASE", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.server:
        best = aiorun.run(in_server())
        for case, ns in best.items():
            print(f"{case:<24}{ns:10.0f} ns per GET (server, in process)")
        print(f"{'the metrics add':<24}{best['metrics on'] - best['metrics off']:10.0f} ns")
        return 0
    if args.run:
        run_case(cases(), args.run[0], int(args.run[1]))
        return 0
    chosen = cases()
    if args.instructions:
        if shutil.which("valgrind") is None:
            print("valgrind is not installed", file=sys.stderr)
            return 1
        with tempfile.TemporaryDirectory() as tmp:
            counts = {case: instructions(case, tmp) for case in chosen}
        for case, count in counts.items():
            print(f"{case:<24}{count:10.0f} instructions")
        print(f"{'the metrics add':<24}{counts['GET with metrics'] - counts['GET without metrics']:10.0f} instructions")
        return 0
    times = {case: min(timeit.repeat(fn, number=N, repeat=RUNS)) / N * 1e9 for case, fn in chosen.items()}
    for case, ns in times.items():
        print(f"{case:<24}{ns:10.0f} ns")
    print(f"{'the metrics add':<24}{times['GET with metrics'] - times['GET without metrics']:10.0f} ns")
    return 0


if __name__ == "__main__":
    sys.exit(main())
