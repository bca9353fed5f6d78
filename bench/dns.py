"""Cached Service lookups per second and p99: ``kyb dns`` against Debian's NSD, same load, one run.

Run from the repository root (needs ``dnsperf`` and ``nsd``, which scripts/setup.sh installs)::

    .venv/bin/python -m bench.dns              # ~2 minutes on 2 cores
    .venv/bin/python -m bench.dns --quick      # a smoke test

It starts a real ``kyb server`` (API server only, fresh temp data dir), creates ``--services``
ClusterIP Services in one namespace, and runs ``kyb dns`` on a loopback port against it. NSD
(one server process, ``server-count: 1``, as ours is one process) serves a static
``cluster.local`` zone with the same names and the same addresses on another loopback port. The
query file asks for every Service's A record (answers ``kyb dns`` serves from its precomputed
records, NSD from its compiled zone). For each server, alternated A, B, A, B:

- throughput: ``dnsperf -c 1 -q 64 -l SECONDS`` (as many queries as it can keep outstanding);
  queries/s and lost queries from dnsperf's summary;
- latency: ``dnsperf -Q 2000 -v`` (a fixed 2,000 queries/s, well below either server's
  capacity), p50/p99 from its per-query lines.

Goal: ``kyb dns`` reaches at least 20% of NSD's queries/s and its p99 at 2,000 queries/s is under
10 ms. JSON goes to ``bench/results/dns.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import dns.message
import dns.query

from kybernetes.testing import ServerProcess, free_port, stop_process

RESULTS_PATH = Path(__file__).parent / "results" / "dns.json"
NAMESPACE = "bench"
ZONE = "cluster.local"
GOAL_QPS_RATIO = 0.20
GOAL_P99_MS = 10.0
LATENCY_QPS = 2000


def create_services(server: ServerProcess, n: int) -> dict[str, str]:
    """``n`` ClusterIP Services; returns name -> ClusterIP."""
    server.kubectl("create", "namespace", NAMESPACE)
    for start in range(0, n, 250):
        items = [{"apiVersion": "v1", "kind": "Service", "metadata": {"name": f"svc-{i}"},
                  "spec": {"ports": [{"name": "http", "port": 80}]}} for i in range(start, min(n, start + 250))]
        server.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                                              "items": items}), timeout=300)
    out = server.kubectl("get", "svc", "-n", NAMESPACE, "-o", "json", timeout=120).stdout
    return {s["metadata"]["name"]: s["spec"]["clusterIP"] for s in json.loads(out)["items"]}


def wait_answer(port: int, name: str, expect: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=1)
            if any(rd.to_text() == expect for rrset in r.answer for rd in rrset):
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{name} did not answer {expect} on port {port}")


def start_kyb_dns(server: ServerProcess, tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (tmp / "resolv.conf").write_text("")  # nothing is forwarded in this bench
    log = open(tmp / "dns.log", "ab")  # noqa: SIM115 (open while the process runs)
    proc = subprocess.Popen([sys.executable, "-m", "kybernetes.cli", "dns", "--kubeconfig", str(server.kubeconfig),
                             "--listen", f"127.0.0.1:{port}", "--resolv-conf", str(tmp / "resolv.conf"),
                             "--health-port", str(free_port()), "--ready-port", str(free_port()),
                             "--metrics-port", str(free_port())],  # counted, as by default
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return proc, port


def start_nsd(ips: dict[str, str], tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    d = tmp / "nsd"
    d.mkdir()
    lines = [f"$ORIGIN {ZONE}.", "$TTL 5",
             f"@ IN SOA ns.dns.{ZONE}. hostmaster.{ZONE}. 1 7200 1800 86400 5", f"@ IN NS ns.dns.{ZONE}.",
             "ns.dns IN A 10.43.0.10"]
    lines += [f"{name}.{NAMESPACE}.svc IN A {ip}" for name, ip in sorted(ips.items())]
    (d / "zone").write_text("\n".join(lines) + "\n")
    (d / "nsd.conf").write_text(f"""server:
  ip-address: 127.0.0.1@{port}
  port: {port}
  server-count: 1
  username: ""
  chroot: ""
  zonesdir: "{d}"
  database: ""
  zonelistfile: "{d}/zone.list"
  xfrdfile: "{d}/xfrd.state"
  pidfile: "{d}/nsd.pid"
  logfile: "{d}/nsd.log"
remote-control:
  control-enable: no
zone:
  name: {ZONE}
  zonefile: "{d}/zone"
