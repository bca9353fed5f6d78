"""SQLite and etcd side by side in one sitting: ``python -m bench.apiserver --datastore sqlite etcd``.

For each store, a fresh ``kyb server`` (API server only: no controller manager, scheduler or agent)
on it, measured with ``bench.apiserver``'s own cells and watch phase at a short scale:

- ConfigMap creates/s and GETs/s (p50/p99) at 1, 16 and 64 clients from this process;
- watch fan-out (``bench.apiserver.watch_phase``, fewer watchers and writes);
- the floor of each store, before its server starts so nothing competes: SQLite's raw inserts
  (``sqlite_floor``, 1 per transaction), etcd's raw puts of the same ~1 KB value through the
  store's own client (``kybernetes.storage.etcd_client.EtcdConnection``, one gRPC channel as the
  store has) at 1, 16 and 64 concurrent callers, and the store's create transaction
  (``create_revision == 0`` then put) at 64;
- the etcd put floor at 64 again right after the API cells (the goal's ratio takes the mean of the
  two: other work on a shared machine moves both);
- on etcd, two API servers on the one etcd (sharing the first one's PKI, as joined servers do):
  creates/s from two client processes of 32 clients each, first both against one server, then one
  process per server, started together.

Goals (issue 14): API creates/s on etcd at 64 clients >= 0.6 x raw etcd puts/s at 64; two API
servers >= 1.6 x one server's creates/s where the machine has the cores (``nproc`` is recorded:
the API servers, etcd and the clients all share them).

``KYB_BENCH_PROFILE=DIR`` runs the etcd API server under cProfile (``cProfile`` of
``kybernetes.cli``), its stats written to DIR when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import multiprocessing as mp
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.apiserver import (
    CONCURRENCIES,
    Cell,
    CpuWindow,
    Scale,
    call,
    client_ssl_context,
    configmap,
    fmt,
    ms,
    new_session,
    pct,
    run_cell,
    sqlite_floor,
    verdict,
    warm,
    watch_phase,
)
from bench.calibration import calibrate, units
from kybernetes import aiorun
from kybernetes.storage.etcd_client import EtcdConnection
from kybernetes.storage.etcdpb import rpc_pb2 as rpc
from kybernetes.testing import EtcdCluster, ServerProcess

RESULTS_PATH = Path(__file__).resolve().parent / "results" / "apiserver-datastores.json"
GOAL_ETCD_CREATE_RATIO = 0.6
GOAL_TWO_SERVERS_RATIO = 1.6
PROFILE_ENV = "KYB_BENCH_PROFILE"


@dataclass
class CompareScale:
    cell_seconds: float = 3.0
    cell_ops: int = 5000
    watchers: int = 200
    watch_writes: int = 10
    watch_interval: float = 0.3
    floor_seconds: float = 3.0
    pair_seconds: float = 4.0
    pair_clients: int = 32

    def bench_scale(self) -> Scale:
        return Scale(cell_ops=self.cell_ops, cell_seconds=self.cell_seconds, watchers=self.watchers,
                     watch_procs=1, watch_writes=self.watch_writes, watch_interval=self.watch_interval,
                     floor_seconds=self.floor_seconds)


# --------------------------------------------------------------------------------------------
# The etcd floor


async def etcd_floor(endpoints: str, cluster: EtcdCluster, concurrency: int, seconds: float, max_ops: int,
                     kind: str = "put") -> dict[str, Any]:
    """Puts (or the store's create transactions) of a ~1 KB value from ``concurrency`` callers on
    one connection until ``max_ops`` or ``seconds``; ops/s, p50/p99, this process's CPU."""
    conn = EtcdConnection(cluster.connection().endpoints, cluster.tls, timeout=10.0)
    value = orjson.dumps(configmap("floor"))
    lat: list[float] = []
    issued = 0
    prefix = f"/bench-floor/{kind}-{concurrency}-{time.monotonic_ns()}/"

    async def one(i: int) -> None:
        key = f"{prefix}{i}".encode()
        if kind == "put":
            await conn.call(lambda kv, t: kv.Put(rpc.PutRequest(key=key, value=value), timeout=t))
            return
        req = rpc.TxnRequest(
            compare=[rpc.Compare(result=rpc.Compare.EQUAL, target=rpc.Compare.CREATE, key=key, create_revision=0)],
            success=[rpc.RequestOp(request_put=rpc.PutRequest(key=key, value=value))])
        resp = await conn.call(lambda kv, t: kv.Txn(req, timeout=t))
        assert resp.succeeded

    async def worker(deadline: float) -> None:
        nonlocal issued
        while issued < max_ops and time.perf_counter() < deadline:
            i = issued
            issued += 1
            t0 = time.perf_counter()
            await one(i)
            lat.append(time.perf_counter() - t0)

    try:
        await one(-1)  # connect
        cpu0 = sum(os.times()[:2])
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(t0 + seconds) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
        cpu = sum(os.times()[:2]) - cpu0
    finally:
        await conn.close()
    res = {"kind": kind, "concurrency": concurrency, "ops": len(lat), "seconds": round(wall, 3),
           "ops_per_s": round(len(lat) / wall, 1), "p50_ms": ms(pct(lat, 50)), "p99_ms": ms(pct(lat, 99)),
           "client_cpu_pct": round(100 * cpu / wall, 1)}
    print(f"  etcd raw {kind:<4} c={concurrency:<3} {res['ops']:>6} ops {res['ops_per_s']:>8.1f}/s  "
          f"p50 {res['p50_ms']:7.2f} ms  p99 {res['p99_ms']:7.2f} ms  client cpu {res['client_cpu_pct']:.0f}%",
          flush=True)
    return res


# --------------------------------------------------------------------------------------------
# API cells


async def api_cells(srv: ServerProcess, scale: Scale) -> list[Cell]:
    """ConfigMap creates then GETs at 1/16/64 clients (``bench.apiserver``'s cells)."""
    ctx = client_ssl_context(srv.data_dir)
    base, pid = srv.url, srv.proc.pid
    url = f"{base}/api/v1/namespaces/bench/configmaps"
    created: list[str] = []
    cells: list[Cell] = []
    async with new_session(ctx, 1) as s:
        await call(s, "POST", f"{base}/api/v1/namespaces",
                   {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "bench"}})
    for c in CONCURRENCIES:
        async with new_session(ctx, c) as s:
            await warm(s, base, c)

            async def create(w: int, i: int, s: Any = s, c: int = c) -> None:
                name = f"cm-c{c}-{i}"
                await call(s, "POST", url, configmap(name))
                created.append(name)

            cells.append(await run_cell("create configmap", "create", c, scale, pid, s, create))
    names = iter(range(1 << 62))
    for c in CONCURRENCIES:
        async with new_session(ctx, c) as s:
            await warm(s, base, c)

            async def get(w: int, i: int, s: Any = s) -> None:
                await call(s, "GET", f"{url}/{created[next(names) % len(created)]}")

            cells.append(await run_cell("get configmap", "get", c, scale, pid, s, get))
    return cells


