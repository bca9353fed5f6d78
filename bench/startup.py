"""Start time and idle memory of ``kyb server``, and the pytest plugin's cluster start (issue 18, 19).

Run from the repository root, as root (the node's containerd and CNI)::

    .venv/bin/python -m bench.startup               # 3 rounds (~2 minutes on 2 quiet cores)
    .venv/bin/python -m bench.startup --rounds 1    # smoke test

What is measured, per round, on a fresh data dir, bridge and pod CIDR of its own:

- **first start -> node Ready**: from spawning ``kyb server`` (API server, scheduler, controller
  manager, agent -> kubelet, kube-proxy, containerd; add-ons and the cloud-controller-manager off,
  as the test harness runs it) to the Node's Ready condition True (polled every 20 ms);
- **restart -> node Ready**: the same server stopped (SIGTERM) and started again on the same data
  dir, to Ready again as its new kubelet says (a heartbeat in the Ready condition no older than the
  restart's second: the Node keeps the condition the previous kubelet posted);
- **CPU to Ready**: the CPU seconds each kybernetes process of the tree has used by then (from
  /proc; the figure that other load on the machine moves least), and containerd's apart;
- **idle RSS**: the resident memory of the server's tree ``--idle-settle`` seconds after the first
  start's Ready, by process, containerd listed apart (the goal excludes it);
- **kyb_cluster start** (``kybernetes.testing.cluster.KybCluster``, what the pytest plugin's fixture
  returns): from the call to the API server's first answer to a namespaced create, and the CPU
  seconds of its tree by then.

Bytecode: every process runs from cached bytecode, as an installed package does (pip compiles it):
the benchmark compiles the ``kybernetes`` package it imports first, and lets its children write
and read ``__pycache__`` even where ``PYTHONDONTWRITEBYTECODE`` is set (in a development shell
without caches every process compiles each module it imports from source: ~0.15 s of CPU more
for the API server alone). ``--no-bytecode-cache`` measures that case instead.

Goals (issue 18, 19): first start and restart -> node Ready <= 2.0 s; idle RSS without containerd
<= 250 MB; kyb_cluster start < 1.0 s. Medians over the rounds (wall clock, with the load average:
on a shared machine, wall figures are the least reliable; CPU seconds the most). The calibration
figure (:mod:`bench.calibration`) heads the output; the CPU figures are also given in its units.
JSON in ``bench/results/startup.json``.
"""

from __future__ import annotations

import argparse
import compileall
import datetime as dt
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import kybernetes
from bench.calibration import calibrate, units
from bench.procstat import kyb_cpu_seconds, tree_rss
from kybernetes.testing import ServerProcess, free_network_octet
from kybernetes.testing.cluster import KybCluster

GOALS = {"first_start_s": 2.0, "restart_s": 2.0, "idle_rss_mb": 250.0, "testkit_start_s": 1.0}
POLL = 0.02


def _ready_since(node: dict[str, Any], since: str) -> bool:
    """Ready, as its kubelet said at ``since`` (RFC 3339, seconds) or later: after a restart the
    Node still holds the Ready condition the previous kubelet posted."""
    return any(c.get("type") == "Ready" and c.get("status") == "True" and c.get("lastHeartbeatTime", "") >= since
               for c in (node.get("status") or {}).get("conditions") or [])


def wait_node_ready(srv: ServerProcess, node: str, started: float, since: str, timeout: float = 120.0) -> float:
    """Seconds from ``started`` until the Node ``node`` is Ready with a heartbeat from ``since`` on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = srv.request("GET", f"/api/v1/nodes/{node}")
        if status == 200 and _ready_since(body, since):
            return time.monotonic() - started
        time.sleep(POLL)
    raise TimeoutError(f"node {node} not Ready after {timeout}s:\n{srv.log()}")


def _containerd_cpu(root: int) -> float:
    """CPU seconds of the containerd processes in ``root``'s tree."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in _tree(root):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        if stat.split("(", 1)[1].split(")", 1)[0] == "containerd":
            f = stat.rsplit(")", 1)[1].split()
            total += (int(f[11]) + int(f[12])) / tck
    return total


