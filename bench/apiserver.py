"""API server benchmark: throughput, latency, LIST cost and watch fan-out of a real ``kyb server``.

Run from the repository root::

    .venv/bin/python -m bench.apiserver            # full run, ~3-5 minutes
    .venv/bin/python -m bench.apiserver --quick    # every phase ~10x smaller (smoke test)

What is measured
----------------
The benchmark process is the *client*; the server is a child process (``kyb server`` on the embedded
SQLite store in a fresh temporary data dir, started with ``kybernetes.testing.ServerProcess``). All
traffic is HTTPS over loopback with the admin client certificate, through aiohttp keep-alive
connections (one connection per concurrent client) on uvloop, the event loop of kybernetes' own
processes (``kybernetes.aiorun``). Latencies are wall-clock from just before the
request is sent until its body has been read and JSON-decoded, i.e. what a client sees.

1. CRUD cells: creates/s, gets/s and updates/s of ~1 KB ConfigMaps in one namespace with 1, 16 and
   64 concurrent clients (p50/p99 latency each), plus a Pod variant for creates. An update is a
   ``PUT`` of the object last returned by the server with one data key changed, i.e. carrying the
   current ``resourceVersion`` (an optimistic-concurrency replace, like ``kubectl replace``); every
   client updates its own object so no update loses a conflict. Each cell stops after N ops or T
   seconds, whichever comes first. The GETs are measured twice: from this Python process (aiohttp,
   which at 16 clients needs a whole core itself, so the two processes split the machine) and from
   ``wrk`` (C, one thread, ~25% of a core at 5,000 requests/s; bearer token from ``tokens.csv``,
   random names from the created ConfigMaps, ``-d`` = the cell's time bound): the server's capacity.
2. LIST: N small Pods are created (64 clients), then ``GET .../pods`` (the full JSON list, no limit)
   is timed several times (p50, response size), the same list walked with ``limit=500`` and
   ``continue`` (total time), and the first ``limit=500`` page as kubectl asks for it
   (``Accept: application/json;as=Table;v=v1;g=meta.k8s.io``).
3. Watch fan-out: W watchers (``?watch=true&resourceVersion=RV`` streams, one TLS connection each)
   are opened from separate client processes (``multiprocessing``, spawn), then K ConfigMaps are
   created ~0.5 s apart. For each write, the latency is from just before the write request is sent
   until the LAST watcher has decoded that event (and, separately, until the median watcher has).
   Timestamps are ``time.monotonic_ns()`` = ``CLOCK_MONOTONIC``, which is system-wide on Linux, so
   they compare across processes. Note that client processes share the CPUs with the server, so
   the client's decode work is part of the figure (as it is for real watchers on one node). They
   run on uvloop, as kybernetes' own clients do (``kybernetes.aiorun``).
4. The floor: raw inserts into SQLite with the store's own file setup (same schema, WAL,
   ``synchronous=FULL``), from one writer thread: one transaction per insert, then 64 rows per
   transaction; rows/s and per-commit p50/p99. Run before the server starts so nothing competes.
   The ratio API creates/s / raw single-insert rows/s says how much of the durable-commit budget the
   API layers leave (above 1 means group commit is amortizing fsyncs across concurrent clients).

Besides the figures, every CRUD cell records the CPU use of the server process and of the client
(this process) over the cell, from ``/proc``: with 2 cores shared by both, a cell where the client
uses most of a core is client-bound, not server-bound.

Results are printed as a table (with the project's goals next to them) and written to
``bench/results/apiserver.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import multiprocessing as mp
import os
import platform
import random
import shutil
import ssl
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.calibration import calibrate, units
from bench.watchstream import WatchStreamDecoder, watch_request
from kybernetes import aiorun
from kybernetes.storage import sqlite_schema
from kybernetes.testing import EtcdCluster, ServerProcess

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "apiserver.json"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
CONCURRENCIES = (1, 16, 64)
WRK_TOKEN = "kyb-bench-wrk-token"
USER_TOKEN = "kyb-bench-user-token"
"""With ``--authorization-mode``: a user outside ``system:masters`` (so the authorizer decides)."""
AUTHZ_RESULTS_PATH = Path(__file__).resolve().parent / "results" / "apiserver-authz.json"
METRICS_RESULTS_PATH = Path(__file__).resolve().parent / "results" / "apiserver-metrics.json"
METRICS_MODES = ("metrics-off", "metrics-on")
"""--metrics-compare: servers started with ``KYB_APISERVER_METRICS=off`` and with their metrics on."""
BENCH_ROLE = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": {"name": "kyb-bench"},
    "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create", "get"]},
              {"apiGroups": [""], "resources": ["configmaps", "pods"],
               "verbs": ["create", "get", "update", "list", "watch"]}],
}
BENCH_BINDING = {
    "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": {"name": "kyb-bench"},
    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kyb-bench"},
    "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-user"}],
}

# Goals (project targets) and references, printed next to the results.
GOAL_CREATES_PER_S = 1000.0
GOAL_GETS_PER_S = 5000.0
GOAL_P99_MUTATING_MS_AT_16 = 50.0
GOAL_FANOUT_P99_MS = 100.0
K8S_SLO_MUTATING_P99_MS = 1000.0  # Kubernetes API call latency SLO for mutating calls
GO_APISERVER_P50_MS = (15.0, 30.0)  # typical p50 of Go kube-apiserver mutating calls on etcd


@dataclass
class Scale:
    """Sizes and time bounds of every phase; ``--quick`` divides the counts by ~10."""

    cell_ops: int = 2000
    cell_seconds: float = 10.0
    list_pods: int = 10_000
    list_create_seconds: float = 120.0
    list_repeats: int = 5
    list_seconds: float = 40.0  # bound on each repeated LIST measurement
    watchers: int = 1000
    watch_procs: int = 2
    watch_writes: int = 20
    watch_interval: float = 0.5
    floor_seconds: float = 15.0

    @classmethod
    def quick(cls) -> Scale:
        return cls(cell_ops=200, cell_seconds=3.0, list_pods=1000, list_create_seconds=30.0, list_repeats=3,
                   list_seconds=10.0, watchers=100, watch_procs=1, watch_writes=5, watch_interval=0.3,
                   floor_seconds=5.0)


# --------------------------------------------------------------------------------------------
# Small helpers


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no samples."""
    if not values:
        return math.nan
    s = sorted(values)
    k = max(0, min(len(s) - 1, math.ceil(q / 100.0 * len(s)) - 1))
    return s[k]


def ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def cpu_seconds_of(pid: int) -> float:
    """User+system CPU seconds of a process (all its threads), from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may contain spaces; fields after the closing paren are fixed.
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def system_cpu() -> tuple[float, float, float]:
    """(busy, steal, total) CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    tck = os.sysconf("SC_CLK_TCK")
    total = sum(v[:8])  # guest time is already included in user
    idle = v[3] + v[4]  # idle + iowait
    return (total - idle) / tck, v[7] / tck, total / tck