def _creates_proc(url: str, data_dir: str, clients: int, seconds: float, prefix: str, ready: Any, go: Any,
                  out_q: Any) -> None:
    """A client process: ``clients`` concurrent ConfigMap creators against ``url`` for ``seconds``
    after ``go`` is set; puts (ops, seconds, p99 s, errors, cpu s) on ``out_q``."""
    async def main() -> None:
        ctx = client_ssl_context(Path(data_dir))
        cm_url = f"{url}/api/v1/namespaces/bench/configmaps"
        lat: list[float] = []
        errors = 0
        first_error = ""
        n = 0
        async with new_session(ctx, clients) as s:
            await warm(s, url, clients)
            ready.set()
            await asyncio.to_thread(go.wait, 60)
            cpu0 = time.process_time()
            t0 = time.perf_counter()
            deadline = t0 + seconds

            async def worker() -> None:
                nonlocal n, errors, first_error
                while time.perf_counter() < deadline:
                    n += 1
                    t = time.perf_counter()
                    try:
                        await call(s, "POST", cm_url, configmap(f"{prefix}-{n}"))
                    except Exception as e:  # counted; the run goes on
                        errors += 1
                        first_error = first_error or str(e)[:300]
                        continue
                    lat.append(time.perf_counter() - t)

            await asyncio.gather(*(worker() for _ in range(clients)))
            wall = time.perf_counter() - t0
        out_q.put((len(lat), wall, pct(lat, 99), errors, time.process_time() - cpu0, first_error))

    aiorun.run(main())