""")
    proc = subprocess.Popen(["nsd", "-d", "-c", str(d / "nsd.conf")], stdout=subprocess.DEVNULL,
                            stderr=open(d / "stderr", "wb"), start_new_session=True)  # noqa: SIM115
    return proc, port


def dnsperf(port: int, queries: Path, seconds: float, *extra: str) -> str:
    res = subprocess.run(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d", str(queries), "-l", str(seconds),
                          "-t", "2", *extra], capture_output=True, text=True, timeout=seconds + 60)
    if res.returncode != 0:
        raise RuntimeError(f"dnsperf failed: {res.stderr}")
    return res.stdout


def throughput(port: int, queries: Path, seconds: float) -> dict[str, Any]:
    out = dnsperf(port, queries, seconds, "-c", "1", "-q", "64")
    qps = float(re.search(r"Queries per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lost = int(re.search(r"Queries lost:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    avg = float(re.search(r"Average Latency \(s\):\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return {"qps": round(qps, 1), "lost": lost, "avg_latency_ms": round(avg * 1000, 3)}


def latency(port: int, queries: Path, seconds: float) -> dict[str, Any]:
    out = dnsperf(port, queries, seconds, "-c", "1", "-Q", str(LATENCY_QPS), "-v")
    # Per-query lines: "> NOERROR name A 0.000123" (the last field is the latency in seconds).
    samples = sorted(float(line.split()[-1]) for line in out.splitlines()
                     if line.startswith(">") and re.match(r"^[\d.]+$", line.split()[-1]))
    if not samples:
        raise RuntimeError("dnsperf -v printed no per-query latencies:\n" + out[:2000])

    def pct(p: float) -> float:
        return round(samples[min(len(samples) - 1, int(p / 100 * len(samples)))] * 1000, 3)

    return {"qps": LATENCY_QPS, "samples": len(samples), "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": pct(100)}


def cpu_seconds(pid: int) -> float:
    """User + system CPU of ``pid`` and its live descendants (NSD serves from a grandchild:
    the process started becomes xfrd, its child the main process, whose children serve)."""
    stats: dict[int, tuple[int, int]] = {}  # pid -> (ppid, ticks)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, _) in stats.items():
            if ppid == parent and child not in tree:
                tree.add(child)
                frontier.append(child)
    return sum(stats[p][1] for p in tree if p in stats) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--services", type=int, default=1000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100 Services, 2-second runs, one round")
    ap.add_argument("--out", type=Path, default=RESULTS_PATH)
    args = ap.parse_args()
    if args.quick:
        args.services, args.seconds, args.rounds = 100, 2.0, 1
    for tool in ("dnsperf", "nsd"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (scripts/setup.sh installs it)")
    loadavg = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="kyb-bench-dns-") as tmpdir:
        tmp = Path(tmpdir)
        server = ServerProcess.start(tmp / "data", timeout=60)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            t0 = time.monotonic()
            ips = create_services(server, args.services)
            print(f"{len(ips)} Services in {time.monotonic() - t0:.1f}s", file=sys.stderr)
            kyb, kyb_port = start_kyb_dns(server, tmp)
            procs.append(kyb)
            nsd, nsd_port = start_nsd(ips, tmp)
            procs.append(nsd)
            last = f"svc-{args.services - 1}"
            for port in (kyb_port, nsd_port):
                wait_answer(port, f"{last}.{NAMESPACE}.svc.{ZONE}", ips[last])
            queries = tmp / "queries"
            queries.write_text("".join(f"{n}.{NAMESPACE}.svc.{ZONE} A\n" for n in sorted(ips)))
            results: dict[str, list[dict[str, Any]]] = {"kyb-dns": [], "nsd": []}
            for _ in range(args.rounds):
                for label, proc, port in (("kyb-dns", kyb, kyb_port), ("nsd", nsd, nsd_port)):
                    cpu0 = cpu_seconds(proc.pid)
                    tp = throughput(port, queries, args.seconds)
                    tp["server_cpu_us_per_query"] = round(
                        (cpu_seconds(proc.pid) - cpu0) / max(1.0, tp["qps"] * args.seconds) * 1e6, 2)
                    lat = latency(port, queries, args.seconds)
                    results[label].append({"throughput": tp, "latency": lat})
                    print(label, tp, lat, file=sys.stderr)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
                    stop_process(p, 10)
            server.stop()

    def median(label: str, section: str, key: str) -> float:
        vals = sorted(r[section][key] for r in results[label])
        return vals[len(vals) // 2]

    kyb_qps, nsd_qps = median("kyb-dns", "throughput", "qps"), median("nsd", "throughput", "qps")
    kyb_p99, nsd_p99 = median("kyb-dns", "latency", "p99_ms"), median("nsd", "latency", "p99_ms")
    ratio = kyb_qps / nsd_qps if nsd_qps else 0.0
    verdict = "PASS" if ratio >= GOAL_QPS_RATIO and kyb_p99 < GOAL_P99_MS else "MISS"
    summary = {"kyb_dns_qps": kyb_qps, "nsd_qps": nsd_qps, "qps_ratio": round(ratio, 3), "kyb_dns_p99_ms": kyb_p99,
               "nsd_p99_ms": nsd_p99, "goal": f"qps >= {GOAL_QPS_RATIO:.0%} of nsd and p99 < {GOAL_P99_MS} ms "
               f"at {LATENCY_QPS} queries/s", "verdict": verdict}
    doc = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), "nproc": os.cpu_count(),
           "loadavg_at_start": loadavg, "services": args.services, "seconds_per_run": args.seconds,
           "rounds": args.rounds, "runs": results, "summary": summary}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"| server | queries/s (median) | p99 at {LATENCY_QPS} q/s |")
    print("|---|---|---|")
    print(f"| kyb dns | {kyb_qps:,.0f} | {kyb_p99} ms |")
    print(f"| nsd | {nsd_qps:,.0f} | {nsd_p99} ms |")
    print(f"ratio {ratio:.2f}: {verdict} ({summary['goal']})")


if __name__ == "__main__":
    main()
