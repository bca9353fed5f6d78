"""Pod start-up latency on a real node, after Kubernetes' pod start-up SLI.

Run from the repository root, as root (containerd, CNI)::

    .venv/bin/python -m bench.podstartup              # 20 one at a time, 50 at once (~2 minutes)
    .venv/bin/python -m bench.podstartup --quick      # 5 and 10 (smoke test)

What is measured
----------------
A real ``kyb server`` with its agent (API server, scheduler, controller manager, agent -> kubelet
-> private containerd, CNI bridge), fresh data dir, on a bridge and pod CIDR of its own.

- **server start -> node Ready**: from spawning ``kyb server`` to the Node's Ready condition True
  (polled every 50 ms).
- **pod start-up latency** (Kubernetes' SLI: "pod created -> Running and Ready, image present, as
  observed from a watch"): for each pod, from just before its create request is sent to the watch
  event that shows ``Ready=True``. The pods are busybox (the built-in image, already on the node)
  with no probes, so Ready is Running plus the status write. ``creationTimestamp`` has a 1 s
  resolution, so the client-side send time stands in for it (it is earlier, never later).
  ``sequential``: N pods one at a time (each deleted and gone before the next); ``burst``: M pods
  created at once (all requests in flight together).
- **the containerd floor**: the same busybox image on the same containerd (the node's own socket),
  ``ctr run --rm IMAGE ID true`` timed to exit: N one at a time and M at once. This is the cost of
  a container with no pod sandbox, no network and no API server; a pod needs a sandbox (pause
  container + CNI) and an app container, so ~2x the floor is the best a kubelet could do.
- **CPU during the burst**: the machine's busy time while the M pods start, split into the
  kybernetes processes (by component) and the rest (containerd, shims, runc, CNI plugins, kernel).
- **idle RSS**: the resident memory of the server's process tree (server, scheduler, controller
  manager, agent, kubelet, containerd) with no pods, after the runs, summed from /proc.

Results: a table with the goals next to the figures, and ``bench/results/podstartup.json``.
Percentiles are nearest-rank (with 20 samples, p99 is the worst).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from bench.procstat import CpuWindow, tree_rss
from kybernetes import aiorun, errors
from kybernetes.client.rest import Client
from kybernetes.images.oci import BUSYBOX_IMAGE
from kybernetes.testing import ServerProcess, free_network_octet

Obj = dict[str, Any]
NAMESPACE = "bench"

GOALS = {
    "burst_p50_s": 0.5,
    "burst_p99_s": 1.5,
    "sequential_over_floor": 3.0,
}
REFERENCES = {
    "pod start-up SLO (Kubernetes)": "p99 <= 5 s",
    "5,000-node cluster (Kubernetes scalability test)": "p50 1.9 s",
    "server start -> node Ready": "k3d ~20 s, kind 33 s",
    "idle RSS": "k0s controller 510 MB, k3s agent 275 MB",
}


def percentile(values: list[float], p: float) -> float:
    """Nearest rank."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50_s": round(percentile(values, 50), 4), "p99_s": round(percentile(values, 99), 4),
            "min_s": round(min(values), 4) if values else math.nan,
            "max_s": round(max(values), 4) if values else math.nan}


def pick_network() -> int:
    """A second octet N with 10.N.0.0/16 on no interface or route here (other clusters use 10.42)."""
    return free_network_octet(200, 240, "kyb{}b")