def paired_creates(targets: list[tuple[str, Path]], clients: int, seconds: float, tag: str,
                   server_pids: list[int]) -> dict[str, Any]:
    """One client process per target (url, data dir), started together; total creates/s."""
    mpctx = mp.get_context("spawn")
    out_q = mpctx.Queue()
    go = mpctx.Event()
    readies = [mpctx.Event() for _ in targets]
    procs = [mpctx.Process(target=_creates_proc, args=(url, str(d), clients, seconds, f"{tag.replace(' ', '-')}-{i}", readies[i], go,
                                                       out_q), daemon=True)
             for i, (url, d) in enumerate(targets)]
    for p in procs:
        p.start()
    try:
        for r in readies:
            if not r.wait(60):
                raise RuntimeError("a client process did not get ready")
        srv0 = [CpuWindow(pid).start() for pid in server_pids]
        go.set()
        outs = [out_q.get(True, seconds + 60) for _ in procs]
        srv_cpu = [w.stop()["server_cpu_pct"] for w in srv0]
    finally:
        for p in procs:
            p.join(10)
            if p.is_alive():
                p.terminate()
    ops = sum(o[0] for o in outs)
    wall = max(o[1] for o in outs)
    res = {"client_processes": len(targets), "clients_each": clients, "ops": ops, "seconds": round(wall, 3),
           "ops_per_s": round(ops / wall, 1), "p99_ms": ms(max(o[2] for o in outs)),
           "errors": sum(o[3] for o in outs), "first_error": next((o[5] for o in outs if o[5]), ""),
           "client_cpu_pct": round(100 * sum(o[4] for o in outs) / wall, 1),
           "server_cpu_pct": srv_cpu}
    print(f"  {tag:<22} {ops:>6} creates {res['ops_per_s']:>8.1f}/s  p99 {res['p99_ms']:7.2f} ms  "
          f"server cpu {srv_cpu}%  clients cpu {res['client_cpu_pct']}%  errors {res['errors']} {res['first_error']}",
          flush=True)
    return res


# --------------------------------------------------------------------------------------------
# The sitting


def _start_server(data_dir: Path, extra: list[str], profile: bool = False) -> ServerProcess:
    env_before = os.environ.get("KYB_PROFILE_OUT")
    if profile and os.environ.get(PROFILE_ENV):
        os.environ["KYB_PROFILE_OUT"] = str(Path(os.environ[PROFILE_ENV]) / f"{data_dir.name}.prof")
    try:
        return ServerProcess.start(data_dir, *extra, "--disable-controller-manager", timeout=90.0)
    finally:
        if env_before is None:
            os.environ.pop("KYB_PROFILE_OUT", None)
        else:
            os.environ["KYB_PROFILE_OUT"] = env_before