@dataclass
class CpuWindow:
    """CPU use over a window, in % of one core (200% = both cores of a 2-core machine busy).

    ``other`` is the machine's busy time not spent by the server or by this (client) process: other
    work sharing the cores, the kernel's softirq work for loopback traffic, and the watch client
    processes. ``steal`` is time the hypervisor gave to other guests.
    """

    server_pid: int
    t0: float = 0.0
    srv0: float = 0.0
    cli0: float = 0.0
    sys0: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def start(self) -> CpuWindow:
        self.t0, self.srv0, self.cli0 = time.perf_counter(), cpu_seconds_of(self.server_pid), sum(os.times()[:2])
        self.sys0 = system_cpu()
        return self

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self.t0
        srv = cpu_seconds_of(self.server_pid) - self.srv0
        cli = sum(os.times()[:2]) - self.cli0
        busy, steal, _ = (a - b for a, b in zip(system_cpu(), self.sys0, strict=True))
        return {"server_cpu_pct": round(100 * srv / wall, 1), "client_cpu_pct": round(100 * cli / wall, 1),
                "other_cpu_pct": round(100 * max(0.0, busy - srv - cli) / wall, 1),
                "steal_pct": round(100 * steal / wall, 1)}


def rss_mb_of(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024.0, 1)
    return math.nan


def client_ssl_context(data_dir: Path, *, admin_cert: bool = True) -> ssl.SSLContext:
    """Verify the server against the cluster CA; present the admin client certificate unless the
    clients authenticate with a bearer token (:data:`CLIENT_AUTH`)."""
    tls = data_dir / "tls"
    ctx = ssl.create_default_context(cafile=str(tls / "ca.crt"))
    if admin_cert:
        ctx.load_cert_chain(str(tls / "admin.crt"), str(tls / "admin.key"))
    return ctx


CLIENT_AUTH: dict[str, str] = {}
"""Extra headers of every benchmark session: the bench user's bearer token with ``--authorization-mode``."""


def new_session(ctx: ssl.SSLContext, limit: int) -> aiohttp.ClientSession:
    # limit = number of concurrent clients, so every client keeps its own keep-alive connection.
    connector = aiohttp.TCPConnector(ssl=ctx, limit=limit, limit_per_host=limit, keepalive_timeout=60)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120),
                                 headers={"Accept": "application/json", "Content-Type": "application/json",
                                          **CLIENT_AUTH})


def configmap(name: str, size: int = 1024) -> dict[str, Any]:
    # ~0.9 KB request body; the stored object (plus uid, resourceVersion, managedFields...) is ~1.2 KB.
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "data": {"payload": "x" * (size - 200), "counter": "0"}}


def pod(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}


class HTTPError(Exception):
    pass


async def call(session: aiohttp.ClientSession, method: str, url: str, body: Any = None,
               headers: dict[str, str] | None = None) -> tuple[Any, int]:
    """One request; returns (decoded JSON, body size in bytes). Raises HTTPError on non-2xx."""
    data = orjson.dumps(body) if body is not None else None
    async with session.request(method, url, data=data, headers=headers) as resp:
        raw = await resp.read()
        if resp.status >= 300:
            raise HTTPError(f"{method} {url} -> {resp.status}: {raw[:300]!r}")
        return orjson.loads(raw), len(raw)


async def warm(session: aiohttp.ClientSession, base: str, n: int) -> None:
    """Open n keep-alive connections (n concurrent requests through a connector limited to n)."""
    await asyncio.gather(*(call(session, "GET", f"{base}/api/v1/namespaces/default") for _ in range(n)))


# --------------------------------------------------------------------------------------------
# Phase 1: CRUD cells


@dataclass
class Cell:
    name: str
    verb: str
    concurrency: int
    ops: int = 0
    errors: int = 0
    seconds: float = 0.0
    ops_per_s: float = 0.0
    p50_ms: float = math.nan
    p99_ms: float = math.nan
    max_ms: float = math.nan
    server_cpu_pct: float = math.nan
    client_cpu_pct: float = math.nan
    other_cpu_pct: float = math.nan
    steal_pct: float = math.nan
    first_error: str = ""


async def run_cell(name: str, verb: str, concurrency: int, scale: Scale, server_pid: int,
                   session: aiohttp.ClientSession, op: Callable[[int, int], Awaitable[None]]) -> Cell:
    """Run ``op(worker, i)`` from ``concurrency`` workers until cell_ops are issued or time is up."""
    cell = Cell(name, verb, concurrency)
    lat: list[float] = []
    issued = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + scale.cell_seconds

    async def worker(w: int) -> None:
        nonlocal issued
        while issued < scale.cell_ops and loop.time() < deadline:
            i = issued
            issued += 1
            t0 = time.perf_counter()
            try:
                await op(w, i)
            except (TimeoutError, HTTPError, aiohttp.ClientError) as e:
                cell.errors += 1
                cell.first_error = cell.first_error or str(e)[:300]
                continue
            lat.append(time.perf_counter() - t0)

    cpu = CpuWindow(server_pid).start()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    cell.seconds = time.perf_counter() - t0
    for k, v in cpu.stop().items():
        setattr(cell, k, v)
    cell.ops = len(lat)
    cell.ops_per_s = round(cell.ops / cell.seconds, 1) if cell.seconds else 0.0
    cell.p50_ms, cell.p99_ms, cell.max_ms = ms(pct(lat, 50)), ms(pct(lat, 99)), ms(pct(lat, 100))
    cell.seconds = round(cell.seconds, 3)
    print(f"  {name:<22} c={concurrency:<3} {cell.ops:>6} ops {cell.ops_per_s:>8.1f}/s  p50 {cell.p50_ms:7.2f} ms"
          f"  p99 {cell.p99_ms:7.2f} ms  cpu srv {cell.server_cpu_pct:.0f}% cli {cell.client_cpu_pct:.0f}%"
          f" other {cell.other_cpu_pct:.0f}% steal {cell.steal_pct:.0f}%"
          + (f"  errors {cell.errors}: {cell.first_error[:120]}" if cell.errors else ""), flush=True)
    return cell


WRK_SCRIPT = """
paths = {}
for line in io.lines(os.getenv("KYB_BENCH_PATHS")) do paths[#paths + 1] = line end
request = function()
  return wrk.format("GET", paths[math.random(#paths)])
end
"""


def _wrk_ms(text: str) -> float:
    """wrk's latency figures ("374.00us", "4.30ms", "1.02s") in milliseconds."""
    for unit, f in (("us", 1e-3), ("ms", 1.0), ("s", 1e3)):
        if text.endswith(unit):
            return round(float(text[: -len(unit)]) * f, 3)
    return math.nan


