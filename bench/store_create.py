"""The store's own CPU per create, SQLite vs etcd, in the API server's process (its client side).

Run from the repository root::

    .venv/bin/python -m bench.store_create                    # both stores, CPU us per create
    .venv/bin/python -m bench.store_create --profile DIR      # the same under cProfile, stats per store

What is measured: the part of ``bench.apiserver --datastore sqlite etcd``'s "server CPU per create"
that belongs to the store, without the API layers: ``--creates`` creates of a ~1 KB value through
the store interface at ``--concurrency`` callers, with the API server's watch cache
(:class:`~kybernetes.storage.cacher.Cacher`) following the store as in the server, so each create
also costs its watch event. The figure is this process's CPU time (``time.process_time``: every
thread, gRPC's included) per create, the best of ``--rounds``; for etcd, a single-member etcd
(Debian's /usr/bin/etcd, TLS, loopback) runs beside it and its own CPU is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import shutil
import tempfile
import time
from pathlib import Path

from bench.calibration import calibrate, units
from kybernetes import aiorun
from kybernetes.storage import interface as st
from kybernetes.storage.cacher import Cacher

VALUE = b'{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"' + b"v" * 900 + b'"}}'


def _decode(value: bytes, revision: int) -> dict[str, object]:
    import orjson

    obj: dict[str, object] = orjson.loads(value)
    return obj


async def _measure(store: st.Store, creates: int, concurrency: int, rounds: int,
                   profile: Path | None) -> list[float]:
    cacher = Cacher(store, _decode)
    await cacher.start()
    await cacher.cache_for("/registry/configmaps/")
    figures = []
    prof = cProfile.Profile() if profile else None
    try:
        for rnd in range(rounds):
            sem = asyncio.Semaphore(concurrency)

            async def one(i: int, rnd: int = rnd, sem: asyncio.Semaphore = sem) -> None:
                async with sem:
                    await store.create(f"/registry/configmaps/bench/r{rnd}-{i}", VALUE)

            t0 = time.process_time()
            if prof is not None:
                prof.enable()
            await asyncio.gather(*(one(i) for i in range(creates)))
            want = await store.current_revision()
            while cacher.revision < want:  # the cache has applied every event
                await asyncio.sleep(0.001)
            if prof is not None:
                prof.disable()
            figures.append((time.process_time() - t0) / creates * 1e6)
    finally:
        await cacher.stop()
        if prof is not None and profile is not None:
            prof.dump_stats(str(profile))
    return figures


async def sqlite(tmp: Path, args: argparse.Namespace) -> list[float]:
    from kybernetes.storage.sqlite import SQLiteStore

    store = await SQLiteStore.open(str(tmp / "state.db"), compact_interval=0)
    try:
        return await _measure(store, args.creates, args.concurrency, args.rounds,
                              Path(args.profile) / "sqlite.prof" if args.profile else None)
    finally:
        await store.close()


async def etcd(tmp: Path, args: argparse.Namespace) -> list[float]:
    from kybernetes.storage.etcd import EtcdStore
    from kybernetes.testing.etcd import EtcdCluster

    cluster = EtcdCluster(tmp / "etcd")
    cluster.start()
    try:
        await cluster.wait_healthy(60)
        store = await EtcdStore.open(cluster.connection(), compact_interval=0)
        try:
            return await _measure(store, args.creates, args.concurrency, args.rounds,
                                  Path(args.profile) / "etcd.prof" if args.profile else None)
        finally:
            await store.close()
    finally:
        cluster.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--creates", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile", default=None, metavar="DIR")
    args = ap.parse_args()
    if args.profile:
        Path(args.profile).mkdir(parents=True, exist_ok=True)
    cal = calibrate()
    tmp = Path(tempfile.mkdtemp(prefix="kyb-bench-store-"))
    try:
        for name, fn in (("sqlite", sqlite), ("etcd", etcd)):
            figures = aiorun.run(fn(tmp / name, args))
            best = min(figures)
            print(f"{name:7} store CPU per create (client side + watch cache, {args.concurrency} callers): best "
                  f"{best:.0f} us ({units(best / 1000, cal):.5f} cu), rounds {', '.join(f'{f:.0f}' for f in figures)}",
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"calibration: {cal:.1f} ms (bench.calibration)")


if __name__ == "__main__":
    main()
