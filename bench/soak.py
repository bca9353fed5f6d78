"""Soak: ``python -m bench.soak [--minutes 30] [--objects 50000] [--watchers 1000]``.

Does a cluster left running grow? One ``kyb server`` (API server and the controllers it runs
without a node) holds ``--objects`` ConfigMaps spread over ``--namespaces`` namespaces, with
``--watchers`` watch streams open on them (spread evenly over the namespaces, held by two child
processes that count events and resume a closed stream from its last resourceVersion), while a
steady load runs for ``--minutes``: ``--write-rate`` writes/s (nine in ten a merge patch of a random
object, one in ten a create or delete of a short-lived one, so the count stays level) and
``--get-rate`` GETs/s of random objects, each paced, from this process.

After the objects are made and the watchers open, ``--warmup`` seconds of the load run unmeasured
(caches and pools fill); then the soak proper. The default warmup lasts until the watch cache's
bounded history of ConfigMap events (the last :data:`~kybernetes.storage.cacher.HISTORY_FRESH`
seconds of them, at most :data:`~kybernetes.storage.cacher.HISTORY`; each holds the object and its
previous state) has been filled by the load's writes, with a margin: its filling is a step (~13 MB
when the history kept 5,000 events) that a shorter warmup leaves inside the soak, where it reads as
growth although it stops once the history is full. Figures, at its start and at its end:

- RSS of every kybernetes process in the server's tree (:mod:`bench.procstat`), also sampled every
  ``--sample`` seconds into the JSON so a leak shows as a slope, not only as two points; and its
  anonymous part (the heap), which a leak grows and the kernel's reclaim of file-backed pages under
  the machine's other memory use does not move;
- p99 latency of the GETs and of the writes over the first and the last ``--window`` seconds;
- beside it, the server's CPU per request over the same windows (from /proc, with the 1-minute load
  average): p99 moves with the other load on a shared machine, CPU per request much less;
- with ``--gc-counts``, each server process's live objects by type at the start and the end (a
  bench-only ``sitecustomize`` on the server's PYTHONPATH answers SIGUSR2): a leak shows as a type
  whose count climbs, caches settling as RSS that steps and then stays level.

Goal (issue 20): each grows by under 5% from the start to the end, and no request fails. Also
reported: requests sent, failures, watch events received, watch streams that closed and resumed.
Prints the calibration figure (:mod:`bench.calibration`) and a table with PASS/MISS; JSON in
``bench/results/soak.json``. A smoke run: ``--minutes 2`` (the setup alone takes a few minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import math
import multiprocessing as mp
import os
import random
import ssl
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from bench.apiserver import client_ssl_context, cpu_seconds_of, pct
from bench.calibration import calibrate
from bench.procstat import tree_pids, tree_rss
from bench.watchstream import WatchStreamDecoder, watch_request
from kybernetes import aiorun
from kybernetes.storage.cacher import HISTORY, HISTORY_FRESH
from kybernetes.testing import ServerProcess

GOAL_GROWTH = 0.05

# With --gc-counts, put first on the server's PYTHONPATH (so in its tree only, never in production code):
# on SIGUSR2 each kybernetes process writes its live objects counted by type, the evidence that tells a
# leak (counts that climb) from caches settling (counts level, RSS a step).
_GC_COUNTS_HOOK = """
import gc, json, os, signal, sys, collections
def _kyb_soak_gc_counts(signum, frame):
    counts = collections.Counter("%s.%s" % (type(o).__module__, type(o).__qualname__) for o in gc.get_objects())
    out = os.path.join(os.environ["KYB_SOAK_GC_DIR"], "gc-%d-%d.json" % (os.getpid(), len(os.listdir(os.environ["KYB_SOAK_GC_DIR"]))))
    with open(out + ".tmp", "w") as f:
        json.dump({"pid": os.getpid(), "argv": sys.argv, "blocks": sys.getallocatedblocks(),
                   "objects": sum(counts.values()), "by_type": dict(counts.most_common(300))}, f)
    os.rename(out + ".tmp", out)
