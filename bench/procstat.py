"""Process-tree accounting for the benchmarks: RSS and CPU seconds per kybernetes component.

A component is named by how it was started (``python -m kybernetes.cli scheduler`` is ``kyb
scheduler``); everything a benchmark starts is below the benchmark's own process or the server's,
so a tree walk from there finds it. CPU comes from ``/proc/PID/stat`` (user + system), the machine's
busy time from ``/proc/stat``; the difference is everything else (the container runtime, the kernel
work it causes, other load), which a per-process reading would miss for short-lived processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def _proc_table() -> dict[int, tuple[int, str, int, int]]:
    """pid -> (ppid, name, rss bytes, anonymous rss bytes) for every process."""
    page = os.sysconf("SC_PAGE_SIZE")
    out: dict[int, tuple[int, str, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            statm = (entry / "statm").read_text().split()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        argv = [a.decode(errors="replace") for a in cmdline if a]
        if len(argv) >= 4 and argv[1:3] == ["-m", "kybernetes.cli"]:
            name = f"kyb {argv[3]}"
        else:
            name = os.path.basename(argv[0]) if argv else stat.split("(", 1)[1].split(")", 1)[0]
        # statm: resident, then shared (file-backed and shmem); the rest of resident is anonymous.
        out[int(entry.name)] = (ppid, name, int(statm[1]) * page, (int(statm[1]) - int(statm[2])) * page)
    return out


def _descendants(table: dict[int, tuple[int, str, int, int]], root: int) -> set[int]:
    """``root`` and every process below it."""
    members = {root}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, *_) in table.items():
            if ppid in members and pid not in members:
                members.add(pid)
                changed = True
    return members


def tree_pids(root: int) -> set[int]:
    """``root`` and every process below it, now."""
    return _descendants(_proc_table(), root)


def tree_rss(root: int, *, anon: bool = False) -> tuple[int, dict[str, int]]:
    """Total RSS of `root` and its descendants, and per process name; with ``anon`` only the
    anonymous part (the heap: what a leak grows), without the file-backed pages (libraries, mapped
    files) that the kernel may drop and read back at any time under other memory pressure."""
    table = _proc_table()
    members = _descendants(table, root)
    per: dict[str, int] = {}
    for pid in members:
        if pid in table:
            _, name, rss, anon_rss = table[pid]
            per[name] = per.get(name, 0) + (anon_rss if anon else rss)
    return sum(per.values()), per


def machine_busy_seconds() -> float:
    """CPU time the whole machine has spent busy (all cores, not idle or iowait), from /proc/stat."""
    f = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(f[:8]) - f[3] - f[4]) / os.sysconf("SC_CLK_TCK")


def kyb_cpu_seconds(root: int) -> dict[str, float]:
    """CPU seconds so far of each kybernetes (Python) process in ``root``'s tree, by component."""
    table = _proc_table()
    members = _descendants(table, root)
    out: dict[str, float] = {}
    tck = os.sysconf("SC_CLK_TCK")
    for pid in members:
        name = table.get(pid, (0, "", 0, 0))[1]
        if not name.startswith("kyb "):
            continue
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = out.get(name, 0.0) + (int(f[11]) + int(f[12])) / tck
    return out


class CpuWindow:
    """Where the CPU went during a run: the kybernetes processes, and everything else.

    "Everything else" is the machine's busy time minus the kybernetes processes: containerd, its
    shims, runc, the CNI plugins and the kernel work they cause (plus any other load on the machine,
    which the load average in the JSON helps judge). Short-lived processes (runc, CNI plugins) are
    counted this way, where a per-process reading would miss them.
    """

    def __init__(self, root: int) -> None:
        self.root = root
        self.t0 = time.monotonic()
        self.busy0 = machine_busy_seconds()
        self.kyb0 = kyb_cpu_seconds(root)

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.t0
        busy = machine_busy_seconds() - self.busy0
        kyb1 = kyb_cpu_seconds(self.root)
        per = {k: round(v - self.kyb0.get(k, 0.0), 2) for k, v in sorted(kyb1.items())}
        kyb = sum(per.values())
        return {"wall_s": round(wall, 2), "machine_busy_cpu_s": round(busy, 2), "kybernetes_cpu_s": round(kyb, 2),
                "runtime_and_rest_cpu_s": round(max(0.0, busy - kyb), 2), "kybernetes_by_process": per}