async def wrk_cell(name: str, concurrency: int, scale: Scale, srv: ServerProcess, paths: list[str]) -> Cell | None:
    """GETs from ``wrk`` (C, epoll, one thread): the server's capacity without a Python client's cost.

    wrk cannot present a client certificate, so it authenticates with the bearer token the benchmark
    put in the data dir's ``tokens.csv`` (group ``system:masters``, like the admin certificate).
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        print(f"  {name:<22} c={concurrency:<3} skipped: wrk is not installed (scripts/setup.sh installs it)")
        return None
    tmp = srv.data_dir / "wrk"
    tmp.mkdir(exist_ok=True)
    (tmp / "get.lua").write_text(WRK_SCRIPT)
    (tmp / "paths").write_text("\n".join(paths) + "\n")
    cell = Cell(name, "get", concurrency)
    cpu = CpuWindow(srv.proc.pid).start()
    proc = await asyncio.create_subprocess_exec(
        wrk, "-t1", f"-c{concurrency}", f"-d{max(2, int(scale.cell_seconds))}s", "--latency",
        "-s", str(tmp / "get.lua"), "-H", f"Authorization: Bearer {USER_TOKEN if CLIENT_AUTH else WRK_TOKEN}", "-H", "Accept: application/json",
        srv.url, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "KYB_BENCH_PATHS": str(tmp / "paths")})
    out = (await proc.communicate())[0].decode()
    for k, v in cpu.stop().items():
        setattr(cell, k, v)
    lat: dict[str, float] = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) == 2 and f[0] in ("50%", "99%"):
            lat[f[0]] = _wrk_ms(f[1])
        elif line.startswith("Requests/sec:"):
            cell.ops_per_s = round(float(f[1]), 1)
        elif "requests in" in line:
            cell.ops = int(f[0])
            cell.seconds = float(f[3].rstrip("s,"))
        elif line.strip().startswith(("Non-2xx", "Socket errors")):
            cell.errors += 1
            cell.first_error = cell.first_error or line.strip()
    cell.p50_ms, cell.p99_ms = lat.get("50%", math.nan), lat.get("99%", math.nan)
    print(f"  {name:<22} c={concurrency:<3} {cell.ops:>6} ops {cell.ops_per_s:>8.1f}/s  p50 {cell.p50_ms:7.2f} ms"
          f"  p99 {cell.p99_ms:7.2f} ms  cpu srv {cell.server_cpu_pct:.0f}% (wrk in other) "
          f"other {cell.other_cpu_pct:.0f}% steal {cell.steal_pct:.0f}%"
          + (f"  errors: {cell.first_error[:120]}" if cell.errors else ""), flush=True)
    return cell


async def crud_phase(srv: ServerProcess, ctx: ssl.SSLContext, scale: Scale) -> list[Cell]:
    base = srv.url
    pid = srv.proc.pid
    cm_url = f"{base}/api/v1/namespaces/bench/configmaps"
    pod_url = f"{base}/api/v1/namespaces/bench-pods/pods"
    cells: list[Cell] = []
    created: list[str] = []  # configmap names, for gets
    latest: dict[str, dict[str, Any]] = {}  # configmap name -> last object the server returned

    async with new_session(ctx, 4) as s:
        for ns in ("bench", "bench-pods"):
            await call(s, "POST", f"{base}/api/v1/namespaces",
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})

    for c in CONCURRENCIES:
        async with new_session(ctx, c) as s:
            await warm(s, base, c)

            async def create_cm(w: int, i: int, s: aiohttp.ClientSession = s, c: int = c) -> None:
                name = f"cm-c{c}-{i}"
                obj, _ = await call(s, "POST", cm_url, configmap(name))
                created.append(name)
                latest[name] = obj

            cells.append(await run_cell("create configmap", "create", c, scale, pid, s, create_cm))

    for c in CONCURRENCIES:
        async with new_session(ctx, c) as s:
            await warm(s, base, c)

            async def create_pod(w: int, i: int, s: aiohttp.ClientSession = s, c: int = c) -> None:
                await call(s, "POST", pod_url, pod(f"pod-c{c}-{i}"))

            cells.append(await run_cell("create pod", "create", c, scale, pid, s, create_pod))

    rnd = random.Random(1)
    for c in CONCURRENCIES:
        async with new_session(ctx, c) as s:
            await warm(s, base, c)

            async def get_cm(w: int, i: int, s: aiohttp.ClientSession = s) -> None:
                await call(s, "GET", f"{cm_url}/{rnd.choice(created)}")

            cells.append(await run_cell("get configmap", "get", c, scale, pid, s, get_cm))
    paths = [f"/api/v1/namespaces/bench/configmaps/{n}" for n in created]
    for c in CONCURRENCIES:
        wc = await wrk_cell("get configmap (wrk)", c, scale, srv, paths)
        if wc is not None:
            cells.append(wc)

    # Each update client owns one object, so PUTs with the current resourceVersion never conflict.
    owned = created[: max(CONCURRENCIES)]
    for c in CONCURRENCIES:
        async with new_session(ctx, c) as s:
            await warm(s, base, c)

            async def update_cm(w: int, i: int, s: aiohttp.ClientSession = s) -> None:
                name = owned[w]
                obj = latest[name]
                obj["data"]["counter"] = str(i)
                latest[name], _ = await call(s, "PUT", f"{cm_url}/{name}", obj)

            cells.append(await run_cell("update configmap (PUT)", "update", c, scale, pid, s, update_cm))
    return cells


# --------------------------------------------------------------------------------------------
# Phase 2: LIST of many pods


async def timed_repeats(repeats: int, bound: float, fn: Callable[[], Awaitable[Any]]) -> tuple[list[float], Any]:
    """Run fn up to ``repeats`` times (at least once) within ``bound`` seconds; (durations, last result)."""
    out: list[float] = []
    last: Any = None
    start = time.perf_counter()
    for _ in range(repeats):
        t0 = time.perf_counter()
        last = await fn()
        out.append(time.perf_counter() - t0)
        if time.perf_counter() - start > bound:
            break
    return out, last


async def list_phase(srv: ServerProcess, ctx: ssl.SSLContext, scale: Scale) -> dict[str, Any]:
    base = srv.url
    url = f"{base}/api/v1/namespaces/bench-list/pods"
    res: dict[str, Any] = {"pods_requested": scale.list_pods}
    async with new_session(ctx, 64) as s:
        await call(s, "POST", f"{base}/api/v1/namespaces",
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-list"}})
        await warm(s, base, 64)
        fill = Scale(cell_ops=scale.list_pods, cell_seconds=scale.list_create_seconds)

        async def create_pod(w: int, i: int) -> None:
            await call(s, "POST", url, pod(f"p-{i:05d}"))

        cell = await run_cell("create pod (LIST fill)", "create", 64, fill, srv.proc.pid, s, create_pod)
        res["fill"] = asdict(cell)

    # One connection, as a single kubectl/informer would use.
    async with new_session(ctx, 1) as s:
        await warm(s, base, 1)
        sizes: list[int] = []

        async def full() -> int:
            obj, size = await call(s, "GET", url)
            sizes.append(size)
            return len(obj["items"])

        durs, n_items = await timed_repeats(scale.list_repeats, scale.list_seconds, full)
        res["pods_listed"] = n_items
        res["full_list"] = {"runs": len(durs), "p50_ms": ms(pct(durs, 50)), "max_ms": ms(max(durs)),
                            "bytes": sizes[-1], "all_ms": [ms(d) for d in durs]}
        print(f"  LIST {n_items} pods (no limit): p50 {ms(pct(durs, 50)):.1f} ms, {sizes[-1] / 1e6:.2f} MB", flush=True)

        async def paged() -> tuple[int, int, int]:
            items = pages = total = 0
            cont = ""
            while True:
                q = f"?limit=500&continue={cont}" if cont else "?limit=500"
                obj, size = await call(s, "GET", url + q)
                items += len(obj["items"])
                pages += 1
                total += size
                cont = obj["metadata"].get("continue", "")
                if not cont:
                    return items, pages, total

        durs, (items, pages, total) = await timed_repeats(scale.list_repeats, scale.list_seconds, paged)
        res["paginated_500"] = {"runs": len(durs), "p50_total_ms": ms(pct(durs, 50)), "pages": pages,
                                "items": items, "bytes": total, "all_ms": [ms(d) for d in durs]}
        print(f"  LIST paginated limit=500: {pages} pages, {items} items, p50 total {ms(pct(durs, 50)):.1f} ms",
              flush=True)

        tsizes: list[int] = []

        async def table_page() -> int:
            obj, size = await call(s, "GET", url + "?limit=500", headers={"Accept": TABLE_ACCEPT})
            tsizes.append(size)
            if obj.get("kind") != "Table":
                raise HTTPError(f"expected a Table, got {obj.get('kind')}")
            return len(obj["rows"])

        durs, rows = await timed_repeats(scale.list_repeats, scale.list_seconds, table_page)
        res["table_first_page_500"] = {"runs": len(durs), "p50_ms": ms(pct(durs, 50)), "rows": rows,
                                       "bytes": tsizes[-1], "all_ms": [ms(d) for d in durs]}
        print(f"  LIST as=Table limit=500 first page: p50 {ms(pct(durs, 50)):.1f} ms, {rows} rows, "
              f"{tsizes[-1] / 1e3:.0f} KB", flush=True)
    res["server_rss_mb_after"] = rss_mb_of(srv.proc.pid)
    return res


# --------------------------------------------------------------------------------------------
# Phase 3: watch fan-out


class _WatchClient(asyncio.Protocol):
    """One watch stream (:mod:`bench.watchstream`): records when it decoded each object's event."""

    def __init__(self, request: bytes, arrivals: dict[str, int], opened: asyncio.Future[int]) -> None:
        self.request = request
        self.arrivals = arrivals
        self.opened = opened
        self.decoder = WatchStreamDecoder()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]  # uvloop's TLS transport

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        events = self.decoder.feed(data)
        if self.decoder.status is not None and not self.opened.done():
            self.opened.set_result(self.decoder.status)
        for ev in events:
            self.arrivals[ev["object"]["metadata"]["name"]] = now

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionResetError("closed before the response head"))