signal.signal(signal.SIGUSR2, _kyb_soak_gc_counts)
"""


def configmap(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "labels": {"app": "soak"}},
            "data": {"counter": "0", "payload": "x" * 200}}


# ---- watchers (child processes) -------------------------------------------------------------------


class _Watch(asyncio.Protocol):
    """One watch stream (:mod:`bench.watchstream`): counts events and remembers the last
    resourceVersion so that a closed stream resumes where it was."""

    def __init__(self, owner: _Watchers, ns: str, rv: str) -> None:
        self.owner, self.ns = owner, ns
        self.rv = rv
        self.refused = False
        self.decoder = WatchStreamDecoder()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.owner.request(self.ns, self.rv))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        known = self.decoder.status is not None
        events = self.decoder.feed(data)
        if not known and self.decoder.status not in (None, 200):  # e.g. 410 Gone: counted, and this watcher ends
            self.owner.errors += 1
            self.refused = True
        for ev in events:
            self.rv = ev["object"]["metadata"].get("resourceVersion") or self.rv
            self.owner.events += ev["type"] != "BOOKMARK"

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


@dataclass
class _Watchers:
    url: str
    ctx: ssl.SSLContext
    events: int = 0
    errors: int = 0
    resumed: int = 0
    failed_opens: int = 0
    opened: int = 0
    rvs: dict[str, str] = field(default_factory=dict)

    def request(self, ns: str, rv: str) -> bytes:
        query = urllib.parse.urlencode({"watch": "1", "allowWatchBookmarks": "true", "resourceVersion": rv})
        return watch_request(self.url, f"/api/v1/namespaces/{ns}/configmaps?{query}", "bench-soak-watch")

    async def hold(self, ns: str, stop: asyncio.Event, gate: asyncio.Semaphore) -> None:
        """One watcher: open (from the namespace's list revision), and reopen whenever it closes."""
        parsed = urllib.parse.urlsplit(self.url)
        host, port = parsed.hostname or "127.0.0.1", parsed.port or 443
        loop = asyncio.get_running_loop()
        rv = self.rvs[ns]
        first = True
        while not stop.is_set():
            try:
                async with gate:
                    _, proto = await asyncio.wait_for(loop.create_connection(
                        functools.partial(_Watch, self, ns, rv), host, port, ssl=self.ctx, server_hostname=host), 60)
                self.opened += first
                first = False
                stopping: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
                await asyncio.wait([proto.closed, stopping], return_when=asyncio.FIRST_COMPLETED)
                stopping.cancel()
                proto.transport.close()
                if proto.refused:
                    return
                rv = proto.rv or rv
                self.resumed += not stop.is_set()
            except (OSError, TimeoutError):
                self.failed_opens += 1
                await asyncio.sleep(1)


def _watch_proc(url: str, tls_dir: str, namespaces: list[str], rvs: dict[str, str], out_q: Any, stop: Any) -> None:
    """Child process: one watcher per entry of ``namespaces``; reports ("ready", opened, failed)
    once all are open, then after ``stop`` ("done", events, resumed, errors, failed opens)."""

    async def main() -> None:
        ctx = ssl.create_default_context(cafile=os.path.join(tls_dir, "ca.crt"))
        ctx.load_cert_chain(os.path.join(tls_dir, "admin.crt"), os.path.join(tls_dir, "admin.key"))
        w = _Watchers(url, ctx, rvs=rvs)
        halt = asyncio.Event()
        gate = asyncio.Semaphore(32)
        tasks = [asyncio.create_task(w.hold(ns, halt, gate)) for ns in namespaces]
        deadline = time.monotonic() + 300
        while w.opened + w.failed_opens < len(namespaces) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        out_q.put(("ready", w.opened, w.failed_opens))
        while not stop.is_set():
            await asyncio.sleep(0.2)
        halt.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        out_q.put(("done", w.events, w.resumed, w.errors, w.failed_opens))

    aiorun.run(main())


# ---- the load -------------------------------------------------------------------------------------


@dataclass
class Load:
    """The paced load's samples: (monotonic time, seconds) per GET and per write; failures."""

    gets: list[tuple[float, float]] = field(default_factory=list)
    writes: list[tuple[float, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def _paced(rate: float, stop: asyncio.Event, op: Any, concurrency: int = 8) -> None:
    """Start ``op()`` ``rate`` times a second (at most ``concurrency`` in flight) until ``stop``."""
    gate = asyncio.Semaphore(concurrency)
    interval = 1.0 / rate
    nxt = time.monotonic()
    pending: set[asyncio.Task[None]] = set()

    async def one() -> None:
        async with gate:
            await op()

    while not stop.is_set():
        nxt += interval
        task = asyncio.create_task(one())
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))
    await asyncio.gather(*pending, return_exceptions=True)


async def run_load(session: aiohttp.ClientSession, url: str, names: list[tuple[str, str]], args: argparse.Namespace,
                   load: Load, stop: asyncio.Event) -> None:
    began = time.monotonic()
    churn: list[tuple[str, str]] = []
    counter = 0

    async def timed(samples: list[tuple[float, float]], method: str, path: str, body: Any = None,
                    content_type: str = "application/json") -> None:
        t0 = time.monotonic()
        try:
            async with session.request(method, url + path, data=None if body is None else orjson.dumps(body),
                                       headers={"Content-Type": content_type}) as resp:
                await resp.read()
                if resp.status >= 300:
                    load.failures.append(f"{t0 - began:.0f} s into the load: {method} {path} -> {resp.status}")
        except (aiohttp.ClientError, OSError, TimeoutError) as err:
            load.failures.append(f"{t0 - began:.0f} s into the load: {method} {path}: {err!r}")
        samples.append((t0, time.monotonic() - t0))

    async def get() -> None:
        ns, name = random.choice(names)
        await timed(load.gets, "GET", f"/api/v1/namespaces/{ns}/configmaps/{name}")

    async def write() -> None:
        nonlocal counter
        counter += 1
        roll = random.random()
        if roll < 0.05 or (roll < 0.1 and not churn):
            ns = random.choice(names)[0]
            name = f"churn-{counter}"
            churn.append((ns, name))
            await timed(load.writes, "POST", f"/api/v1/namespaces/{ns}/configmaps", configmap(name))
        elif roll < 0.1:
            ns, name = churn.pop(0)
            await timed(load.writes, "DELETE", f"/api/v1/namespaces/{ns}/configmaps/{name}")
        else:
            ns, name = random.choice(names)
            await timed(load.writes, "PATCH", f"/api/v1/namespaces/{ns}/configmaps/{name}",
                        {"data": {"counter": str(counter)}}, "application/merge-patch+json")

    await asyncio.gather(_paced(args.get_rate, stop, get), _paced(args.write_rate, stop, write))


async def create_objects(session: aiohttp.ClientSession, url: str, args: argparse.Namespace) -> list[tuple[str, str]]:
    namespaces = [f"soak-{i}" for i in range(args.namespaces)]
    for ns in namespaces:
        async with session.post(f"{url}/api/v1/namespaces", json={"metadata": {"name": ns}}) as resp:
            assert resp.status == 201, await resp.text()
    names = [(namespaces[i % len(namespaces)], f"cm-{i}") for i in range(args.objects)]
    queue = list(reversed(names))

    async def creator() -> None:
        while queue:
            ns, name = queue.pop()
            async with session.post(f"{url}/api/v1/namespaces/{ns}/configmaps", json=configmap(name)) as resp:
                assert resp.status == 201, await resp.text()

    await asyncio.gather(*(creator() for _ in range(48)))
    return names


def _rss(pid: int) -> dict[str, int]:
    return tree_rss(pid)[1]


def _anon(pid: int) -> dict[str, int]:
    return tree_rss(pid, anon=True)[1]


def _kyb_pids(root: int) -> list[int]:
    """The kybernetes (Python) processes in ``root``'s tree."""
    out = []
    for pid in sorted(tree_pids(root)):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[1:3] == [b"-m", b"kybernetes.cli"]:
            out.append(pid)
    return out


async def gc_counts(root: int, gc_dir: Path | None) -> list[dict[str, Any]]:
    """Each kybernetes process's live objects by type (see ``_GC_COUNTS_HOOK``); [] without ``gc_dir``."""
    if gc_dir is None:
        return []
    before = set(gc_dir.glob("gc-*.json"))
    pids = _kyb_pids(root)
    for pid in pids:
        os.kill(pid, __import__("signal").SIGUSR2)
    deadline = time.monotonic() + 120
    while len(new := set(gc_dir.glob("gc-*.json")) - before) < len(pids) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
    return [json.loads(f.read_text()) for f in sorted(new)]


def gc_growth(start: list[dict[str, Any]], end: list[dict[str, Any]], top: int = 25) -> dict[str, Any]:
    """Per process: objects and allocated blocks at start and end, and the types that grew most."""
    out: dict[str, Any] = {}
    for a in start:
        b = next((e for e in end if e["pid"] == a["pid"]), None)
        if b is None:
            continue
        name = "kyb " + a["argv"][1] if len(a["argv"]) > 1 else str(a["pid"])
        grew = {t: b["by_type"].get(t, 0) - a["by_type"].get(t, 0) for t in set(a["by_type"]) | set(b["by_type"])}
        out[name] = {"objects": [a["objects"], b["objects"]], "blocks": [a["blocks"], b["blocks"]],
                     "grew": dict(sorted(((t, d) for t, d in grew.items() if d), key=lambda kv: -abs(kv[1]))[:top])}
    return out


def _growth(a: float, b: float) -> float:
    return (b - a) / a if a else 0.0


async def soak(srv: ServerProcess, args: argparse.Namespace, gc_dir: Path | None = None) -> dict[str, Any]:
    ctx = client_ssl_context(srv.data_dir)
    connector = aiohttp.TCPConnector(ssl=ctx, limit=64, keepalive_timeout=60)
    out: dict[str, Any] = {}
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:
        t0 = time.monotonic()
        names = await create_objects(session, srv.url, args)
        out["create_s"] = round(time.monotonic() - t0, 1)
        print(f"  {args.objects} objects in {out['create_s']} s", flush=True)
        namespaces = sorted({ns for ns, _ in names})
        rvs = {}
        for ns in namespaces:
            async with session.get(f"{srv.url}/api/v1/namespaces/{ns}/configmaps", params={"limit": "1"}) as resp:
                rvs[ns] = (await resp.json())["metadata"]["resourceVersion"]
        spawn = mp.get_context("spawn")
        out_q, stop_w = spawn.Queue(), spawn.Event()
        per = [[namespaces[i % len(namespaces)] for i in range(k, args.watchers, 2)] for k in range(2)]
        procs = [spawn.Process(target=_watch_proc, args=(srv.url, str(srv.data_dir / "tls"), p, rvs, out_q, stop_w),
                               daemon=True) for p in per]
        for p in procs:
            p.start()
        ready = [await asyncio.to_thread(out_q.get, True, 330) for _ in procs]
        out["watchers_open"] = sum(r[1] for r in ready)
        out["watchers_failed"] = sum(r[2] for r in ready)
        print(f"  {out['watchers_open']} watchers open ({out['watchers_failed']} failed)", flush=True)

        load, stop = Load(), asyncio.Event()
        runner = asyncio.create_task(run_load(session, srv.url, names, args, load, stop))
        await asyncio.sleep(args.warmup)
        gc_start = await gc_counts(srv.proc.pid, gc_dir)
        start = time.monotonic()
        samples = [(0.0, _rss(srv.proc.pid))]
        anon = [_anon(srv.proc.pid)]
        cpu = [(0.0, cpu_seconds_of(srv.proc.pid), os.getloadavg()[0])]
        end = start + args.minutes * 60
        while (now := time.monotonic()) < end:
            await asyncio.sleep(min(args.sample, end - now))
            t = round(time.monotonic() - start, 1)
            samples.append((t, _rss(srv.proc.pid)))
            anon.append(_anon(srv.proc.pid))
            cpu.append((t, cpu_seconds_of(srv.proc.pid), os.getloadavg()[0]))
            print(f"  {t:.0f} s: load {cpu[-1][2]:.1f}, RSS (anonymous) " + ", ".join(
                f"{k} {v / 2**20:.0f} ({anon[-1].get(k, 0) / 2**20:.0f}) MB" for k, v in sorted(samples[-1][1].items())),
                flush=True)
        stop.set()
        await runner
        gc_end = await gc_counts(srv.proc.pid, gc_dir)
        stop_w.set()
        done = [await asyncio.to_thread(out_q.get, True, 60) for _ in procs]
        for p in procs:
            p.join(30)
    first, last = (start, start + args.window), (end - args.window, end)

    def p99(s: list[tuple[float, float]], w: tuple[float, float]) -> float:
        return pct([d for t, d in s if w[0] <= t < w[1]], 99) * 1000

    def cpu_per_request_us(a: int, b: int) -> float:
        """The server's CPU per request (GETs and writes) between samples ``a`` and ``b``: less
        sensitive to the machine's other load than latency is."""
        (ta, ca, _), (tb, cb, _) = cpu[a], cpu[b]
        n = sum(1 for s in (load.gets, load.writes) for t, _ in s if start + ta <= t < start + tb)
        return (cb - ca) / n * 1e6 if n else math.nan

    k = max(1, min(len(cpu) - 1, round(args.window / args.sample)))
    rss0, rss1 = samples[0][1], samples[-1][1]
    out.update({
        "rss_start_mb": {k: round(v / 2**20, 1) for k, v in rss0.items()},
        "rss_end_mb": {k: round(v / 2**20, 1) for k, v in rss1.items()},
        "rss_samples_mb": [[t, {k: round(v / 2**20, 1) for k, v in r.items()}] for t, r in samples],
        "anon_rss_start_mb": {k: round(v / 2**20, 1) for k, v in anon[0].items()},
        "anon_rss_end_mb": {k: round(v / 2**20, 1) for k, v in anon[-1].items()},
        "anon_rss_samples_mb": [[t, {k: round(v / 2**20, 1) for k, v in r.items()}]
                                for (t, _), r in zip(samples, anon, strict=True)],
        "server_cpu_us_per_request": [round(cpu_per_request_us(0, k), 1),
                                      round(cpu_per_request_us(len(cpu) - 1 - k, len(cpu) - 1), 1)],
        "cpu_samples": [[t, round(c, 2), round(la, 2)] for t, c, la in cpu],
        "gc_growth": gc_growth(gc_start, gc_end),
        "get_p99_ms": [round(p99(load.gets, first), 2), round(p99(load.gets, last), 2)],
        "write_p99_ms": [round(p99(load.writes, first), 2), round(p99(load.writes, last), 2)],
        "gets": len(load.gets), "writes": len(load.writes), "failures": len(load.failures),
        "first_failures": load.failures[:10],
        "watch_events": sum(d[1] for d in done), "watch_resumed": sum(d[2] for d in done),
        "watch_errors": sum(d[3] for d in done) + sum(d[4] for d in done),
    })
    return out


def report(res: dict[str, Any], args: argparse.Namespace, calibration_ms: float) -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []
    for proc in sorted(res["rss_start_mb"]):
        a, b = res["rss_start_mb"][proc], res["rss_end_mb"].get(proc, 0.0)
        rows.append((f"RSS {proc}", f"{a:.0f} -> {b:.0f} MB ({_growth(a, b):+.1%})", _growth(a, b) < GOAL_GROWTH))
    for proc in sorted(res["anon_rss_start_mb"]):
        a, b = res["anon_rss_start_mb"][proc], res["anon_rss_end_mb"].get(proc, 0.0)
        rows.append((f"anonymous RSS {proc}", f"{a:.0f} -> {b:.0f} MB ({_growth(a, b):+.1%})", _growth(a, b) < GOAL_GROWTH))
    for what in ("get", "write"):
        a, b = res[f"{what}_p99_ms"]
        rows.append((f"p99 {what.upper() if what == 'get' else what}s", f"{a:.1f} -> {b:.1f} ms ({_growth(a, b):+.1%})",
                     _growth(a, b) < GOAL_GROWTH))
    rows.append(("failed requests", f"{res['failures']} of {res['gets'] + res['writes']}", res["failures"] == 0))
    print(f"soak: {args.objects} objects, {res['watchers_open']} watchers, {args.write_rate:g} writes/s and "
          f"{args.get_rate:g} GETs/s for {args.minutes:g} min; {res['watch_events']} watch events, "
          f"{res['watch_resumed']} streams resumed; calibration {calibration_ms:.0f} ms")
    print("| figure | start -> end | goal | |\n|---|---|---|---|")
    for name, value, ok in rows:
        goal = "0" if name == "failed requests" else "growth < 5%"
        print(f"| {name} | {value} | {goal} | {'PASS' if ok else 'MISS'} |")
    a, b = res["server_cpu_us_per_request"]
    load_a, load_b = res["cpu_samples"][0][2], res["cpu_samples"][-1][2]
    print(f"server CPU per request (paired with p99, less sensitive to other load): {a:.0f} -> {b:.0f} us "
          f"({_growth(a, b):+.1%}); 1-min load {load_a:.1f} -> {load_b:.1f}")
    for proc, g in res.get("gc_growth", {}).items():
        print(f"{proc}: gc-tracked objects {g['objects'][0]} -> {g['objects'][1]}, allocated blocks "
              f"{g['blocks'][0]} -> {g['blocks'][1]}; grew most: "
              + ", ".join(f"{t} {d:+d}" for t, d in list(g["grew"].items())[:8]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--objects", type=int, default=50_000)
    parser.add_argument("--namespaces", type=int, default=100)
    parser.add_argument("--watchers", type=int, default=1_000)
    parser.add_argument("--write-rate", type=float, default=20.0)
    parser.add_argument("--get-rate", type=float, default=50.0)
    parser.add_argument("--warmup", type=float, default=None,
                        help="seconds of unmeasured load (default: until the watch cache's history is full, "
                             "1.2 x the time it takes to fill, at least 60)")
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--sample", type=float, default=30.0)
    parser.add_argument("--gc-counts", action="store_true",
                        help="count each server process's live objects by type at the start and the end")
    parser.add_argument("--out", type=Path, default=Path("bench/results/soak.json"))
    args = parser.parse_args()
    args.window = min(args.window, args.minutes * 60 / 3)
    if args.warmup is None:
        args.warmup = max(60.0, 1.2 * min(HISTORY / args.write_rate, HISTORY_FRESH))
    calibration_ms = calibrate()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kyb-soak-") as tmp:
        gc_dir = None
        saved_env = dict(os.environ)
        if args.gc_counts:
            gc_dir = Path(tmp) / "gc"
            (Path(tmp) / "hook").mkdir()
            gc_dir.mkdir()
            (Path(tmp) / "hook" / "sitecustomize.py").write_text(_GC_COUNTS_HOOK)
            os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tmp) / "hook"), os.environ.get("PYTHONPATH")]))
            os.environ["KYB_SOAK_GC_DIR"] = str(gc_dir)
        try:
            srv = ServerProcess.start(Path(tmp) / "srv", timeout=60)
        finally:  # the server's tree only: the watchers and this process run without the hook
            os.environ.clear()
            os.environ.update(saved_env)
        try:
            res = asyncio.run(soak(srv, args, gc_dir))
        finally:
            srv.stop()
    rows = report(res, args, calibration_ms)
    res.update({"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "args": vars(args) | {"out": str(args.out)},
                "calibration_ms": round(calibration_ms, 1), "loadavg_before": load_before,
                "loadavg_after": os.getloadavg(), "pass": all(ok for _, _, ok in rows)})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