def is_ready(pod: Obj) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def pod_manifest(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"bench": "podstartup"}},
            "spec": {"terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": BUSYBOX_IMAGE, "imagePullPolicy": "IfNotPresent",
                                     # Exits at once on SIGTERM, so deletions do not wait out the grace period.
                                     "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]}]}}


# ---- the runs ----------------------------------------------------------------------------------------


class PodWatch:
    """One watch on the namespace's pods; records when each pod is first seen Ready."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.ready_at: dict[str, float] = {}
        self.present: set[str] = set()
        self.changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        listing = await self.client.list("v1", "pods", NAMESPACE)
        for item in listing.get("items") or []:
            self.present.add(item["metadata"]["name"])
        self._task = asyncio.create_task(self._run(str(listing["metadata"]["resourceVersion"])))

    async def _run(self, rv: str) -> None:
        while True:
            async for ev in self.client.watch("v1", "pods", NAMESPACE, resource_version=rv, timeout_seconds=600):
                now = time.monotonic()
                meta = ev.object.get("metadata") or {}
                rv = str(meta.get("resourceVersion") or rv)
                if ev.type == "BOOKMARK":
                    continue
                name = meta.get("name", "")
                if ev.type == "DELETED":
                    self.present.discard(name)
                else:
                    self.present.add(name)
                    if name not in self.ready_at and is_ready(ev.object):
                        self.ready_at[name] = now
                self.changed.set()

    async def wait(self, cond: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("timed out waiting on the pod watch")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 1.0))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def create_and_time(client: Client, watch: PodWatch, names: list[str], timeout: float) -> list[float]:
    sent: dict[str, float] = {}

    async def create(name: str) -> None:
        sent[name] = time.monotonic()
        await client.create("v1", "pods", pod_manifest(name), NAMESPACE)

    await asyncio.gather(*(create(n) for n in names))
    await watch.wait(lambda: all(n in watch.ready_at for n in names), timeout)
    return [watch.ready_at[n] - sent[n] for n in names]


async def delete_all(client: Client, watch: PodWatch, names: list[str], timeout: float = 120) -> None:
    async def delete(name: str) -> None:
        with contextlib.suppress(errors.NotFound):
            await client.delete("v1", "pods", name, NAMESPACE)

    await asyncio.gather(*(delete(n) for n in names))
    await watch.wait(lambda: not (set(names) & watch.present), timeout)


def ctr_base(socket: Path) -> list[str]:
    return ["ctr", "--address", str(socket), "--namespace", "k8s.io"]


def snapshotter_of(config: Path) -> str | None:
    import tomllib

    try:
        value = tomllib.loads(config.read_text())["plugins"]["io.containerd.grpc.v1.cri"]["containerd"]["snapshotter"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return value if isinstance(value, str) else None


async def ctr_run(socket: Path, snapshotter: str | None) -> float:
    cid = f"bench-floor-{uuid.uuid4().hex[:12]}"
    argv = [*ctr_base(socket), "run", "--rm", *(["--snapshotter", snapshotter] if snapshotter else []),
            BUSYBOX_IMAGE, cid, "true"]
    start = time.monotonic()
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await proc.communicate()
    took = time.monotonic() - start
    if proc.returncode != 0:
        raise RuntimeError(f"ctr run failed ({proc.returncode}): {err.decode(errors='replace')}")
    return took


async def floor(socket: Path, snapshotter: str | None, sequential: int, burst: int) -> dict[str, Any]:
    await ctr_run(socket, snapshotter)  # warm-up: the first run pays for the snapshot's first unpack
    one = [await ctr_run(socket, snapshotter) for _ in range(sequential)]
    many = await asyncio.gather(*(ctr_run(socket, snapshotter) for _ in range(burst)))
    return {"sequential": summary(one), "burst": summary(list(many))}


async def measure(srv: ServerProcess, args: argparse.Namespace) -> dict[str, Any]:
    client = Client.from_kubeconfig(srv.kubeconfig, user_agent="bench-podstartup")
    try:
        with contextlib.suppress(errors.AlreadyExists):
            await client.create("v1", "namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                     "metadata": {"name": NAMESPACE}})
        # Pods get the default ServiceAccount's token volume, as they do by default: wait for it.
        deadline = time.monotonic() + 60
        while True:
            try:
                await client.get("v1", "serviceaccounts", "default", NAMESPACE)
                break
            except errors.NotFound:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        watch = PodWatch(client)
        await watch.start()
        try:
            # Warm-up: the first pod on a fresh node pays for one-off work (CNI plugin first run).
            await create_and_time(client, watch, ["warmup"], 120)
            await delete_all(client, watch, ["warmup"])
            sequential: list[float] = []
            for i in range(args.sequential):
                name = f"seq-{i}"
                sequential += await create_and_time(client, watch, [name], 60)
                await delete_all(client, watch, [name])
            names = [f"burst-{i}" for i in range(args.burst)]
            cpu = CpuWindow(srv.proc.pid)
            burst = await create_and_time(client, watch, names, 300)
            burst_cpu = cpu.stop()
            await delete_all(client, watch, names, 300)
        finally:
            await watch.stop()
    finally:
        await client.close()
    return {"sequential": summary(sequential), "burst": summary(burst), "burst_cpu": burst_cpu,
            "samples": {"sequential": [round(x, 4) for x in sequential], "burst": [round(x, 4) for x in burst]}}


async def wait_node_ready(srv: ServerProcess, node: str, started: float, timeout: float) -> float:
    client = Client.from_kubeconfig(srv.kubeconfig, user_agent="bench-podstartup")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(errors.NotFound):
                if is_ready(await client.get("v1", "nodes", node)):
                    return time.monotonic() - started
            await asyncio.sleep(0.05)
    finally:
        await client.close()
    raise TimeoutError(f"node {node} not Ready after {timeout}s")


def cleanup_node(data_dir: Path, bridge: str) -> None:
    """After the server stopped: anything its node left (nothing, when the drain worked)."""
    from kybernetes.kubelet.containerd import Containerd, cleanup_mounts, kill_pids

    agent = data_dir / "agent"
    runtime = Containerd(agent)
    pid = runtime.find_running_pid()
    if pid is not None:
        kill_pids([pid])
    kill_pids(runtime.shim_pids())
    cleanup_mounts(data_dir)
    # The CNI bridge plugin creates the bridge and never deletes it.
    subprocess.run(["ip", "link", "delete", bridge], capture_output=True)


def print_table(result: dict[str, Any]) -> None:
    pods, fl = result["pods"], result["floor"]
    ratio = result["sequential_over_floor"]
    rows = [
        ("server start -> node Ready", f"{result['server_start_to_node_ready_s']:.2f} s",
         "k3d ~20 s, kind 33 s"),
        (f"pod start-up, one at a time (n={pods['sequential']['n']})",
         f"p50 {pods['sequential']['p50_s']:.3f} s  p99 {pods['sequential']['p99_s']:.3f} s",
         f"<= 3x floor: {ratio:.2f}x ({'ok' if ratio <= GOALS['sequential_over_floor'] else 'MISSED'})"),
        (f"pod start-up, {pods['burst']['n']} at once",
         f"p50 {pods['burst']['p50_s']:.3f} s  p99 {pods['burst']['p99_s']:.3f} s",
         "p50 <= 0.5 s ({}), p99 <= 1.5 s ({}); SLO p99 <= 5 s; 5k-node p50 1.9 s".format(
             "ok" if pods["burst"]["p50_s"] <= GOALS["burst_p50_s"] else "MISSED",
             "ok" if pods["burst"]["p99_s"] <= GOALS["burst_p99_s"] else "MISSED")),
        (f"containerd floor, one at a time (n={fl['sequential']['n']})",
         f"p50 {fl['sequential']['p50_s']:.3f} s  p99 {fl['sequential']['p99_s']:.3f} s", "ctr run --rm ... true"),
        (f"containerd floor, {fl['burst']['n']} at once",
         f"p50 {fl['burst']['p50_s']:.3f} s  p99 {fl['burst']['p99_s']:.3f} s", ""),
        ("idle RSS, server process tree", f"{result['idle_rss_mb']:.0f} MB",
         "k0s controller 510 MB, k3s agent 275 MB"),
    ]
    width = max(len(r[0]) for r in rows)
    vwidth = max(len(r[1]) for r in rows)
    for label, value, goal in rows:
        print(f"{label:<{width}}  {value:<{vwidth}}  {goal}")
    print("idle RSS by process: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(result["idle_rss_by_process_mb"].items())))
    bc = pods.get("burst_cpu")
    if bc:
        print(f"CPU during the burst ({bc['wall_s']:.1f} s wall): machine {bc['machine_busy_cpu_s']:.1f} s busy = "
              f"kybernetes {bc['kybernetes_cpu_s']:.1f} s + containerd/shims/runc/CNI/kernel "
              f"{bc['runtime_and_rest_cpu_s']:.1f} s; kybernetes by process: "
              + ", ".join(f"{k} {v:.1f} s" for k, v in bc["kybernetes_by_process"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sequential", type=int, default=20, help="pods one at a time (and floor runs)")
    parser.add_argument("--burst", type=int, default=50, help="pods at once (and floor runs at once)")
    parser.add_argument("--quick", action="store_true", help="5 one at a time, 10 at once")
    parser.add_argument("--idle-settle", type=float, default=10.0, help="seconds idle before measuring RSS")
    parser.add_argument("--tmp-dir", type=Path, default=None, help="where the temporary data dir goes")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "podstartup.json")
    args = parser.parse_args()
    if args.quick:
        args.sequential, args.burst = 5, 10
    if os.geteuid() != 0:
        sys.exit("needs root (containerd and CNI)")
    for binary in ("containerd", "runc", "ctr"):
        if shutil.which(binary) is None:
            sys.exit(f"needs {binary}")

    octet = pick_network()
    bridge, node = f"kyb{octet}b", f"bench-{octet}"
    # A short data dir: containerd's socket path must stay under the 108-byte unix socket limit.
    data_dir = Path(tempfile.mkdtemp(prefix="kybb-", dir=args.tmp_dir or "/tmp")).resolve()
    # Other work on the machine shows up in every figure here: recorded next to them.
    load_before = os.getloadavg()
    started = time.monotonic()
    srv = ServerProcess.start(
        data_dir / "srv", "--cluster-cidr", f"10.{octet}.0.0/16", "--node-name", node,
        "--kubelet-arg", f"cni-bridge={bridge}", "--kubelet-arg", f"default-pod-cidr=10.{octet}.0.0/24",
        agent=True, timeout=60)
    try:
        to_ready = aiorun.run(wait_node_ready(srv, node, started, 120))
        print(f"server start -> node {node} Ready: {to_ready:.2f} s", flush=True)
        pods = aiorun.run(measure(srv, args))
        print(f"pods: one at a time {pods['sequential']}, at once {pods['burst']}", flush=True)
        socket = srv.data_dir / "agent" / "containerd" / "containerd.sock"
        snap = snapshotter_of(srv.data_dir / "agent" / "containerd" / "config.toml")
        fl = aiorun.run(floor(socket, snap, args.sequential, args.burst))
        print(f"floor: one at a time {fl['sequential']}, at once {fl['burst']}", flush=True)
        time.sleep(args.idle_settle)
        rss, per = tree_rss(srv.proc.pid)
        load_after = os.getloadavg()
    finally:
        srv.stop()
        cleanup_node(srv.data_dir, bridge)
        shutil.rmtree(data_dir, ignore_errors=True)

    result: dict[str, Any] = {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
                    "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after]},
        "server_start_to_node_ready_s": round(to_ready, 3),
        "pods": pods,
        "floor": fl,
        "floor_command": f"ctr -a SOCK -n k8s.io run --rm {BUSYBOX_IMAGE} ID true",
        "sequential_over_floor": round(pods["sequential"]["p50_s"] / fl["sequential"]["p50_s"], 3),
        "idle_rss_mb": round(rss / 2**20, 1),
        "idle_rss_by_process_mb": {k: round(v / 2**20, 1) for k, v in per.items()},
        "goals": GOALS,
        "references": REFERENCES,
    }
    print_table(result)
    print(f"load average (1/5/15 min) before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} on {os.cpu_count()} CPUs")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