def _watch_proc(url: str, tls_dir: str, count: int, open_concurrency: int, out_q: Any, stop: Any) -> None:
    """Child process: hold ``count`` watch streams; record when each decodes each event.

    Puts ("ready", opened, failed, seconds_to_open, first_error) once every stream answered, then,
    after ``stop`` is set, ("done", [ {object name: monotonic_ns}, ... per watcher ], CPU seconds this
    process used between the two).
    """

    async def main() -> None:
        ctx = ssl.create_default_context(cafile=os.path.join(tls_dir, "ca.crt"))
        ctx.load_cert_chain(os.path.join(tls_dir, "admin.crt"), os.path.join(tls_dir, "admin.key"))
        parsed = urllib.parse.urlsplit(url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 443
        request = watch_request(url, f"{parsed.path}?{parsed.query}", "bench-watch")
        loop = asyncio.get_running_loop()
        arrivals: list[dict[str, int]] = [{} for _ in range(count)]
        gate = asyncio.Semaphore(open_concurrency)  # bound the TLS handshake burst
        transports: list[asyncio.BaseTransport] = []
        failed = 0
        first_error = ""
        t_open = time.monotonic()

        async def watcher(k: int) -> None:
            nonlocal failed, first_error
            opened: asyncio.Future[int] = loop.create_future()
            try:
                async with gate:
                    transport, _ = await loop.create_connection(
                        lambda: _WatchClient(request, arrivals[k], opened), host, port, ssl=ctx,
                        server_hostname=host)
                    transports.append(transport)
                    status = await asyncio.wait_for(opened, 60)
                if status != 200:
                    raise HTTPError(f"watch -> {status}")
            except Exception as e:  # any failure to open counts; the run reports it
                failed += 1
                first_error = first_error or f"{type(e).__name__}: {e}"[:300]

        await asyncio.gather(*(watcher(k) for k in range(count)))
        out_q.put(("ready", count - failed, failed, time.monotonic() - t_open, first_error))
        cpu0 = time.process_time()
        while not stop.is_set():
            await asyncio.sleep(0.05)
        cpu = time.process_time() - cpu0
        for t in transports:
            t.close()
        out_q.put(("done", arrivals, cpu))

    # The event loop kybernetes' own clients use (uvloop): TLS decoding of 500 streams in C.
    aiorun.run(main())


async def watch_phase(srv: ServerProcess, ctx: ssl.SSLContext, scale: Scale) -> dict[str, Any]:
    base = srv.url
    ns_url = f"{base}/api/v1/namespaces/bench-watch/configmaps"
    async with new_session(ctx, 1) as s:
        await call(s, "POST", f"{base}/api/v1/namespaces",
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench-watch"}})
        lst, _ = await call(s, "GET", ns_url)
    rv = lst["metadata"]["resourceVersion"]
    watch_url = f"{ns_url}?watch=true&resourceVersion={rv}&timeoutSeconds=900"

    procs_n = max(1, scale.watch_procs)
    per = [scale.watchers // procs_n + (1 if i < scale.watchers % procs_n else 0) for i in range(procs_n)]
    mpctx = mp.get_context("spawn")  # a clean interpreter per client: no inherited event loop or sockets
    out_q = mpctx.Queue()
    stop = mpctx.Event()
    procs = [mpctx.Process(target=_watch_proc, args=(watch_url, str(srv.data_dir / "tls"), n, 32, out_q, stop),
                           daemon=True) for n in per]
    res: dict[str, Any] = {"watchers_requested": scale.watchers, "client_processes": procs_n,
                           "writes": scale.watch_writes, "write_interval_s": scale.watch_interval}
    try:
        t_open = time.monotonic()
        for p in procs:
            p.start()
        opened = failed = 0
        errors: list[str] = []
        for _ in procs:
            tag, ok, bad, _secs, err = await asyncio.to_thread(out_q.get, True, 180)
            assert tag == "ready"
            opened += ok
            failed += bad
            if err:
                errors.append(err)
        res["watchers_open"] = opened
        res["watchers_failed"] = failed
        res["open_errors"] = errors[:3]
        res["seconds_to_open_all"] = round(time.monotonic() - t_open, 2)
        res["server_rss_mb_with_watchers"] = rss_mb_of(srv.proc.pid)
        print(f"  {opened} watchers open ({failed} failed) over {procs_n} client process(es) in "
              f"{res['seconds_to_open_all']} s (incl. process start)", flush=True)
        await asyncio.sleep(1.0)  # let every stream settle past its initial wait

        writes: list[tuple[str, int, float]] = []  # (name, t0 ns, write latency s)
        cpu = CpuWindow(srv.proc.pid).start()
        t_window = time.monotonic()
        async with new_session(ctx, 1) as s:
            await warm(s, base, 1)
            for i in range(scale.watch_writes):
                name = f"w-{i:03d}"
                body = configmap(name)
                t0 = time.monotonic_ns()
                await call(s, "POST", ns_url, body)
                writes.append((name, t0, (time.monotonic_ns() - t0) / 1e9))
                await asyncio.sleep(max(0.0, t0 / 1e9 + scale.watch_interval - time.monotonic()))
        await asyncio.sleep(3.0)  # stragglers
        # client_cpu here is only the writer; the watch clients' decoding shows up as "other".
        res["cpu_during_writes"] = cpu.stop()
        window = time.monotonic() - t_window
        stop.set()
        arrivals: list[dict[str, int]] = []
        client_cpu = 0.0
        for _ in procs:
            tag, data, used = await asyncio.to_thread(out_q.get, True, 60)
            assert tag == "done"
            arrivals.extend(data)
            client_cpu += used
        # Per write, for all watchers: what the server spent sending, what the clients spent receiving.
        n = max(1, scale.watch_writes)
        res["server_cpu_ms_per_write"] = round(res["cpu_during_writes"]["server_cpu_pct"] * window * 10 / n, 1)
        res["watch_clients_cpu_ms_per_write"] = round(client_cpu * 1000 / n, 1)
    finally:
        stop.set()
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
                p.join(5)

    last: list[float] = []
    median: list[float] = []
    missed = 0
    per_write: list[dict[str, Any]] = []
    for name, t0, wlat in writes:
        got = [(a[name] - t0) / 1e9 for a in arrivals if name in a]
        missed += opened - len(got)
        if got:
            last.append(max(got))
            median.append(statistics.median(got))
        per_write.append({"name": name, "write_ms": ms(wlat), "delivered": len(got),
                          "last_ms": ms(max(got)) if got else None,
                          "median_ms": ms(statistics.median(got)) if got else None})
    wl = [w[2] for w in writes]
    res.update({
        "last_watcher_p50_ms": ms(pct(last, 50)), "last_watcher_p99_ms": ms(pct(last, 99)),
        "median_watcher_p50_ms": ms(pct(median, 50)), "median_watcher_p99_ms": ms(pct(median, 99)),
        "write_p50_ms": ms(pct(wl, 50)), "write_p99_ms": ms(pct(wl, 99)),
        "missed_deliveries": missed, "per_write": per_write,
    })
    print(f"  fan-out to {opened}: last watcher p50 {res['last_watcher_p50_ms']:.1f} ms p99 "
          f"{res['last_watcher_p99_ms']:.1f} ms; median watcher p50 {res['median_watcher_p50_ms']:.1f} ms "
          f"p99 {res['median_watcher_p99_ms']:.1f} ms; missed {missed}", flush=True)
    return res


# --------------------------------------------------------------------------------------------
# Phase 4: the SQLite floor


def sqlite_floor(path: Path, rows: int, batch: int, bound: float) -> dict[str, Any]:
    """Insert ``rows`` ~1 KB rows, ``batch`` per transaction, with the store's file setup."""
    # The store's own connection setup (WAL, synchronous=FULL, same schema and insert), so the floor
    # differs from the server only by everything above the store.
    conn = sqlite_schema.open_writer_connection(str(path), 64 * 1024 * 1024)
    value = orjson.dumps(configmap("floor"))
    commits: list[float] = []
    done = 0
    try:
        start = time.perf_counter()
        next_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM kv").fetchone()[0] + 1
        while done < rows and time.perf_counter() - start < bound:
            t0 = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            for _ in range(min(batch, rows - done)):
                key = f"/registry/configmaps/bench/floor-{next_id}"
                conn.execute(sqlite_schema.SQL_INSERT, (next_id, key, 1, 0, next_id, 0, value))
                next_id += 1
                done += 1
            conn.execute("COMMIT")
            commits.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
    finally:
        conn.close()
    return {"rows": done, "rows_per_txn": batch, "seconds": round(elapsed, 3),
            "rows_per_s": round(done / elapsed, 1), "commits": len(commits),
            "commit_p50_ms": ms(pct(commits, 50)), "commit_p99_ms": ms(pct(commits, 99))}


# --------------------------------------------------------------------------------------------
# Report


def fmt(v: Any, nd: int = 1) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def report(results: dict[str, Any]) -> None:
    cells: list[dict[str, Any]] = results["crud"]
    print("\n=== CRUD (ConfigMaps ~1 KB, Pods small; update = PUT with current resourceVersion) ===")
    cal = results.get("calibration_ms") or math.nan
    print(f"{'cell':<24}{'clients':>8}{'ops':>7}{'ops/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'srv cpu%':>9}{'cli cpu%':>9}{'oth cpu%':>9}{'steal%':>7}{'err':>5}{'srv us/op':>10}{'srv cu/op':>10}")
    for c in cells:
        per_op = server_cpu_us_per_op(c)
        c["server_cpu_us_per_op"] = round(per_op, 1)
        c["server_cpu_cu_per_op"] = round(units(per_op / 1000, cal), 6)
        print(f"{c['name']:<24}{c['concurrency']:>8}{c['ops']:>7}{fmt(c['ops_per_s']):>10}{fmt(c['p50_ms'], 2):>9}"
              f"{fmt(c['p99_ms'], 2):>9}{fmt(c['max_ms'], 2):>9}{fmt(c['server_cpu_pct']):>9}"
              f"{fmt(c['client_cpu_pct']):>9}{fmt(c['other_cpu_pct']):>9}{fmt(c['steal_pct']):>7}{c['errors']:>5}"
              f"{per_op:>10.0f}{units(per_op / 1000, cal):>10.5f}")
    print(f"calibration: {cal:.1f} ms (bench.calibration; cu = CPU ms / calibration ms); load average at start "
          f"{results.get('loadavg_at_start')}, at end {results.get('loadavg_at_end')}")

    fl = results["floor"]
    print("\n=== SQLite floor (store's file setup: WAL, synchronous=FULL; 1 writer) ===")
    print(f"{'mode':<28}{'rows':>7}{'rows/s':>10}{'commits':>9}{'commit p50 ms':>15}{'commit p99 ms':>15}")
    for key, label in (("single", "1 insert per transaction"), ("batched", "64 inserts per transaction")):
        f = fl[key]
        print(f"{label:<28}{f['rows']:>7}{fmt(f['rows_per_s']):>10}{f['commits']:>9}"
              f"{fmt(f['commit_p50_ms'], 2):>15}{fmt(f['commit_p99_ms'], 2):>15}")
    for c, r in fl["api_create_ratio"].items():
        print(f"  API configmap creates/s at {c:>2} clients / raw single-txn inserts/s = {r:.3f}")

    if "list" not in results:  # --crud-only
        return
    ls = results["list"]
    print(f"\n=== LIST ({ls['pods_listed']} pods in one namespace; fill {fmt(ls['fill']['ops_per_s'])} pods/s "
          f"at 64 clients) ===")
    fl_ = ls["full_list"]
    pg = ls["paginated_500"]
    tb = ls["table_first_page_500"]
    print(f"  full JSON list, no limit        p50 {fmt(fl_['p50_ms'])} ms  ({fl_['runs']} runs)  "
          f"{fl_['bytes'] / 1e6:.2f} MB")
    print(f"  limit=500 + continue, all pages  p50 {fmt(pg['p50_total_ms'])} ms total  ({pg['pages']} pages, "
          f"{pg['runs']} runs)  {pg['bytes'] / 1e6:.2f} MB")
    print(f"  as=Table limit=500 first page    p50 {fmt(tb['p50_ms'])} ms  ({tb['runs']} runs)  "
          f"{tb['bytes'] / 1e3:.0f} KB, {tb['rows']} rows")

    w = results["watch"]
    print(f"\n=== Watch fan-out ({w['watchers_open']} watchers over {w['client_processes']} client processes, "
          f"{w['writes']} creates {w['write_interval_s']} s apart) ===")
    print(f"  write -> LAST watcher decoded    p50 {fmt(w['last_watcher_p50_ms'])} ms  p99 "
          f"{fmt(w['last_watcher_p99_ms'])} ms")
    print(f"  write -> median watcher decoded  p50 {fmt(w['median_watcher_p50_ms'])} ms  p99 "
          f"{fmt(w['median_watcher_p99_ms'])} ms")
    print(f"  the write request itself         p50 {fmt(w['write_p50_ms'])} ms  p99 {fmt(w['write_p99_ms'])} ms")
    wc = w["cpu_during_writes"]
    print(f"  CPU during the writes: server {wc['server_cpu_pct']}%, others (watch clients, kernel, other work) "
          f"{wc['other_cpu_pct']}%, steal {wc['steal_pct']}%")
    print(f"  CPU per write, all watchers: server {w['server_cpu_ms_per_write']} ms, watch clients "
          f"{w['watch_clients_cpu_ms_per_write']} ms")
    print(f"  missed deliveries {w['missed_deliveries']}, failed watchers {w['watchers_failed']}, "
          f"time to open all {w['seconds_to_open_all']} s, server RSS {w['server_rss_mb_with_watchers']} MB")

    print("\n=== Goals ===")
    by = {(c["name"], c["concurrency"]): c for c in cells}
    best_create = max(c["ops_per_s"] for c in cells if c["name"] == "create configmap")
    best_get = max(c["ops_per_s"] for c in cells if c["name"].startswith("get configmap"))
    mut16 = max(by[("create configmap", 16)]["p99_ms"], by[("update configmap (PUT)", 16)]["p99_ms"],
                by[("create pod", 16)]["p99_ms"])
    mut_all = max(c["p99_ms"] for c in cells if c["verb"] in ("create", "update"))
    rows = [
        ("creates/s (configmap, best of 1/16/64)", f">= {GOAL_CREATES_PER_S:,.0f}/s", fmt(best_create),
         verdict(best_create >= GOAL_CREATES_PER_S)),
        ("gets/s (best of 1/16/64, either client)", f">= {GOAL_GETS_PER_S:,.0f}/s", fmt(best_get),
         verdict(best_get >= GOAL_GETS_PER_S)),
        ("p99 mutating latency at 16 clients", f"<= {GOAL_P99_MUTATING_MS_AT_16:.0f} ms", f"{fmt(mut16)} ms",
         verdict(mut16 <= GOAL_P99_MUTATING_MS_AT_16)),
        (f"fan-out to {w['watchers_open']} watchers, p99 (last)", f"<= {GOAL_FANOUT_P99_MS:.0f} ms",
         f"{fmt(w['last_watcher_p99_ms'])} ms",
         verdict(w["last_watcher_p99_ms"] <= GOAL_FANOUT_P99_MS and w["missed_deliveries"] == 0)),
        ("K8s SLO: mutating p99, any cell", f"<= {K8S_SLO_MUTATING_P99_MS:.0f} ms", f"{fmt(mut_all)} ms",
         verdict(mut_all <= K8S_SLO_MUTATING_P99_MS)),
        ("ref: Go kube-apiserver mutating p50", f"{GO_APISERVER_P50_MS[0]:.0f}-{GO_APISERVER_P50_MS[1]:.0f} ms",
         f"create p50 at 16: {fmt(by[('create configmap', 16)]['p50_ms'])} ms", "info"),
    ]
    for name, goal, got, v in rows:
        print(f"  {name:<44}{goal:>12}{got:>32}  {v}")
    results["goals"] = [{"metric": r[0], "goal": r[1], "measured": r[2], "verdict": r[3]} for r in rows]


# --------------------------------------------------------------------------------------------


async def server_phases(srv: ServerProcess, scale: Scale, results: dict[str, Any], crud_only: bool = False) -> None:
    ctx = client_ssl_context(srv.data_dir)
    print("[1/3] CRUD cells", flush=True)
    results["crud"] = [asdict(c) for c in await crud_phase(srv, ctx, scale)]
    results["server_rss_mb_after_crud"] = rss_mb_of(srv.proc.pid)
    if crud_only:
        return
    print("[2/3] LIST", flush=True)
    results["list"] = await list_phase(srv, ctx, scale)
    print("[3/3] watch fan-out", flush=True)
    results["watch"] = await watch_phase(srv, ctx, scale)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--quick", action="store_true", help="shrink every phase ~10x (smoke test)")
    ap.add_argument("--watch-procs", type=int, default=None, help="client processes holding the watchers")
    ap.add_argument("--tmp-dir", default=None, help="parent of the temporary data dir (must not be tmpfs "
                    "for meaningful fsync figures)")
    ap.add_argument("--out", default=None, help="where to write the JSON results (default "
                    "bench/results/apiserver.json, apiserver-authz.json with --authorization-mode)")
    ap.add_argument("--authorization-mode", nargs="+", default=None, metavar="MODES",
                    help="compare servers started with these --authorization-mode values (e.g. AlwaysAllow "
                    "RBAC): CRUD phase only, clients as a user outside system:masters, the modes alternated "
                    "--rounds times in one sitting; medians and ratios to the first mode")
    ap.add_argument("--rounds", type=int, default=2, help="with --authorization-mode or --metrics-compare: runs of "
                    "each mode")
    ap.add_argument("--datastore", choices=("sqlite", "etcd"), nargs="+", default=["sqlite"],
                    help="the server's store: the embedded SQLite, or a single-member etcd (Debian's "
                    "/usr/bin/etcd, TLS, in the temp dir) that the bench starts and stops; both (sqlite etcd): "
                    "bench.datastores, the two side by side in one sitting at a short scale")
    ap.add_argument("--crud-only", action="store_true", help="run the CRUD phase only (no LIST, no watch)")
    ap.add_argument("--server-arg", action="append", default=[], metavar="FLAG",
                    help="a flag for the server, repeatable (--server-arg=--audit-policy-file=P.yaml)")
    ap.add_argument("--metrics-compare", action="store_true",
                    help="compare servers with the API server's request metrics off and on (KYB_APISERVER_METRICS): "
                    "CRUD phase only, alternated --rounds times in one sitting; medians and ratios on/off")
    ap.add_argument("--paired", action="store_true",
                    help="with --metrics-compare: both servers up at once, wrk GETs and creates (16 clients) "
                    "alternated between them --rounds times (paired cells: other load on the machine hits both)")
    args = ap.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else argv
    if args.authorization_mode:
        return compare_modes(args)
    if args.metrics_compare:
        args.datastore = args.datastore[0]
        return compare_metrics_paired(args) if args.paired else compare_metrics(args)
    if len(args.datastore) > 1:
        if args.datastore != ["sqlite", "etcd"]:
            ap.error("--datastore with two stores: sqlite etcd")
        from bench.datastores import compare_datastores

        return compare_datastores(args)
    args.datastore = args.datastore[0]
    args.out = args.out or str(RESULTS_PATH)
    scale = Scale.quick() if args.quick else Scale()
    if args.watch_procs:
        scale.watch_procs = args.watch_procs

    tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-", dir=args.tmp_dir))
    results: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(), "machine": platform.machine(), "platform": platform.platform(),
        "python": sys.version.split()[0], "aiohttp": aiohttp.__version__, "quick": args.quick,
        "scale": asdict(scale), "tmp_dir": str(tmp), "loadavg_at_start": os.getloadavg(),
        "server_args": args.server_arg, "datastore": args.datastore,
        "configmap_request_bytes": len(orjson.dumps(configmap("cm-c16-1000"))),
        "calibration_ms": round(calibrate(), 1),
    }
    print(f"calibration: {results['calibration_ms']} ms (bench.calibration)", flush=True)
    t_all = time.perf_counter()
    srv: ServerProcess | None = None
    etcd: EtcdCluster | None = None
    try:
        print("[0/3] SQLite floor", flush=True)
        floor = {
            "single": sqlite_floor(tmp / "floor1.db", scale.cell_ops, 1, scale.floor_seconds),
            "batched": sqlite_floor(tmp / "floor64.db", scale.cell_ops, 64, scale.floor_seconds),
        }
        print(f"  1/txn {floor['single']['rows_per_s']:.0f} rows/s, 64/txn {floor['batched']['rows_per_s']:.0f} "
              "rows/s", flush=True)
        results["floor"] = floor
        (tmp / "data").mkdir()
        # A bearer token for wrk (it cannot present a client certificate).
        (tmp / "data" / "tokens.csv").write_text(f'{WRK_TOKEN},bench,bench,"system:masters"\n')
        server_args = list(args.server_arg)
        if args.datastore == "etcd":
            etcd = EtcdCluster(tmp / "etcd")
            etcd.start()
            aiorun.run(etcd.wait_healthy())
            server_args += ["--datastore-endpoint", etcd.endpoints, "--datastore-cafile", etcd.tls.cafile,
                            "--datastore-certfile", etcd.tls.certfile, "--datastore-keyfile", etcd.tls.keyfile]
        srv = ServerProcess.start(tmp / "data", *server_args, timeout=60.0)
        results["server_rss_mb_at_start"] = rss_mb_of(srv.proc.pid)
        aiorun.run(server_phases(srv, scale, results, crud_only=args.crud_only))
    finally:
        if srv is not None:
            results["server_exit_code"] = srv.stop()
        if etcd is not None:
            etcd.stop()
        results["total_seconds"] = round(time.perf_counter() - t_all, 1)
        results["loadavg_at_end"] = os.getloadavg()
        with contextlib.suppress(OSError):
            shutil.rmtree(tmp)

    floor["api_create_ratio"] = {
        str(c["concurrency"]): round(c["ops_per_s"] / floor["single"]["rows_per_s"], 3)
        for c in results["crud"] if c["name"] == "create configmap"
    }
    report(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"\nwrote {out} (total {results['total_seconds']} s)")
    return 0


# --------------------------------------------------------------------------------------------
# --authorization-mode: the authorizer's cost


async def grant_bench_user(srv: ServerProcess) -> None:
    """As the admin: the bench user may do what the CRUD phase does (an RBAC grant, ignored by
    other modes)."""
    async with new_session(client_ssl_context(srv.data_dir), 1) as s:
        base = f"{srv.url}/apis/rbac.authorization.k8s.io/v1"
        await call(s, "POST", f"{base}/clusterroles", BENCH_ROLE)
        await call(s, "POST", f"{base}/clusterrolebindings", BENCH_BINDING)


async def crud_as_bench_user(srv: ServerProcess, scale: Scale, mode: str) -> list[Cell]:
    CLIENT_AUTH.clear()
    await grant_bench_user(srv)
    CLIENT_AUTH["Authorization"] = f"Bearer {USER_TOKEN}"
    if "RBAC" in mode.split(","):  # the grant is seen by the authorizer's watch shortly after the write
        async with new_session(client_ssl_context(srv.data_dir, admin_cert=False), 1) as s:
            for _ in range(100):
                with contextlib.suppress(HTTPError):
                    await call(s, "GET", f"{srv.url}/api/v1/namespaces/default")
                    break
                await asyncio.sleep(0.05)
    try:
        return await crud_phase(srv, client_ssl_context(srv.data_dir, admin_cert=False), scale)
    finally:
        CLIENT_AUTH.clear()


def compare_modes(args: argparse.Namespace) -> int:
    """Alternate servers of each ``--authorization-mode`` (A, B, A, B ...), CRUD phase each."""
    scale = Scale.quick() if args.quick else Scale()
    modes: list[str] = args.authorization_mode
    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for mode in modes:
            tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-", dir=args.tmp_dir))
            (tmp / "data").mkdir()
            (tmp / "data" / "tokens.csv").write_text(f'{USER_TOKEN},bench-user,bench-user,"bench-users"\n')
            print(f"[round {rnd + 1}/{args.rounds}] --authorization-mode {mode}", flush=True)
            srv = ServerProcess.start(tmp / "data", "--authorization-mode", mode)
            try:
                cells = aiorun.run(crud_as_bench_user(srv, scale, mode))
            finally:
                srv.stop()
                shutil.rmtree(tmp, ignore_errors=True)
            runs.append({"round": rnd, "mode": mode, "loadavg": os.getloadavg(), "crud": [asdict(c) for c in cells]})
    summary = summarize_modes(runs, modes)
    results = {"timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
               "quick": args.quick, "scale": asdict(scale), "modes": modes, "rounds": args.rounds,
               "user": "bench-user (not in system:masters)", "summary": summary, "runs": runs}
    out = Path(args.out or AUTHZ_RESULTS_PATH)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"\nwrote {out}")
    return 0


# --------------------------------------------------------------------------------------------
# --metrics-compare: the request metrics' cost


def compare_metrics(args: argparse.Namespace) -> int:
    """Alternate servers with metrics off and on (off, on, off, on ...), the CRUD phase on each, as
    the admin (and wrk with its token), and report medians per cell and the ratios on/off."""
    from kybernetes.apiserver.metrics import ENV_SWITCH

    scale = Scale.quick() if args.quick else Scale()
    runs: list[dict[str, Any]] = []
    for rnd in range(args.rounds):
        for mode in METRICS_MODES:
            tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-", dir=args.tmp_dir))
            (tmp / "data").mkdir()
            (tmp / "data" / "tokens.csv").write_text(f'{WRK_TOKEN},bench,bench,"system:masters"\n')
            print(f"[round {rnd + 1}/{args.rounds}] {mode}", flush=True)
            saved = os.environ.get(ENV_SWITCH)
            os.environ[ENV_SWITCH] = "on" if mode == "metrics-on" else "off"  # the child inherits it
            try:
                srv = ServerProcess.start(tmp / "data", *args.server_arg, timeout=60.0)
            finally:
                if saved is None:
                    os.environ.pop(ENV_SWITCH, None)
                else:
                    os.environ[ENV_SWITCH] = saved
            try:
                cells = aiorun.run(crud_phase(srv, client_ssl_context(srv.data_dir), scale))
            finally:
                srv.stop()
                shutil.rmtree(tmp, ignore_errors=True)
            runs.append({"round": rnd, "mode": mode, "loadavg": os.getloadavg(), "crud": [asdict(c) for c in cells]})
    summary = summarize_modes(runs, list(METRICS_MODES))
    results = {"timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
               "quick": args.quick, "scale": asdict(scale), "modes": list(METRICS_MODES), "rounds": args.rounds,
               "server_args": args.server_arg, "summary": summary, "runs": runs}
    out = Path(args.out or METRICS_RESULTS_PATH)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"\nwrote {out}")
    return 0


