"""Scheduling throughput (run by hand, not collected by pytest).

    .venv/bin/python -m tests.scheduler.bench_throughput api  [nodes] [pods]    # real kyb server
    .venv/bin/python -m tests.scheduler.bench_throughput mem  [nodes] [pods] [workload]  # in memory

``api``: starts a ``kyb server``, creates the nodes and the pending pods through the API, then
starts the scheduler and times from informer sync until every pod's binding has been accepted by
the API server. ``mem`` measures the scheduling cycle alone (binds answered at once).
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kybernetes import aiorun
from kybernetes.scheduler.config import SchedulerConfig
from kybernetes.scheduler.scheduler import Scheduler

from .util import node, pod


def make_node(i: int) -> dict[str, Any]:
    return node(f"node-{i}", "8", "32Gi", labels={"topology.kubernetes.io/zone": f"zone-{i % 3}"})


def make_pod(i: int) -> dict[str, Any]:
    p = pod(f"pod-{i}", "100m", "128Mi", labels={"app": f"app-{i % 10}"})
    del p["metadata"]["uid"], p["metadata"]["creationTimestamp"], p["status"]
    return p


async def bench_api(n_nodes: int, n_pods: int) -> None:
    from kybernetes.client.informer import SharedInformerFactory
    from kybernetes.client.rest import Client
    from kybernetes.testing import ServerProcess

    with tempfile.TemporaryDirectory() as d:
        srv = ServerProcess.start(Path(d) / "data")
        try:
            client = Client.from_kubeconfig(srv.kubeconfig)
            sem = asyncio.Semaphore(32)

            async def create(plural: str, obj: dict[str, Any], ns: str = "") -> None:
                async with sem:
                    await client.create("v1", plural, obj, ns)
            t0 = time.perf_counter()
            await asyncio.gather(*(create("nodes", make_node(i)) for i in range(n_nodes)))
            await asyncio.gather(*(create("pods", make_pod(i), "default") for i in range(n_pods)))
            print(f"created {n_nodes} nodes and {n_pods} pods in {time.perf_counter() - t0:.1f}s")
            sched = Scheduler(client, SchedulerConfig())
            done = asyncio.Event()
            bound = 0

            def on_scheduled(pi: Any, node_name: str) -> None:
                nonlocal bound
                bound += 1
                if bound == n_pods:
                    done.set()
            sched.on_scheduled = on_scheduled
            factory = SharedInformerFactory(client)
            sched.register(factory)
            await factory.start()
            await factory.wait_for_sync(60)
            assert len(sched.queue) == n_pods, len(sched.queue)
            t1 = time.perf_counter()
            loop = asyncio.create_task(sched.loop())
            await asyncio.wait_for(done.wait(), 600)
            dt = time.perf_counter() - t1
            loop.cancel()
            print(f"API: scheduled and bound {n_pods} pods on {n_nodes} nodes in {dt:.2f}s = "
                  f"{n_pods / dt:.0f} pods/s  stats={sched.stats}")
            await factory.stop()
            await sched.recorder.close()
            await client.close()
        finally:
            srv.stop()


class _InstantClient:
    async def create(self, *a: Any, **kw: Any) -> dict[str, Any]:
        return {}

    async def patch(self, *a: Any, **kw: Any) -> dict[str, Any]:
        return {}


class _NoEvents:
    def event(self, *a: Any) -> None:
        pass


async def bench_mem(n_nodes: int, n_pods: int, workload: str = "") -> None:
    """``workload`` (basic, anti-affinity, spread): bench.scheduler's pods on its node shape."""
    sched = Scheduler(_InstantClient(), SchedulerConfig(), recorder=_NoEvents(), rng=random.Random(0))
    for i in range(n_nodes):
        if workload:
            sched.on_node_add(node(f"sched-{i}", "4", "32Gi", labels={
                "topology.kubernetes.io/zone": f"zone-{i % 3}", "kubernetes.io/hostname": f"sched-{i}"}))
        else:
            sched.on_node_add(make_node(i))
    for i in range(n_pods):
        if workload:
            from bench.scheduler import pod_manifest

            p = pod_manifest(f"p-{i}", workload, "g")
            p["metadata"].update(namespace="bench", creationTimestamp="2026-01-01T00:00:00Z")
        else:
            p = make_pod(i)
        p["metadata"]["uid"] = f"u{i}"
        sched.on_pod_add(p)
    t = time.perf_counter()
    await sched.drain()
    dt = time.perf_counter() - t
    print(f"in memory{' ' + workload if workload else ''}: {n_pods} pods on {n_nodes} nodes in {dt:.2f}s = "
          f"{n_pods / dt:.0f} pods/s  "
          f"stats={sched.stats}")


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "mem"
    nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 500
    pods = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    workload = sys.argv[4] if len(sys.argv) > 4 else ""
    # The event loop and collector settings of the real scheduler process.
    aiorun.run(bench_api(nodes, pods) if mode == "api" else bench_mem(nodes, pods, workload))