def run_store(store: str, tmp: Path, cs: CompareScale, server_args: list[str]) -> dict[str, Any]:
    scale = cs.bench_scale()
    res: dict[str, Any] = {"datastore": store, "loadavg_at_start": os.getloadavg()}
    etcd: EtcdCluster | None = None
    servers: list[ServerProcess] = []
    try:
        extra = list(server_args)
        if store == "sqlite":
            res["floor"] = {"sqlite_insert_1_per_txn": sqlite_floor(tmp / "floor.db", cs.cell_ops, 1,
                                                                     cs.floor_seconds)}
            print(f"  sqlite raw insert       {res['floor']['sqlite_insert_1_per_txn']['rows_per_s']:.0f} rows/s",
                  flush=True)
        else:
            etcd = EtcdCluster(tmp / "etcd")
            etcd.start()
            aiorun.run(etcd.wait_healthy())
            floor = [aiorun.run(etcd_floor(etcd.endpoints, etcd, c, cs.floor_seconds, cs.cell_ops))
                     for c in CONCURRENCIES]
            floor.append(aiorun.run(etcd_floor(etcd.endpoints, etcd, 64, cs.floor_seconds, cs.cell_ops, "txn")))
            res["floor"] = {"etcd": floor}
            extra += ["--datastore-endpoint", etcd.endpoints, "--datastore-cafile", etcd.tls.cafile,
                      "--datastore-certfile", etcd.tls.certfile, "--datastore-keyfile", etcd.tls.keyfile]
        servers.append(_start_server(tmp / "server-a", extra, profile=store == "etcd"))
        srv = servers[0]
        res["crud"] = [asdict(c) for c in aiorun.run(api_cells(srv, scale))]
        if etcd is not None:  # the put floor again, beside the API's cells: the machine's load moves
            res["floor"]["etcd_after_api"] = aiorun.run(etcd_floor(etcd.endpoints, etcd, 64, cs.floor_seconds,
                                                                   cs.cell_ops))
        res["watch"] = aiorun.run(watch_phase(srv, client_ssl_context(srv.data_dir), scale))
        res["watch"].pop("per_write", None)
        if etcd is not None:
            one = paired_creates([(srv.url, srv.data_dir)] * 2, cs.pair_clients, cs.pair_seconds, "one server",
                                 [srv.proc.pid])
            b_dir = tmp / "server-b"
            b_dir.mkdir()
            shutil.copytree(srv.data_dir / "tls", b_dir / "tls")  # one cluster PKI, as a joined server has
            servers.append(_start_server(b_dir, extra))
            b = servers[1]
            two = paired_creates([(srv.url, srv.data_dir), (b.url, b.data_dir)], cs.pair_clients, cs.pair_seconds,
                                 "two servers", [srv.proc.pid, b.proc.pid])
            res["two_servers"] = {"one_server": one, "two_servers": two,
                                  "ratio": round(two["ops_per_s"] / one["ops_per_s"], 3) if one["ops_per_s"] else None}
    finally:
        for s in reversed(servers):
            res.setdefault("server_exit_codes", []).append(s.stop())
        if etcd is not None:
            etcd.stop()
    return res


def cpu_us_per_op(cell: dict[str, Any]) -> float:
    """The server's CPU per operation over a cell: far less moved by other load than ops/s."""
    return cell["server_cpu_pct"] / 100 / cell["ops_per_s"] * 1e6 if cell["ops_per_s"] else float("nan")