def compare_metrics_paired(args: argparse.Namespace) -> int:
    """Both servers (metrics off and on) at once; per round, a wrk GET cell and a create cell on
    each, back to back, the order alternated: each pair of cells sees the same other load."""
    from kybernetes.apiserver.metrics import ENV_SWITCH

    scale = Scale.quick() if args.quick else Scale()
    servers: dict[str, ServerProcess] = {}
    tmps: list[Path] = []
    runs: list[dict[str, Any]] = []
    try:
        for mode in METRICS_MODES:
            tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-", dir=args.tmp_dir))
            tmps.append(tmp)
            (tmp / "data").mkdir()
            (tmp / "data" / "tokens.csv").write_text(f'{WRK_TOKEN},bench,bench,"system:masters"\n')
            saved = os.environ.get(ENV_SWITCH)
            os.environ[ENV_SWITCH] = "on" if mode == "metrics-on" else "off"  # the child inherits it
            try:
                servers[mode] = ServerProcess.start(tmp / "data", *args.server_arg, timeout=60.0)
            finally:
                if saved is None:
                    os.environ.pop(ENV_SWITCH, None)
                else:
                    os.environ[ENV_SWITCH] = saved
        runs = aiorun.run(_paired_rounds(servers, scale, args.rounds))
    finally:
        for srv in servers.values():
            srv.stop()
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
    summary = summarize_modes(runs, list(METRICS_MODES))
    results = {"timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
               "quick": args.quick, "scale": asdict(scale), "modes": list(METRICS_MODES), "rounds": args.rounds,
               "paired": True, "server_args": args.server_arg, "summary": summary, "runs": runs}
    out = Path(args.out or METRICS_RESULTS_PATH.with_name("apiserver-metrics-paired.json"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"\nwrote {out}")
    return 0


async def _paired_rounds(servers: dict[str, ServerProcess], scale: Scale, rounds: int) -> list[dict[str, Any]]:
    names: dict[str, list[str]] = {}
    for mode, srv in servers.items():  # a namespace and 200 ConfigMaps to GET on each server
        async with new_session(client_ssl_context(srv.data_dir), 16) as s:
            await call(s, "POST", f"{srv.url}/api/v1/namespaces",
                       {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
            names[mode] = [f"seed-{i}" for i in range(200)]
            for i in range(0, 200, 16):
                await asyncio.gather(*(call(s, "POST", f"{srv.url}/api/v1/namespaces/bench/configmaps", configmap(n))
                                       for n in names[mode][i:i + 16]))
    runs: list[dict[str, Any]] = []
    for rnd in range(rounds):
        order = list(METRICS_MODES) if rnd % 2 == 0 else list(reversed(METRICS_MODES))
        for mode in order:
            srv = servers[mode]
            print(f"[round {rnd + 1}/{rounds}] {mode}", flush=True)
            cells: list[Cell] = []
            wc = await wrk_cell("get configmap (wrk)", 16, scale, srv, [
                f"/api/v1/namespaces/bench/configmaps/{n}" for n in names[mode]])
            if wc is not None:
                cells.append(wc)
            async with new_session(client_ssl_context(srv.data_dir), 16) as s:
                await warm(s, srv.url, 16)

                async def create_cm(w: int, i: int, s: aiohttp.ClientSession = s, rnd: int = rnd,
                                    url: str = srv.url) -> None:
                    await call(s, "POST", f"{url}/api/v1/namespaces/bench/configmaps", configmap(f"cm-r{rnd}-{i}"))

                cells.append(await run_cell("create configmap", "create", 16, scale, srv.proc.pid, s, create_cm))
            runs.append({"round": rnd, "mode": mode, "loadavg": os.getloadavg(), "crud": [asdict(c) for c in cells]})
    return runs


def server_cpu_us_per_op(cell: dict[str, Any]) -> float:
    """The server's CPU time per operation: unlike ops/s, little moved by other load on the machine."""
    if not cell["ops"]:
        return math.nan
    return cell["server_cpu_pct"] / 100 * cell["seconds"] / cell["ops"] * 1e6


def summarize_modes(runs: list[dict[str, Any]], modes: list[str]) -> list[dict[str, Any]]:
    """Per (cell, clients, mode), over the rounds: median ops/s and median server CPU us per op;
    the ratios of the last mode to the first (ops/s: below 1 is slower; CPU: above 1 costs more)."""
    rows: list[dict[str, Any]] = []
    keys = list(dict.fromkeys((c["name"], c["concurrency"]) for r in runs for c in r["crud"]))
    print(f"\n{'cell':<24}{'clients':>8}" + "".join(f"{m + ' ops/s':>18}{'cpu us/op':>11}" for m in modes)
          + f"{'ops ratio':>11}{'cpu ratio':>11}")
    for name, conc in keys:
        def median_of(m: str, f: Callable[[dict[str, Any]], float], name: str = name, conc: int = conc) -> float:
            return statistics.median([f(c) for r in runs if r["mode"] == m for c in r["crud"]
                                      if (c["name"], c["concurrency"]) == (name, conc)] or [math.nan])

        ops = {m: median_of(m, lambda c: c["ops_per_s"]) for m in modes}
        cpu = {m: median_of(m, server_cpu_us_per_op) for m in modes}
        ops_ratio = round(ops[modes[-1]] / ops[modes[0]], 3) if ops[modes[0]] else math.nan
        cpu_ratio = round(cpu[modes[-1]] / cpu[modes[0]], 3) if cpu[modes[0]] else math.nan
        rows.append({"name": name, "concurrency": conc, "median_ops_per_s": ops, "median_server_cpu_us_per_op": cpu,
                     "ops_ratio_last_to_first": ops_ratio, "cpu_ratio_last_to_first": cpu_ratio})
        print(f"{name:<24}{conc:>8}" + "".join(f"{fmt(ops[m]):>18}{fmt(cpu[m]):>11}" for m in modes)
              + f"{fmt(ops_ratio, 3):>11}{fmt(cpu_ratio, 3):>11}")
    return rows


if __name__ == "__main__":
    sys.exit(main())