def _tree(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _start(data_dir: Path, octet: int, node: str, bridge: str) -> tuple[ServerProcess, float, dict[str, Any]]:
    since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    started = time.monotonic()
    srv = ServerProcess.start(
        data_dir, "--cluster-cidr", f"10.{octet}.0.0/16", "--node-name", node,
        "--kubelet-arg", f"cni-bridge={bridge}", "--kubelet-arg", f"default-pod-cidr=10.{octet}.0.0/24",
        agent=True, timeout=120, poll_interval=POLL)
    try:
        to_ready = wait_node_ready(srv, node, started, since)
        cpu = kyb_cpu_seconds(srv.proc.pid)
    except BaseException:
        srv.stop()
        raise
    return srv, to_ready, {"kyb_cpu_s": round(sum(cpu.values()), 2),
                           "by_process": {k: round(v, 2) for k, v in sorted(cpu.items())},
                           "containerd_cpu_s": round(_containerd_cpu(srv.proc.pid), 2)}


def _cleanup(data_dir: Path, bridge: str) -> None:
    from bench.podstartup import cleanup_node

    cleanup_node(data_dir, bridge)


def node_round(idle_settle: float) -> dict[str, Any]:
    octet = free_network_octet(200, 240, "kyb{}b")
    bridge, node = f"kyb{octet}b", f"bench-{octet}"
    data_dir = Path(tempfile.mkdtemp(prefix="kybs-", dir="/tmp")).resolve() / "srv"
    try:
        srv, first, first_cpu = _start(data_dir, octet, node, bridge)
        try:
            time.sleep(idle_settle)
            rss, per = tree_rss(srv.proc.pid)
        finally:
            srv.stop()
        srv, restart, restart_cpu = _start(data_dir, octet, node, bridge)
        srv.stop()
    finally:
        _cleanup(data_dir, bridge)
        shutil.rmtree(data_dir.parent, ignore_errors=True)
    by_mb = {k: round(v / 2**20, 1) for k, v in sorted(per.items())}
    containerd = by_mb.get("containerd", 0.0)
    return {"first_start_s": round(first, 3), "restart_s": round(restart, 3),
            "first_cpu": first_cpu, "restart_cpu": restart_cpu,
            "idle_rss_mb": round(rss / 2**20 - containerd, 1), "containerd_rss_mb": containerd,
            "idle_rss_by_process_mb": by_mb}


def testkit_round() -> dict[str, Any]:
    cluster = KybCluster.start()
    try:
        cpu = kyb_cpu_seconds(cluster.process.proc.pid)
    finally:
        cluster.stop()
    return {"start_s": round(cluster.started_in, 3), "kyb_cpu_s": round(sum(cpu.values()), 2),
            "by_process": {k: round(v, 2) for k, v in sorted(cpu.items())}}


def _median(values: list[float]) -> float:
    return round(statistics.median(values), 3)


def summarise(nodes: list[dict[str, Any]], kits: list[dict[str, Any]], calibration_ms: float) -> dict[str, Any]:
    med = {
        "first_start_s": _median([r["first_start_s"] for r in nodes]),
        "restart_s": _median([r["restart_s"] for r in nodes]),
        "first_kyb_cpu_s": _median([r["first_cpu"]["kyb_cpu_s"] for r in nodes]),
        "restart_kyb_cpu_s": _median([r["restart_cpu"]["kyb_cpu_s"] for r in nodes]),
        "idle_rss_mb": _median([r["idle_rss_mb"] for r in nodes]),
        "containerd_rss_mb": _median([r["containerd_rss_mb"] for r in nodes]),
        "testkit_start_s": _median([r["start_s"] for r in kits]),
        "testkit_kyb_cpu_s": _median([r["kyb_cpu_s"] for r in kits]),
    }
    for key in ("first_kyb_cpu", "restart_kyb_cpu", "testkit_kyb_cpu"):
        med[f"{key}_cu"] = round(units(med[f"{key}_s"] * 1000, calibration_ms), 2)
    return med


def print_table(med: dict[str, Any], nodes: list[dict[str, Any]], kits: list[dict[str, Any]]) -> None:
    def row(label: str, value: str, goal_key: str | None, unit: str) -> None:
        if goal_key is None:
            print(f"| {label} | {value} | - | |")
            return
        goal = GOALS[goal_key]
        verdict = "PASS" if med[goal_key] <= goal else "MISS"
        print(f"| {label} | {value} | <= {goal:g} {unit} | {verdict} |")

    print("| figure | median | goal | |\n|---|---|---|---|")
    row("`kyb server` first start -> node Ready", f"{med['first_start_s']:.2f} s", "first_start_s", "s")
    row("`kyb server` restart (same data dir) -> node Ready", f"{med['restart_s']:.2f} s", "restart_s", "s")
    row("kybernetes CPU to Ready, first start / restart",
        f"{med['first_kyb_cpu_s']:.2f} s / {med['restart_kyb_cpu_s']:.2f} s "
        f"({med['first_kyb_cpu_cu']:.1f} / {med['restart_kyb_cpu_cu']:.1f} cu)", None, "")
    row("idle RSS of the server tree (containerd apart)", f"{med['idle_rss_mb']:.0f} MB", "idle_rss_mb", "MB")
    row("containerd idle RSS", f"{med['containerd_rss_mb']:.0f} MB", None, "")
    row("kyb_cluster start: a namespaced create answered", f"{med['testkit_start_s']:.2f} s", "testkit_start_s", "s")
    row("kyb_cluster CPU to that answer", f"{med['testkit_kyb_cpu_s']:.2f} s ({med['testkit_kyb_cpu_cu']:.1f} cu)",
        None, "")
    last = nodes[-1]
    print("idle RSS by process (last round): " + ", ".join(f"{k} {v:.0f} MB"
                                                          for k, v in last["idle_rss_by_process_mb"].items()))
    print("CPU to Ready by process (last round, first start): " + ", ".join(
        f"{k} {v:.2f} s" for k, v in last["first_cpu"]["by_process"].items())
        + f"; containerd {last['first_cpu']['containerd_cpu_s']:.2f} s")
    print("CPU to Ready by process (last round, restart): " + ", ".join(
        f"{k} {v:.2f} s" for k, v in last["restart_cpu"]["by_process"].items()))
    print("kyb_cluster CPU to its answer by process (last round): " + ", ".join(
        f"{k} {v:.2f} s" for k, v in kits[-1]["by_process"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--idle-settle", type=float, default=10.0, help="seconds after Ready before RSS is read")
    parser.add_argument("--no-bytecode-cache", action="store_true",
                        help="leave PYTHONDONTWRITEBYTECODE as it is (each process may compile from source)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "startup.json")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (containerd and CNI)")
    for binary in ("containerd", "runc"):
        if shutil.which(binary) is None:
            sys.exit(f"needs {binary}")
    if not args.no_bytecode_cache:
        os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
        compileall.compile_dir(Path(kybernetes.__file__).parent, quiet=1)
    calibration_ms = calibrate()
    print(f"calibration {calibration_ms:.0f} ms (bench.calibration)", flush=True)
    load_before = os.getloadavg()
    nodes, kits = [], []
    for i in range(args.rounds):
        nodes.append(node_round(args.idle_settle))
        kits.append(testkit_round())
        print(f"round {i + 1}: first {nodes[-1]['first_start_s']:.2f} s, restart {nodes[-1]['restart_s']:.2f} s, "
              f"idle RSS {nodes[-1]['idle_rss_mb']:.0f} MB, kyb_cluster {kits[-1]['start_s']:.2f} s "
              f"(load {os.getloadavg()[0]:.1f})", flush=True)
    load_after = os.getloadavg()
    med = summarise(nodes, kits, calibration_ms)
    print(f"median of {args.rounds} rounds; load average {load_before[0]:.1f} -> {load_after[0]:.1f} "
          f"on {os.cpu_count()} CPUs; calibration {calibration_ms:.0f} ms")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join(["python -m bench.startup", *sys.argv[1:]]),
        "machine": {"cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in load_before],
                    "loadavg_after": [round(x, 2) for x in load_after]},
        "bytecode_cache": not args.no_bytecode_cache, "calibration_ms": round(calibration_ms, 1), "goals": GOALS, "median": med,
        "pass": {k: med[k] <= v for k, v in GOALS.items()},
        "rounds": {"node": nodes, "testkit": kits},
    }, indent=2) + "\n")
    print_table(med, nodes, kits)


if __name__ == "__main__":
    main()