def report(results: dict[str, Any]) -> list[dict[str, str]]:
    stores = results["stores"]
    print(f"\n=== SQLite vs etcd, one sitting ({results['nproc']} cores shared by servers, etcd and clients) ===")
    print(f"{'cell':<20}{'clients':>8}" + "".join(f"{s + ' ops/s':>14}{'p50 ms':>9}{'p99 ms':>9}{'srv us/op':>10}"
                                                  for s in stores) + f"{'etcd/sqlite':>13}")
    by = {s: {(c["name"], c["concurrency"]): c for c in stores[s]["crud"]} for s in stores}
    for key in by["sqlite"]:
        row = [by[s][key] for s in stores]
        ratio = row[1]["ops_per_s"] / row[0]["ops_per_s"] if row[0]["ops_per_s"] else float("nan")
        print(f"{key[0]:<20}{key[1]:>8}" + "".join(f"{fmt(c['ops_per_s']):>14}{fmt(c['p50_ms'], 2):>9}"
                                                     f"{fmt(c['p99_ms'], 2):>9}{fmt(cpu_us_per_op(c), 0):>10}"
                                                     for c in row) + f"{ratio:>13.2f}")
    for s in stores:
        w = stores[s]["watch"]
        print(f"watch fan-out {s:<7} {w['watchers_open']} watchers: last p50 {fmt(w['last_watcher_p50_ms'])} ms, "
              f"p99 {fmt(w['last_watcher_p99_ms'])} ms; missed {w['missed_deliveries']}")
    print(f"sqlite raw inserts (1/txn): {fmt(stores['sqlite']['floor']['sqlite_insert_1_per_txn']['rows_per_s'])}/s")
    floor = {(f["kind"], f["concurrency"]): f for f in stores["etcd"]["floor"]["etcd"]}
    for (kind, c), f in floor.items():
        print(f"etcd raw {kind} c={c:<3} {fmt(f['ops_per_s'])}/s  p50 {fmt(f['p50_ms'], 2)} ms  "
              f"p99 {fmt(f['p99_ms'], 2)} ms  client cpu {f['client_cpu_pct']}%")
    after = stores["etcd"]["floor"]["etcd_after_api"]
    print(f"etcd raw put c=64 again after the API cells: {fmt(after['ops_per_s'])}/s")
    api64 = by["etcd"][("create configmap", 64)]["ops_per_s"]
    put64 = round((floor[("put", 64)]["ops_per_s"] + after["ops_per_s"]) / 2, 1)  # before and after the API cells
    ratio = round(api64 / put64, 3) if put64 else float("nan")
    pair = stores["etcd"]["two_servers"]
    rows = [
        {"metric": "etcd: API creates/s at 64 / raw puts/s at 64 (mean before, after)", "goal": f">= {GOAL_ETCD_CREATE_RATIO}",
         "measured": f"{fmt(api64)} / {fmt(put64)} = {ratio:.3f}", "verdict": verdict(ratio >= GOAL_ETCD_CREATE_RATIO)},
        {"metric": f"etcd: two API servers / one ({results['nproc']} cores)", "goal": f">= {GOAL_TWO_SERVERS_RATIO}",
         "measured": f"{fmt(pair['two_servers']['ops_per_s'])} / {fmt(pair['one_server']['ops_per_s'])} = "
                     f"{fmt(pair['ratio'], 3)}", "verdict": verdict((pair["ratio"] or 0) >= GOAL_TWO_SERVERS_RATIO)},
    ]
    cal = results["calibration_ms"]
    for st_name in stores:
        cells = by[st_name]
        figures = ", ".join(f"c={c} {cpu_us_per_op(cell):.0f} us = {units(cpu_us_per_op(cell) / 1000, cal):.5f} cu"
                            for (n, c), cell in cells.items() if n == "create configmap")
        print(f"server CPU per create, {st_name}: {figures}")
    print(f"calibration: {cal} ms (bench.calibration; cu = CPU ms / calibration ms)")
    print("\n=== Goals ===")
    for r in rows:
        print(f"  {r['metric']:<48}{r['goal']:>8}  {r['measured']:>36}  {r['verdict']}")
    return rows


def compare_datastores(args: argparse.Namespace) -> int:
    cs = CompareScale()
    if args.quick:
        cs = CompareScale(cell_seconds=1.0, cell_ops=500, watchers=50, watch_writes=5, floor_seconds=1.0,
                          pair_seconds=2.0, pair_clients=16)
    results: dict[str, Any] = {
        "timestamp": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "nproc": os.cpu_count(),
        "machine": platform.machine(), "python": sys.version.split()[0], "quick": args.quick,
        "scale": asdict(cs), "server_args": args.server_arg, "loadavg_at_start": os.getloadavg(),
        "command": " ".join(["python -m bench.apiserver", *(args.argv or [])]), "stores": {},
        "calibration_ms": round(calibrate(), 1),
    }
    print(f"calibration: {results['calibration_ms']} ms (bench.calibration)", flush=True)
    t0 = time.perf_counter()
    for store in args.datastore:
        print(f"[{store}]", flush=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"kyb-bench-{store}-", dir=args.tmp_dir))
        try:
            results["stores"][store] = run_store(store, tmp, cs, list(args.server_arg))
        finally:
            with contextlib.suppress(OSError):
                shutil.rmtree(tmp)
    results["total_seconds"] = round(time.perf_counter() - t0, 1)
    results["loadavg_at_end"] = os.getloadavg()
    results["goals"] = report(results)
    out = Path(args.out or RESULTS_PATH)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    print(f"\nwrote {out} (total {results['total_seconds']} s)")
    return 0

